"""A second replay in a process of its own, asked afterwards about a few frames, within a time budget.

``explain`` notes where the other QEMU profile (4.1 <-> 7.2) would decide differently on each
divergence's frames.  That needs a whole second replay, and under 4.1 (its inverted TCP test: a
checkpoint per TCP segment) it can cost several times the first.  So it runs beside the first
one, in a forked child, from the start; the parent asks it about the frames it has chosen once
it has chosen them, and waits for the answer only until a deadline.  The child streams its
timeline to a Parquet file in a folder the parent made (as ``replay -o``: its memory stays flat
however long the pair; holding the columns instead cost ~75 bytes a row, ~600 MB for a 4M-frame
pair's 8M rows, beside the parent's own timeline), reads back the rows about those frames and
sends only them: a small table, whatever the size of its timeline.  Past the deadline the child
is stopped and the answer is None (the caller says so); what the parent computed is never lost.
The parent removes the folder when it closes the job, whatever became of the child.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import shutil
import tempfile
import time

OTHER_BUDGET = 2.0
"""explain's second replay (the other QEMU profile, run beside the first) may take this many
times the first replay's time, counted from the start: explain stays within a few replays'
time even where the other profile checkpoints at every TCP segment (4.1's inverted test).
Where it does, this deadline *is* explain's time (the rest is done by then): at 2.5x with a 5 s
floor, explain took 3.2x the replay on the 1M-frame clean pair, whose 4.1 replay never finishes
in time; at 2x and 3 s, 2.6x (bench/README.md).  A profile that costs the same (a pair without
TCP data) finishes in about 1.1x, well inside."""
OTHER_MIN_S = 3.0
"""... and at least this many seconds: a short pair's other replay is never cut by the noise
of a busy machine."""


class BackgroundReplay:
    """``run(path)`` (a replay writing its timeline to the Parquet file ``path``, as ``replay(...,
    output=path)``) in a forked child, started at once.  ``rows_about(primary_frames,
    secondary_frames, deadline)``: the rows of its timeline naming those frames (a DataFrame),
    or None when it failed (``error`` says why) or did not finish by ``deadline``
    (``time.monotonic()``)."""

    def __init__(self, run):
        self.error: str | None = None
        # (made and removed here: a child stopped at the deadline is killed, and cannot clean up)
        self._dir = tempfile.mkdtemp(prefix="colo-replay-other-")
        ctx = mp.get_context("fork")      # the child inherits ``run`` and the captures' paths
        self._conn, child = ctx.Pipe()
        path = os.path.join(self._dir, "timeline.parquet")
        self._proc = ctx.Process(target=_child, args=(run, path, child), daemon=True)
        try:
            self._proc.start()
        except BaseException:
            shutil.rmtree(self._dir, ignore_errors=True)
            raise
        child.close()

    def rows_about(self, primary_frames: set, secondary_frames: set, deadline: float):
        try:
            self._conn.send((sorted(primary_frames), sorted(secondary_frames)))
            if not self._conn.poll(max(0.0, deadline - time.monotonic())):
                self.error = "timeout"
                return None
            status, value = self._conn.recv()
        except (EOFError, OSError) as exc:  # the child died (killed, out of memory)
            self.error = f"the replay's process ended: {exc or type(exc).__name__}"
            return None
        finally:
            self.close()
        if status != "ok":
            self.error = value
            return None
        return value

    def close(self) -> None:
        """Stop the child if it still runs, and remove its timeline (idempotent)."""
        if self._proc.is_alive():
            self._proc.kill()
        self._proc.join()
        self._conn.close()
        shutil.rmtree(self._dir, ignore_errors=True)


class OtherProfileReplay:
    """explain's replay with the other QEMU profile (4.1 <-> 7.2, ``name``), started beside the
    first one: ``run(settings, output)`` is how the first was made (``output``: where this one
    streams its timeline).  Call ``first_done()`` when the
    first replay has finished (the budget is counted from it), then ``rows(primary_frames,
    secondary_frames)`` (None, with ``note`` saying why, when it failed or ran over the
    budget), and ``close()`` in any case."""

    def __init__(self, run, settings):
        self.name = "4.1" if settings.release.profile.name != "4.1" else "7.2"
        self.note: str | None = None
        self._started = time.monotonic()
        self._deadline = float("inf")
        other = settings.replace(qemu=self.name)
        self._job = BackgroundReplay(lambda path: run(other, path))

    def first_done(self) -> None:
        self._deadline = self._started + max(OTHER_MIN_S, OTHER_BUDGET * (time.monotonic() - self._started))

    def rows(self, primary_frames: set, secondary_frames: set):
        rows = self._job.rows_about(primary_frames, secondary_frames, self._deadline)
        if rows is None:
            err = self._job.error
            self.note = (f"not replayed: {err}" if err != "timeout" else
                         f"QEMU {self.name}'s replay of the pair did not finish within {OTHER_BUDGET:g}x this "
                         f"replay's time (at least {OTHER_MIN_S:g} s; --no-other-profile skips it; "
                         f"details.releases has every release's verdict on a divergence's connection)")
        return rows

    def close(self) -> None:
        self._job.close()


def _child(run, path, conn) -> None:
    try:
        # the first replay and what follows it are what the user waits for: this one only
        # takes what CPU they leave
        os.nice(10)
    except OSError:
        pass
    try:
        try:
            run(path)
        except ValueError as exc:         # a knob the other profile lacks (4.1: compare_timeout ...)
            conn.recv()
            conn.send(("error", str(exc)))
            return
        primary, secondary = conn.recv()
        conn.send(("ok", rows_naming(path, primary, secondary)))
    except (EOFError, BrokenPipeError):   # the parent stopped waiting
        pass
    finally:
        conn.close()
        os._exit(0)                       # no atexit or inherited finalizers in a forked child


def rows_naming(path, primary_frames, secondary_frames):
    """The rows of the Parquet timeline ``path`` whose primary_frame is one of
    ``primary_frames`` or whose secondary_frame is one of ``secondary_frames``, in order, as the
    timeline's DataFrame (``pandas.read_parquet``'s): each row group's two frame columns are
    read, and the whole row group only where a row matches."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    primary = np.asarray(sorted(primary_frames), dtype=np.int64)
    secondary = np.asarray(sorted(secondary_frames), dtype=np.int64)
    with pq.ParquetFile(path) as pf:
        parts = []
        for i in range(pf.num_row_groups):
            ids = pf.read_row_group(i, columns=["primary_frame", "secondary_frame"])
            keep = (np.isin(ids.column(0).to_numpy(), primary)
                    | np.isin(ids.column(1).to_numpy(), secondary))
            if keep.any():
                parts.append(pf.read_row_group(i).filter(pa.array(keep)))
        table = pa.concat_tables(parts) if parts else pf.schema_arrow.empty_table()
    from ..output.timeline import frame_from_table
    return frame_from_table(table)
