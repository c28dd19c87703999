"""Sweeps: one workload replayed under a grid of settings, one row per setting, the Pareto front
of checkpoints per minute against held p99, and a recommendation with its rule.

**The grid.**  Each sweepable knob (``KNOBS``) takes a list: ``100,300,1000``; a geometric range
``100:3000:x2`` (100, 200, 400, ..., up to 3000 inclusive); an arithmetic one ``100:1000:+300``
(100, 400, 700, 1000).  Durations accept units (``50ms``, ``1.5s``; a bare number is ms), in
lists and ranges alike (``100ms:1s:+300ms``).  The settings are the cartesian product, in the
order the knobs are listed in ``KNOBS`` and the values in their spec.  Settings that change what
is parsed (vnet header, filter, guest, rewriter, offsets) are not sweepable: they are the pair's.

**Bounds.**  Numbers are plain decimals, parsed exactly (no exponent, inf or nan; at most a
uint64, or 2^63 - 1 ns); a geometric factor is a finite number above 1.  A spec's number of
values is counted before they are made (``count_values``: at most ``_MAX_VALUES``), and the
grid's size (``grid_size``) times the pairs is checked against ``MAX_SETTINGS`` replays (or
``max_settings``) before the product is made (``check_size``).  ``run`` starts at most
``max_jobs()`` workers (one per core) and never more than the tasks; Dask gets
``DASK_TIMEOUT_S`` to connect and to have a worker.  Ctrl-C: the tasks finished so far are kept
(``run(done=...)``), the workers stopped.

**Streamed, or parsed once.**  A pair of paths is resolved once (``open_pair``: guest
selection, alignment) and every setting reads both files again, streamed
(``offline.streamed.StreamedPair``: a worker holds one replay, not the captures); a pair of
readers, or one for Dask, is read, rewritten, filtered and merged into memory once
(``offline.prepared.PreparedPair``).  Each setting runs ``offline.driver.replay_partial``, the
same call as ``colo-replay replay``, and the row is made from
``output.summary.summarise`` of its timeline and ``analysis.episodes`` of the same DataFrame:
a row holds exactly what ``replay`` would report for that setting.

**Fan-out.**  Settings run in parallel: in forked worker processes that see the pairs
through a module global set before the pool starts (copy-on-write: nothing is pickled but the
setting and the row; see ``offline.prepared`` for why the pages stay shared), in worker processes
that unpickle the pairs once each (``start_method="spawn"``; where fork is not available), or on
a Dask cluster (``dask="tcp://host:8786"``: the pairs are scattered to every worker once, then
one task per row).

**A row** (``ROW_COLUMNS``): the pair's name; the resolved knobs; ``checkpoints`` performed and
by cause (``checkpoints_requested``, ``checkpoints_periodic``, ``checkpoints_measured``);
``requests`` and by cause (``requests_miscompare``, ``requests_size_mismatch``,
``requests_ack_gate``, ``requests_expired``); ``roots`` (episodes: one per divergence a user can
act on, ``analysis.episodes``); ``divergences``; ``minutes`` of traffic (first to last frame read,
or to ``--until``) and ``checkpoints_per_min``; ``held_p50_ms`` .. ``held_max_ms`` (NaN when
nothing was released); ``released``, ``released_by_flush``, ``queue_drops``,
``still_queued_primary`` / ``_secondary``; ``partial``/``error`` (a capture's read error); and,
once ``mark`` has run, ``pareto`` and ``recommended`` (booleans).

**The Pareto front** is per pair: a row is on it when no other row of the pair has both fewer
(or as many) checkpoints per minute and a lower (or equal) held p99, one of them strictly.

**The recommendation** (per pair), its rule always stated with it (``Recommendation.rule``):
with ``max_held_p99``: the setting with the fewest checkpoints per minute among those whose held
p99 is at most that many ms, ties broken by the lower held p99, then by grid order; none when no
setting meets the bound.  Without it: the fewest checkpoints per minute, ties broken the same way
(that setting is on the front; it says nothing about latency, which is why the rule is printed).

**The JSON file** (``write_rows`` with ``.json``; read by ``report --sweep``)::

    {"schema": "colo-replay-sweep", "schema_version": 1,
     "swept": {"compare_timeout": [100, 300], ...},     # knob -> values (durations in ns)
     "settings": 8,                                       # grid size (rows per pair)
     "pairs": [{"name": ..., "primary": ..., "secondary": ...,
                "source": {"filter_rewriter": {...}, "guest": {...}}}, ...],   # source: when any
     "max_held_p99_ms": 50.0 | null,
     "recommendations": [{"pair": ..., "rule": "...", "row": 3 | null, "setting": {...} | null}],
     "rows": [{<ROW_COLUMNS>}, ...]}                      # NaN written as null

An interrupted sweep's JSON also holds ``"partial": true, "interrupted": true, "error": "interrupted:
N of M rows finished"``.  CSV and Parquet hold the rows only; an interrupted sweep's Parquet has the
timelines' key-value metadata (``colo_replay.partial``, ``colo_replay.error``), its CSV a sidecar
``<path>.partial`` holding the line (``write_rows``).
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from itertools import product

from ..engine.constants import MS
# a manifest's columns are the command line's option names (without --), each a Settings field
from ..offline.settings import MANIFEST_FIELDS

SCHEMA_VERSION = 1

# knob -> (ReplayOptions field, kind): "int" (ms or a count, integers), "duration" (ns, units allowed)
KNOBS = {
    "compare_timeout": ("compare_timeout", "int"),
    "expired_scan_cycle": ("expired_scan_cycle", "int"),
    "max_queue_size": ("max_queue_size", "int"),
    "checkpoint_duration": ("checkpoint_duration_ns", "duration"),
    "checkpoint_delay": ("checkpoint_delay_ns", "duration"),
}

REQUEST_CAUSES = ("miscompare", "size_mismatch", "ack_gate", "expired")
CHECKPOINT_CAUSES = ("requested", "periodic", "measured")
KNOB_COLUMNS = ("compare_timeout", "expired_scan_cycle", "max_queue_size", "checkpoint_duration_ms",
                "checkpoint_delay_ms")
ROW_COLUMNS = (("pair",) + KNOB_COLUMNS
               + ("checkpoints",) + tuple(f"checkpoints_{c}" for c in CHECKPOINT_CAUSES)
               + ("requests",) + tuple(f"requests_{c}" for c in REQUEST_CAUSES)
               + ("roots", "divergences", "minutes", "checkpoints_per_min",
                  "held_p50_ms", "held_p95_ms", "held_p99_ms", "held_max_ms",
                  "released", "released_by_flush", "queue_drops", "still_queued_primary",
                  "still_queued_secondary", "partial", "error", "pareto", "recommended"))

_UNITS = {"ns": 1, "us": 1_000, "µs": 1_000, "ms": MS, "s": 1_000_000_000}
_MAX_VALUES = 10_000            # values one knob's spec may give
MAX_SETTINGS = 10_000           # replays (settings x pairs) a sweep runs unless told more (max_settings)
_MAX_INT = (1 << 64) - 1        # the largest whole-number knob QEMU parses (a uint64; settings say more)
_MAX_NS = (1 << 63) - 1         # the largest duration (int64 nanoseconds, ~292 years)
_NUMBER = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*(ns|us|µs|ms|s)?\s*")
_SHOWN = 40                     # characters of a bad value quoted in a message


# -- the grid ------------------------------------------------------------------------------------

def _shown(text) -> str:
    """``text`` quoted for a message, cut to ``_SHOWN`` characters (a hostile value can be long)."""
    text = str(text).strip()
    return repr(text) if len(text) <= _SHOWN else repr(text[:_SHOWN]) + f"... ({len(text)} characters)"


def _number(text: str, kind: str, where: str):
    """A whole number (``kind`` "int") or a duration in ns ("duration": units allowed, a bare
    number is ms), exactly (decimal arithmetic: no float overflow, no rounding of large values);
    ValueError naming ``where`` for anything else, or a value beyond ``_MAX_INT`` / ``_MAX_NS``."""
    m = _NUMBER.fullmatch(text)
    if not m or (kind == "int" and m.group(2)):
        what = "a whole number" if kind == "int" else "a duration (e.g. 100, 250ms, 1.5s)"
        raise ValueError(f"{where}: {_shown(text)} is not {what}")
    digits = m.group(1)
    limit = _MAX_INT if kind == "int" else _MAX_NS
    if len(digits.split(".")[0].lstrip("0")) > len(str(limit)):       # before any arithmetic
        raise ValueError(f"{where}: {_shown(text)} is too large{_limit_text(kind)}")
    value = Decimal(digits)
    if kind == "int":
        if value != value.to_integral_value():
            raise ValueError(f"{where}: {_shown(text)} is not a whole number")
        n = int(value)
    else:
        n = int((value * _UNITS[m.group(2) or "ms"]).to_integral_value(rounding=ROUND_HALF_EVEN))
    if n > limit:
        raise ValueError(f"{where}: {_shown(text)} is too large{_limit_text(kind)}")
    return n


def _limit_text(kind: str) -> str:
    return f" (at most {_MAX_INT})" if kind == "int" else f" (at most {_MAX_NS // 1_000_000_000} s)"


def _factor(step: str, where: str) -> float:
    """A geometric range's factor (``x2``, ``x1.5``): a finite number above 1."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*", step[1:])
    factor = float(m.group(1)) if m and len(m.group(1)) <= 30 else None
    if factor is None or not 1 < factor < math.inf:
        raise ValueError(f"{where}: geometric step {_shown(step)} needs a factor above 1 (e.g. x2, x1.5)")
    return factor


