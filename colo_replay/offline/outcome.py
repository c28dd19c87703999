"""``Timeline``: the outcome of a replay (``api.replay`` / ``api.replay_chardev``), and the run
that streams its rows to a Parquet file on the way (``run_streamed``).

A result object in the pandas manner: ``to_frame()`` (the events, a DataFrame), ``to_dict()``
(the summary), ``write(path_or_buf)`` (by extension, or JSON Lines on a text stream / stdout).
"""

from __future__ import annotations

import os
import sys
from functools import cached_property

from ..output.summary import format_summary, summarise
from ..output.timeline import timeline_metadata, write_timeline, write_timeline_blocks
from ..output.verdict import exit_status
from .driver import ReplayOptions, ReplayResult, replay_partial


def is_stdout(path_or_buf) -> bool:
    """``None`` and ``"-"`` mean standard output, for every output a command writes."""
    return path_or_buf is None or (isinstance(path_or_buf, str) and path_or_buf == "-")


def output_target(path_or_buf) -> tuple[str | None, object]:
    """``(path, stream)`` of an output given as a path (str or ``os.PathLike``), ``"-"`` / None
    (standard output) or an open text stream (anything with ``write``)."""
    if is_stdout(path_or_buf):
        return None, sys.stdout
    if hasattr(path_or_buf, "write"):
        return None, path_or_buf
    path = os.fspath(path_or_buf)
    if not path:
        raise ValueError("an output path must not be empty")
    return path, None


class Timeline:
    """The outcome of a replay.

    ``events`` (also ``to_frame()``) is a pandas DataFrame with one row per event (columns
    documented in ``colo_replay.output.timeline``; ``kind``, ``cause`` and ``side`` are
    categorical), ``summary`` (also ``to_dict()``) the summary as a dict, ``partial`` True when
    a capture ended in a read error (``error``).  ``capture`` is the ``ChardevCapture`` a
    chardev replay read (``describe()``, ``warnings``, ``read_error``), else None.

    A replay given ``output="t.parquet"`` streamed its rows to that file as they came and kept
    none of them (``output`` is the path): ``summary`` comes from the counts made on the way,
    and ``events`` / ``columns`` read the file back when asked.
    """

    def __init__(self, result: ReplayResult, stream=None, capture=None):
        self.result = result
        self.stream = stream         # the output.stream.ParquetStream the rows went to, or None
        self.capture = capture       # the ChardevCapture replayed, or None (a pair)
        self.output: str | None = None   # the file the replay wrote the timeline to (``replay(output=)``)

    @cached_property
    def events(self):
        if self.stream is not None:
            from ..output.timeline import read_timeline_frame
            df = read_timeline_frame(self.stream.path)  # the rows were not kept: the file has them
        else:
            df = self.result.collector.to_frame()
        df.attrs["qemu"] = self.result.qemu       # the release replayed (as the Parquet file's metadata)
        return df

    def to_frame(self):
        """The events as a pandas DataFrame (``events``)."""
        return self.events

    def to_dict(self) -> dict:
        """The summary (``summary``): what ``--summary-json`` writes."""
        return self.summary

    @cached_property
    def columns(self) -> dict:
        """The events as numpy columns (kind / cause / side as their codes; see
        ``output.timeline``), shared with the collector: what the summary and a Parquet
        timeline are made from, without pandas (a streamed run: from the file)."""
        if self.stream is not None:
            from ..output.timeline import code_columns
            return code_columns(self.events)
        return self.result.collector.columns(copy=False)

    @cached_property
    def tally(self):
        """What the summary counts (``output.tally.Tally``): made on the way when streamed."""
        if self.stream is not None:
            return self.stream.tally
        from ..output.tally import Tally
        return Tally.of(self.result.collector.blocks())      # no timeline-sized join just to count

    @cached_property
    def summary(self) -> dict:
        summary = summarise(self.tally, self.result)
        source = self.result.source
        if source:
            summary["source"] = source
        return summary

    @property
    def partial(self) -> bool:
        return self.result.partial

    @property
    def error(self) -> str | None:
        return self.result.error

    @property
    def interrupted(self) -> bool:
        return self.result.interrupted

    @property
    def diverged(self) -> bool:
        return self.summary["divergences"] > 0

    def format_summary(self) -> str:
        return format_summary(self.summary)

    def _why_partial(self) -> str | None:
        return self.error if self.error is not None else ("interrupted" if self.interrupted else None)

    def write(self, path_or_buf=None) -> None:
        """Write the events: a path (str or ``os.PathLike``) as .parquet / .csv / .jsonl by its
        extension; an open text stream, ``"-"`` or None as JSON Lines there (None and ``"-"``:
        standard output).  A partial timeline is marked so in the file (see
        ``output.timeline.write_timeline``).  The file a replay streamed to is already written:
        nothing to do."""
        path, stream = output_target(path_or_buf)
        if self.output is not None and path is not None and os.path.abspath(path) == os.path.abspath(self.output):
            return
        if self.stream is None:
            # The collector's blocks, one after the other: no timeline-sized join of the columns,
            # DataFrame or text first.  Parquet: a row group each, as a streamed run writes them.
            if path is not None and path.lower().endswith(".parquet"):
                from ..output.stream import ParquetStream
                self._write_blocks(ParquetStream(path, metadata=timeline_metadata(self.result.qemu)))
            else:
                write_timeline_blocks(self.result.collector.blocks(), path, stream, partial=self._why_partial())
            return
        write_timeline(self.events, path, stream, partial=self._why_partial(),
                       metadata=timeline_metadata(self.result.qemu))

    def _write_blocks(self, out) -> None:
        """Hand the collector's blocks, in order, to the ParquetStream ``out`` and close it
        (marked partial when the replay was); on any failure (the disk full) leave a closed,
        marked file and re-raise."""
        try:
            for block in self.result.collector.blocks():
                out(block)
            out.close(self._why_partial())
        except BaseException as exc:
            out.abort(f"{type(exc).__name__}: {exc}")
            raise

    def finish(self, output) -> None:
        """``replay(output=...)``, once the result is final: the streamed file gets the rows
        still in the collector and is closed (marked partial when the replay was); any other
        output is written from memory (``"-"``: JSON Lines on standard output)."""
        if output is None:
            return
        if self.stream is not None:
            # The rows not written yet, in order: a block a Ctrl-C stopped on its way to the
            # stream (kept by the collector), then the last one.
            self.result.collector.spill = None
            self._write_blocks(self.stream)
        else:
            self.write(output)
        self.output = None if is_stdout(output) else os.fspath(output)

    def exit_status(self, allow_empty: bool = False, exceeded: bool = False) -> int:
        """The exit status of the exit-code contract (``output.verdict``)."""
        s = self.summary
        return exit_status(requests=s["checkpoint_requests"], exceeded=exceeded,
                           nothing_compared=s["nothing_compared"], allow_empty=allow_empty, error=s["error"],
                           interrupted=s["interrupted"])

    def __len__(self) -> int:
        return len(self.result.collector)

    def __repr__(self) -> str:
        return f"<Timeline {len(self)} events, {self.summary['divergences']} divergences>"


