"""The timeline: one row per event, collected in columns, turned into a DataFrame once.

Columns (the DataFrame has the same names):

    time_ns          int64    when it happened (replay clock: capture time + offsets), ns
    kind             category release, secondary_dropped, checkpoint_request, queue_full_drop,
                              table_reset, unsupported, flush, qemu_crash, undefined,
                              primary_lost, uncomparable, checkpoint_start, checkpoint_end
    cause            category why (see colo_replay.events.Cause; checkpoint rows: requested,
                              periodic, measured; uncomparable rows: truncated)
    side             category primary / secondary / "" (rows about no frame)
    conn             int32    connection index in first-seen order, -1 if none
    primary_frame    int64    primary capture frame number (Wireshark numbering), -1 if none
    secondary_frame  int64    secondary capture frame number, -1 if none
    held_ns          int64    releases: release time minus the primary's arrival; else -1
    size             int32    the frame's length in bytes (vnet header included), -1 if none
    other_size       int32    the second frame's length, -1 if none
    tcp_seq          int64    TCP: the frame's sequence number, -1 otherwise
    tcp_seq_end      int64    TCP: seq + payload length (mod 2^32, padding included), -1 otherwise
    detail           int64    age in ms (expired), connections lost (table reset), checkpoint
                              number (checkpoint rows), bytes read past the end (undefined)

``pandas`` is imported only when a DataFrame is asked for.
"""

from __future__ import annotations

from array import array

from .events import Cause, EventKind

COLUMNS = ("time_ns", "kind", "cause", "side", "conn", "primary_frame", "secondary_frame",
           "held_ns", "size", "other_size", "tcp_seq", "tcp_seq_end", "detail")

# Row kinds beyond the engine's EventKind (driver events), as small codes after it
KIND_UNCOMPARABLE = 100
KIND_CHECKPOINT_START = 101
KIND_CHECKPOINT_END = 102
DRIVER_KINDS = {KIND_UNCOMPARABLE: "uncomparable", KIND_CHECKPOINT_START: "checkpoint_start",
                KIND_CHECKPOINT_END: "checkpoint_end"}
KIND_NAMES = {int(k): k.name.lower() for k in EventKind} | DRIVER_KINDS

CAUSE_TRUNCATED = 100
CAUSE_REQUESTED = 101
CAUSE_PERIODIC = 102
CAUSE_MEASURED = 103
DRIVER_CAUSES = {CAUSE_TRUNCATED: "truncated", CAUSE_REQUESTED: "requested", CAUSE_PERIODIC: "periodic",
                 CAUSE_MEASURED: "measured"}
CAUSE_NAMES = {int(c): c.name.lower() for c in Cause} | DRIVER_CAUSES
CHECKPOINT_CAUSE_CODES = {"requested": CAUSE_REQUESTED, "periodic": CAUSE_PERIODIC, "measured": CAUSE_MEASURED}

_RELEASE = int(EventKind.RELEASE)
_TCP = 6


