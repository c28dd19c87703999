"""The report as one self-contained HTML page: no script, no external URL (plots are PNG data
URIs, the style sheet is inline), readable with JavaScript off and printable.

Safety: every string that reaches the page goes through ``text()`` / ``attr()``: lone
surrogates (undecodable file names) and control characters become visible ``\\xNN`` escapes and
``html.escape`` quotes the rest, so captured payloads, host names and file names are shown, never
interpreted.  A Content-Security-Policy that allows no script and only data: images is set too,
as a second wall: the safety test renders the page with and without it.

Section ids: ``summary``, ``activity``, ``held``, ``checkpoints``, ``connections``,
``divergences``, ``notes``, ``regression`` (with a baseline), ``sweep`` (with ``--sweep``),
``inputs``.
"""

from __future__ import annotations

import html as _html
import re
from datetime import datetime, timezone

__all__ = ["render", "plain", "text", "attr", "CSP"]

CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'"
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def plain(value) -> str:
    """Any value as printable text: undecodable characters (lone surrogates) and control
    characters (line breaks included) as ``\\xNN`` / ``\\uNNNN`` escapes."""
    s = value if isinstance(value, str) else str(value)
    s = s.encode("utf-8", "backslashreplace").decode("utf-8")
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}" if ord(m.group()) < 256 else f"\\u{ord(m.group()):04x}", s)


def text(value) -> str:
    """Any value as safe HTML text: ``plain``, then ``html.escape``."""
    return _html.escape(plain(value), quote=True)


def attr(value) -> str:
    """Safe inside a double-quoted attribute (same rules as ``text``)."""
    return text(value)


