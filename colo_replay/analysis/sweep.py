"""Sweeps: one workload replayed under a grid of settings, one row per setting, the Pareto front
of checkpoints per minute against held p99, and a recommendation with its rule.

**The grid.**  Each sweepable knob (``KNOBS``) takes a list: ``100,300,1000``; a geometric range
``100:3000:x2`` (100, 200, 400, ..., up to 3000 inclusive); an arithmetic one ``100:1000:+300``
(100, 400, 700, 1000).  Durations accept units (``50ms``, ``1.5s``; a bare number is ms), in
lists and ranges alike (``100ms:1s:+300ms``).  The settings are the cartesian product, in the
order the knobs are listed in ``KNOBS`` and the values in their spec.  Settings that change what
is parsed (vnet header, filter, guest, rewriter, offsets) are not sweepable: they are the pair's.

**Parse once.**  Each pair is read, rewritten, filtered and merged into memory once
(``offline.prepared.PreparedPair``); each setting then runs ``offline.driver.replay_partial``,
the same call as ``colo-replay replay``, over the prepared frames, and the row is made from
``output.summary.summarise`` of its timeline and ``analysis.episodes`` of the same DataFrame:
a row holds exactly what ``replay`` would report for that setting.

**Fan-out.**  Settings run in parallel: in forked worker processes that see the prepared pairs
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

CSV and Parquet hold the rows only.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
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
_MAX_VALUES = 10_000


# -- the grid ------------------------------------------------------------------------------------

def _number(text: str, kind: str, where: str):
    m = re.fullmatch(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*(ns|us|µs|ms|s)?\s*", text)
    if not m or (kind == "int" and m.group(2)):
        what = "a whole number" if kind == "int" else "a duration (e.g. 100, 250ms, 1.5s)"
        raise ValueError(f"{where}: {text.strip()!r} is not {what}")
    if kind == "int":
        value = float(m.group(1))
        if value != int(value):
            raise ValueError(f"{where}: {text.strip()!r} is not a whole number")
        return int(value)
    return int(round(float(m.group(1)) * _UNITS[m.group(2) or "ms"]))


def parse_values(knob: str, spec: str) -> list:
    """The values of one knob's spec (see the module docstring); ``ValueError`` with one line
    naming the option and the bad part.  Durations come back in ns, the other knobs as given."""
    option = "--" + knob.replace("_", "-")
    kind = KNOBS[knob][1]
    values: list = []
    for part in str(spec).split(","):
        where = f"{option} {spec!r}"
        if not part.strip():
            raise ValueError(f"{where}: empty value")
        if ":" not in part:
            values.append(_number(part, kind, where))
            continue
        bits = part.split(":")
        if len(bits) != 3:
            raise ValueError(f"{where}: a range is START:STOP:xFACTOR or START:STOP:+STEP, not {part.strip()!r}")
        start, stop = _number(bits[0], kind, where), _number(bits[1], kind, where)
        step = bits[2].strip()
        if stop < start:
            raise ValueError(f"{where}: range {part.strip()!r} ends before it starts")
        if step[:1] in ("x", "*"):
            try:
                factor = float(step[1:])
            except ValueError:
                factor = 0.0
            if not factor > 1:
                raise ValueError(f"{where}: geometric step {step!r} needs a factor above 1 (e.g. x2)")
            if start <= 0:
                raise ValueError(f"{where}: a geometric range starts above 0")
            v = float(start)
            while round(v) <= stop:
                values.append(int(round(v)))
                v *= factor
                if len(values) > _MAX_VALUES:
                    break
        elif step[:1] == "+":
            inc = _number(step[1:], kind, where)
            if inc <= 0:
                raise ValueError(f"{where}: arithmetic step {step!r} must be above 0")
            values.extend(range(start, stop + 1, inc))
        else:
            raise ValueError(f"{where}: range step {step!r} is xFACTOR (geometric) or +STEP (arithmetic)")
        if len(values) > _MAX_VALUES:
            raise ValueError(f"{where}: more than {_MAX_VALUES} values")
    if kind == "int" and min(values) < 1:
        raise ValueError(f"{option} {spec!r}: values must be at least 1")
    return list(dict.fromkeys(values))          # duplicates once, first position kept


def grid(specs: dict) -> tuple[dict, list[dict]]:
    """``specs``: knob -> spec text or list of values (None or missing: not swept).  Returns
    ``(swept, settings)``: knob -> values, and the cartesian product as ``ReplayOptions``
    keyword dicts (``{"compare_timeout": 300, "checkpoint_duration_ns": 100000000}``)."""
    swept = {}
    for knob in KNOBS:
        spec = specs.get(knob)
        if spec is None:
            continue
        swept[knob] = parse_values(knob, spec) if isinstance(spec, str) else list(spec)
    unknown = set(specs) - set(KNOBS)
    if unknown:
        raise ValueError(f"not sweepable: {', '.join(sorted(unknown))} (sweepable: {', '.join(KNOBS)})")
    fields = [KNOBS[k][0] for k in swept]
    settings = [dict(zip(fields, combo)) for combo in product(*swept.values())] if swept else [{}]
    return swept, settings


# -- batches of pairs ----------------------------------------------------------------------------

def read_manifest(path) -> list[dict]:
    """The pairs of a manifest, as ``api.sweep(pairs=...)`` takes them.

    CSV: a header row with ``name,primary,secondary`` and any of ``MANIFEST_FIELDS`` (an empty
    cell: not given).  TOML: ``[[pair]]`` tables with the same keys.  Capture and
    ``checkpoints_at`` paths are relative to the manifest's directory.  Durations as on the
    command line (``12ms``, ``1.5s``, a bare number is ms); booleans true/false/yes/no/1/0.
    ``ValueError`` names the manifest, the pair (row) and the field."""
    from pathlib import Path

    path = Path(path)
    base = path.parent
    if path.suffix.lower() == ".toml":
        import tomllib
        try:
            with open(path, "rb") as fh:
                doc = tomllib.load(fh)
        except tomllib.TOMLDecodeError as exc:
            raise ValueError(f"{path}: not TOML ({exc})") from None
        entries = doc.get("pair")
        if not isinstance(entries, list):
            raise ValueError(f"{path}: no [[pair]] tables")
        where = [f"{path}: [[pair]] {i + 1}" for i in range(len(entries))]
    elif path.suffix.lower() == ".csv":
        import csv
        with open(path, newline="", encoding="utf-8") as fh:
            entries = [{k.strip(): v.strip() for k, v in row.items() if k is not None and v is not None and v.strip()}
                       for row in csv.DictReader(fh)]
        where = [f"{path}: row {i + 2}" for i in range(len(entries))]
    else:
        raise ValueError(f"{path}: a pairs manifest is .csv or .toml")
    if not entries:
        raise ValueError(f"{path}: no pairs")
    pairs = []
    for at, entry in zip(where, entries):
        missing = [k for k in ("name", "primary", "secondary") if not entry.get(k)]
        if missing:
            raise ValueError(f"{at}: missing {', '.join(missing)}")
        pair = {"name": str(entry["name"]), "primary": str(base / str(entry["primary"])),
                "secondary": str(base / str(entry["secondary"]))}
        for key, value in entry.items():
            if key in ("name", "primary", "secondary"):
                continue
            if key not in MANIFEST_FIELDS:
                raise ValueError(f"{at}: unknown field {key!r} (known: name, primary, secondary, "
                                 f"{', '.join(MANIFEST_FIELDS)})")
            field, kind = MANIFEST_FIELDS[key]
            pair[field] = _manifest_value(value, kind, f"{at}: {key}", base)
        pairs.append(pair)
    return pairs


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
    if kind == "int":
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        return _number(str(value), "int", where)
    if kind == "duration":
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return int(round(value * MS))
        m = re.fullmatch(r"\s*(-?)(.*)", str(value))
        n = _number(m.group(2), "duration", where)
        return -n if m.group(1) else n
    if kind in ("path", "times"):              # --checkpoints-at: a file, relative to the manifest
        return str(base / str(value))
    return str(value)


# -- one row -------------------------------------------------------------------------------------

def row_of(name: str, result, minutes: float) -> tuple[dict, dict]:
    """The row of one replay (and its summary), from its timeline: ``summarise`` and ``episodes``
    over one DataFrame."""
    from ..output.summary import summarise
    from .episodes import episodes

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
    """Replay one ``PreparedPair`` under one setting: the row (and the summary when asked)."""
    result, _exc = pair.replay(**setting)
    row, summary = row_of(pair.name, result, minutes_of(pair))
    return (row, summary) if with_summary else (row, None)


# -- the fan-out ---------------------------------------------------------------------------------

_PAIRS: list = []          # the prepared pairs, seen by forked workers (set before the pool starts)


def cores() -> int:
    """The cores this process may run on (its CPU affinity; ``os.cpu_count()`` elsewhere)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:
        return os.cpu_count() or 1


