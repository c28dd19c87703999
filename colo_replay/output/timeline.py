"""The timeline: one row per event, collected in columns, turned into a DataFrame once.

Columns (the DataFrame has the same names):

    time_ns          int64    when it happened (replay clock: capture time + offsets), ns
    kind             category release, secondary_dropped, checkpoint_request, queue_full_drop,
                              table_reset, unsupported, flush, qemu_crash, undefined,
                              primary_lost, uncomparable, checkpoint_start, checkpoint_end,
                              idle_checkpoints, superseded, requeued
    cause            category why (see colo_replay.events.Cause; checkpoint rows: requested,
                              periodic, measured; uncomparable rows: truncated; superseded:
                              already_sent, trimmed, owed; requeued: ahead)
    side             category primary / secondary / "" (rows about no frame)
    conn             int32    connection index in first-seen order, -1 if none
    primary_frame    int64    primary capture frame number (Wireshark numbering), -1 if none
    secondary_frame  int64    secondary capture frame number, -1 if none
    held_ns          int64    releases: release time minus the primary's arrival; else -1
    size             int32    the frame's length in bytes (vnet header included), -1 if none;
                              at most 2^31 - 1 (an uncomparable record claiming more is clamped)
    other_size       int32    the second frame's length, -1 if none
    tcp_seq          int64    TCP: the frame's sequence number, -1 otherwise
    tcp_seq_end      int64    TCP: seq + payload length (mod 2^32, padding included), -1 otherwise
    detail           int64    age in ms (expired), connections lost (table reset), checkpoint
                              number (checkpoint rows), bytes read past the end (undefined),
                              how many checkpoints it stands for (idle_checkpoints); payload
                              bytes cut (superseded/trimmed, requeued)

The kind and cause categories are the lower-case names of ``EventKind`` and ``Cause``; the rows
the drivers add (uncomparable, checkpoint_start, checkpoint_end, idle_checkpoints, superseded,
requeued and their causes) are members of the same enums, in their own value range (100 and
up), documented there as driver rows, not QEMU decisions.

An ``idle_checkpoints`` row (cause periodic) stands for a run of periodic checkpoints while
nothing was queued: they flush nothing, so the replay skips them in O(1) whatever the length
of the idle stretch.  Its time is the first one's start; the one ``flush`` row after it is the
last one's.  The summary counts each of them (``checkpoints``, ``checkpoints_by_cause``).
Checkpoints that follow each other back to back (x-checkpoint-delay not above the checkpoint
duration) fold the same way on 7.2 (the row then sits between the running one's end and the
start of the one running after the skip); on 4.1, whose semaphore owes one more checkpoint per
timer firing, they keep their own rows.

``pandas`` is imported only when a DataFrame is asked for.
"""

from __future__ import annotations

from array import array
from struct import Struct, error as StructError

from ..engine.events import Cause, EventKind
from ..engine.packet import Packet

try:
    import cython
except ImportError:                 # Cython absent: @cython.locals below is a no-op
    from ..engine import _cython_shim as cython

COLUMNS = ("time_ns", "kind", "cause", "side", "conn", "primary_frame", "secondary_frame",
           "held_ns", "size", "other_size", "tcp_seq", "tcp_seq_end", "detail")

# The categories of the kind and cause columns: one enum each (driver rows included, 100 and up)
KIND_NAMES = {int(k): k.name.lower() for k in EventKind}
CAUSE_NAMES = {int(c): c.name.lower() for c in Cause}
# CheckpointModel's cause strings -> the checkpoint rows' cause
CHECKPOINT_CAUSE_CODES = {"requested": Cause.REQUESTED, "periodic": Cause.PERIODIC, "measured": Cause.MEASURED}

_RELEASE = int(EventKind.RELEASE)
_INT32_MAX = 0x7FFFFFFF
_TCP = 6

# One row, packed (no padding), in COLUMNS order: 73 bytes.  The numpy dtype reads them back.
ROW_FORMAT = "<qhhbiqqqiiqqq"
ROW_DTYPES = ("<i8", "<i2", "<i2", "i1", "<i4", "<i8", "<i8", "<i8", "<i4", "<i4", "<i8", "<i8", "<i8")
_TYPECODES = {"<i8": "q", "<i4": "i", "<i2": "h", "i1": "b"}     # array module, same widths
_row = Struct(ROW_FORMAT)
ROW_SIZE = _row.size
_pack_row = _row.pack
_pack_pair = Struct(ROW_FORMAT + ROW_FORMAT[1:]).pack     # two rows at once