class TimelineCollector:
    """Appends events to typed columns; cheap enough for the per-frame path."""

    def __init__(self):
        self.time_ns = array("q")
        self.kind = array("h")
        self.cause = array("h")
        self.side = array("b")
        self.conn = array("i")
        self.primary_frame = array("q")
        self.secondary_frame = array("q")
        self.held_ns = array("q")
        self.size = array("i")
        self.other_size = array("i")
        self.tcp_seq = array("q")
        self.tcp_seq_end = array("q")
        self.detail = array("q")

    def __len__(self) -> int:
        return len(self.time_ns)

    def add_event(self, ev) -> None:
        """One engine Event."""
        kind, cause, t, frame, other, conn, detail = ev
        self.time_ns.append(t)
        self.kind.append(kind)
        self.cause.append(cause)
        self.conn.append(conn)
        self.detail.append(detail)
        if frame is None:
            self.side.append(-1)
            self.primary_frame.append(-1)
            self.secondary_frame.append(-1)
            self.held_ns.append(-1)
            self.size.append(-1)
            self.other_size.append(-1 if other is None else other.size)
            self.tcp_seq.append(-1)
            self.tcp_seq_end.append(-1)
            return
        side = frame.side
        self.side.append(side)
        ident = frame.ident if frame.ident is not None else -1
        oident = -1 if other is None or other.ident is None else other.ident
        if side == 0:
            self.primary_frame.append(ident)
            self.secondary_frame.append(oident)
        else:
            self.primary_frame.append(oident)
            self.secondary_frame.append(ident)
        self.held_ns.append(t - frame.time if kind == _RELEASE else -1)
        self.size.append(frame.size)
        self.other_size.append(-1 if other is None else other.size)
        if frame.ip_proto == _TCP and frame.header_size:
            self.tcp_seq.append(frame.tcp_seq)
            self.tcp_seq_end.append(frame.seq_end)
        else:
            self.tcp_seq.append(-1)
            self.tcp_seq_end.append(-1)

    def add_row(self, t: int, kind: int, cause: int, side: int = -1, frame: int = -1, size: int = -1,
                detail: int = 0) -> None:
        """A driver row (checkpoint start/end, uncomparable frame)."""
        self.time_ns.append(t)
        self.kind.append(kind)
        self.cause.append(cause)
        self.side.append(side)
        self.conn.append(-1)
        self.primary_frame.append(frame if side == 0 else -1)
        self.secondary_frame.append(frame if side == 1 else -1)
        self.held_ns.append(-1)
        self.size.append(size)
        self.other_size.append(-1)
        self.tcp_seq.append(-1)
        self.tcp_seq_end.append(-1)
        self.detail.append(detail)

    def to_frame(self):
        """The pandas DataFrame, with categorical kind/cause/side columns."""
        import numpy as np
        import pandas as pd

        def cat(codes: array, names: dict, dtype):
            arr = np.frombuffer(codes, dtype=dtype) if len(codes) else np.zeros(0, dtype=dtype)
            keys = sorted(names)
            cats = pd.Categorical.from_codes(np.searchsorted(keys, arr), categories=[names[k] for k in keys])
            return cats

        def num(col: array, dtype):
            return np.frombuffer(col, dtype=dtype).copy() if len(col) else np.zeros(0, dtype=dtype)

        side_arr = num(self.side, np.int8)
        side = pd.Categorical.from_codes(side_arr + 1, categories=["", "primary", "secondary"])
        return pd.DataFrame({
            "time_ns": num(self.time_ns, np.int64),
            "kind": cat(self.kind, KIND_NAMES, np.int16),
            "cause": cat(self.cause, CAUSE_NAMES, np.int16),
            "side": side,
            "conn": num(self.conn, np.int32),
            "primary_frame": num(self.primary_frame, np.int64),
            "secondary_frame": num(self.secondary_frame, np.int64),
            "held_ns": num(self.held_ns, np.int64),
            "size": num(self.size, np.int32),
            "other_size": num(self.other_size, np.int32),
            "tcp_seq": num(self.tcp_seq, np.int64),
            "tcp_seq_end": num(self.tcp_seq_end, np.int64),
            "detail": num(self.detail, np.int64),
        })


TIMELINE_EXTENSIONS = (".parquet", ".csv", ".jsonl", ".json", ".ndjson")


def check_timeline_path(path: str) -> None:
    """Raise ValueError unless ``path`` names a timeline format we write (checked before a replay)."""
    if not path.lower().endswith(TIMELINE_EXTENSIONS):
        raise ValueError(f"{path}: unknown timeline format (use .parquet, .csv or .jsonl)")


def write_timeline(df, path: str | None, stream=None) -> None:
    """Write by extension: .parquet, .csv, .jsonl / .json (JSON Lines); ``None`` = JSON Lines on
    ``stream``."""
    if path is None:
        _write_jsonl(df, stream)
        return
    check_timeline_path(path)
    lower = path.lower()
    if lower.endswith(".parquet"):
        df.to_parquet(path, index=False)
    elif lower.endswith(".csv"):
        df.to_csv(path, index=False)
    else:
        with open(path, "w", encoding="utf-8") as fh:
            _write_jsonl(df, fh)


def _write_jsonl(df, stream) -> None:
    if len(df):
        text = df.to_json(orient="records", lines=True)
        stream.write(text if text.endswith("\n") else text + "\n")
