"""Regression reports: one self-contained HTML page per run, Markdown for a pull request, JSON
for machines, and a baseline gate.

``build_report(events, summary, sources, ...) -> Report`` is the whole job; ``colo_replay.api.report``
wires a replay (or a saved timeline) into it and ``colo-replay report`` writes the files.  The
modules: ``model`` (the data, vectorised over the timeline), ``inputs`` (files: size, SHA-256,
frame counts, spans), ``divergences`` (the adapter to explain's data), ``plots`` (matplotlib,
binned), ``html``, ``markdown``, ``baseline`` (the gate and its ``--tolerance`` rules).

The JSON (``Report.json()``, ``--json``), schema ``colo-replay-report/1``.  Times are ns on the
replay clock (capture time + offsets; ``t0_ns`` is the first frame's), durations ms unless named
``_s``, missing values ``null``.  Within version 1 keys are only ever added::

    schema        "colo-replay-report/1"
    title         what the report is about (the inputs' file names)
    tool          {name, version}
    generated     ISO 8601 UTC time the report was made
    run           {mode: "replay" | "chardev" | "saved", profile: the row's profile name ("7.2", "6.2", ...),
                   qemu: {release (as given), row "A".."K", switches {Profile field: value}} | null
                   (null: a saved run whose summary predates it),
                   options: {every option of the run, as the replay resolved it}}
    inputs        [{role: primary | secondary | chardev | primary_in | secondary_in | timeline |
                    summary, path, name, size (bytes), sha256, frames, first_ns, last_ns, span_s}]
    t0_ns         start of the time axis
    verdict       {status: clean | diverged | partial | empty | interrupted, text,
                   exit_status (0 / 1 / 2 / 130, output.verdict's contract), nothing_compared}
    numbers       {frames_primary, frames_secondary, released, checkpoint_requests,
                   requests_by_cause {cause: n}, checkpoints, checkpoints_by_cause {cause: n},
                   divergences (requests caused by differing bytes or ACKs), roots (with explain:
                   its distinct divergences not chained to another and not colo-compare's own
                   mechanics; from a timeline alone: the episodes),
                   held_p50_ms, held_p95_ms, held_p99_ms, held_max_ms, duration_s,
                   checkpoints_per_min, unsupported, truncated, undefined, qemu_crashes,
                   queue_drops, table_resets}
    connections   {total, shown, rows: [{conn, flow {proto, src, dst, sport, dport} | null,
                   frames_primary, frames_secondary, bytes_primary, bytes_secondary, released,
                   requests, requests_by_cause, held_p50_ms, held_p99_ms, first_ns, last_ns,
                   first_frame {primary, secondary}}]}   busiest (requests, then frames) first
    divergences   {source: "explain" | "timeline", total, shown,
                   classes: [{cause, protocol, field, count, share, checkpoints, first_ns,
                              last_ns, examples [[primary_frame, secondary_frame]], hint}],
                   rows: [{time_ns, cause, flow, primary_frame, secondary_frame, offset,
                           payload_offset, fields [{name, primary, secondary}], class,
                           consequences, hex {offset, s_offset, width, rows [{p_offset,
                           s_offset, primary [byte|null], secondary, differ [bool]}]} | null,
                           notes [text]}]}   total: divergences in all; rows: the first ``top``
    notes         [{kind: unsupported | truncated | undefined | would_crash | queue_drops |
                    table_resets | warnings | read_error, label, count, by_cause, shown,
                    frames [{time_ns, side, frame, cause}], messages?}]
    baseline      (with --baseline) {path, generated, rules, metrics [{name, old, new, delta,
                   delta_pct, rule, regressed}], classes_new, classes_gone, regressed, text}
    sweep         (with --sweep) {path, swept, max_held_p99_ms, knobs, columns, pairs (in all),
                   shown_pairs, recommendations [{pair, rule, row, setting}], rows [{pair, knobs...,
                   columns...}]}   the rows and recommendations of the first ``top`` pairs

Long lists (connections, divergences, note frames, sweep pairs) hold the first ``top`` entries and the total.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timezone

from . import baseline as _baseline
from . import divergences as _divergences
from . import model as _model
from .inputs import FileHashes, file_info, scan_side

__all__ = ["SCHEMA", "Sources", "Report", "build_report"]

SCHEMA = "colo-replay-report/1"


@dataclass
class Sources:
    """Where the frames and files of a run are.  ``files``: ``(role, path)`` for the inputs
    table; ``readers``: side -> a function returning a fresh reader (None when the capture cannot
    be read again); ``hashes``: started at construction (before the replay, to overlap it)."""

    files: list = field(default_factory=list)
    readers: dict = field(default_factory=dict)
    hashes: FileHashes | None = None

    def __post_init__(self):
        if self.hashes is None:
            self.hashes = FileHashes(p for _, p in self.files)

    @classmethod
    def pair(cls, primary, secondary) -> "Sources":
        """Two capture files (read again by the report for spans and 5-tuples)."""
        from ...captures import open_capture
        return cls([("primary", primary), ("secondary", secondary)],
                   {"primary": lambda: open_capture(primary), "secondary": lambda: open_capture(secondary)})

    @classmethod
    def chardev(cls, path) -> "Sources":
        """A chardev-stream capture; ``use_capture`` gives it the decoded capture after the replay."""
        return cls([("chardev", path)], {})

    def use_capture(self, cap) -> None:
        """The decoded ``ChardevCapture``: its primary_in / secondary_in streams are the sides."""
        self.readers = {"primary": lambda: cap.side_readers()[0], "secondary": lambda: cap.side_readers()[1]}

    @classmethod
    def saved(cls, timeline_path, summary_path, summary: dict, ports: dict | None = None) -> "Sources":
        """A saved run: the timeline and summary files, plus the captures the summary names when
        they are still there (a chardev capture is decoded again with ``ports``)."""
        import os
        files = [("timeline", timeline_path)] + ([("summary", summary_path)] if summary_path else [])
        src = summary.get("source") or {}
        if src.get("chardev") and os.path.isfile(src["chardev"]):      # (a FIFO or a device: never read)
            from ...offline.chardev import ChardevCapture
            out = cls(files + [("chardev", src["chardev"])], {})
            knobs = summary.get("knobs") or {}
            out.use_capture(ChardevCapture(src["chardev"], src.get("ports") or ports,
                                           bool(knobs.get("vnet_hdr_support"))))
            return out
        caps = summary.get("captures") or {}
        paths = {s: (caps.get(s) or {}).get("path") for s in ("primary", "secondary")}
        found = {s: p for s, p in paths.items() if p and os.path.isfile(p)}
        pair = cls.pair(found.get("primary"), found.get("secondary")) if found else None
        return cls(files + [(s, p) for s, p in found.items()],
                   {s: pair.readers[s] for s in found} if pair else {})


class Report:
    """A built report: ``data`` (the JSON document, see the module docstring), ``plots``
    (PNG data URIs), ``html()``, ``markdown()``, ``json()`` and ``exit_status``."""

    def __init__(self, data: dict, plots: dict):
        self.data = data
        self.plots = plots

    def html(self) -> str:
        from .html import render
        return render(self.data, self.plots)

    def markdown(self, top: int = 5) -> str:
        from .markdown import render
        return render(self.data, top)

    def json(self) -> str:
        return json.dumps(self.data, indent=1, ensure_ascii=False, default=str) + "\n"

    @property
    def regressed(self) -> bool | None:
        """With a baseline: did the run regress beyond the tolerance?  None without one."""
        b = self.data.get("baseline")
        return None if b is None else b["regressed"]

    def exit_code(self, allow_empty: bool = False) -> int:
        """The exit-code contract (``output.verdict``): 130 interrupted, 2 a read error or nothing
        compared (unless ``allow_empty``); then, with a baseline, 1 iff the run regressed, else 0;
        without one 1 for checkpoint requests, else 0."""
        v = self.data["verdict"]
        if v["exit_status"] in (2, 130) and not (allow_empty and v["status"] == "empty"):
            return v["exit_status"]
        if self.regressed is not None:
            return 1 if self.regressed else 0
        return 1 if self.data["numbers"]["checkpoint_requests"] else 0

    @property
    def exit_status(self) -> int:
        """``exit_code()``."""
        return self.exit_code()

    def __repr__(self) -> str:
        return f"<Report {self.data['verdict']['status']}, exit status {self.exit_status}>"


def _shift(options, side: str) -> int:
    """What the replay added to a side's capture times (``ReplayOptions``: offset + delay)."""
    return int(getattr(options, f"{side}_offset_ns", 0) or 0) + int(getattr(options, f"{side}_delay_ns", 0) or 0)


