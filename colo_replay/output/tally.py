"""What the summary counts of a timeline, gathered block by block, so that a streamed replay
(its rows written to Parquet as they come, ``output.stream``) can be summed up without keeping
its rows.

``Tally.add(cols)`` takes numpy columns (the ``EventLog`` codes: kind / cause as the enum values),
a whole timeline or one block of it; ``summary.summarise`` reads nothing else, so a timeline
tallied in one piece or in blocks gives the same summary.  What it keeps:

* rows per (kind, cause): a fixed table of counts (both enums' values are below 128);
* the ``held_ns`` of every release (8 bytes a release, the one thing kept that grows with the
  replay: the percentiles are exact, as ``np.percentile`` over the whole column was, so every
  value is needed);
* the sum of the ``detail`` of idle_checkpoints rows;
* with ``keep_cascade``, the few rows ``cascade.cascade_signature`` looks at (flush and request
  rows, releases and drops caused by a flush; their time and connection), in timeline order:
  the signature works on positions relative to each other, which a subset keeps.
"""

from __future__ import annotations

import numpy as np

from ..engine.eventlog import BLOCK_ROWS
from ..engine.events import Cause, EventKind

_WIDTH = 128                     # every EventKind / Cause value is below this (checked at import)
_OTHER = _WIDTH * _WIDTH         # the bin of codes outside the enums (a DataFrame's unknown category)
assert max(map(int, EventKind)) < _WIDTH and max(map(int, Cause)) < _WIDTH

_RELEASE = int(EventKind.RELEASE)
_SDROP = int(EventKind.SECONDARY_DROPPED)
_REQUEST = int(EventKind.CHECKPOINT_REQUEST)
_FLUSH = int(EventKind.FLUSH)
_IDLE = int(EventKind.IDLE_CHECKPOINTS)
_CAUSE_FLUSH = int(Cause.FLUSH)
CASCADE_COLUMNS = ("time_ns", "kind", "cause", "conn")


class Tally:
    """The summary's counts of a timeline; ``add`` one block of numpy columns at a time."""

    def __init__(self, keep_cascade: bool = True):
        self.counts = np.zeros(_OTHER + 1, dtype=np.int64)     # [kind * 128 + cause]
        self.idle = 0
        self.rows = 0
        self.keep_cascade = keep_cascade
        self._held: list = []
        self._cascade: list = []

    @classmethod
    def of(cls, blocks, keep_cascade: bool = True) -> "Tally":
        """The tally of a timeline given as dicts of columns (``EventLog.blocks()``, or one dict
        for a whole timeline), counted BLOCK_ROWS rows at a time (the temporaries of ``add``
        are a block's, not the timeline's)."""
        t = cls(keep_cascade)
        for cols in blocks:
            n = len(cols["kind"])
            for start in range(0, n, BLOCK_ROWS):
                t.add({name: col[start:start + BLOCK_ROWS] for name, col in cols.items()})
        return t

    def add(self, cols: dict) -> None:
        """Count one block (or a whole timeline) of columns."""
        kind = cols["kind"]
        n = len(kind)
        if not n:
            return
        cause = cols["cause"]
        k = kind.astype(np.intp)
        c = cause.astype(np.intp)
        key = k * _WIDTH + c
        key[(k < 0) | (k >= _WIDTH) | (c < 0) | (c >= _WIDTH)] = _OTHER
        self.counts += np.bincount(key, minlength=_OTHER + 1)
        self.rows += n
        is_rel = kind == _RELEASE
        self._held.append(cols["held_ns"][is_rel].astype(np.int64, copy=False))   # a copy (a mask's)
        is_idle = kind == _IDLE
        if is_idle.any():
            self.idle += int(cols["detail"][is_idle].sum())
        if self.keep_cascade:
            keep = (kind == _FLUSH) | (kind == _REQUEST) | ((cause == _CAUSE_FLUSH) & (is_rel | (kind == _SDROP)))
            self._cascade.append({name: np.asarray(cols[name])[keep] for name in CASCADE_COLUMNS})

    # -- reading -------------------------------------------------------------------------
    def count(self, kind: int) -> int:
        """Rows of this kind."""
        return int(self.counts[kind * _WIDTH:(kind + 1) * _WIDTH].sum())

    def causes(self, kind: int) -> dict:
        """{cause name: rows} of this kind, the most frequent first, ties by cause value."""
        row = self.counts[kind * _WIDTH:(kind + 1) * _WIDTH]
        values = np.flatnonzero(row)
        return ordered_causes(values, row[values])

    def held(self) -> np.ndarray:
        """Every release's held_ns (int64), one array: in timeline order, until ``summarise``
        partitions it in place for the percentiles (no copy of the largest thing kept)."""
        parts = self._held
        if len(parts) != 1:
            out = np.empty(sum(len(p) for p in parts), dtype=np.int64)
            pos = 0
            for i, part in enumerate(parts):      # block by block, each let go once copied
                out[pos:pos + len(part)] = part
                pos += len(part)
                parts[i] = None
            self._held = [out]
        return self._held[0]

    def cascade_columns(self) -> dict:
        """The rows ``cascade_signature`` reads, as columns (``keep_cascade`` only)."""
        if not self.keep_cascade:
            raise RuntimeError("this tally was made without keep_cascade")
        if len(self._cascade) != 1:
            parts = self._cascade
            self._cascade = [{name: np.concatenate([p[name] for p in parts]) if parts else np.zeros(0, dtype=np.int64)
                              for name in CASCADE_COLUMNS}]
        return self._cascade[0]


def ordered_causes(values, counts) -> dict:
    """{cause name: count} of cause values (ascending) and their counts: the most frequent
    first, ties in value order (as pandas' ``value_counts``); values that name no cause left out."""
    from .timeline import CAUSE_NAMES

    order = np.argsort(-np.asarray(counts), kind="stable")
    return {CAUSE_NAMES[int(values[i])]: int(counts[i]) for i in order if int(values[i]) in CAUSE_NAMES}
