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
    size             int64    the frame's length in bytes (vnet header included), -1 if none;
                              an uncomparable row: the record's original length as the capture
                              says it, however impossible (the reader warns about it)
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

from contextlib import contextmanager
from contextvars import ContextVar

from ..engine.eventlog import BLOCK_ROWS, COLUMNS, DTYPES as ROW_DTYPES, EventLog, empty_columns
from ..engine.events import Cause, EventKind

# The categories of the kind and cause columns: one enum each (driver rows included, 100 and up)
KIND_NAMES = {int(k): k.name.lower() for k in EventKind}
CAUSE_NAMES = {int(c): c.name.lower() for c in Cause}
# CheckpointModel's cause strings -> the checkpoint rows' cause
CHECKPOINT_CAUSE_CODES = {"requested": Cause.REQUESTED, "periodic": Cause.PERIODIC, "measured": Cause.MEASURED}

KIND_CODES = {name: code for code, name in KIND_NAMES.items()}
CAUSE_CODES = {name: code for code, name in CAUSE_NAMES.items()}
SIDE_CODES = {"": -1, "primary": 0, "secondary": 1}


def code_columns(data) -> dict:
    """The timeline as numpy columns with kind / cause / side as their codes (the enum values;
    side -1/0/1), from the collector's columns (returned as they are) or from a DataFrame (its
    categorical or string columns mapped back): what the summary and the cascade signature
    count on, without pandas when there is no DataFrame."""
    import numpy as np

    if isinstance(data, dict):
        return data
    out = {name: data[name].to_numpy() for name in data.columns if name not in ("kind", "cause", "side")}
    for name, codes, dt in (("kind", KIND_CODES, np.int16), ("cause", CAUSE_CODES, np.int16),
                            ("side", SIDE_CODES, np.int8)):
        if name not in data.columns:
            continue
        col = data[name]
        if hasattr(col, "cat"):
            table = np.array([codes.get(str(c), -99) for c in col.cat.categories] + [-99], dtype=dt)
            out[name] = table[col.cat.codes.to_numpy()]           # (code -1, a missing value: -99)
        else:
            out[name] = np.array([codes.get(str(v), -99) for v in col], dtype=dt)
    return out



class TimelineCollector(EventLog):
    """Collects timeline rows; cheap enough for the per-frame path.

    The rows live in the engine's ``EventLog`` column blocks (77 bytes a row, no Python object
    per row); the replay driver hands the log to its engine, which writes a matched pair's two
    rows itself.  ``to_frame()`` wraps the columns without copying them.  The frames themselves
    are never kept: only their numbers, sizes and sequence numbers, ~77 MB per million rows.
    """

    __slots__ = ()

    def __init__(self, block_rows: int = BLOCK_ROWS, spill=None):
        # No spill given: the one of the enclosing ``streaming`` block, if any (the replay
        # driver makes its collector itself).
        EventLog.__init__(self, block_rows, spill if spill is not None else _SPILL.get())

    def add_event(self, ev) -> None:
        """One engine Event."""
        self.event(ev)

    def add_pair(self, ev, ev2) -> None:
        """``add_event(ev); add_event(ev2)``: a matched pair's release and drop, for instance."""
        self.event(ev)
        self.event(ev2)

    def add_row(self, t: int, kind: int, cause: int, side: int = -1, frame: int = -1, size: int = -1,
                detail: int = 0) -> None:
        """A driver row (checkpoint start/end, uncomparable frame: ``size`` is its original
        length as the capture says it, up to 2^32 - 1, kept as it is)."""
        self.row(t, kind, cause, side, -1, frame if side == 0 else -1, frame if side == 1 else -1, -1, size,
                 -1, -1, -1, detail)

    def columns(self, copy: bool = True) -> dict:
        """The rows as one numpy array per column (codes for kind / cause / side).  With
        ``copy=False`` the arrays share the collector's memory (adding rows later is fine)."""
        from .heap import give_back_free_memory

        # (the blocks' memory goes back to the system column by column: output/heap.py)
        cols = EventLog.columns(self, give_back_free_memory)
        return {k: v.copy() for k, v in cols.items()} if copy else cols

    def to_frame(self):
        """The pandas DataFrame, with categorical kind/cause/side columns."""
        return frame_from_columns(self.columns(copy=False))


_SPILL: ContextVar = ContextVar("colo_replay_timeline_spill", default=None)


@contextmanager
def streaming(spill):
    """Collectors made inside this block hand each full block of rows to ``spill`` (e.g. an
    ``output.stream.ParquetStream``) instead of keeping it: how ``api.replay`` streams the
    timeline of the collector ``replay_partial`` makes."""
    token = _SPILL.set(spill)
    try:
        yield spill
    finally:
        _SPILL.reset(token)


def dense_codes(values, names: dict):
    """An enum column (``values``: codes such as ``EventKind`` values) as category numbers:
    ``(int8 numbers, the category names in order)``, from a dense lookup table value -> number,
    one gather over the column, no Python object per row.  The categories are every name of the
    enum, in value order (the DataFrame's categoricals and the Parquet dictionaries alike)."""
    import numpy as np

    keys = sorted(names)
    dense = np.full(keys[-1] + 1, -1, dtype=np.int8)
    dense[keys] = np.arange(len(keys), dtype=np.int8)
    return dense[values], [names[k] for k in keys]


