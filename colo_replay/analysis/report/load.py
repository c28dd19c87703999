"""A saved run: the timeline file written by ``replay -o`` / ``live -o`` and the summary JSON
written by ``--summary-json``, read back for a report made later (a rig run, without replaying).

Both are validated as the capture readers validate a capture, so that bad input is one line
naming the file and where in it (``ValueError``), never a traceback, and so that nothing is
allocated from a hostile value:

* the timeline's columns are exactly those of ``colo_replay.output.timeline`` (missing or unknown
  ones are named); every value has its column's type: an integer within the column's type
  (``conn`` and ``other_size`` int32, the others int64; ``time_ns`` and ``held_ns`` within
  +-(2^62 - 1), as no capture clock goes further), kind / cause / side one of the timeline's names.  A bad value is named by
  its row (1-based, data rows) and column, and for CSV and JSON Lines by its line in the file;
* a Parquet file may not hold more rows, or decompress to more bytes, than its size can honestly
  encode (``_MAX_ROWS_PER_BYTE``...): a file of a few hundred KB claiming 30 million rows of one
  repeated event is refused before a row is decoded;
* ``check_gaps``: the replay's bound on time.  Sorted by time, two consecutive rows may not be
  more than a day apart (``captures.base.DEFAULT_MAX_GAP_NS``), as consecutive frames of a
  capture may not unless ``--allow-gaps``; ``max_gap_of`` reads the allowance from the summary
  (``knobs.allow_gaps`` / ``knobs.max_gap_ns``; a live run's own duration) and the options;
* the summary is a JSON object of replay's (``knobs``) or live's (``frames_in``) shape, or
  carries ``"schema": "colo-replay-summary/1"``; the keys the report reads have their types
  (``FILE: knobs: expected an object, got a list``).
"""

from __future__ import annotations

import os
import re
import sys
import warnings
from contextlib import contextmanager

import numpy as np
import pandas as pd

from ...engine.eventlog import DTYPES
from ...output.timeline import CAUSE_NAMES, COLUMNS, KIND_NAMES
from .checks import Doc, kind_of, number_problem, read_json, schema_of, shown, utf8_offset

__all__ = ["load_timeline", "load_summary", "read_json", "check_gaps", "max_gap_of", "SUMMARY_SCHEMA"]

SUMMARY_SCHEMA = "colo-replay-summary"
_CATEGORICAL = ("kind", "cause", "side")
_NAMES = {"kind": frozenset(KIND_NAMES.values()), "cause": frozenset(CAUSE_NAMES.values()),
          "side": frozenset(("", "primary", "secondary"))}
_TIME_LIMIT = 2**62            # |time_ns|: a uint32 capture clock in ns stays below 2^62 until 2116
_RANGES = {c: ((-2**31, 2**31 - 1) if d == "<i4" else (-2**63, 2**63 - 1)) for c, d in zip(COLUMNS, DTYPES)
           if c not in _CATEGORICAL}
# time_ns and held_ns within +-(2^62 - 1): a difference of two times, or a time minus a held time,
# stays within int64
_RANGES["time_ns"] = _RANGES["held_ns"] = (-_TIME_LIMIT + 1, _TIME_LIMIT - 1)
_INT_DIGITS = 19               # digits of the largest int64: more is out of every column's range
_FLOAT_EXACT = 2**53           # beyond it a float is no exact integer
_INT_TEXT = re.compile(r"\s*[+-]?\d+\s*")
_PANDAS_INDEX = re.compile(r"__index_level_\d+__")     # DataFrame.to_parquet's index column, not data
# A Parquet timeline from replay / live takes ~20 bytes a row (1M-frame bench pair); these bounds
# leave ten times that margin and refuse a run-length "bomb"
_FREE_ROWS = 1 << 20
_MAX_ROWS_PER_BYTE = 0.5
_FREE_BYTES = 256 << 20
_MAX_EXPANSION = 64


class _Bad(Exception):
    """A bad value: its data row (0-based), column and why."""

    def __init__(self, row: int, column: str, why: str):
        super().__init__(why)
        self.row, self.column, self.why = row, column, why