def build_report(events, summary: dict, sources: Sources, *, mode: str, result=None, explanation=None,
                 options: dict | None = None, baseline: str | None = None, tolerance=(), top: int = 20,
                 version: str | None = None, sweep: str | None = None, real_run: dict | None = None) -> Report:
    """The report of one run.

    ``events`` and ``summary``: its timeline and summary (replay's or live's); ``sources``: where
    to read frames and files; ``mode``: replay / chardev / saved; ``result``: the replay's
    ``ReplayResult`` when there was one (its frame counts, last timestamps and connection keys
    spare a second full read of the captures); ``explanation``: explain's result or its dict
    (None: roots and classes from the timeline only); ``options``: the run's options as given;
    ``baseline``: an earlier report's JSON path, gated by the ``tolerance`` rules
    (``baseline.parse_rules``); ``top``: rows of long tables; ``version``: the tool's (default:
    the installed package's); ``sweep``: a ``sweep -o sweep.json`` to include (its table, plot and
    recommendation: section ``sweep``); ``real_run``: the replay's checkpoint requests judged
    against a real COLO run's QEMU trace (``offline.request_judge.RequestJudgement.as_dict()``:
    section ``real_run``).  ValueError for a bad baseline, rule or sweep file, and
    for a saved run (``mode="saved"``) whose timeline has a time gap beyond the replay's bound
    (``load.check_gaps``; ``options["allow_gaps"]`` or the summary's knobs allow it)."""
    from .plots import draw_all

    swept = _sweep_section(sweep, top) if sweep is not None else None
    rules = _baseline.parse_rules(tolerance) if baseline is not None else None
    old = _baseline.load_baseline(baseline) if baseline is not None else None
    if mode == "saved":
        # a saved timeline gets the replay's bound on time, as its summary (or options) allow
        from .load import check_gaps, max_gap_of
        path = next((p for role, p in sources.files if role == "timeline"), "the timeline")
        check_gaps(events, path, max_gap_of(summary, options))
    knobs = dict(summary.get("knobs") or {})
    conn = _model.connections(events, top)
    stats = {"primary": getattr(result, "primary", None), "secondary": getattr(result, "secondary", None)}
    keys = {i: (proto, key) for i, proto, key in getattr(result, "connections", ())}
    unnamed = [r for r in conn["rows"] if r["conn"] not in keys or _model.flow_of_key(*keys[r["conn"]]) is None]
    scans = {}
    for side in ("primary", "secondary"):
        opener = sources.readers.get(side)
        if opener is None:
            continue
        wanted = [r["first_frame"][side] for r in unnamed]
        sc = scans[side] = scan_side(opener(), wanted, int(knobs.get("vnet_hdr_len") or 0), full=stats[side] is None)
        st = stats[side]
        if st is not None:      # the replay counted the frames and saw the last one (on its clock)
            sc.frames = st.frames
            sc.last_ns = None if st.last_ns is None else st.last_ns - _shift(result.options, side)
    flows = _model.add_flows(conn, {s: sc.frames_by_number for s, sc in scans.items()}, keys)
    if explanation is not None:
        div = _divergences.from_explain(explanation)
    else:
        div = _divergences.from_timeline(events, flows)
    roots = div.pop("roots")
    div["rows"] = div.pop("divergences")[:top]
    div["shown"] = len(div["rows"])
    numbers = _model.key_numbers(events, summary, roots if roots is not None else div["total"])
    if numbers["frames_primary"] is None and scans:
        numbers["frames_primary"] = scans["primary"].frames if "primary" in scans else None
        numbers["frames_secondary"] = scans["secondary"].frames if "secondary" in scans else None

    # the time axis: from the first arrival to the last event (binned; see plots)
    t = events["time_ns"].to_numpy()
    side_times = _model.side_times(events)
    firsts = [int(a.min()) for a in side_times.values() if len(a)] + ([int(t.min())] if len(t) else [])
    lasts = [int(t.max())] if len(t) else []
    t0, t1 = (min(firsts), max(lasts)) if firsts and lasts else (0, 1)

    hashes = sources.hashes.result() if sources.hashes else {}
    inputs = []
    for role, path in sources.files:
        info = {"role": role, **file_info(path, hashes.get(str(path))), "frames": None, "first_ns": None,
                "last_ns": None, "span_s": None}
        sides = {"primary": ["primary"], "secondary": ["secondary"]}.get(role, [])
        for s in sides:
            if s in scans:
                sc = scans[s]
                info.update(frames=sc.frames, first_ns=sc.first_ns, last_ns=sc.last_ns,
                            span_s=None if sc.first_ns is None else (sc.last_ns - sc.first_ns) / 1e9)
        inputs.append(info)
        if role == "chardev":
            for s, name in (("primary", "primary_in"), ("secondary", "secondary_in")):
                if s in scans:
                    sc = scans[s]
                    inputs.append({"role": name, "path": f"{path}#{name}", "name": name, "size": None,
                                   "sha256": None, "frames": sc.frames, "first_ns": sc.first_ns,
                                   "last_ns": sc.last_ns,
                                   "span_s": None if sc.first_ns is None else (sc.last_ns - sc.first_ns) / 1e9})
    run_opts = dict(knobs)
    if not knobs:     # a live summary: its properties and counters are top-level scalars
        run_opts = {k: v for k, v in summary.items() if isinstance(v, (str, int, float, bool)) or v is None}
    for k, v in (options or {}).items():
        run_opts.setdefault(k, v)
    qemu = summary.get("qemu") if isinstance(summary.get("qemu"), dict) else None
    profile = summary.get("profile") or (summary.get("qemu") if qemu is None else None) or knobs.get("qemu")
    named = [i["name"] for i in inputs if i["role"] in ("primary", "secondary")]
    title = " vs ".join(named) or next((i["name"] for i in inputs if i["role"] in ("chardev", "timeline")), mode)
    data = {
        "schema": SCHEMA,
        "title": title,
        "tool": {"name": "colo-replay", "version": version or _version()},
        "generated": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "run": {"mode": mode, "profile": profile, "qemu": qemu,
                "options": {k: _jsonable(v) for k, v in run_opts.items()}},
        "inputs": inputs,
        "t0_ns": int(t0),
        "verdict": _model.verdict(numbers, summary, saved=mode == "saved"),
        "numbers": numbers,
        "connections": conn,
        "divergences": div,
        "notes": _model.notes(events, summary, top),
    }
    if old is not None:
        data["baseline"] = _baseline.compare(data, old, rules, baseline)
    plots = draw_all(events, side_times, t0, max(t1, t0 + 1), numbers)
    if swept is not None:
        data["sweep"], plots["sweep"] = swept
    if real_run is not None:
        data["real_run"] = {k: v for k, v in real_run.items() if k not in ("missed_list", "extra_list")}
        data["real_run"]["missed_list"] = real_run.get("missed_list", [])[:top]
        data["real_run"]["extra_list"] = real_run.get("extra_list", [])[:top]
    return Report(data, plots)