def _task(i: int, setting: dict, with_summary: bool):
    return run_one(_PAIRS[i], setting, with_summary)


def _init_worker(pairs) -> None:
    """Spawned workers: the pairs, unpickled once per worker."""
    global _PAIRS
    _PAIRS = pairs


def run(pairs: list, settings: list[dict], jobs: int | None = None, *, dask: str | None = None,
        start_method: str | None = None, with_summary: bool = False) -> list[tuple[dict, dict | None]]:
    """Every (pair, setting), in that order (pair-major): ``[(row, summary_or_None), ...]``.

    ``jobs``: worker processes (default ``cores()``, every core this process may use; 1 = in this
    process).
    ``start_method``: ``"fork"`` (the default where available: the pairs are shared
    copy-on-write) or ``"spawn"`` (each worker unpickles the pairs once).  ``dask``: a
    dask.distributed scheduler address; ``jobs`` is then ignored."""
    tasks = [(i, s) for i in range(len(pairs)) for s in settings]
    if dask is not None:
        return _run_dask(dask, pairs, tasks, with_summary)
    jobs = jobs or cores()
    jobs = min(jobs, len(tasks))
    if jobs <= 1:
        return [run_one(pairs[i], s, with_summary) for i, s in tasks]
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    global _PAIRS
    method = start_method or ("fork" if "fork" in mp.get_all_start_methods() else "spawn")
    ctx = mp.get_context(method)
    if method == "fork":
        _PAIRS = pairs
        pool = ProcessPoolExecutor(jobs, mp_context=ctx)
    else:
        pool = ProcessPoolExecutor(jobs, mp_context=ctx, initializer=_init_worker, initargs=(pairs,))
    try:
        futures = [pool.submit(_task, i, s, with_summary) for i, s in tasks]
        return [f.result() for f in futures]
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        _PAIRS = []