class TimelineCollector:
    """Collects timeline rows; cheap enough for the per-frame path.

    Each row is packed into a ``bytearray`` (73 bytes a row: one ``struct`` call instead of
    thirteen appends).  ``compact()`` moves the rows collected so far into one typed
    ``array`` per column (numpy does the transposition), so the row buffer stays small and
    is reused; the replay driver calls it every few thousand frames.  ``to_frame()`` wraps
    the column arrays without copying them.  The frames themselves are never kept: only
    their numbers, sizes and sequence numbers, ~73 MB per million rows.
    """

    __slots__ = ("_buf", "_extend", "_cols", "_exported")

    def __init__(self):
        self._buf = bytearray()
        self._extend = self._buf.extend
        self._cols = {name: array(_TYPECODES[dt]) for name, dt in zip(COLUMNS, ROW_DTYPES)}
        self._exported = False       # numpy views of the column arrays may exist (to_frame)

    def __len__(self) -> int:
        return len(self._cols["time_ns"]) + len(self._buf) // ROW_SIZE

    @cython.locals(frame=Packet, other=Packet)      # compiled core: C field reads; no-op interpreted
    def add_event(self, ev) -> None:
        """One engine Event."""
        kind, cause, t, frame, other, conn, detail = ev
        if frame is None:
            self._extend(_pack_row(t, kind, cause, -1, conn, -1, -1, -1, -1,
                                   -1 if other is None else other.size, -1, -1, detail))
            return
        if frame.ip_proto == _TCP and frame.header_size:
            seq = frame.tcp_seq
            seq_end = frame.seq_end
        else:
            seq = seq_end = -1
        if other is None:
            oident = osize = -1
        else:
            oident = other.ident
            osize = other.size
        # held_ns is t - arrival for every row about a frame here; compact() sets it to -1
        # where the row is not a release, for all rows at once.
        try:
            if frame.side == 0:
                row = _pack_row(t, kind, cause, 0, conn, frame.ident, oident, t - frame.time, frame.size,
                                osize, seq, seq_end, detail)
            else:
                row = _pack_row(t, kind, cause, frame.side, conn, oident, frame.ident, t - frame.time,
                                frame.size, osize, seq, seq_end, detail)
        except StructError:
            # A frame without an ident (None): its number is -1.  (Anything else raises again.)
            fid = -1 if frame.ident is None else frame.ident
            oid = -1 if oident is None else oident
            row = _pack_row(t, kind, cause, frame.side, conn, fid if frame.side == 0 else oid,
                            oid if frame.side == 0 else fid, t - frame.time, frame.size, osize, seq,
                            seq_end, detail)
        self._extend(row)

    @cython.locals(frame=Packet, other=Packet, frame2=Packet, other2=Packet)
    def add_pair(self, ev, ev2) -> None:
        """``add_event(ev); add_event(ev2)`` for two events about frames (``frame`` not None),
        in one call and one ``struct`` call: a matched pair's release and drop, for instance."""
        kind, cause, t, frame, other, conn, detail = ev
        kind2, cause2, t2, frame2, other2, conn2, detail2 = ev2
        if frame.ip_proto == _TCP and frame.header_size:
            seq = frame.tcp_seq
            seq_end = frame.seq_end
        else:
            seq = seq_end = -1
        if frame2.ip_proto == _TCP and frame2.header_size:
            seq2 = frame2.tcp_seq
            seq_end2 = frame2.seq_end
        else:
            seq2 = seq_end2 = -1
        if other is None:
            oident = osize = -1
        else:
            oident = other.ident
            osize = other.size
        if other2 is None:
            oident2 = osize2 = -1
        else:
            oident2 = other2.ident
            osize2 = other2.size
        side = frame.side
        side2 = frame2.side
        try:
            self._extend(_pack_pair(
                t, kind, cause, side, conn, frame.ident if side == 0 else oident,
                oident if side == 0 else frame.ident, t - frame.time, frame.size, osize, seq, seq_end, detail,
                t2, kind2, cause2, side2, conn2, frame2.ident if side2 == 0 else oident2,
                oident2 if side2 == 0 else frame2.ident, t2 - frame2.time, frame2.size, osize2, seq2, seq_end2,
                detail2))
        except StructError:
            self.add_event(ev)       # an ident of None, or a value that does not fit: one by one
            self.add_event(ev2)

    def add_row(self, t: int, kind: int, cause: int, side: int = -1, frame: int = -1, size: int = -1,
                detail: int = 0) -> None:
        """A driver row (checkpoint start/end, uncomparable frame).  A size beyond int32 (a
        record's orig_len can say up to 2^32 - 1) is stored as 2^31 - 1, the column's largest."""
        if size > _INT32_MAX:
            size = _INT32_MAX
        self._extend(_pack_row(t, kind, cause, side, -1, frame if side == 0 else -1,
                               frame if side == 1 else -1, -1, size, -1, -1, -1, detail))

    def compact(self, min_rows: int = 0) -> None:
        """Move the packed rows into the column arrays, if there are more than ``min_rows``
        of them (call now and then; never required)."""
        buf = self._buf
        if not buf or len(buf) <= min_rows * ROW_SIZE:
            return
        import numpy as np

        if self._exported:
            # Arrays viewed by a DataFrame cannot grow: continue in copies of them.
            self._cols = {name: array(col.typecode, col) for name, col in self._cols.items()}
            self._exported = False
        rows = np.frombuffer(buf, dtype=_row_dtype())
        for name, col in self._cols.items():
            values = rows[name].astype(rows.dtype[name])
            if name == "held_ns":
                values[rows["kind"] != _RELEASE] = -1      # held_ns is about releases only
            col.frombytes(values.view(np.uint8))
        del rows, values      # release the buffer export before the bytearray is emptied
        del buf[:]

    def columns(self, copy: bool = True) -> dict:
        """The rows as one numpy array per column (codes for kind / cause / side).  With
        ``copy=False`` the arrays share the collector's memory (adding rows later is still
        fine: the collector then continues in copies of its arrays)."""
        import numpy as np

        self.compact()
        out = {}
        for name, dt in zip(COLUMNS, ROW_DTYPES):
            col = self._cols[name]
            arr = np.frombuffer(col, dtype=dt) if len(col) else np.zeros(0, dtype=dt)
            out[name] = arr.copy() if copy else arr
        if not copy:
            self._exported = True
        return out

    def to_frame(self):
        """The pandas DataFrame, with categorical kind/cause/side columns."""
        import numpy as np
        import pandas as pd

        cols = self.columns(copy=False)

        def cat(codes, names: dict):
            # The enum's values made dense: a lookup table value -> category number, one gather
            # over the column (int8 codes), no Python object per row.
            keys = sorted(names)
            dense = np.full(keys[-1] + 1, -1, dtype=np.int8)
            dense[keys] = np.arange(len(keys), dtype=np.int8)
            return pd.Categorical.from_codes(dense[codes], categories=[names[k] for k in keys])

        cols["kind"] = cat(cols["kind"], KIND_NAMES)
        cols["cause"] = cat(cols["cause"], CAUSE_NAMES)
        cols["side"] = pd.Categorical.from_codes(cols["side"] + 1, categories=["", "primary", "secondary"])
        # copy=False: no copy of the columns, and pandas does not consolidate the int64
        # columns into one 2-D block either (a full copy of the table, ~0.4 s at 2M rows).
        return pd.DataFrame(cols, copy=False)