def _fmt(path: str) -> str:
    lower = str(path).lower()
    if lower.endswith(".parquet"):
        return "parquet"
    if lower.endswith(".csv"):
        return "csv"
    if lower.endswith((".jsonl", ".json", ".ndjson")):
        return "jsonl"
    raise ValueError(f"{path}: unknown timeline format (use .parquet, .csv or .jsonl)")


def _short(v) -> str:
    text = repr(v)
    return text if len(text) <= 40 else text[:37] + "..."


def _plain(v):
    """numpy scalars and arrays as Python values (for the checks and the messages)."""
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, np.ndarray):
        return v.tolist()
    return v


def _missing(v) -> bool:
    return v is None or v is pd.NA or v is pd.NaT or (isinstance(v, float) and v != v)


def value_problem(column: str, v, text: bool = False) -> str | None:
    """Why ``v`` cannot be a value of timeline ``column``, or None (the one statement of the rules;
    ``text``: a CSV cell, where every value is a string)."""
    v = _plain(v)
    if column in _CATEGORICAL:
        if _missing(v):
            return "missing value"
        if not isinstance(v, str):
            return f"expected a string, got {kind_of(v)}"
        if v not in _NAMES[column]:
            return f"unknown {column} {_short(v)}"
        return None
    lo, hi = _RANGES[column]
    if text and isinstance(v, str):
        if not v.strip():
            return "missing value"
        if not _INT_TEXT.fullmatch(v):
            return f"expected an integer, got {_short(v)}"
        if len(v.strip().lstrip("+-").lstrip("0")) > _INT_DIGITS:     # (int() refuses > 4300 digits)
            return f"{_short(v.strip())} is out of range ({lo} to {hi})"
        v = int(v)
    if _missing(v) or (isinstance(v, str) and not v):
        return "missing value"
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return f"expected an integer, got {kind_of(v)}" + (f" {_short(v)}" if isinstance(v, str) else "")
    if isinstance(v, float):
        if v != v or v in (float("inf"), float("-inf")) or v != int(v):
            return f"expected an integer, got {v!r}"
        if abs(v) >= _FLOAT_EXACT:
            return f"expected an integer, got the floating-point number {v!r} (not exact)"
        v = int(v)
    if not lo <= v <= hi:
        return f"{v} is out of range ({lo} to {hi})"
    return None


def _first(mask: np.ndarray) -> int | None:
    i = np.flatnonzero(mask)
    return int(i[0]) if len(i) else None


def _first_bad(s: pd.Series, column: str, text: bool) -> int | None:
    """Row of the first value ``value_problem`` refuses, or None: vectorised for the column types
    a good file gives, value by value otherwise (a bad file pays for its own message)."""
    if column in _CATEGORICAL:
        if isinstance(s.dtype, pd.CategoricalDtype):
            cats = list(s.cat.categories)
            bad = [i for i, c in enumerate(cats) if value_problem(column, c, text)]
            codes = s.cat.codes.to_numpy()
            return _first(np.isin(codes, bad) | (codes < 0))
    else:
        kind = s.dtype.kind if isinstance(s.dtype, np.dtype) else None
        lo, hi = _RANGES[column]
        if kind is not None and kind in "iu":
            v = s.to_numpy()
            if kind == "u":
                return _first(v > np.uint64(hi))
            return _first((v < lo) | (v > hi))
        if kind == "f":
            v = s.to_numpy()
            with np.errstate(invalid="ignore"):
                ok = np.isfinite(v) & (v == np.floor(v)) & (np.abs(v) < _FLOAT_EXACT) & (v >= lo) & (v <= hi)
            return _first(~ok)
    for i, v in enumerate(s.to_numpy(dtype=object)):
        if value_problem(column, v, text):
            return i
    return None


def _as_int64(s: pd.Series) -> np.ndarray:
    """A validated column as int64 (every value an integer in range)."""
    if isinstance(s.dtype, np.dtype) and s.dtype.kind in "iuf":
        return s.to_numpy().astype(np.int64)
    return np.array([int(_plain(v)) for v in s.to_numpy(dtype=object)], dtype=np.int64)