# The sweep table's columns in the report (the JSON keeps every column of the sweep's rows)
SWEEP_COLUMNS = ("checkpoints_per_min", "held_p99_ms", "checkpoints", "requests", "roots", "pareto", "recommended")


def _sweep_section(path: str, top: int = 20) -> tuple[dict, dict]:
    """A sweep's JSON as the report's ``sweep`` data and its plot (``analysis.sweep.figure``, of
    every row): the rows and recommendations of its first ``top`` pairs, as long lists are (a
    sweep of 5,000 pairs made a 4.8 MB page and a 940 KB Markdown comment)."""
    import matplotlib.pyplot as plt

    from .. import sweep as _sweep
    from .plots import _png

    rows, recs, meta = _sweep.read_json(path)
    knobs = [k for k in (meta.get("swept") or {}) if rows and k in rows[0] and k in _sweep.KNOB_COLUMNS]
    fig = _sweep.figure(rows, recs)
    try:
        plot = _png(fig)
    finally:
        plt.close(fig)
    plot["alt"] = "checkpoints per minute against held p99 of every swept setting, the Pareto front, the recommendation"
    pairs = list(_sweep._by_pair(rows))
    shown = set(pairs[:top])
    data = {"path": str(path), "swept": meta.get("swept"), "max_held_p99_ms": meta.get("max_held_p99_ms"),
            "knobs": knobs, "columns": list(SWEEP_COLUMNS), "pairs": len(pairs), "shown_pairs": len(shown),
            "recommendations": [r.as_dict() for r in recs if r.pair in shown],
            "rows": [{"pair": r.get("pair"), **{k: r.get(k) for k in knobs}, **{k: r.get(k) for k in SWEEP_COLUMNS}}
                     for r in rows if r.get("pair") in shown]}
    return data, plot


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version("colo-replay")
    except PackageNotFoundError:
        return "unknown (not installed)"


def _jsonable(v):
    if isinstance(v, (str, int, float, bool)) or v is None:
        return v
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    return str(v)