def _parts(knob: str, spec: str):
    """The parts of one knob's spec, parsed, none generated: ``(start, stop, None, None)`` for a
    single value, ``(start, stop, inc, None)`` for an arithmetic range, ``(start, stop, None,
    factor)`` for a geometric one; ValueError naming the option and the bad part."""
    option = "--" + knob.replace("_", "-")
    kind = KNOBS[knob][1]
    where = f"{option} {_shown(spec)}"
    out = []
    for part in str(spec).split(","):
        if not part.strip():
            raise ValueError(f"{where}: empty value")
        if ":" not in part:
            v = _number(part, kind, where)
            out.append((v, v, None, None))
            continue
        bits = part.split(":")
        if len(bits) != 3:
            raise ValueError(f"{where}: a range is START:STOP:xFACTOR or START:STOP:+STEP, not {_shown(part)}")
        start, stop = _number(bits[0], kind, where), _number(bits[1], kind, where)
        step = bits[2].strip()
        if stop < start:
            raise ValueError(f"{where}: range {_shown(part)} ends before it starts")
        if step[:1] in ("x", "*"):
            factor = _factor(step, where)
            if start <= 0:
                raise ValueError(f"{where}: a geometric range starts above 0")
            out.append((start, stop, None, factor))
        elif step[:1] == "+":
            inc = _number(step[1:], kind, where)
            if inc <= 0:
                raise ValueError(f"{where}: arithmetic step {_shown(step)} must be above 0")
            out.append((start, stop, inc, None))
        else:
            raise ValueError(f"{where}: range step {_shown(step)} is xFACTOR (geometric) or +STEP (arithmetic)")
    return where, kind, out


def _count(start: int, stop: int, inc, factor) -> int:
    """How many values a part gives (a geometric range: estimated from logarithms, exact to
    within one), computed without making them."""
    if inc is not None:
        return (stop - start) // inc + 1
    if factor is not None:
        return math.floor(math.log((stop + 0.5) / start) / math.log(factor)) + 1
    return 1


def count_values(knob: str, spec: str) -> int:
    """How many values ``spec`` gives (before duplicates are dropped), without making them."""
    return sum(_count(*p) for p in _parts(knob, spec)[2])