def keeps_cascade(opts: ReplayOptions) -> bool:
    """Whether a streamed replay's ``Tally`` keeps the rows of the cascade signature: only when
    the summary will look for it (``raw`` replay, modelled checkpoints: ``summary._after_checkpoint``)."""
    return opts.after_checkpoint != "resync" and opts.checkpoints_at is None


def parquet_stream(output, opts: ReplayOptions):
    """The ``ParquetStream`` of a replay whose ``output`` is a Parquet file, else None (its
    tally keeps the cascade rows as ``keeps_cascade`` says)."""
    if output is None or hasattr(output, "write") or not os.fspath(output).lower().endswith(".parquet"):
        return None
    from ..output.stream import ParquetStream
    from ..output.timeline import timeline_metadata
    qemu = opts.release.as_dict() if opts.release is not None else None
    return ParquetStream(output, keep_cascade=keeps_cascade(opts), metadata=timeline_metadata(qemu))


def run_streamed(stream, prd, srd, opts: ReplayOptions, progress) -> ReplayResult:
    """``replay_partial`` (a read error or Ctrl-C ends it with the rows so far), its rows handed
    to ``stream`` block by block when there is one.  Anything else it raises leaves a streamed
    file closed and marked partial with the exception, then propagates."""
    if stream is None:
        return replay_partial(prd, srd, opts, progress)[0]
    from ..output.timeline import streaming
    with streaming(stream):
        try:
            return replay_partial(prd, srd, opts, progress)[0]
        except BaseException as exc:
            stream.abort(f"{type(exc).__name__}: {exc}")
            raise


def check_output(output) -> None:
    """Refuse, before any work, a timeline output we cannot write (by its extension)."""
    if output is None or hasattr(output, "write") or is_stdout(output):
        return
    from ..output.timeline import check_timeline_path
    path = os.fspath(output)
    if not path:
        raise ValueError("-o: an output path must not be empty")
    check_timeline_path(path)