def _validated(df: pd.DataFrame, path: str, text: bool) -> pd.DataFrame:
    """The timeline DataFrame (COLUMNS in order, int64 and categorical) of what a reader gave, or
    ``_Bad`` for its first bad value (the first column's first, in column order)."""
    out = {}
    for c in COLUMNS:
        s = df[c]
        if c in _CATEGORICAL and not isinstance(s.dtype, pd.CategoricalDtype):
            try:
                s = s.astype("category")
            except Exception:          # unhashable values (lists): _first_bad finds them one by one
                pass
        row = _first_bad(s, c, text)
        if row is not None:
            raise _Bad(row, c, value_problem(c, s.iloc[row], text))
        if c in _CATEGORICAL:
            cat = s.cat.remove_unused_categories()
            names = [str(x) for x in cat.cat.categories]
            # the categories as astype("category") gives them: strings, sorted
            out[c] = cat.cat.rename_categories(names).cat.reorder_categories(sorted(names))
        else:
            out[c] = _as_int64(s)
    return pd.DataFrame(out, copy=False)


def _check_columns(names, path: str) -> None:
    """ValueError unless ``names`` are the timeline's columns, each once (in any order)."""
    from collections import Counter

    names = [str(n) for n in names]
    missing = [c for c in COLUMNS if c not in names]
    unknown = [n for n in names if n not in COLUMNS]
    if missing:
        raise ValueError(f"{path}: not a colo-replay timeline (missing columns: {', '.join(missing)})")
    if unknown:
        listed = ", ".join(shown(n, 40) for n in unknown[:5]) + (f" and {len(unknown) - 5} more" if len(unknown) > 5
                                                                  else "")
        raise ValueError(f"{path}: not a colo-replay timeline (unknown columns: {listed}; a timeline has "
                         f"{', '.join(COLUMNS)})")
    twice = sorted(n for n, k in Counter(names).items() if k > 1)
    if twice:
        raise ValueError(f"{path}: not a colo-replay timeline (columns given twice: {', '.join(twice)})")


# -- where a data row is in the file (only when there is something to say about it) -------------

@contextmanager
def _csv_fields_unbounded():
    """The csv module without its 128 KiB field limit (a csv.Error, not a line number, on a long
    field pandas has read already), restored afterwards."""
    import csv

    was = csv.field_size_limit(sys.maxsize)
    try:
        yield
    finally:
        csv.field_size_limit(was)


def _csv_lines(path: str, rows) -> dict:
    """``{data row (0-based): first line of its record}`` in a CSV file, as pandas counts records
    (blank lines skipped, quoted line ends inside a record)."""
    import csv

    want, out = set(rows), {}
    with open(path, newline="", encoding="utf-8", errors="replace") as fh, _csv_fields_unbounded():
        reader = csv.reader(fh)
        start, r = 1, -1                # the header is record -1
        for record in reader:
            if record:
                if r in want:
                    out[r] = start
                    if len(out) == len(want):
                        break
                r += 1
            start = reader.line_num + 1
    return out


def _jsonl_lines(path: str, rows) -> dict:
    """``{data row (0-based): its line}`` in a JSON Lines file (blank lines skipped)."""
    want, out = set(rows), {}
    with open(path, encoding="utf-8", errors="replace") as fh:
        r = 0
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            if r in want:
                out[r] = n
                if len(out) == len(want):
                    break
            r += 1
    return out


def _where(path: str, rows) -> dict:
    """``{data row: "line L (row R)"}`` (CSV, JSON Lines) or ``"row R"`` (Parquet)."""
    fmt = _fmt(path)
    import csv

    try:
        lines = _csv_lines(path, rows) if fmt == "csv" else _jsonl_lines(path, rows) if fmt == "jsonl" else {}
    except (OSError, ValueError, csv.Error):
        lines = {}
    return {r: (f"line {lines[r]} (row {r + 1})" if r in lines else f"row {r + 1}") for r in rows}