def parse_values(knob: str, spec: str) -> list:
    """The values of one knob's spec (see the module docstring); ``ValueError`` with one line
    naming the option and the bad part.  Durations come back in ns, the other knobs as given.
    A spec giving more than ``_MAX_VALUES`` values is refused before they are made."""
    where, kind, parts = _parts(knob, spec)
    if sum(_count(*p) for p in parts) > _MAX_VALUES + len(parts):     # (+1 a part: the estimate's slack)
        raise ValueError(f"{where}: more than {_MAX_VALUES} values")
    values: list = []
    for start, stop, inc, factor in parts:
        if inc is not None:
            values.extend(range(start, stop + 1, inc))
        elif factor is not None:
            v = float(start)
            while v < stop + 1:                 # (a float compare first: v may be huge, even inf)
                r = round(v)
                if r > stop:
                    break
                values.append(r)
                v *= factor
        else:
            values.append(start)
        if len(values) > _MAX_VALUES:
            raise ValueError(f"{where}: more than {_MAX_VALUES} values")
    if kind == "int" and min(values) < 1:
        raise ValueError(f"{where}: values must be at least 1")
    return list(dict.fromkeys(values))          # duplicates once, first position kept


def grid_values(specs: dict) -> dict:
    """``specs``: knob -> spec text, a value, or a list of values (None or missing: not swept).
    Returns knob -> values, in ``KNOBS`` order; nothing of the product is made."""
    unknown = set(specs) - set(KNOBS)
    if unknown:
        raise ValueError(f"not sweepable: {', '.join(sorted(map(str, unknown)))} (sweepable: {', '.join(KNOBS)})")
    swept = {}
    for knob in KNOBS:
        spec = specs.get(knob)
        if spec is None:
            continue
        if isinstance(spec, str):
            swept[knob] = parse_values(knob, spec)
            continue
        values = [spec] if isinstance(spec, (int, float)) else list(spec)
        if not values:
            raise ValueError(f"--{knob.replace('_', '-')}: no values")
        if len(values) > _MAX_VALUES:
            raise ValueError(f"--{knob.replace('_', '-')}: more than {_MAX_VALUES} values")
        swept[knob] = values
    return swept


def grid_size(swept: dict) -> int:
    """How many settings the product of ``swept`` (knob -> values) holds, without making it."""
    return math.prod(len(v) for v in swept.values())


def check_size(settings: int, pairs: int, max_settings: int | None = None) -> None:
    """ValueError when ``settings`` x ``pairs`` replays are more than ``max_settings`` (default
    ``MAX_SETTINGS``), saying both numbers and how to raise the cap."""
    cap = MAX_SETTINGS if max_settings is None else max_settings
    if settings * pairs > cap:
        raise ValueError(f"a sweep of {settings} setting{'s' * (settings != 1)} x {pairs} pair{'s' * (pairs != 1)} "
                         f"is {settings * pairs} replays, more than the cap of {cap} (--max-settings N, or "
                         f"max_settings=N, raises it)")


def grid(specs: dict, max_settings: int | None = None, pairs: int = 1) -> tuple[dict, list[dict]]:
    """``specs``: knob -> spec text or list of values (None or missing: not swept).  Returns
    ``(swept, settings)``: knob -> values, and the cartesian product as ``ReplayOptions``
    keyword dicts (``{"compare_timeout": 300, "checkpoint_duration_ns": 100000000}``).  The
    product's size (times ``pairs``) is checked against ``max_settings`` (``check_size``) before
    it is made."""
    swept = grid_values(specs)
    check_size(grid_size(swept), pairs, max_settings)
    return swept, product_of(swept)


def product_of(swept: dict) -> list[dict]:
    """The cartesian product of ``swept`` (knob -> values) as ``ReplayOptions`` keyword dicts, in
    knob order (check its size first: ``grid_size``, ``check_size``)."""
    fields = [KNOBS[k][0] for k in swept]
    return [dict(zip(fields, combo)) for combo in product(*swept.values())] if swept else [{}]


# -- batches of pairs ----------------------------------------------------------------------------

class ManifestPair(dict):
    """One pair of a manifest: the dict ``api.sweep(pairs=...)`` takes, plus ``where`` (the
    manifest and row it came from, ``m.csv: row 3``) for the sweep's messages."""

    where: str | None = None


def read_manifest(path, *, settings: int = 1, max_settings: int | None = None) -> list[dict]:
    """The pairs of a manifest, as ``api.sweep(pairs=...)`` takes them.

    CSV: a header row with ``name,primary,secondary`` and any of ``MANIFEST_FIELDS`` (an empty
    cell: not given).  TOML: ``[[pair]]`` tables with the same keys.  Capture and
    ``checkpoints_at`` paths are relative to the manifest's directory.  Durations as on the
    command line (``12ms``, ``1.5s``, a bare number is ms); booleans true/false/yes/no/1/0.
    Every pair has its own name.  ``ValueError`` names the manifest, the pair (row) and the
    field.  With ``max_settings``, reading stops (ValueError, as ``check_size``) at the first
    pair that takes the sweep past that many replays of ``settings`` settings each.
    Nothing here opens a capture."""
    from pathlib import Path

    path = Path(path)
    base = path.parent
    suffix = path.suffix.lower()
    if suffix == ".toml":
        import tomllib
        raw = path.read_bytes()
        try:
            doc = tomllib.loads(raw.decode("utf-8-sig"))
        except UnicodeDecodeError as exc:
            line = raw.count(b"\n", 0, exc.start) + 1
            raise ValueError(f"{path}: line {line}: not UTF-8 text ({exc.reason} at "
                             f"byte offset {exc.start}): a pairs manifest is a CSV or TOML text file") from None
        except tomllib.TOMLDecodeError as exc:
            raise ValueError(f"{path}: not TOML ({exc})") from None
        except RecursionError:          # tomllib parses nested arrays and tables recursively
            raise ValueError(f"{path}: not TOML that can be read: nested too deep") from None
        tables = doc.get("pair")
        if not isinstance(tables, list):
            raise ValueError(f"{path}: no [[pair]] tables")
        entries = ((f"{path}: [[pair]] {i + 1}", entry) for i, entry in enumerate(tables))
    elif suffix == ".csv":
        fh = open(path, encoding="utf-8-sig", newline="")      # (a BOM, as spreadsheets write, is no column name)
        entries = _csv_entries(path, fh)
    else:
        raise ValueError(f"{path}: a pairs manifest is .csv or .toml")
    pairs: list = []
    try:
        _pairs_of(entries, pairs, base, settings, max_settings)
    finally:
        if hasattr(entries, "close"):
            entries.close()                     # the CSV file, when a row was refused
    if not pairs:
        raise ValueError(f"{path}: no pairs")
    return pairs


