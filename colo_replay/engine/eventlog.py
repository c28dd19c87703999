"""The event log: the engine's events as rows, stored in columns as they happen.

A replay records one row per event, two million rows for a million-frame pair, so rows are
never Python objects: ``EventLog`` writes each field straight into typed column blocks (in the
compiled core a row is thirteen C stores; ``row`` and ``pair`` are C-callable methods, and the
engine writes a matched pair's two rows itself, without making its two ``Event`` tuples).
``output.timeline.TimelineCollector`` builds the timeline on it.

Columns (one ``array.array`` each per block of ``block_rows`` rows; numpy reads them back):

    time_ns int64, kind int16, cause int16, side int8, conn int32, primary_frame int64,
    secondary_frame int64, held_ns int64, size int64, other_size int32, tcp_seq int64,
    tcp_seq_end int64, detail int64

(meaning: ``output/timeline.py``).  A full block is kept, or handed to ``spill`` when one is set
(a streaming writer), so memory need not grow with the replay.
"""

from __future__ import annotations

from array import array

try:
    import cython
except ImportError:                 # Cython absent: the decorators below are no-ops
    from . import _cython_shim as cython

from .packet import Packet

COLUMNS = ("time_ns", "kind", "cause", "side", "conn", "primary_frame", "secondary_frame",
           "held_ns", "size", "other_size", "tcp_seq", "tcp_seq_end", "detail")
# size is int64: an uncomparable row's size is the record's original length as the capture says it,
# up to 2^32 - 1 (an impossible value is warned about by the reader, and kept); other_size is only
# ever a frame colo-compare read (at most NET_BUFSIZE), int32 is plenty
DTYPES = ("<i8", "<i2", "<i2", "i1", "<i4", "<i8", "<i8", "<i8", "<i8", "<i4", "<i8", "<i8", "<i8")
TYPECODES = ("q", "h", "h", "b", "i", "q", "q", "q", "q", "i", "q", "q", "q")   # array module, same widths
ROW_BYTES = sum(int(d[-1]) for d in DTYPES)          # 77
BLOCK_ROWS = 65536                                    # ~4.8 MB a block
_ZERO = (0,)

_RELEASE = 1            # EventKind.RELEASE (events.py): held_ns is about releases only
_SDROP = 2              # EventKind.SECONDARY_DROPPED
_TCP = 6