def _row_dtype():
    import numpy as np
    return np.dtype(list(zip(COLUMNS, ROW_DTYPES)))


TIMELINE_EXTENSIONS = (".parquet", ".csv", ".jsonl", ".json", ".ndjson")


def check_timeline_path(path: str) -> None:
    """Raise ValueError unless ``path`` names a timeline format we write (checked before a replay)."""
    if not path.lower().endswith(TIMELINE_EXTENSIONS):
        raise ValueError(f"{path}: unknown timeline format (use .parquet, .csv or .jsonl)")


PARTIAL_KEY = b"colo_replay.partial"       # Parquet key-value metadata of a partial timeline
ERROR_KEY = b"colo_replay.error"
PARTIAL_SUFFIX = ".partial"                # CSV / JSON Lines: the sidecar file of a partial timeline


def write_timeline(df, path: str | None, stream=None, partial: str | None = None) -> None:
    """Write by extension: .parquet, .csv, .jsonl / .json (JSON Lines); ``None`` = JSON Lines on
    ``stream``.

    ``partial`` (the line saying why: a read error, an interruption) marks the file itself as
    partial: Parquet key-value metadata ``colo_replay.partial = "true"`` and
    ``colo_replay.error = <the line>``; for CSV and JSON Lines a sidecar file ``<path>.partial``
    holding the line (the table itself keeps its columns).  A complete write removes a stale
    sidecar.  On ``stream`` the marker is the error line on stderr only."""
    if path is None:
        _write_jsonl(df, stream)
        return
    import os

    check_timeline_path(path)
    lower = path.lower()
    if lower.endswith(".parquet"):
        import pyarrow as pa
        import pyarrow.parquet as pq

        # Dictionary encoding only where it pays (the categorical columns): trying it on the
        # int64 columns, whose values are mostly distinct, costs ~40% of the write.
        dict_cols = [c for c in df.columns if str(df[c].dtype) == "category"]
        table = pa.Table.from_pandas(df, preserve_index=False)
        if partial is not None:
            meta = dict(table.schema.metadata or {})
            meta[PARTIAL_KEY] = b"true"
            meta[ERROR_KEY] = partial.encode()
            table = table.replace_schema_metadata(meta)
        pq.write_table(table, path, use_dictionary=dict_cols)
        return
    if lower.endswith(".csv"):
        df.to_csv(path, index=False)
    else:
        with open(path, "w", encoding="utf-8") as fh:
            _write_jsonl(df, fh)
    sidecar = path + PARTIAL_SUFFIX
    if partial is not None:
        with open(sidecar, "w", encoding="utf-8") as fh:
            fh.write(partial + "\n")
    elif os.path.exists(sidecar):
        os.remove(sidecar)


def _write_jsonl(df, stream) -> None:
    if len(df):
        text = df.to_json(orient="records", lines=True)
        stream.write(text if text.endswith("\n") else text + "\n")