# -- the readers ----------------------------------------------------------------------------------

def _not_utf8(path: str) -> ValueError:
    offset = utf8_offset(path)
    return ValueError(f"{path}: not UTF-8 text" + (f" (byte offset {offset})" if offset is not None else ""))


def _read_parquet(path: str) -> tuple[pd.DataFrame, bool]:
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
        meta = pf.metadata
        names = pf.schema_arrow.names
    except OSError as exc:
        if exc.errno is not None:  # the file itself (not there, not readable): bad_input names it
            raise
        raise _unreadable(path, exc) from None      # pyarrow's OSError: a corrupt footer (thrift)
    except Exception as exc:       # ArrowInvalid: not Parquet
        raise _unreadable(path, exc) from None
    _check_columns([n for n in names if not _PANDAS_INDEX.fullmatch(str(n))], path)
    size = os.path.getsize(path)
    rows = meta.num_rows
    if rows > _FREE_ROWS + size * _MAX_ROWS_PER_BYTE:
        raise ValueError(f"{path}: {rows:,} rows in {size:,} bytes: more rows than a timeline of that size holds "
                         f"(at most {int(_FREE_ROWS + size * _MAX_ROWS_PER_BYTE):,}); a corrupt or crafted file")
    expanded = sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
    if expanded > _FREE_BYTES + size * _MAX_EXPANSION:
        raise ValueError(f"{path}: its row groups decompress to {expanded:,} bytes from {size:,}: more than a "
                         f"timeline expands (at most {_FREE_BYTES + size * _MAX_EXPANSION:,}); a corrupt or crafted "
                         f"file")
    try:
        table = pf.read(columns=list(COLUMNS))
        return table.to_pandas(), False
    except OSError as exc:
        if exc.errno is not None:
            raise
        raise _unreadable(path, exc) from None
    except Exception as exc:       # corrupt pages, a decompression error, memory
        raise _unreadable(path, exc) from None


def _unreadable(path: str, exc: Exception) -> ValueError:
    text = str(exc).strip()
    return ValueError(f"{path}: not a readable timeline ({type(exc).__name__}: "
                      f"{shown(text.splitlines()[0], 200) if text else 'no reason given'})")


def _read_csv(path: str) -> tuple[pd.DataFrame, bool]:
    from pandas.errors import EmptyDataError

    dtype = {c: str for c in _CATEGORICAL}
    try:
        head = pd.read_csv(path, nrows=0, keep_default_na=False)
    except EmptyDataError:
        raise ValueError(f"{path}: empty file (a CSV timeline has at least its header line)") from None
    except UnicodeDecodeError:
        raise _not_utf8(path) from None
    except OSError:
        raise
    except Exception as exc:
        raise _unreadable(path, exc) from None
    _check_columns(head.columns, path)
    try:
        return pd.read_csv(path, keep_default_na=False, na_filter=False, dtype=dtype), True
    except UnicodeDecodeError:
        raise _not_utf8(path) from None
    except OSError:
        raise
    except Exception as exc:
        problem = _csv_problem(path, len(head.columns))
        raise (ValueError(problem) if problem else _unreadable(path, exc)) from None


def _csv_problem(path: str, fields: int) -> str | None:
    """The first record of a CSV file whose field count is not the header's."""
    import csv

    with open(path, newline="", encoding="utf-8", errors="replace") as fh, _csv_fields_unbounded():
        reader = csv.reader(fh)
        start, r = 1, -1
        try:
            for record in reader:
                if record:
                    if r >= 0 and len(record) != fields:
                        return f"{path}: line {start} (row {r + 1}): {len(record)} fields, the header has {fields}"
                    r += 1
                start = reader.line_num + 1
        except csv.Error as exc:
            return f"{path}: line {start}" + (f" (row {r + 1})" if r >= 0 else "") + f": {exc}"
    return None