class EventLog:
    """Rows in typed column blocks; see the module docstring.

    ``row`` stores one row from its thirteen values, ``event`` one engine ``Event``, ``pair``
    the two rows of a matched pair (RELEASE of the primary, SECONDARY_DROPPED of the
    secondary) from the frames' numbers and fields.  ``blocks()`` gives the rows as numpy
    columns, block by block; ``spill`` (a callable taking such a dict of columns) receives each
    full block instead of the log keeping it (if it raises without having emptied the dict, the
    block is kept after all).
    """

    __slots__ = ("_blocks", "_n", "_cap", "block_rows", "spill", "_kept", "_spilled",
                 "_t", "_kind", "_cause", "_side", "_conn", "_pf", "_sf", "_held", "_size", "_osize",
                 "_seq", "_end", "_detail", "_arrays")

    def __init__(self, block_rows: int = BLOCK_ROWS, spill=None):
        self.block_rows = max(1, int(block_rows))
        self.spill = spill
        self._blocks: list = []       # [(arrays, rows)] full or trimmed blocks kept
        self._kept = 0                # rows in _blocks
        self._spilled = 0             # rows handed to spill
        self._n = 0                   # rows in the current block
        self._cap = 0                 # its capacity (0: none allocated yet)
        self._arrays = None

    def __len__(self) -> int:
        return self._kept + self._spilled + self._n

    @property
    def spilled(self) -> int:
        """Rows handed to ``spill`` (not kept here)."""
        return self._spilled

    # -- writing -------------------------------------------------------------------------
    def _next_block(self) -> None:
        """Close the current block (kept or spilled) and start a new one."""
        self._close_block()
        b = self.block_rows
        arrays = [array(tc, _ZERO) * b for tc in TYPECODES]      # (repeated: no zeroed bytes object to copy)
        self._arrays = arrays
        (self._t, self._kind, self._cause, self._side, self._conn, self._pf, self._sf, self._held,
         self._size, self._osize, self._seq, self._end, self._detail) = arrays
        self._cap = b
        self._n = 0

    def _close_block(self) -> None:
        n = self._n
        arrays = self._arrays
        if arrays is None or not n:
            return
        # Release the typed views before the arrays are trimmed (a resize of an array whose
        # buffer is exported fails): the block is final from here on.
        self._t = self._kind = self._cause = self._side = self._conn = self._pf = self._sf = None
        self._held = self._size = self._osize = self._seq = self._end = self._detail = None
        self._arrays = None
        self._cap = self._n = 0
        if n < len(arrays[0]):
            for a in arrays:
                del a[n:]
        if self.spill is not None:
            cols = _as_numpy(arrays)
            try:
                self.spill(cols)
            except BaseException:
                # A spill empties the dict once it has the rows; one that raised before (a
                # Ctrl-C noticed as it began) did not take them: they stay here, for blocks().
                if cols:
                    self._blocks.append(arrays)
                    self._kept += n
                else:
                    self._spilled += n
                raise
            self._spilled += n
        else:
            self._blocks.append(arrays)
            self._kept += n

    @cython.boundscheck(False)     # n < _cap: checked once for the row (pair: both rows)
    @cython.wraparound(False)
    @cython.locals(n=cython.Py_ssize_t)
    def row(self, t, kind, cause, side, conn, pf, sf, held, size, osize, seq, end, detail):
        """One row from its thirteen values (COLUMNS order)."""
        if self._n >= self._cap:
            self._next_block()
        n = self._n
        self._t[n] = t
        self._kind[n] = kind
        self._cause[n] = cause
        self._side[n] = side
        self._conn[n] = conn
        self._pf[n] = pf
        self._sf[n] = sf
        self._held[n] = held
        self._size[n] = size
        self._osize[n] = osize
        self._seq[n] = seq
        self._end[n] = end
        self._detail[n] = detail
        self._n = n + 1

    @cython.boundscheck(False)     # n < _cap: checked once for the row (pair: both rows)
    @cython.wraparound(False)
    @cython.locals(n=cython.Py_ssize_t)
    def pair(self, t, cause, conn, pid, sid, ptime, stime, psize, ssize, pseq, pend, sseq, send, named):
        """A matched pair's two rows: RELEASE of primary frame ``pid`` (arrived ``ptime``) with
        secondary ``sid``, then SECONDARY_DROPPED of ``sid`` naming ``pid`` when ``named``
        (compared equal) or no frame (a pure ACK's drop).  ``pseq``/``pend``/``sseq``/``send``
        are -1 for non-TCP frames; idents of None are -1."""
        if self._n + 2 > self._cap:
            self._next_block()
        n = self._n
        if pid is None:
            pid = -1
        if sid is None:
            sid = -1
        self._t[n] = t
        self._kind[n] = _RELEASE
        self._cause[n] = cause
        self._side[n] = 0
        self._conn[n] = conn
        self._pf[n] = pid
        self._sf[n] = sid
        self._held[n] = t - ptime
        self._size[n] = psize
        self._osize[n] = ssize
        self._seq[n] = pseq
        self._end[n] = pend
        self._detail[n] = 0
        n += 1
        self._t[n] = t
        self._kind[n] = _SDROP
        self._cause[n] = cause
        self._side[n] = 1
        self._conn[n] = conn
        if named:
            self._pf[n] = pid
            self._osize[n] = psize
        else:
            self._pf[n] = -1
            self._osize[n] = -1
        self._sf[n] = sid
        self._held[n] = -1
        self._size[n] = ssize
        self._seq[n] = sseq
        self._end[n] = send
        self._detail[n] = 0
        self._n = n + 1

    @cython.locals(frame=Packet, other=Packet)      # compiled core: C field reads; no-op interpreted
    def event(self, ev) -> None:
        """One engine ``Event`` (kind, cause, time, frame, other, conn, detail)."""
        kind, cause, t, frame, other, conn, detail = ev
        if other is None:
            oident = osize = -1
        else:
            oident = other.ident
            osize = other.size
            if oident is None:
                oident = -1
        if frame is None:
            self.row(t, kind, cause, -1, conn, -1, -1, -1, -1, osize, -1, -1, detail)
            return
        if frame.ip_proto == _TCP and frame.header_size:
            seq = frame.tcp_seq
            seq_end = frame.seq_end
        else:
            seq = seq_end = -1
        fid = frame.ident
        if fid is None:
            fid = -1
        held = t - frame.time if kind == _RELEASE else -1
        if frame.side == 0:
            self.row(t, kind, cause, 0, conn, fid, oident, held, frame.size, osize, seq, seq_end, detail)
        else:
            self.row(t, kind, cause, frame.side, conn, oident, fid, held, frame.size, osize, seq, seq_end,
                     detail)

    # -- reading -------------------------------------------------------------------------
    def blocks(self):
        """The rows kept so far as numpy column dicts, one per block, in order (the current
        block is closed first; ``spill``ed rows are not here)."""
        self._close_block()
        return [_as_numpy(arrays) for arrays in self._blocks]

    def columns(self, released=None) -> dict:
        """Every kept row as one numpy array per column.  The blocks are joined into one
        (column by column, so the extra memory is one column's), which later calls reuse.
        ``released``: called after each column's blocks are freed (e.g. to give that memory
        back to the operating system: ``output.heap``)."""
        import numpy as np

        self._close_block()
        blocks = self._blocks
        if not blocks:
            return empty_columns()
        if len(blocks) > 1:
            total = self._kept
            joined = []
            for c, dt in enumerate(DTYPES):
                col = np.empty(total, dtype=dt)
                pos = 0
                for blk in blocks:
                    part = np.frombuffer(blk[c], dtype=dt)
                    col[pos:pos + len(part)] = part
                    pos += len(part)
                    blk[c] = None          # this column of the block is copied: let it go
                joined.append(col)
                if released is not None:
                    released()
            self._blocks = blocks = [joined]
        return _as_numpy(blocks[0])


def empty_columns() -> dict:
    """The columns of a log without rows: a zero-length numpy array of each column's type."""
    import numpy as np
    return {name: np.zeros(0, dtype=dt) for name, dt in zip(COLUMNS, DTYPES)}


def _as_numpy(arrays) -> dict:
    import numpy as np
    return {name: (np.frombuffer(a, dtype=dt) if len(a) else np.zeros(0, dtype=dt))
            for name, dt, a in zip(COLUMNS, DTYPES, arrays)}