def _pairs_of(entries, pairs: list, base, settings: int, max_settings: int | None) -> None:
    names: dict = {}
    cap = None if max_settings is None else max(max_settings // max(settings, 1), 0)
    for at, entry in entries:
        if not isinstance(entry, dict):
            raise ValueError(f"{at}: not a table of name, primary, secondary, ...")
        if cap is not None and len(pairs) >= cap:
            n = len(pairs) + 1
            raise ValueError(f"{at}: a sweep of {settings} setting{'s' * (settings != 1)} x {n} pair{'s' * (n != 1)} "
                             f"or more is {settings * n} replays or more, more than the cap of {max_settings} "
                             f"(--max-settings N, or max_settings=N, raises it)")
        missing = [k for k in ("name", "primary", "secondary") if entry.get(k) in (None, "")]
        if missing:
            raise ValueError(f"{at}: missing {', '.join(missing)}")
        for key in ("name", "primary", "secondary"):
            value = entry[key]
            if not isinstance(value, str) and not (key == "name" and isinstance(value, int)):
                raise ValueError(f"{at}: {key}: {_shown(value)} is not {'a name' if key == 'name' else 'a path'} "
                                 f"(a string)")
        for key, value in entry.items():
            if isinstance(value, str) and "\x00" in value:
                raise ValueError(f"{at}: {key}: contains a NUL byte")
        name = str(entry["name"])
        if name in names:
            raise ValueError(f"{at}: name {_shown(name)} is already that of {names[name]} (every pair needs its "
                             f"own name)")
        names[name] = at.rsplit(": ", 1)[-1]
        pair = ManifestPair(name=name, primary=str(base / entry["primary"]), secondary=str(base / entry["secondary"]))
        pair.where = at
        for key, value in entry.items():
            if key in ("name", "primary", "secondary"):
                continue
            if key not in MANIFEST_FIELDS:
                raise ValueError(f"{at}: unknown field {_shown(key)} (known: name, primary, secondary, "
                                 f"{', '.join(MANIFEST_FIELDS)})")
            field, kind = MANIFEST_FIELDS[key]
            pair[field] = _manifest_value(value, kind, f"{at}: {key}", base)
        pairs.append(pair)


def _csv_entries(path, fh):
    """``(where, {column: cell})`` of each row of a CSV manifest (empty cells left out), read
    lazily from ``fh`` (closed at the end); a CSV or decoding error names the line."""
    import csv

    with fh:
        reader = csv.DictReader(fh)
        while True:
            try:
                row = next(reader)
            except StopIteration:
                return
            except UnicodeDecodeError as exc:
                raise ValueError(f"{path}: {_bad_utf8(path, exc)}: a pairs manifest is a CSV or TOML text "
                                 f"file") from None
            except csv.Error as exc:
                raise ValueError(f"{path}: line {reader.line_num + 1}: not CSV ({exc})") from None
            yield (f"{path}: row {reader.line_num}",
                   {k.strip(): v.strip() for k, v in row.items()
                    if isinstance(k, str) and isinstance(v, str) and v.strip()})


def _bad_utf8(path, exc: UnicodeDecodeError) -> str:
    """Where a file stops being UTF-8: its line and byte offset (found again in the raw bytes:
    text mode decodes ahead of the line being read)."""
    offset = 0
    with open(path, "rb") as fh:
        for n, line in enumerate(fh, 1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError as bad:
                return f"line {n}: not UTF-8 text ({bad.reason} at byte offset {offset + bad.start})"
            offset += len(line)
    return f"not UTF-8 text ({exc.reason})"


def _manifest_value(value, kind: str, where: str, base):
    if kind == "bool":
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("true", "yes", "1", "on"):
            return True
        if text in ("false", "no", "0", "off"):
            return False
        raise ValueError(f"{where}: {value!r} is not true or false")
    if isinstance(value, float):               # TOML: inf, nan, 1e300 are floats
        if not math.isfinite(value):
            raise ValueError(f"{where}: {value!r} is not a finite number")
        value = format(Decimal(value), "f")     # exactly, as text: the same checks as a CSV cell
    if kind == "int":
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        return _number(str(value), "int", where)
    if kind == "duration":
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        m = re.fullmatch(r"\s*(-?)(.*)", str(value))
        n = _number(m.group(2), "duration", where)
        return -n if m.group(1) else n
    if kind == "traces":                       # --qemu-trace: one file or a list, relative to the manifest
        items = value if isinstance(value, list) else [value]
        if not items or not all(isinstance(v, str) and v for v in items):
            raise ValueError(f"{where}: {_shown(value)} is not a path or a list of paths (relative to the manifest)")
        return [str(base / v) for v in items]
    if kind in ("path", "times"):              # --checkpoints-at: a file, relative to the manifest
        if not isinstance(value, str) or not value:
            raise ValueError(f"{where}: {_shown(value)} is not a path (a file name, relative to the manifest)")
        return str(base / value)
    return str(value)


# -- one row -------------------------------------------------------------------------------------

def row_of(name: str, result, minutes: float, rows=None) -> tuple[dict, dict]:
    """The row of one replay (and its summary), from its timeline: ``summarise`` and ``episodes``
    over one DataFrame, or, when the replay's rows went to ``rows`` (an
    ``output.stream.RowsForEpisodes``), over its tally and the rows it kept."""
    from ..output.summary import summarise
    from .episodes import episodes

    if rows is not None:
        s = summarise(rows.tally, result)
        df = rows.frame()
    else:
        df = result.collector.to_frame()
        s = summarise(df, result)
    if getattr(result, "source", None):
        s["source"] = result.source
    k = s["knobs"]
    held = s["held_ms"]
    nan = float("nan")
    row = {"pair": name}
    for col in KNOB_COLUMNS:
        row[col] = k[col]
    row["checkpoints"] = s["checkpoints"]
    for c in CHECKPOINT_CAUSES:
        row[f"checkpoints_{c}"] = s["checkpoints_by_cause"].get(c, 0)
    row["requests"] = s["checkpoint_requests"]
    for c in REQUEST_CAUSES:
        row[f"requests_{c}"] = s["checkpoint_requests_by_cause"].get(c, 0)
    row["roots"] = len(episodes(df).roots)
    row["divergences"] = s["divergences"]
    row["minutes"] = minutes
    row["checkpoints_per_min"] = s["checkpoints"] / minutes if minutes > 0 else nan
    for q in ("p50", "p95", "p99", "max"):
        row[f"held_{q}_ms"] = held.get(q, nan) if held else nan
    row["released"] = s["released"]
    row["released_by_flush"] = s["released_by_cause"].get("flush", 0)
    row["queue_drops"] = s["queue_drops"]
    row["still_queued_primary"] = s["still_queued"]["primary"]
    row["still_queued_secondary"] = s["still_queued"]["secondary"]
    row["partial"] = s["partial"]
    row["error"] = s["error"]
    return row, s


def minutes_of(pair) -> float:
    """Minutes of traffic of a ``PreparedPair``: first to last frame read, or to ``--until``."""
    span = pair.span_ns()
    end = pair.options.end_ns
    firsts = [p.first_ns for p in (pair.primary, pair.secondary) if p.first_ns is not None]
    if end is not None and firsts:
        span = max(span, end - min(firsts))
    return span / 60e9


def run_one(pair, setting: dict, with_summary: bool = False):
    """Replay one ``PreparedPair`` under one setting: the row (and the summary when asked).
    A replay stopped by Ctrl-C (the driver keeps what it had) is no row: KeyboardInterrupt."""
    from dataclasses import replace

    from ..offline.outcome import keeps_cascade
    from ..output.stream import RowsForEpisodes
    from ..output.timeline import streaming

    # The rows are counted and dropped block by block as the replay goes (only the few the
    # episodes need are kept): a worker's memory does not grow with the capture.
    rows = RowsForEpisodes(keep_cascade=keeps_cascade(replace(pair.options, **setting)))
    with streaming(rows):
        result, _exc = pair.replay(**setting)
    result.collector.spill = None
    for block in result.collector.blocks():       # the last block, not full when the replay ended
        rows(block)
    if getattr(result, "interrupted", False):
        raise KeyboardInterrupt
    row, summary = row_of(pair.name, result, minutes_of(pair), rows)
    return (row, summary) if with_summary else (row, None)


# -- the fan-out ---------------------------------------------------------------------------------

_PAIRS: list = []          # the prepared pairs, seen by forked workers (set before the pool starts)
JOBS_PER_CORE = 1          # the replays are CPU-bound: a worker more than the cores adds memory, not speed
DASK_TIMEOUT_S = 10        # to reach a Dask scheduler, and for its first worker to be there


def cores() -> int:
    """The cores this process may run on (its CPU affinity; ``os.cpu_count()`` elsewhere)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:
        return os.cpu_count() or 1


def max_jobs() -> int:
    """The most worker processes a sweep starts: ``JOBS_PER_CORE`` per core this process may use."""
    return max(1, cores() * JOBS_PER_CORE)


def _task(i: int, setting: dict, with_summary: bool):
    return run_one(_PAIRS[i], setting, with_summary)


def _init_worker(pairs) -> None:
    """Every worker: Ctrl-C is the parent's to handle (it keeps the rows finished so far and
    stops the workers), so SIGINT is ignored here, then unblocked (the parent blocked it while
    the workers started).  Spawned workers: the pairs, unpickled once per worker."""
    import signal

    global _PAIRS
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    if pairs is not None:
        _PAIRS = pairs


def run(pairs: list, settings: list[dict], jobs: int | None = None, *, dask: str | None = None,
        start_method: str | None = None, with_summary: bool = False,
        done: list | None = None) -> list[tuple[dict, dict | None]]:
    """Every (pair, setting), in that order (pair-major): ``[(row, summary_or_None), ...]``.

    ``jobs``: worker processes (default ``max_jobs()``, one per core this process may use; 1 =
    in this process); never more than ``max_jobs()`` nor than there are tasks.
    ``start_method``: ``"fork"`` (the default where available: the pairs are shared
    copy-on-write) or ``"spawn"`` (each worker unpickles the pairs once).  ``dask``: a
    dask.distributed scheduler address; ``jobs`` is then ignored.

    ``done``: a list the results are appended to as they are had (returned too).  On Ctrl-C
    (KeyboardInterrupt) the workers are stopped at once, ``done`` holds every task finished so
    far (in task order, with gaps where a task had not finished) and KeyboardInterrupt is raised
    again."""
    out = [] if done is None else done
    tasks = [(i, s) for i in range(len(pairs)) for s in settings]
    if dask is not None:
        return _run_dask(dask, pairs, tasks, with_summary, out)
    jobs = min(jobs or max_jobs(), max_jobs(), len(tasks))
    if jobs <= 1:
        for i, s in tasks:
            out.append(run_one(pairs[i], s, with_summary))
        return out
    import multiprocessing as mp
    import signal
    from concurrent.futures import ProcessPoolExecutor

    global _PAIRS
    method = start_method or ("fork" if "fork" in mp.get_all_start_methods() else "spawn")
    ctx = mp.get_context(method)
    futures: list = []
    pool = None
    base = len(out)
    try:
        # The workers start with SIGINT blocked (a Ctrl-C while they start is the parent's alone);
        # each ignores it and unblocks it before its first task (_init_worker).
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        try:
            if method == "fork":
                _PAIRS = pairs
            pool = ProcessPoolExecutor(jobs, mp_context=ctx, initializer=_init_worker,
                                       initargs=(None if method == "fork" else pairs,))
            futures = [pool.submit(_task, i, s, with_summary) for i, s in tasks]
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
        for f in futures:
            out.append(f.result())
        return out
    except KeyboardInterrupt:
        first = len(out) - base     # the futures before this one are in ``out`` already
        for f in futures[first:]:
            f.cancel()
        out.extend(f.result() for f in futures[first:] if f.done() and not f.cancelled() and f.exception() is None)
        if pool is not None:
            _stop_workers(pool)
        raise
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
        _PAIRS = []


def _stop_workers(pool) -> None:
    """Terminate a ProcessPoolExecutor's workers now (Ctrl-C: their tasks are abandoned)."""
    stop = getattr(pool, "terminate_workers", None)          # Python 3.14
    if stop is not None:
        stop()
        return
    for proc in list((getattr(pool, "_processes", None) or {}).values()):
        try:
            proc.terminate()
        except Exception:       # already gone
            pass


def _run_dask(address: str, pairs: list, tasks: list, with_summary: bool, out: list):
    if not str(address).strip():
        raise ValueError("--dask: a scheduler address must not be empty (e.g. tcp://10.0.0.5:8786)")
    try:
        from distributed import Client
    except ImportError:
        raise ValueError("--dask needs dask.distributed: pip install 'colo-replay[dask]'") from None
    client = _connect(Client, address)
    from distributed import as_completed

    futures: list = []
    results: dict = {}
    try:
        try:
            client.wait_for_workers(1, timeout=DASK_TIMEOUT_S)
        except (OSError, TimeoutError) as exc:
            raise ValueError(f"--dask {address}: the scheduler has no worker (none came within "
                             f"{DASK_TIMEOUT_S} s: {_one_line(exc)})") from None
        remote = client.scatter(list(pairs), broadcast=True)     # each pair sent once to each worker
        futures = [client.submit(run_one, remote[i], s, with_summary, pure=False) for i, s in tasks]
        # As they come (not one gather: a gather interrupted by Ctrl-C leaves distributed's waiting
        # tasks to die with tracebacks on stderr), put back in task order at the end.
        index = {f.key: k for k, f in enumerate(futures)}
        for future, result in as_completed(futures, with_results=True):
            results[index[future.key]] = result
        out.extend(results[k] for k in range(len(futures)))
        return out
    except KeyboardInterrupt:
        out.extend(results[k] for k in sorted(results))
        client.cancel(futures)
        raise
    finally:
        client.close()


def _connect(Client, address: str):
    """A dask.distributed ``Client`` of ``address``, or ValueError naming it within about
    ``DASK_TIMEOUT_S``.  Client's own timeout covers the TCP connection, not the handshake after
    it: a listener that accepts and never speaks (or speaks another protocol) would hold it
    forever.  So the client is made in a daemon thread, given up on after the timeout."""
    import threading

    box: dict = {}

    def connect():
        try:
            box["client"] = Client(address, timeout=DASK_TIMEOUT_S)
        except BaseException as exc:          # (handed to the caller)
            box["error"] = exc

    thread = threading.Thread(target=connect, name="colo-replay dask connect", daemon=True)
    thread.start()
    thread.join(DASK_TIMEOUT_S + 2)
    if thread.is_alive():
        raise ValueError(f"--dask {address}: no Dask scheduler answered within {DASK_TIMEOUT_S} s (connected, but "
                         f"no handshake: another service on that port?)")
    exc = box.get("error")
    if isinstance(exc, Exception):      # whatever connecting raised is about the address (a refused
        # connection, a timeout, a bad address, another protocol's bytes read as a frame length ...)
        raise ValueError(f"--dask {address}: cannot reach the scheduler ({type(exc).__name__}: "
                         f"{_one_line(exc)[:200]})") from None
    if exc is not None:
        raise exc                       # (KeyboardInterrupt, SystemExit)
    return box["client"]


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


# -- the front and the recommendation ------------------------------------------------------------

def _point(row) -> tuple[float, float] | None:
    x, y = row["checkpoints_per_min"], row["held_p99_ms"]
    if x is None or y is None or math.isnan(x) or math.isnan(y):
        return None
    return x, y


def _by_pair(rows: list[dict]) -> dict:
    """pair name -> the indices of its rows, in order (pairs in order of first appearance)."""
    groups: dict = {}
    for i, r in enumerate(rows):
        groups.setdefault(r["pair"], []).append(i)
    return groups


def pareto(rows: list[dict]) -> list[bool]:
    """For each row, True when it is on its pair's Pareto front (fewer checkpoints per minute vs
    lower held p99); rows without a held p99 (nothing released) are never on it.

    A row is dominated when another row of its pair has both fewer-or-equal checkpoints per
    minute and a lower-or-equal held p99, one of them strictly: some row with strictly fewer
    checkpoints per minute and a held p99 at most its own, or one with as many and a strictly
    lower p99.  Sorted by checkpoints per minute, that is one pass (n log n, not n^2: a sweep
    of 10,000 settings or pairs)."""
    marks = [False] * len(rows)
    for indices in _by_pair(rows).values():
        points = sorted((p, i) for i in indices if (p := _point(rows[i])) is not None)
        best_left = math.inf            # the lowest p99 among strictly fewer checkpoints per minute
        k = 0
        while k < len(points):
            x = points[k][0][0]
            same = k
            while same < len(points) and points[same][0][0] == x:
                same += 1
            lowest_here = points[k][0][1]          # (sorted: the first of the run has the lowest p99)
            for (_, y), i in points[k:same]:
                marks[i] = not (best_left <= y or lowest_here < y)
            best_left = min(best_left, lowest_here)
            k = same
    return marks


@dataclass
class Recommendation:
    """The setting picked for one pair: ``rule`` (the sentence saying how), ``row`` (its index in
    the rows, None when no setting qualifies) and ``setting`` (its knobs)."""

    pair: str
    rule: str
    row: int | None
    setting: dict | None

    def as_dict(self) -> dict:
        return {"pair": self.pair, "rule": self.rule, "row": self.row, "setting": self.setting}


def rule_text(max_held_p99: float | None) -> str:
    if max_held_p99 is None:
        return ("fewest checkpoints per minute, ties broken by the lower held p99, then grid order "
                "(no --max-held-p99 given: latency not bounded)")
    return (f"fewest checkpoints per minute among settings with held p99 <= {max_held_p99:g} ms, "
            f"ties broken by the lower held p99, then grid order")


def recommend(rows: list[dict], max_held_p99: float | None = None,
              swept: list[str] | None = None) -> list[Recommendation]:
    """One ``Recommendation`` per pair, in order of first appearance (see the module docstring
    for the rule).  ``swept``: the row columns to report as the setting (default: all knobs)."""
    cols = swept or list(KNOB_COLUMNS)
    out = []
    for name, indices in _by_pair(rows).items():
        best = None
        for i in indices:
            r = rows[i]
            p = _point(r)
            if p is None or r["partial"]:
                continue
            if max_held_p99 is not None and p[1] > max_held_p99:
                continue
            if best is None or (p[0], p[1]) < (rows[best]["checkpoints_per_min"], rows[best]["held_p99_ms"]):
                best = i
        out.append(Recommendation(name, rule_text(max_held_p99), best,
                                  None if best is None else {c: rows[best][c] for c in cols}))
    return out


def mark(rows: list[dict], recommendations: list[Recommendation]) -> None:
    """Add the ``pareto`` and ``recommended`` columns to the rows, in place."""
    for r, on in zip(rows, pareto(rows)):
        r["pareto"] = on
        r["recommended"] = False
    for rec in recommendations:
        if rec.row is not None:
            rows[rec.row]["recommended"] = True


def swept_columns(swept: dict) -> list[str]:
    """The row columns of the swept knobs (``checkpoint_duration`` -> ``checkpoint_duration_ms``)."""
    return [k if KNOBS[k][1] == "int" else f"{k}_ms" for k in swept]


def describe(rec: Recommendation) -> str:
    """One line for stderr."""
    if rec.row is None:
        return f"no setting recommended for {rec.pair}: none meets the rule ({rec.rule})"
    setting = " ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in rec.setting.items())
    return f"recommended for {rec.pair}: {setting} (rule: {rec.rule})"


# -- output --------------------------------------------------------------------------------------

SWEEP_SUFFIXES = (".csv", ".parquet", ".json")


def check_path(path: str) -> None:
    """Refuse an output path whose extension we cannot write, before any work."""
    if not str(path).lower().endswith(SWEEP_SUFFIXES):
        raise ValueError(f"{path}: the sweep table is written as .csv, .parquet or .json")


def to_frame(rows: list[dict]):
    import pandas as pd
    return pd.DataFrame(rows, columns=[c for c in ROW_COLUMNS if not rows or c in rows[0]])


def write_rows(path: str, rows: list[dict], meta: dict | None = None, partial: str | None = None) -> None:
    """The rows as .csv / .parquet, or .json with ``meta`` (see the module docstring).

    ``partial`` (the line saying why: an interruption) marks the file as the timelines are
    marked (``output.timeline``): JSON ``"partial": true, "interrupted": true, "error": <the
    line>``; Parquet key-value metadata ``colo_replay.partial = true`` and ``colo_replay.error``;
    CSV a sidecar ``<path>.partial`` holding the line.  A complete write removes a stale sidecar."""
    import json

    from ..output.files import mark_partial, replacing, replacing_path
    from ..output.timeline import ERROR_KEY, PARTIAL_KEY, PARTIAL_SUFFIX

    path = os.fspath(path)
    low = path.lower()
    check_path(path)
    # Each file is written beside its target and renamed into place once complete
    # (output.files): a failed or interrupted write leaves the file that was there.
    if low.endswith(".json"):
        doc = {"schema": "colo-replay-sweep", "schema_version": SCHEMA_VERSION, **(meta or {})}
        if partial is not None:
            doc.update(partial=True, interrupted=True, error=partial)
        doc["rows"] = [{k: _json_value(v) for k, v in r.items()} for r in rows]
        with replacing(path, "w", encoding="utf-8") as fh:
            json.dump(doc, fh, indent=1, allow_nan=False)
            fh.write("\n")
        return
    df = to_frame(rows)
    if low.endswith(".parquet"):
        with replacing_path(path) as tmp:
            if partial is None:
                df.to_parquet(tmp, index=False)
                return
            import pyarrow as pa
            import pyarrow.parquet as pq
            table = pa.Table.from_pandas(df, preserve_index=False)
            table = table.replace_schema_metadata({**(table.schema.metadata or {}), PARTIAL_KEY: b"true",
                                                   ERROR_KEY: partial.encode()})
            pq.write_table(table, tmp)
        return
    with replacing(path, "w", encoding="utf-8", newline="") as fh:     # (pandas writes its own line ends)
        df.to_csv(fh, index=False)
    mark_partial(path, partial, PARTIAL_SUFFIX)


def _json_value(v):
    if isinstance(v, float) and math.isnan(v):
        return None
    return v


def plot(path: str, rows: list[dict], recommendations: list[Recommendation], title: str = "") -> None:
    """The settings as points (checkpoints per minute vs held p99), each pair's front as a line,
    the recommendation ringed; .svg or .png by extension (matplotlib, Agg)."""
    low = str(path).lower()
    if not low.endswith((".svg", ".png")):
        raise ValueError(f"{path}: the plot is written as .svg or .png")
    import warnings

    import matplotlib.pyplot as plt

    from ..output.files import replacing_path

    fig = figure(rows, recommendations, title)
    # No creation date, fixed SVG ids: the same sweep draws the same file.
    plt.rcParams["svg.hashsalt"] = "colo-replay-sweep"
    try:
        with replacing_path(path) as tmp, warnings.catch_warnings():     # beside the target, renamed once complete
            # a glyph the font lacks (a pair named in CJK) is drawn as a box, not said on stderr
            warnings.simplefilter("ignore", UserWarning)
            fig.savefig(tmp, format="svg" if low.endswith(".svg") else "png",
                        metadata={"Date": None} if low.endswith(".svg") else {"Software": None})
    finally:
        plt.close(fig)


_LABELLED = 10          # pairs named in the plot's legend, recommendations ringed and annotated
_NAME_CHARS = 40        # of a pair's name in the plot's legend and title


def figure(rows: list[dict], recommendations: list[Recommendation], title: str = ""):
    """The sweep's plot as a matplotlib figure (``plot`` writes it; the report embeds it).  Of
    many pairs, the first ``_LABELLED`` are named in the legend and have their recommendation
    ringed (a legend of thousands of pairs would take longer to draw than the sweep)."""
    import warnings

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .report.checks import shown

    fig, ax = plt.subplots(figsize=(7, 4.5))
    groups = _by_pair(rows)
    names = list(groups)
    # a pair's name may be any length (a manifest's): the legend and the title show it cut
    shown_names = [shown(n, _NAME_CHARS) for n in names[:_LABELLED]]
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    # the pairs after the first _LABELLED: their points in one scatter, their fronts in one line
    # collection (an artist per pair cost 4 ms a pair to draw: 30 s for 5,000 pairs)
    rest_xy, rest_size, rest_colour, rest_fronts, rest_front_colour = [], [], [], [], []
    for n, (name, indices) in enumerate(groups.items()):
        c = colours[n % len(colours)]
        pts = [(rows[i], p) for i in indices if (p := _point(rows[i])) is not None]
        counts: dict = {}
        for _, p in pts:
            counts[p] = counts.get(p, 0) + 1
        front = sorted(p for r, p in pts if r.get("pareto"))
        if n >= _LABELLED:
            rest_xy += counts
            rest_size += [22 * k for k in counts.values()]
            rest_colour += [c] * len(counts)
            if front:
                rest_fronts.append(front)
                rest_front_colour.append(c)
            continue
        label = shown_names[n] if len(names) > 1 else "settings (area: how many give that point)"
        ax.scatter([p[0] for p in counts], [p[1] for p in counts], s=[22 * k for k in counts.values()],
                   color=c, alpha=0.6, label=label)
        if front:
            ax.plot([p[0] for p in front], [p[1] for p in front], "-", color=c, lw=1.2,
                    label="Pareto front" + (f" ({shown_names[n]})" if len(names) > 1 else ""))
    if rest_xy:
        from matplotlib.collections import LineCollection
        ax.scatter([p[0] for p in rest_xy], [p[1] for p in rest_xy], s=rest_size, color=rest_colour, alpha=0.6)
        ax.add_collection(LineCollection(rest_fronts, colors=rest_front_colour, linewidths=1.2))
    for rec in recommendations[:_LABELLED]:
        if rec.row is not None:
            p = _point(rows[rec.row])
            ax.scatter([p[0]], [p[1]], s=160, facecolors="none", edgecolors="crimson", linewidths=2,
                       label="recommended" if rec is recommendations[0] else None, zorder=5)
            text = ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in rec.setting.items())
            ax.annotate(text, p, textcoords="offset points", xytext=(8, 8), fontsize=7, color="crimson")
    ax.set_xlabel("checkpoints per minute")
    ax.set_ylabel("held p99 (ms)")
    n_set = len(rows) // max(len(names), 1)
    more = f" and {len(names) - _LABELLED} more" if len(names) > _LABELLED else ""
    ax.set_title(title or f"colo-replay sweep: {', '.join(shown_names)}{more}, {n_set} settings", fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    with warnings.catch_warnings():          # what still cannot fit is drawn as it is, not said on stderr
        warnings.simplefilter("ignore", UserWarning)
        fig.tight_layout()
    return fig


def read_json(path: str) -> tuple[list[dict], list[Recommendation], dict]:
    """A sweep's JSON (``sweep -o sweep.json``): its rows, recommendations and the rest (what was
    swept, the pairs, the latency bound).  ValueError, one line naming the file and the key path,
    when it is not one: not UTF-8 (``byte offset N``), not JSON (line, column), another schema,
    a ``schema_version`` this version does not read, or a value of the wrong type where the report
    and the plot read it (``rows[3].pair: expected a string, got a number``)."""
    from .report.checks import Doc, kind_of, read_json as _read_json, shown

    data = _read_json(path, "a sweep's JSON (sweep -o sweep.json)")
    doc = Doc(path)
    what = "a colo-replay sweep JSON (sweep -o sweep.json)"
    if not isinstance(data, dict):
        doc.fail("", f"not {what}: a JSON object is expected, got {kind_of(data)}")
    schema = data.get("schema")
    if schema != "colo-replay-sweep":
        if isinstance(schema, str) and schema.startswith("colo-replay-"):
            doc.fail("", f"a {shown(schema.split('/')[0])} JSON (schema {shown(schema)}), not {what}")
        doc.fail("", f"not {what} (no \"schema\": \"colo-replay-sweep\" with rows)")
    version = doc.integer(data, "schema_version", required=True, null=False)
    if version != SCHEMA_VERSION:
        doc.fail("", f"schema_version {version} is {'newer than' if version > SCHEMA_VERSION else 'not'} what this "
                     f"version reads ({SCHEMA_VERSION})")
    rows = doc.objects(data, "rows", required=True)
    if rows is None:
        doc.fail("rows", "expected a list, got null")
    flags = ("pareto", "recommended", "partial")
    numbers = [c for c in ROW_COLUMNS if c not in flags and c not in ("pair", "error")]
    for i, r in enumerate(rows):
        where = doc.item("rows", i)
        doc.string(r, "pair", where, required=True, null=False)
        doc.string(r, "error", where)
        for c in numbers:
            doc.number(r, c, where)
        for c in flags:
            doc.boolean(r, c, where)
        for c in ("checkpoints_per_min", "held_p99_ms"):
            if c not in r:
                doc.fail(doc.key(where, c), "missing")
    doc.object(data, "swept")
    doc.number(data, "max_held_p99_ms")
    recs = []
    for i, r in enumerate(doc.objects(data, "recommendations") or ()):
        where = doc.item("recommendations", i)
        pair = doc.string(r, "pair", where, required=True, null=False)
        rule = doc.string(r, "rule", where, required=True, null=False)
        row = doc.integer(r, "row", where, required=True, lo=0, hi=len(rows) - 1)
        setting = doc.object(r, "setting", where, required=True)
        if row is not None and (rows[row]["checkpoints_per_min"] is None or rows[row]["held_p99_ms"] is None):
            doc.fail(doc.key(where, "row"), f"row {row} has no checkpoints_per_min and held_p99_ms to recommend")
        recs.append(Recommendation(pair, rule, row, setting))
    meta = {k: v for k, v in data.items() if k not in ("rows", "recommendations")}
    return rows, recs, meta