def _run_dask(address: str, pairs: list, tasks: list, with_summary: bool):
    try:
        from distributed import Client
    except ImportError:
        raise ValueError("--dask needs dask.distributed: pip install 'colo-replay[dask]'") from None
    try:
        client = Client(address, timeout=30)
    except (OSError, TimeoutError) as exc:
        raise ValueError(f"--dask {address}: cannot reach the scheduler ({exc})") from None
    try:
        remote = client.scatter(list(pairs), broadcast=True)     # each pair sent once to each worker
        futures = [client.submit(run_one, remote[i], s, with_summary, pure=False) for i, s in tasks]
        return client.gather(futures)
    finally:
        client.close()


# -- the front and the recommendation ------------------------------------------------------------

def _point(row) -> tuple[float, float] | None:
    x, y = row["checkpoints_per_min"], row["held_p99_ms"]
    if x is None or y is None or math.isnan(x) or math.isnan(y):
        return None
    return x, y


def pareto(rows: list[dict]) -> list[bool]:
    """For each row, True when it is on its pair's Pareto front (fewer checkpoints per minute vs
    lower held p99); rows without a held p99 (nothing released) are never on it."""
    marks = []
    for r in rows:
        p = _point(r)
        if p is None:
            marks.append(False)
            continue
        dominated = False
        for o in rows:
            q = _point(o)
            if o is r or q is None or o["pair"] != r["pair"]:
                continue
            if q[0] <= p[0] and q[1] <= p[1] and (q[0] < p[0] or q[1] < p[1]):
                dominated = True
                break
        marks.append(not dominated)
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
    for name in dict.fromkeys(r["pair"] for r in rows):
        best = None
        for i, r in enumerate(rows):
            p = _point(r)
            if r["pair"] != name or p is None or r["partial"]:
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