def _read_jsonl(path: str) -> tuple[pd.DataFrame, bool]:
    try:
        df = pd.read_json(path, lines=True, dtype=False, convert_dates=False)
    except UnicodeDecodeError:
        raise _not_utf8(path) from None
    except OSError:
        raise
    except Exception as exc:       # ujson's own errors and pandas' on a line that is no object
        problem = _jsonl_problem(path)
        raise (ValueError(problem) if problem else _unreadable(path, exc)) from None
    if not len(df.columns) and not len(df):       # an empty file: a run without events
        df = pd.DataFrame({c: pd.Series(dtype="int64" if c not in _CATEGORICAL else object) for c in COLUMNS})
    return df, False


def _jsonl_problem(path: str) -> str | None:
    """The first line of a JSON Lines timeline that is not a JSON object of timeline values."""
    import json

    with open(path, encoding="utf-8", errors="replace") as fh:
        r = 0
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except RecursionError:
                return f"{path}: line {n}: not readable JSON: nested too deep"
            except json.JSONDecodeError as exc:
                column = min(exc.pos, len(line.rstrip("\r\n"))) + 1
                return (f"{path}: line {n}: not JSON: {exc.msg} at column {column} (a JSON Lines timeline "
                        f"has one JSON object a line)")
            except ValueError as exc:
                return f"{path}: line {n}: not readable JSON: {str(exc).splitlines()[0]}"
            if not isinstance(obj, dict):
                return f"{path}: line {n} (row {r + 1}): expected a JSON object, got {kind_of(obj)}"
            for c in COLUMNS:
                if c in obj:
                    why = value_problem(c, obj[c])
                    if why:
                        return f"{path}: line {n} (row {r + 1}), column {c}: {why}"
            r += 1
    return None