def frame_from_columns(cols: dict):
    """The timeline DataFrame of a dict of numpy columns (``EventLog`` codes), without copying
    the numeric columns."""
    import pandas as pd

    cols = dict(cols)
    for name, names in (("kind", KIND_NAMES), ("cause", CAUSE_NAMES)):
        codes, categories = dense_codes(cols[name], names)
        cols[name] = pd.Categorical.from_codes(codes, categories=categories)
    cols["side"] = pd.Categorical.from_codes(cols["side"] + 1, categories=["", "primary", "secondary"])
    # copy=False: no copy of the columns, and pandas does not consolidate the int64
    # columns into one 2-D block either (a full copy of the table, ~0.4 s at 2M rows).
    return pd.DataFrame(cols, copy=False)


TIMELINE_EXTENSIONS = (".parquet", ".csv", ".jsonl", ".json", ".ndjson")


def check_timeline_path(path: str) -> None:
    """Raise ValueError unless ``path`` names a timeline format we write (checked before a replay)."""
    if not path.lower().endswith(TIMELINE_EXTENSIONS):
        raise ValueError(f"{path}: unknown timeline format (use .parquet, .csv or .jsonl)")


PARTIAL_KEY = b"colo_replay.partial"       # Parquet key-value metadata of a partial timeline
ERROR_KEY = b"colo_replay.error"
PARTIAL_SUFFIX = ".partial"                # CSV / JSON Lines: the sidecar file of a partial timeline
QEMU_KEY = b"colo_replay.qemu"             # Parquet key-value metadata: the release replayed (JSON)


def timeline_metadata(qemu: dict | None) -> dict:
    """The Parquet key-value metadata of a timeline: ``colo_replay.qemu`` = the ``qemu`` object
    (``engine.releases.Release.as_dict()``: release, row, switches) as JSON."""
    if not qemu:
        return {}
    import json
    return {QEMU_KEY: json.dumps(qemu, sort_keys=True).encode()}


def read_timeline_frame(path):
    """The DataFrame of a Parquet timeline this package wrote (what ``pandas.read_parquet``
    gives), in about the memory of the DataFrame alone: each Arrow column is released as soon as
    it is converted (``self_destruct``; ``split_blocks``: no consolidating copy of the int64
    columns).  ``read_parquet`` holds the whole Arrow table and the DataFrame at once: twice the
    timeline (and it took 0.77 s against 0.24 s for the free 1M pair's 2M rows)."""
    import pyarrow.parquet as pq

    # (the table must have no other owner for self_destruct to free anything)
    return frame_from_table(pq.read_table(path), self_destruct=True, split_blocks=True)


def frame_from_table(table, **to_pandas):
    """The timeline DataFrame of an Arrow table read from a Parquet timeline this package wrote
    (the whole file, or some of its rows): ``table.to_pandas(**to_pandas)``, but a timeline
    without rows has every category, as the timeline's own DataFrame does (an empty row group
    has no dictionary pages, so Arrow would give categoricals without categories)."""
    if not table.num_rows and table.schema.names == list(COLUMNS):
        return frame_from_columns(empty_columns())
    return table.to_pandas(**to_pandas)


def read_timeline_qemu(path) -> dict | None:
    """The ``qemu`` object a Parquet timeline was written with (None: not Parquet, or none)."""
    import json
    if not str(path).lower().endswith(".parquet"):
        return None
    import pyarrow.parquet as pq
    meta = pq.read_schema(path).metadata or {}
    raw = meta.get(QEMU_KEY)
    return None if raw is None else json.loads(raw)


def write_timeline(df, path: str | None, stream=None, partial: str | None = None,
                   metadata: dict | None = None) -> None:
    """Write by extension: .parquet, .csv, .jsonl / .json (JSON Lines); ``None`` = JSON Lines on
    ``stream``.  (A Parquet file without pandas, from the collector's blocks: ``output.stream``;
    CSV and JSON Lines from them: ``write_timeline_blocks``.)

    ``partial`` (the line saying why: a read error, an interruption) marks the file itself as
    partial: Parquet key-value metadata ``colo_replay.partial = "true"`` and
    ``colo_replay.error = <the line>``; for CSV and JSON Lines a sidecar file ``<path>.partial``
    holding the line (the table itself keeps its columns).  A complete write removes a stale
    sidecar.  On ``stream`` the marker is the error line on stderr only.  ``metadata``: more
    Parquet key-value metadata (``timeline_metadata``)."""
    if path is None or not path.lower().endswith(".parquet"):
        _write_text([df], path, stream, partial)
        return
    import pyarrow as pa
    import pyarrow.parquet as pq

    check_timeline_path(path)
    # Dictionary encoding only where it pays (the categorical columns): trying it on the
    # int64 columns, whose values are mostly distinct, costs ~40% of the write.
    dict_cols = [c for c in df.columns if str(df[c].dtype) == "category"]
    table = pa.Table.from_pandas(df, preserve_index=False)
    # A whole timeline's columns, without gaps, as the streamed file has them (``_required``);
    # anything else (a DataFrame cut down, or with gaps) as pandas gives it
    if table.schema.names == list(COLUMNS) and not any(col.null_count for col in table.columns):
        table = pa.Table.from_arrays(table.columns, schema=_required(table.schema))
    if metadata:
        table = table.replace_schema_metadata({**(table.schema.metadata or {}), **metadata})
    if partial is not None:
        meta = dict(table.schema.metadata or {})
        meta[PARTIAL_KEY] = b"true"
        meta[ERROR_KEY] = partial.encode()
        table = table.replace_schema_metadata(meta)
    from .files import replacing_path
    with replacing_path(path) as tmp:       # the file there stays whole until this one is
        pq.write_table(table, tmp, use_dictionary=dict_cols)