def write_rows(path: str, rows: list[dict], meta: dict | None = None) -> None:
    """The rows as .csv / .parquet, or .json with ``meta`` (see the module docstring)."""
    import json
    low = str(path).lower()
    if low.endswith(".json"):
        doc = {"schema": "colo-replay-sweep", "schema_version": SCHEMA_VERSION, **(meta or {}),
               "rows": [{k: _json_value(v) for k, v in r.items()} for r in rows]}
        with open(path, "w", encoding="utf-8") as fh:
            json.dump(doc, fh, indent=1, allow_nan=False)
            fh.write("\n")
        return
    df = to_frame(rows)
    if low.endswith(".parquet"):
        df.to_parquet(path, index=False)
    elif low.endswith(".csv"):
        df.to_csv(path, index=False)
    else:
        check_path(path)


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
    import matplotlib.pyplot as plt

    fig = figure(rows, recommendations, title)
    # No creation date, fixed SVG ids: the same sweep draws the same file.
    plt.rcParams["svg.hashsalt"] = "colo-replay-sweep"
    fig.savefig(path, metadata={"Date": None} if low.endswith(".svg") else {"Software": None})
    plt.close(fig)


def figure(rows: list[dict], recommendations: list[Recommendation], title: str = ""):
    """The sweep's plot as a matplotlib figure (``plot`` writes it; the report embeds it)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    names = list(dict.fromkeys(r["pair"] for r in rows))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for n, name in enumerate(names):
        c = colours[n % len(colours)]
        pts = [(r, _point(r)) for r in rows if r["pair"] == name and _point(r) is not None]
        label = name if len(names) > 1 else "settings (area: how many give that point)"
        counts: dict = {}
        for _, p in pts:
            counts[p] = counts.get(p, 0) + 1
        ax.scatter([p[0] for p in counts], [p[1] for p in counts], s=[22 * n for n in counts.values()],
                   color=c, alpha=0.6, label=label)
        front = sorted(p for r, p in pts if r.get("pareto"))
        if front:
            ax.plot([p[0] for p in front], [p[1] for p in front], "-", color=c, lw=1.2,
                    label="Pareto front" + (f" ({name})" if len(names) > 1 else ""))
    for rec in recommendations:
        if rec.row is not None:
            p = _point(rows[rec.row])
            ax.scatter([p[0]], [p[1]], s=160, facecolors="none", edgecolors="crimson", linewidths=2,
                       label="recommended" if rec is recommendations[0] else None, zorder=5)
            text = ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in rec.setting.items())
            ax.annotate(text, p, textcoords="offset points", xytext=(8, 8), fontsize=7, color="crimson")
    ax.set_xlabel("checkpoints per minute")
    ax.set_ylabel("held p99 (ms)")
    n_set = len(rows) // max(len(names), 1)
    ax.set_title(title or f"colo-replay sweep: {', '.join(names)}, {n_set} settings", fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, loc="best")
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