def load_timeline(path: str, max_gap_ns: int | None = None) -> pd.DataFrame:
    """The events of a timeline file (.parquet, .csv, .jsonl / .json / .ndjson), with the
    columns of ``colo_replay.output.timeline``; kind, cause and side categorical as in a live
    ``Timeline.events``, the other columns int64.  ValueError (one line, naming the file, and the
    row, line and column of a bad value) when it is not a timeline; ``max_gap_ns``: also
    ``check_gaps`` (None: not here; ``build_report`` checks a saved run with its summary's bound)."""
    fmt = _fmt(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")            # pandas' DtypeWarning and friends: not our stderr
        df, text = (_read_parquet if fmt == "parquet" else _read_csv if fmt == "csv" else _read_jsonl)(path)
        _check_columns(df.columns, path)
        try:
            events = _validated(df, path, text)
        except _Bad as bad:
            raise ValueError(f"{path}: {_where(path, [bad.row])[bad.row]}, column {bad.column}: {bad.why}") from None
    if max_gap_ns is not None:
        check_gaps(events, path, max_gap_ns)
    return events


def check_gaps(events: pd.DataFrame, path: str, max_gap_ns: int | None) -> None:
    """ValueError when, sorted by time, two consecutive rows are more than ``max_gap_ns`` apart
    (None: any gap accepted): the replay's bound, named by both rows and their times."""
    if max_gap_ns is None or len(events) < 2:
        return
    t = events["time_ns"].to_numpy()
    order = np.argsort(t, kind="stable")
    st = t[order]
    gaps = np.diff(st)                  # |time_ns| <= 2^62: no overflow
    k = _first(gaps > max_gap_ns)
    if k is None:
        return
    a, b = int(order[k]), int(order[k + 1])
    where = _where(path, [a, b])
    raise ValueError(f"{path}: time_ns jumps {int(gaps[k]) / 1e9:.9g} s from {where[a]} at {int(st[k])} ns to "
                     f"{where[b]} at {int(st[k + 1])} ns, the next row in time: more than the "
                     f"{max_gap_ns / 1e9:g} s gap threshold of a replay (a clock step or a corrupt row; "
                     f"--allow-gaps accepts it, and so does a summary whose knobs have \"allow_gaps\": true, "
                     f"as a replay with --allow-gaps writes)")


def max_gap_of(summary: dict, options: dict | None = None) -> int | None:
    """The time-gap bound of a saved run (``check_gaps``; None: any gap): the replay's
    (``DEFAULT_MAX_GAP_NS``) unless ``options`` say ``allow_gaps`` or the summary's knobs do
    (``allow_gaps: true``, or ``max_gap_ns``); a live run (no knobs, ``runtime_s``) at least its
    own duration."""
    from ...captures.base import DEFAULT_MAX_GAP_NS

    if (options or {}).get("allow_gaps") is True:
        return None
    knobs = summary.get("knobs") or {}
    if knobs.get("allow_gaps") is True:
        return None
    if "max_gap_ns" in knobs:
        return knobs["max_gap_ns"]
    runtime = summary.get("runtime_s")
    if "knobs" not in summary and isinstance(runtime, (int, float)) and not isinstance(runtime, bool):
        return max(DEFAULT_MAX_GAP_NS, int(runtime * 1e9) + 1_000_000_000)
    return DEFAULT_MAX_GAP_NS


# -- the summary ----------------------------------------------------------------------------------

def load_summary(path: str | None) -> dict:
    """The summary JSON (``--summary-json`` of replay or live); ``{}`` when no path is given.
    ValueError naming the file and the key when it is not one (see the module docstring)."""
    if path is None:
        return {}
    data = read_json(path, "a summary JSON object")
    return check_summary(data, path)


def check_summary(data, path) -> dict:
    """``data`` when it has a summary's shape where the report reads it, else ValueError."""
    doc = Doc(path)
    what = "a colo-replay summary (--summary-json of replay or live)"
    if not isinstance(data, dict):
        doc.fail("", f"not {what}: a JSON object is expected, got {kind_of(data)}")
    if schema_of(doc, data, SUMMARY_SCHEMA, 1, what, required=False) is None \
            and "knobs" not in data and "frames_in" not in data:
        doc.fail("", f"not {what}: neither \"knobs\" (replay's) nor \"frames_in\" (live's)")
    for key in ("profile", "error", "nothing_compared", "stop_reason"):
        doc.string(data, key)
    if isinstance(data.get("qemu"), dict):
        # the release replayed (engine.releases.Release.as_dict)
        for key in ("release", "row"):
            doc.string(data["qemu"], key, "qemu", required=True)
        doc.object(data["qemu"], "switches", "qemu", required=True)
    else:
        doc.string(data, "qemu")     # a live summary made before the qemu object: the profile's name
    doc.boolean(data, "interrupted")
    doc.boolean(data, "partial")
    doc.number(data, "runtime_s", lo=0)
    doc.strings(data, "warnings")
    knobs = doc.object(data, "knobs")
    if knobs is not None:
        doc.string(knobs, "qemu", "knobs")
        doc.integer(knobs, "vnet_hdr_len", "knobs", lo=0, hi=2**31 - 1)
        doc.boolean(knobs, "vnet_hdr_support", "knobs")
        doc.boolean(knobs, "allow_gaps", "knobs")
        doc.integer(knobs, "max_gap_ns", "knobs", lo=0)
    frames = doc.object(data, "frames")
    for side in ("primary", "secondary"):
        if frames is not None:
            doc.integer(frames, side, "frames", lo=0)
    frames_in = doc.list(data, "frames_in")
    if frames_in is not None:
        if len(frames_in) != 2:
            doc.fail("frames_in", f"expected two counts (primary_in, secondary_in), got {len(frames_in)}")
        for i, n in enumerate(frames_in):
            why = number_problem(n, integer=True, lo=0)
            if why:
                doc.fail(f"frames_in[{i}]", why)
    source = doc.object(data, "source")
    if source is not None:
        doc.strings(source, "warnings", "source")
        doc.string(source, "chardev", "source")
        ports = doc.object(source, "ports", "source")
        for role in (ports or {}):
            doc.integer(ports, role, "source.ports", lo=0, hi=65535)
    captures = doc.object(data, "captures")
    for side in ("primary", "secondary"):
        cap = doc.object(captures, side, "captures") if captures is not None else None
        if cap is not None:
            doc.string(cap, "path", f"captures.{side}")
    return data