def write_timeline_blocks(blocks: list, path: str | None, stream=None, partial: str | None = None) -> None:
    """``write_timeline`` of a collector's blocks of numpy columns (``EventLog.blocks()``) as CSV
    or JSON Lines (a file, or ``stream`` when ``path`` is None): the same text, made a block at a
    time, so that neither the whole timeline's DataFrame nor its whole text is ever in memory
    (2M rows as JSON Lines on stdout took 2.9 GB and 20 s that way).  (Parquet: ``output.stream``.)"""
    _write_text(map(frame_from_columns, blocks or [empty_columns()]), path, stream, partial)


def _write_text(frames, path: str | None, stream, partial: str | None) -> None:
    """CSV or JSON Lines of the DataFrames ``frames`` (an iterable, at least one: the CSV header
    comes with the first; the rows of each follow the last's), with ``write_timeline``'s partial
    sidecar."""
    if path is None:
        for df in frames:
            _write_jsonl(df, stream)
        return
    from .files import mark_partial, replacing

    check_timeline_path(path)
    # (each file is written beside its place and renamed there once complete: an interrupted
    # write leaves the file that was there)
    if path.lower().endswith(".csv"):
        # (newline="": pandas writes its own line ends, as when it opens the file itself)
        with replacing(path, "w", encoding="utf-8", newline="") as fh:
            for i, df in enumerate(frames):
                df.to_csv(fh, index=False, header=i == 0)
    else:
        with replacing(path, "w", encoding="utf-8") as fh:
            for df in frames:
                _write_jsonl(df, fh)
    mark_partial(path, partial, PARTIAL_SUFFIX)


def _arrow_table(cols: dict):
    """The collector's numpy columns as the Arrow table ``pa.Table.from_pandas(to_frame())``
    would give (categoricals as int8-indexed dictionaries of every category), without pandas:
    the arrays are made from the columns' buffers (no copy; ``pa.array`` would import pandas,
    ~0.2 s, to look for pandas objects)."""
    import numpy as np
    import pyarrow as pa

    arrow_types = {"<i8": pa.int64(), "<i4": pa.int32(), "<i2": pa.int16(), "i1": pa.int8()}

    def numbers(col, dtype: str):
        col = np.ascontiguousarray(col, dtype=dtype)
        return pa.Array.from_buffers(arrow_types[dtype], len(col), [None, pa.py_buffer(col)])

    def strings(names: list):
        data = [n.encode() for n in names]
        offsets = np.zeros(len(data) + 1, dtype=np.int32)
        np.cumsum([len(d) for d in data], out=offsets[1:])
        return pa.Array.from_buffers(pa.string(), len(data), [None, pa.py_buffer(offsets), pa.py_buffer(b"".join(data))])

    def dictionary(values, names: dict):
        codes, categories = dense_codes(values, names)
        return pa.DictionaryArray.from_arrays(numbers(codes, "i1"), strings(categories))

    arrays = []
    for name, dtype in zip(COLUMNS, ROW_DTYPES):
        col = cols[name]
        if name == "kind":
            arrays.append(dictionary(col, KIND_NAMES))
        elif name == "cause":
            arrays.append(dictionary(col, CAUSE_NAMES))
        elif name == "side":
            arrays.append(pa.DictionaryArray.from_arrays(numbers(col + 1, "i1"), strings(["", "primary", "secondary"])))
        else:
            arrays.append(numbers(col, dtype))
    return pa.Table.from_arrays(arrays, schema=_required(pa.schema([(n, a.type) for n, a in zip(COLUMNS, arrays)])))


def _required(schema):
    """``schema`` with every field marked required (not nullable): every column of a timeline has
    a value in every row (a missing one is -1, as the collector writes it), and a column Parquet
    knows has no nulls is written without definition levels (12% less of the writer's CPU on
    the free 1M pair's 2M rows).  ``pandas.read_parquet`` gives the same DataFrame either way."""
    import pyarrow as pa

    return pa.schema([f.with_nullable(False) for f in schema], metadata=schema.metadata)


def _write_jsonl(df, stream) -> None:
    if len(df):
        text = df.to_json(orient="records", lines=True)
        stream.write(text if text.endswith("\n") else text + "\n")