_STYLE = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1b1f24;background:#fff}
header{padding:14px 28px;background:#24292f;color:#fff}header h1{margin:0;font-size:20px}
header p{margin:4px 0 0;color:#c9d1d9;font-size:13px}
nav{padding:8px 28px;background:#f6f8fa;border-bottom:1px solid #d0d7de;font-size:13px}
nav a{margin-right:14px;color:#0969da;text-decoration:none}
main{padding:0 28px 40px;max-width:1400px}
section{margin-top:26px}h2{font-size:18px;border-bottom:1px solid #d0d7de;padding-bottom:4px}
h3{font-size:15px;margin:18px 0 6px}
.verdict{padding:10px 14px;border-radius:6px;font-weight:600;font-size:15px;margin:14px 0}
.diverged{background:#ffebe9;border:1px solid #ff8182}.clean{background:#dafbe1;border:1px solid #4ac26b}
.partial,.empty{background:#fff8c5;border:1px solid #d4a72c}
.regressed{background:#ffebe9;border:1px solid #ff8182}.ok{background:#dafbe1;border:1px solid #4ac26b}
table{border-collapse:collapse;margin:6px 0;font-size:13px}
th,td{border:1px solid #d0d7de;padding:3px 8px;text-align:left;vertical-align:top}
th{background:#f6f8fa}td.n{text-align:right;font-variant-numeric:tabular-nums}
.kv td:first-child{font-weight:600;background:#f6f8fa}
code,.mono{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12px}
.hex td{border:none;padding:0 6px 0 0;font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12px}
.hex b{background:#ffd8d3;color:#a40e26;font-weight:600}
.muted{color:#57606a}.small{font-size:12px}
img.plot{max-width:100%;height:auto;border:1px solid #d0d7de}
details{margin:8px 0;border:1px solid #d0d7de;border-radius:6px;padding:6px 10px}
summary{cursor:pointer;font-weight:600}
.wrap{overflow-x:auto}.sha{font-family:ui-monospace,monospace;font-size:11px;word-break:break-all}
"""


def _n(v, digits: int | None = None) -> str:
    if v is None:
        return "&ndash;"
    if isinstance(v, float):
        return text(f"{v:,.{digits if digits is not None else 3}f}")
    if isinstance(v, int):
        return text(f"{v:,}")
    return text(v)


def _bytes(n) -> str:
    if n is None:
        return "&ndash;"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return text(f"{n:,} B" if unit == "B" else f"{n:,.1f} {unit}")
        n /= 1024
    return text(n)


def _rel(t_ns, t0: int) -> str:
    if t_ns is None:
        return "&ndash;"
    return text(f"{(t_ns - t0) / 1e9:.6f} s")


def _utc(t_ns) -> str:
    if t_ns is None:
        return "&ndash;"
    return text(datetime.fromtimestamp(t_ns / 1e9, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f UTC"))


def _causes(d: dict) -> str:
    return text(", ".join(f"{k} {v}" for k, v in d.items())) if d else "&ndash;"


def _flow(f) -> str:
    if not f:
        return "&ndash;"
    a = f["src"] + (f":{f['sport']}" if f.get("sport") is not None else "")
    b = f["dst"] + (f":{f['dport']}" if f.get("dport") is not None else "")
    return f"<span class=mono>{text(f['proto'])} {text(a)} &rarr; {text(b)}</span>"


def _table(head: list[str], rows: list[list[str]], cls: str = "") -> str:
    """``head`` is escaped here; the cells are already HTML."""
    th = "".join(f"<th>{text(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(rows_cell(c) for c in r) + "</tr>" for r in rows)
    return f"<div class=wrap><table class=\"{cls}\"><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table></div>"


def rows_cell(c) -> str:
    if isinstance(c, tuple):            # (html, css class)
        return f"<td class={c[1]}>{c[0]}</td>"
    return f"<td>{c}</td>"


def _kv(pairs: list[tuple[str, str]]) -> str:
    return "<table class=kv>" + "".join(f"<tr><td>{text(k)}</td><td>{v}</td></tr>" for k, v in pairs) + "</table>"


def _img(plot: dict, name: str) -> str:
    return (f"<img class=plot id=plot-{name} src=\"{plot['src']}\" width={int(plot['width'])} "
            f"height={int(plot['height'])} alt=\"{attr(plot['alt'])}\">")


def _summary(d: dict) -> str:
    n, t0 = d["numbers"], d["t0_ns"]
    v = d["verdict"]
    parts = [f"<section id=summary><h2>Summary</h2><div class=\"verdict {text(v['status'])}\">{text(v['text'])}"
             f" <span class=muted>(exit status {int(v['exit_status'])})</span></div>"]
    parts.append("<h3>Key numbers</h3>" + _kv([
        ("frames (primary / secondary)", f"{_n(n['frames_primary'])} / {_n(n['frames_secondary'])}"),
        ("released", _n(n["released"])),
        ("checkpoint requests", f"{_n(n['checkpoint_requests'])} ({_causes(n['requests_by_cause'])})"),
        ("root divergences", _n(n["roots"])),
        ("checkpoints performed", f"{_n(n['checkpoints'])} ({_causes(n['checkpoints_by_cause'])})"),
        ("checkpoints per minute", _n(n["checkpoints_per_min"], 2)),
        ("held p50 / p95 / p99 / max", " / ".join(_n(n[f"held_{k}_ms"]) for k in ("p50", "p95", "p99", "max"))
         + " ms"),
        ("time span", f"{_n(n['duration_s'], 3)} s from {_utc(t0)}"),
        ("connections", _n(d["connections"]["total"])),
        ("unsupported / truncated / undefined reads / would crash QEMU",
         " / ".join(_n(n[k]) for k in ("unsupported", "truncated", "undefined", "qemu_crashes"))),
    ]))
    run = d["run"]
    opts = run.get("options") or {}
    parts.append("<h3>What was run</h3>" + _kv([
        ("tool", text(f"{d['tool']['name']} {d['tool']['version']}")),
        ("mode", text(run["mode"])), ("profile", text(f"QEMU {run.get('profile')}" + (
            f" (release {run['qemu']['release']}, row {run['qemu']['row']})" if run.get("qemu") else ""))),
        ("generated", text(d.get("generated") or "")),
    ]))
    if opts:
        parts.append("<details><summary>Every option (" + text(len(opts)) + ")</summary>" + _kv(
            [(k, f"<code>{text(opts[k])}</code>") for k in sorted(opts)]) + "</details>")
    parts.append("</section>")
    return "".join(parts)


def _plot_section(sid: str, title: str, plot: dict, extra: str = "") -> str:
    return f"<section id={sid}><h2>{text(title)}</h2>{_img(plot, sid)}{extra}</section>"


def _connections(d: dict) -> str:
    c, t0 = d["connections"], d["t0_ns"]
    rows = []
    for r in c["rows"]:
        rows.append([(_n(r["conn"]), "n"), _flow(r["flow"]),
                     (f"{_n(r['frames_primary'])} / {_n(r['frames_secondary'])}", "n"),
                     (f"{_bytes(r['bytes_primary'])} / {_bytes(r['bytes_secondary'])}", "n"),
                     (_n(r["released"]), "n"), _causes(r["requests_by_cause"]),
                     (f"{_n(r['held_p50_ms'])} / {_n(r['held_p99_ms'])}", "n"),
                     (_rel(r["first_ns"], t0), "n"), (_rel(r["last_ns"], t0), "n")])
    more = (f"<p class=muted>Showing the {c['shown']} busiest of {c['total']:,} connections (most checkpoint "
            f"requests, then most frames).</p>") if c["total"] > c["shown"] else ""
    return ("<section id=connections><h2>Connections</h2>"
            "<p class=small>One row per colo-compare connection (Zeek conn.log style). Frames and bytes count the "
            "frames that left the queues on each side; held time is per release.</p>" + more
            + _table(["#", "5-tuple", "frames P / S", "bytes P / S", "released", "requests by cause",
                      "held p50 / p99 ms", "first", "last"], rows) + "</section>")


def _hex_byte(b, differ: bool) -> str:
    cell = "--" if b is None else f"{b:02x}"
    return f"<b>{cell}</b>" if differ else cell


def _ascii(cells, differ) -> str:
    out = []
    for b, dd in zip(cells, differ):
        ch = " " if b is None else (chr(b) if 32 <= b < 127 else ".")
        ch = text(ch)
        out.append(f"<b>{ch}</b>" if dd else ch)
    return "".join(out)


def _hex(h: dict) -> str:
    rows = []
    for r in h.get("rows") or []:
        p, s, dif = r["primary"], r["secondary"], r["differ"]
        rows.append("<tr>" + f"<td>{int(r['p_offset']):04x}</td>"
                    + "<td>" + " ".join(_hex_byte(b, x) for b, x in zip(p, dif)) + "</td>"
                    + f"<td>{_ascii(p, dif)}</td><td>|</td>"
                    + (f"<td>@{int(r['s_offset']):04x}</td>" if r["s_offset"] != r["p_offset"] else "<td></td>")
                    + "<td>" + " ".join(_hex_byte(b, x) for b, x in zip(s, dif)) + "</td>"
                    + f"<td>{_ascii(s, dif)}</td></tr>")
    return ("<div class=wrap><table class=hex><tr><td>offset</td><td>primary</td><td></td><td></td><td></td>"
            "<td>secondary</td><td></td></tr>" + "".join(rows) + "</table></div>")


def _divergences(d: dict) -> str:
    dv, t0 = d["divergences"], d["t0_ns"]
    parts = ["<section id=divergences><h2>Divergences</h2>"]
    if dv["source"] != "explain":
        parts.append("<p class=muted>From the timeline only (explain was not run: no field diff or hex "
                     "window).</p>")
    classes = dv["classes"]
    if classes:
        rows = [[text(c["cause"]), text(c["protocol"] or ""), f"<code>{text(c['field'] or '')}</code>",
                 (_n(c["count"]), "n"), (_n(c["checkpoints"]), "n"), (text(f"{(c['share'] or 0) * 100:.1f}%"), "n"),
                 _rel(c["first_ns"], t0), text(", ".join(f"P{a}/S{b}" for a, b in c["examples"] or [])),
                 text(c["hint"] or "")] for c in classes]
        parts.append("<h3>Classes</h3>" + _table(["cause", "protocol", "field", "roots", "checkpoints", "share",
                                                  "first", "examples (frames)", "hint"], rows))
    else:
        parts.append("<p>No divergence: every compared frame matched.</p>")
    rows = dv["rows"]
    if rows:
        more = f" (the first {dv['shown']} of {dv['total']:,})" if dv["total"] > dv["shown"] else ""
        parts.append(f"<h3>Root divergences{text(more)}</h3>")
        for i, r in enumerate(rows):
            head = (f"{_rel(r['time_ns'], t0)} &middot; {text(r['cause'])} &middot; {_flow(r['flow'])} &middot; "
                    f"primary frame {_n(r['primary_frame'])}, secondary frame {_n(r['secondary_frame'])}"
                    f" &middot; {_n(r['consequences'])} consequent requests")
            body = [_kv([(k, v) for k, v in (
                ("class", f"<code>{text(r['class'])}</code>"),
                ("first differing byte", _n(r["offset"]) + (f" (payload byte {_n(r['payload_offset'])})"
                                                             if r["payload_offset"] is not None else "")),
            ) if v])]
            if r.get("notes"):
                body.append("<ul>" + "".join(f"<li>{text(n)}</li>" for n in r["notes"]) + "</ul>")
            if r["fields"]:
                body.append(_table(["field", "primary", "secondary"], [
                    [f"<code>{text(f['name'])}</code>", f"<code>{text(f['primary'])}</code>",
                     f"<code>{text(f['secondary'])}</code>"] for f in r["fields"]]))
            if r["hex"]:
                body.append(_hex(r["hex"]))
            parts.append(f"<details{' open' if i < 3 else ''}><summary>{head}</summary>{''.join(body)}</details>")
    parts.append("</section>")
    return "".join(parts)


def _notes(d: dict) -> str:
    notes, t0 = d["notes"], d["t0_ns"]
    parts = ["<section id=notes><h2>Notes</h2>"]
    if not notes:
        parts.append("<p>Nothing unusual: no unsupported, truncated or crashing frame, no undefined read.</p>")
    for note in notes:
        parts.append(f"<h3>{text(note['label'])}: {_n(note['count'])}</h3>")
        if note.get("by_cause"):
            parts.append(f"<p>{_causes(note['by_cause'])}</p>")
        if note.get("messages"):
            parts.append("<ul>" + "".join(f"<li><code>{text(m)}</code></li>" for m in note["messages"]) + "</ul>")
        if note["frames"]:
            more = f"<p class=muted>The first {note['shown']} of {note['count']:,}.</p>" \
                if note["count"] > note["shown"] else ""
            parts.append(more + _table(["time", "side", "frame", "cause"], [
                [_rel(f["time_ns"], t0), text(f["side"] or ""), (_n(f["frame"]), "n"), text(f["cause"])]
                for f in note["frames"]]))
    parts.append("</section>")
    return "".join(parts)


def _regression(d: dict) -> str:
    b = d.get("baseline")
    if not b:
        return ""
    status = "regressed" if b["regressed"] else "ok"
    parts = [f"<section id=regression><h2>Regression against the baseline</h2>"
             f"<div class=\"verdict {status}\">{text(b['text'])}</div>"
             f"<p class=small>Baseline: <code>{text(b['path'])}</code> (generated {text(b.get('generated') or '?')})."
             f" Rules: <code>{text(' '.join(b['rules']))}</code></p>"]
    rows = []
    for m in b["metrics"]:
        rows.append([text(m["name"]), (_n(m["old"]), "n"), (_n(m["new"]), "n"), (_n(m["delta"]), "n"),
                     (text("" if m["delta_pct"] is None else f"{m['delta_pct']:+.1f}%"), "n"),
                     text(m["rule"] or ""), text("REGRESSED" if m["regressed"] else "")])
    parts.append(_table(["metric", "old", "new", "delta", "delta %", "rule", ""], rows))
    for title, key in (("New divergence classes", "classes_new"), ("Classes gone", "classes_gone")):
        items = b[key]
        parts.append(f"<h3>{text(title)}: {len(items)}</h3>")
        if items:
            parts.append("<ul>" + "".join(f"<li><code>{text(c)}</code></li>" for c in items) + "</ul>")
    parts.append("</section>")
    return "".join(parts)


def _sweep(d: dict, plots: dict) -> str:
    sw = d.get("sweep")
    if not sw:
        return ""
    parts = [f"<section id=sweep><h2>Sweep</h2><p class=small>From <code>{text(sw['path'])}</code>.</p>"]
    for rec in sw["recommendations"]:
        setting = ", ".join(f"{k}={v}" for k, v in (rec["setting"] or {}).items()) or "none qualifies"
        parts.append(f"<p><b>Recommended for {text(rec['pair'])}: {text(setting)}</b> "
                     f"<span class=small>(rule: {text(rec['rule'])})</span></p>")
    parts.append(_img(plots["sweep"], "sweep"))
    head = ["pair", *sw["knobs"], *sw["columns"]]
    rows = []
    for r in sw["rows"]:
        rows.append([text(r["pair"])] + [(_n(r[k]), "n") for k in sw["knobs"]]
                    + [text("yes" if r[k] else "") if isinstance(r[k], bool) else (_n(r[k]), "n")
                       for k in sw["columns"]])
    more = sw.get("pairs", 0) - sw.get("shown_pairs", 0)
    parts.append(_table(head, rows) + (f"<p class=small>… and {more:,} more pairs (--top; the sweep's JSON holds "
                                       f"every row)</p>" if more > 0 else "") + "</section>")
    return "".join(parts)


def _real_run(d: dict) -> str:
    """The replay's checkpoint requests against a real COLO run's (--qemu-trace)."""
    r = d.get("real_run")
    if not r:
        return ""
    def by(counts: dict) -> str:
        return text(", ".join(f"{k} {v}" for k, v in counts.items()) or "none")
    ok = "agree" if r["ok"] else "DISAGREE"
    rows = [("real checkpoint requests", f"{_n(r['real'])}: {_n(r['colo_compare_triggered'])} triggered by "
             f"colo-compare, {_n(r['matched'].get('periodic', 0))} periodic (x-checkpoint-delay "
             f"{_n(r['checkpoint_delay_ms'])} ms, {text(r['checkpoint_delay_source'])})"
             + (f", {_n(r['after_capture_end'])} after the capture ended (not judged)" if r["after_capture_end"]
                else "")),
            ("matched", f"<b>{_n(r['matched_colo_compare'])} of {_n(r['colo_compare_triggered'])} "
             f"({_n(r['matched_pct'], 1)} %)</b> within {_n(r['tolerance_ms'])} ms: "
             + by({k: v for k, v in r["matched"].items() if k != "periodic"})),
            ("missed", f"{_n(r['missed'])}: " + by({k: v for k, v in r["missed_by_why"].items()
                                                     if not k.startswith("after the capture")})),
            ("extra", f"{_n(r['extra'])} ({_n(r['extra_pct'], 1)} % of colo-compare's predictions): "
             + by(r["extra_by_cause"])),
            ("thresholds", f"at most {_n(r['max_missed_pct'])} % missed, {_n(r['max_extra_pct'])} % extra: {text(ok)}")]
    for name, c in (r.get("cross_check") or {}).items():
        rows.append((f"trace check: {name}", f"{_n(c['agree'])} of {_n(c['trace'])} agree ({_n(c['replay'])} in "
                     f"the replay)" + (f"; first disagreement: {text(c['first'])}" if c.get("first") else "")))
    parts = ["<section id=real_run><h2>The real run</h2><p class=small>The replay's checkpoint requests against "
             "the ones in the run's QEMU trace (--qemu-trace): the COLO thread modelled (coalescing, the "
             "periodic timer), each real request matched with a predicted one.</p>", _kv(rows)]
    items = [f"<li>missed {_utc(m['time_ns'])} (trace line {_n(m['line'])}): {text(m['why'])}</li>"
             for m in r["missed_list"] if not m["why"].startswith("after the capture")]
    items += [f"<li>extra {_utc(e['time_ns'])}: {text(e['cause'])} conn {_n(e['conn'])} P#{_n(e['primary_frame'])} "
              f"S#{_n(e['secondary_frame'])}</li>" for e in r["extra_list"]]
    if items:
        parts.append("<ul>" + "".join(items) + "</ul>")
    parts.append("</section>")
    return "".join(parts)


def _inputs(d: dict) -> str:
    rows = []
    for i in d["inputs"]:
        rows.append([text(i["role"]), f"<code>{text(i['name'])}</code><br><span class=small>{text(i['path'])}"
                     "</span>", (_bytes(i.get("size")), "n"), (_n(i.get("frames")), "n"),
                     _utc(i.get("first_ns")), _utc(i.get("last_ns")),
                     (_n(i.get("span_s"), 6) + " s" if i.get("span_s") is not None else "&ndash;", "n"),
                     f"<span class=sha>{text(i.get('sha256') or 'not available')}</span>"])
    return ("<section id=inputs><h2>Inputs</h2>"
            + _table(["role", "file", "size", "frames", "first", "last", "span", "SHA-256"], rows)
            + _qemu(d["run"].get("qemu")) + "</section>")


def _qemu(q) -> str:
    """The QEMU release replayed: its row and every switch (run.qemu)."""
    if not q:
        return ""
    head = f"<h3>QEMU {text(q['release'])}: row {text(q['row'])}</h3>"
    if q.get("kvm_colo"):
        head += f"<p>KVM COLO cannot run on this release: {text(q['kvm_colo'])}</p>"
    return head + "<details><summary>Switches (" + text(len(q["switches"])) + ")</summary>" + _kv(
        [(k, f"<code>{text(v)}</code>") for k, v in q["switches"].items()]) + "</details>"


def render(d: dict, plots: dict) -> str:
    """The page for the report data ``d`` (``Report.data``) and its ``plots`` (``plots.draw_all``)."""
    nav = [("summary", "Summary"), ("activity", "Activity"), ("held", "Held time"),
           ("checkpoints", "Checkpoints"), ("connections", "Connections"), ("divergences", "Divergences"),
           ("notes", "Notes")] + ([("regression", "Regression")] if d.get("baseline") else []) \
        + ([("sweep", "Sweep")] if d.get("sweep") else []) \
        + ([("real_run", "Real run")] if d.get("real_run") else []) + [("inputs", "Inputs")]
    names = d["title"]
    n = d["numbers"]
    held_extra = (f"<p>p50 {_n(n['held_p50_ms'])} ms, p95 {_n(n['held_p95_ms'])} ms, p99 {_n(n['held_p99_ms'])} ms,"
                  f" max {_n(n['held_max_ms'])} ms over {_n(n['released'])} releases.</p>")
    ck_extra = f"<p>{_n(n['checkpoints'])} checkpoints: {_causes(n['checkpoints_by_cause'])}.</p>"
    return "".join([
        "<!DOCTYPE html>\n<html lang=en><head><meta charset=utf-8>",
        f"<meta http-equiv=\"Content-Security-Policy\" content=\"{CSP}\">",
        "<meta name=viewport content=\"width=device-width,initial-scale=1\">",
        f"<title>colo-replay report: {text(names)}</title><style>{_STYLE}</style></head><body>",
        f"<header><h1>colo-replay report</h1><p>{text(names)} &middot; QEMU {text(d['run'].get('profile'))} "
        f"&middot; {text(d['tool']['name'])} {text(d['tool']['version'])}</p></header>",
        "<nav>" + "".join(f"<a href=\"#{sid}\">{text(t)}</a>" for sid, t in nav) + "</nav><main>",
        _summary(d),
        _plot_section("activity", "Activity over time", plots["activity"]),
        _plot_section("held", "Held time", plots["held"], held_extra),
        _plot_section("checkpoints", "Checkpoints", plots["checkpoints"], ck_extra),
        _connections(d), _divergences(d), _notes(d), _regression(d), _sweep(d, plots), _real_run(d), _inputs(d),
        "</main></body></html>\n",
    ])
