"""A replay's timeline streamed to Parquet: each block of rows the ``EventLog`` fills (65,536
rows) becomes one row group of the file at once, and is counted into a ``Tally`` (what the
summary needs) instead of being kept, so a replay's memory does not grow with its rows.

The file is the one ``write_timeline`` writes from the whole timeline: the same Arrow schema
(``_arrow_table``), dictionary encoding for kind / cause / side only, and a partial timeline
marked with the same key-value metadata (``colo_replay.partial`` / ``colo_replay.error``,
added at ``close``, ``_marked``); only the row groups are smaller.  ``pandas.read_parquet`` gives the same
DataFrame.

A Ctrl-C that lands while a block is being written is held until the block is both written and
counted (see ``_sigint_held``): the file and the summary then hold the same rows.  One noticed
as the spill begins (before anything was done) leaves the block in the ``EventLog``, which
``offline.outcome.Timeline`` hands over at the end with the rows not yet written.
"""

from __future__ import annotations

import os
from contextlib import contextmanager

from .tally import Tally
from .timeline import ERROR_KEY, PARTIAL_KEY, _arrow_table, check_timeline_path

DICTIONARY_COLUMNS = ["kind", "cause", "side"]     # as write_timeline: where the encoding pays


class ParquetStream:
    """The ``spill`` of a replay's ``TimelineCollector`` writing a Parquet timeline to ``path``.

    Call it with a block of numpy columns (``EventLog`` codes); ``close(partial)`` finishes the
    file (an empty timeline is one empty row group, as ``write_table`` writes it).  ``tally``
    holds the counts of every row written; ``keep_cascade`` as ``Tally``'s.  The file is
    created at the first block (or at ``close``), so a replay refused before its first block
    leaves no file behind.
    """

    def __init__(self, path, keep_cascade: bool = False, metadata: dict | None = None):
        self.path = os.fspath(path)
        self.metadata = metadata   # key-value metadata of the file (timeline_metadata: the QEMU release)
        check_timeline_path(self.path)
        if not self.path.lower().endswith(".parquet"):
            raise ValueError(f"{self.path}: only a .parquet timeline is streamed")
        self.tally = Tally(keep_cascade)
        self._tmp = None           # the file being written, beside ``path`` (renamed there at close)
        self._final = None         # the file it is renamed to (``path``, a symlink resolved)
        self.rows = 0
        self.closed = False
        self._writer = None
        self._pool = None          # the writing thread (see __call__)
        self._pending = None       # the row group it is writing

    def __call__(self, block: dict) -> None:
        with _sigint_held():
            self.tally.add(block)
            table = _arrow_table(block)
            self._open(table.schema)
            # The row group is encoded, compressed and written in a thread of its own while the
            # replay goes on (pyarrow leaves the GIL meanwhile): on a machine with a free core its
            # ~15% of the replay's time is off the replay's thread.  One row group at a time: the
            # previous one is finished (and its error, if any, raised here) before the next goes,
            # so the order is kept and at most one block waits in memory.
            self._finish_pending()
            if self._pool is None:
                from concurrent.futures import ThreadPoolExecutor
                self._pool = ThreadPoolExecutor(1, thread_name_prefix="colo-replay-parquet")
            self._pending = self._pool.submit(self._writer.write_table, table)
            self.rows += len(block["kind"])
            # Taken: the EventLog keeps a block whose spill raised before this (see _close_block)
            block.clear()

    def _open(self, schema) -> None:
        if self._writer is None:
            import pyarrow.parquet as pq

            from .files import replace_target, temporary_beside
            with self._named():
                # written beside its place and renamed there at close: a killed run leaves the
                # file that was there (a run that ends, even partial, closes a whole file); a
                # FIFO or a device is written in place
                self._final = replace_target(self.path)
                self._tmp = None if self._final is None else temporary_beside(self._final)
                if self.metadata:
                    schema = schema.with_metadata({**(schema.metadata or {}), **self.metadata})
                self._writer = pq.ParquetWriter(self._tmp or self.path, schema, use_dictionary=DICTIONARY_COLUMNS)

    def _finish_pending(self) -> None:
        """Wait for the row group being written; its error (a full disk) is raised here."""
        pending, self._pending = self._pending, None
        if pending is not None:
            with self._named():
                pending.result()

    def _write(self, table) -> None:
        self._open(table.schema)
        self._finish_pending()
        with self._named():
            self._writer.write_table(table)

    @contextmanager
    def _named(self):
        try:
            yield
        except OSError as exc:
            # pyarrow's own errors name no file: say which one (the CLI prints "<file>: <reason>")
            if exc.filename is not None:
                raise
            raise OSError(exc.errno, exc.strerror or str(exc), self.path) from exc

    def close(self, partial: str | None = None) -> None:
        """Finish the file; ``partial`` (why: a read error, "interrupted") marks it so."""
        if self.closed:
            return
        with _sigint_held():
            try:
                self._finish_pending()
            except BaseException as exc:
                # The last row group failed (the disk full): still leave a closed file, marked.
                self._stop_thread()
                try:
                    self._writer.add_key_value_metadata(_marked(self._writer.schema,
                                                                partial or f"{type(exc).__name__}: {exc}"))
                    self._writer.close()
                    self._commit()
                except Exception:       # noqa: BLE001 - the write error is the one to report
                    self._discard()
                self.closed = True
                raise
            self._stop_thread()
            if self._writer is None:
                from ..engine.eventlog import empty_columns
                self._write(_arrow_table(empty_columns()))
            if partial is not None:
                self._writer.add_key_value_metadata(_marked(self._writer.schema, partial))
            with self._named():
                self._writer.close()
            self._commit()
            self.closed = True

    def _commit(self) -> None:
        from .files import commit
        tmp, self._tmp = self._tmp, None
        if tmp is not None:
            commit(tmp, self._final)

    def _discard(self) -> None:
        from .files import discard
        tmp, self._tmp = self._tmp, None
        if tmp is not None:
            discard(tmp)

    def _stop_thread(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    def abort(self, why: str) -> None:
        """The replay failed (an exception it did not turn into a partial result): a file
        already begun is closed, marked partial with ``why``, and no file is begun.  Errors
        here are dropped: the replay's own is the one to report."""
        if self._writer is None or self.closed:
            return
        try:
            self.close(why)
        except Exception:        # noqa: BLE001 - e.g. the disk still full
            pass


def _marked(schema, partial: str) -> dict:
    """The key-value metadata marking a file partial, as ``write_table`` writes it for a table
    whose schema carries the marker: the keys themselves, and the Arrow schema (``ARROW:schema``,
    base64 of its IPC form) with them, which readers take the schema's metadata from (it
    replaces the one the writer stored when it opened; pyarrow merges later keys over it)."""
    import base64

    meta = {PARTIAL_KEY: b"true", ERROR_KEY: partial.encode()}
    arrow = schema.with_metadata({**(schema.metadata or {}), **meta})
    return {**meta, b"ARROW:schema": base64.b64encode(arrow.serialize().to_pybytes())}


@contextmanager
def _sigint_held():
    """Hold a SIGINT (Ctrl-C) until the block ends, then deliver it to the handler that was in
    place (KeyboardInterrupt by default).  Only where Python's handler can be swapped: in the
    main thread, with a Python-level handler installed."""
    import signal
    import threading

    previous = signal.getsignal(signal.SIGINT)
    if threading.current_thread() is not threading.main_thread() or not callable(previous):
        yield
        return
    caught = []
    signal.signal(signal.SIGINT, lambda signum, frame: caught.append(frame))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if caught:
            previous(signal.SIGINT, caught[0])


class RowsForEpisodes:
    """The ``spill`` of a sweep's replay: each block of rows is counted into a ``Tally`` (the
    summary's numbers) and only the rows ``analysis.episodes`` reads are kept (checkpoint
    requests, flushes, checkpoint starts: a few per checkpoint), so a setting's memory does not
    grow with the capture (a 4M-frame pair's whole timeline was ~1.3 GB a worker).  ``frame()``
    is the DataFrame of the kept rows, in timeline order: ``episodes`` on it gives the same
    episodes as on the whole timeline (it looks only at those rows and their order)."""

    def __init__(self, keep_cascade: bool = False):
        from ..engine.events import EventKind

        self.tally = Tally(keep_cascade)
        self._kinds = [int(EventKind.CHECKPOINT_REQUEST), int(EventKind.FLUSH), int(EventKind.CHECKPOINT_START)]
        self._kept: list = []
        self.rows = 0
        self.closed = False

    def __call__(self, block: dict) -> None:
        import numpy as np

        self.tally.add(block)
        self.rows += len(block["kind"])
        keep = np.isin(block["kind"], self._kinds)
        if keep.any():
            self._kept.append({name: col[keep] for name, col in block.items()})
        block.clear()

    def frame(self):
        """The kept rows as a timeline DataFrame (``output.timeline`` columns)."""
        import numpy as np

        from ..engine.eventlog import empty_columns
        from .timeline import frame_from_columns

        blocks = self._kept or [empty_columns()]
        return frame_from_columns({name: np.concatenate([b[name] for b in blocks]) for name in blocks[0]})

    def close(self, partial: str | None = None) -> None:
        self.closed = True

    def abort(self, why: str) -> None:
        self.closed = True
