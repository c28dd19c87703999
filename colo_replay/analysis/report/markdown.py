"""The report as GitHub-flavoured Markdown, short enough for a pull-request comment: the verdict,
the key numbers, the regression against a baseline, the divergence classes and the first root
divergences.  Everything captured is escaped (HTML entities, then Markdown's punctuation), so a
payload cannot open a tag, a link or a table cell in the comment.
"""

from __future__ import annotations

import re

from .html import plain as _plain

__all__ = ["render", "md"]

_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]|~])")


def md(value) -> str:
    """Safe Markdown inline text (one line)."""
    s = _plain(value).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _MD_SPECIAL.sub(r"\\\1", s)


def _n(v, digits: int = 3) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:,.{digits}f}"
    return f"{v:,}" if isinstance(v, int) else md(v)


def _flow(f) -> str:
    if not f:
        return "–"
    a = f["src"] + (f":{f['sport']}" if f.get("sport") is not None else "")
    b = f["dst"] + (f":{f['dport']}" if f.get("dport") is not None else "")
    return md(f"{f['proto']} {a} → {b}")


def render(d: dict, top: int = 5) -> str:
    n, v = d["numbers"], d["verdict"]
    icon = {"clean": "✅", "diverged": "❌", "partial": "⚠️", "empty": "⚠️"}.get(v["status"], "")
    out = [f"### colo-replay report: {md(d['title'])}", "",
           f"{icon} **{md(v['text'])}** (exit status {int(v['exit_status'])})", ""]
    b = d.get("baseline")
    if b:
        out += [f"{'❌' if b['regressed'] else '✅'} **Baseline:** {md(b['text'])}", ""]
    sweep = d.get("sweep") or {}
    recs = sweep.get("recommendations", ())
    for rec in recs[:top]:
        setting = ", ".join(f"{k}={v}" for k, v in (rec["setting"] or {}).items()) or "none qualifies"
        out += [f"**Sweep, recommended for {md(rec['pair'])}:** {md(setting)} ({md(rec['rule'])})", ""]
    more = max(len(recs) - top, 0) + sweep.get("pairs", 0) - sweep.get("shown_pairs", 0)
    if recs and more > 0:
        out += [f"… and {more:,} more pairs of the sweep", ""]
    rr = d.get("real_run")
    if rr:
        out += [f"{'✅' if rr['ok'] else '❌'} **The real run (--qemu-trace):** {rr['matched_colo_compare']:,} of "
                f"{rr['colo_compare_triggered']:,} colo-compare-triggered checkpoint requests predicted within "
                f"{_n(rr['tolerance_ms'])} ms ({rr['matched_pct']:.1f} %), {rr['extra']:,} extra, "
                f"{rr['matched'].get('periodic', 0):,} periodic", ""]
    out += ["| | |", "|---|---|",
            f"| profile | QEMU {md(d['run'].get('profile'))}, {md(d['run']['mode'])}{_release(d['run'].get('qemu'))} |",
            f"| frames (primary / secondary) | {_n(n['frames_primary'])} / {_n(n['frames_secondary'])} |",
            f"| checkpoint requests | {_n(n['checkpoint_requests'])} "
            f"({md(', '.join(f'{k} {c}' for k, c in n['requests_by_cause'].items()) or 'none')}) |",
            f"| root divergences | {_n(n['roots'])} |",
            f"| checkpoints | {_n(n['checkpoints'])} ({_n(n['checkpoints_per_min'], 2)} per minute) |",
            f"| held p50 / p95 / p99 | {_n(n['held_p50_ms'])} / {_n(n['held_p95_ms'])} / {_n(n['held_p99_ms'])} ms |",
            f"| unsupported / truncated / undefined / would crash | {_n(n['unsupported'])} / {_n(n['truncated'])} / "
            f"{_n(n['undefined'])} / {_n(n['qemu_crashes'])} |", ""]
    if b:
        changed = [m for m in b["metrics"] if m["delta"] or m["regressed"]]
        if changed:
            out += ["| metric | old | new | delta | rule |", "|---|--:|--:|--:|---|"]
            out += [f"| {'**' if m['regressed'] else ''}{md(m['name'])}{'**' if m['regressed'] else ''} | "
                    f"{_n(m['old'])} | {_n(m['new'])} | {_n(m['delta'])} | {md(m['rule'] or '')} |" for m in changed]
            out.append("")
        if b["classes_new"] or b["classes_gone"]:
            out += [f"New classes: {md(', '.join(b['classes_new']) or 'none')}; gone: "
                    f"{md(', '.join(b['classes_gone']) or 'none')}", ""]
    classes = d["divergences"]["classes"]
    if classes:
        out += ["**Divergence classes**", "", "| cause | protocol | field | roots | checkpoints | hint |",
                "|---|---|---|--:|--:|---|"]
        for c in classes[:top * 2]:
            out.append(f"| {md(c['cause'])} | {md(c['protocol'] or '')} | {md(c['field'] or '')} | {_n(c['count'])} | "
                       f"{_n(c['checkpoints'])} | {md(c['hint'] or '')} |")
        if len(classes) > top * 2:
            out.append(f"| … {len(classes) - top * 2} more | | | | | |")
        out.append("")
    rows = d["divergences"]["rows"][:top]
    if rows:
        t0 = d["t0_ns"]
        out += [f"**First root divergences** ({len(rows)} of {d['divergences']['total']:,})", "",
                "| time | cause | flow | frames P / S | first differing field |", "|--:|---|---|---|---|"]
        for r in rows:
            f = r["fields"][0] if r["fields"] else None
            field = (md(f"{f['name']}: {f['primary']} ≠ {f['secondary']}") if f else md(r["class"] or ""))
            out.append(f"| {(r['time_ns'] - t0) / 1e9:.6f} s | {md(r['cause'])} | {_flow(r['flow'])} | "
                       f"{_n(r['primary_frame'])} / {_n(r['secondary_frame'])} | {field} |")
        out.append("")
    out.append(f"<sub>{md(d['tool']['name'])} {md(d['tool']['version'])}; report schema {md(d['schema'])}</sub>")
    return "\n".join(out) + "\n"


def _release(q) -> str:
    """``; release X = row Y`` for the profile row (run.qemu), or nothing."""
    return f"; release {md(q['release'])} = row {md(q['row'])}" if q else ""
