"""The replay summary: what a person reads first, computed from the timeline DataFrame."""

from __future__ import annotations

MS = 1_000_000

DIVERGENCE_CAUSES = ("miscompare", "size_mismatch", "ack_gate")


def summarise(df, result) -> dict:
    """Numbers for the summary block and for machines (``--summary-json``)."""
    import numpy as np

    kind = df["kind"]
    cause = df["cause"]
    rel = df[kind == "release"]
    held = rel["held_ns"].to_numpy(dtype=np.int64)
    held_ms = {}
    if len(held):
        q = np.percentile(held, [50, 95, 99]) / MS
        held_ms = {"p50": float(q[0]), "p95": float(q[1]), "p99": float(q[2]), "max": float(held.max() / MS)}
    req = df[kind == "checkpoint_request"]
    requests_by_cause = {str(k): int(v) for k, v in req["cause"].value_counts().items() if v}
    starts = df[kind == "checkpoint_start"]
    checkpoints_by_cause = {str(k): int(v) for k, v in starts["cause"].value_counts().items() if v}
    unsupported = df[kind == "unsupported"]
    divergences = int(req["cause"].isin(DIVERGENCE_CAUSES).sum())
    out = {
        "profile": result.knobs["qemu"],
        "knobs": result.knobs,
        "frames": {"primary": result.primary.frames, "secondary": result.secondary.frames},
        "released": int(len(rel)),
        "released_by_cause": {str(k): int(v) for k, v in rel["cause"].value_counts().items() if v},
        "held_ms": held_ms,
        "checkpoint_requests": int(len(req)),
        "checkpoint_requests_by_cause": requests_by_cause,
        "checkpoints": int(len(starts)),
        "checkpoints_by_cause": checkpoints_by_cause,
        "divergences": divergences,
        "never_compared": {
            "unsupported": int(len(unsupported)),
            "truncated": result.primary.truncated + result.secondary.truncated,
            "filtered": result.primary.filtered + result.secondary.filtered,
        },
        "queue_drops": int((kind == "queue_full_drop").sum()),
        "table_resets": int((kind == "table_reset").sum()),
        "qemu_crashes": int((kind == "qemu_crash").sum()),
        "undefined": int((kind == "undefined").sum()),
        "still_queued": {"primary": result.still_queued[0], "secondary": result.still_queued[1]},
        "captures": {
            "primary": _capture_info(result.primary),
            "secondary": _capture_info(result.secondary),
        },
        "partial": result.partial,
        "error": result.error,
    }
    return out


def _capture_info(st) -> dict:
    return {"path": st.path, "format": st.format, "linktypes": st.linktypes,
            "synthesised_ethernet": st.synthesised_ethernet, "frames": st.frames, "fed": st.fed,
            "truncated": st.truncated, "filtered": st.filtered}


def format_summary(s: dict) -> str:
    """The human summary printed on stderr."""
    k = s["knobs"]
    lines = []
    status = "PARTIAL (read error, results up to it)" if s["partial"] else "complete"
    lines.append(f"colo-replay summary ({status})")
    lines.append(f"  profile        QEMU {s['profile']}: compare_timeout={k['compare_timeout']} ms "
                 f"expired_scan_cycle={k['expired_scan_cycle']} ms max_queue_size={k['max_queue_size']} "
                 f"vnet_hdr_support={'on' if k['vnet_hdr_support'] else 'off'}")
    lines.append(f"  checkpoints    {k['checkpoints']}: duration={k['checkpoint_duration_ms']:g} ms "
                 f"x-checkpoint-delay={k['checkpoint_delay_ms']:g} ms" if k["checkpoint_delay_ms"] is not None
                 else f"  checkpoints    {k['checkpoints']}")
    lines.append(f"  clocks         primary offset {k['primary_offset_ms']:g} ms, secondary offset "
                 f"{k['secondary_offset_ms']:g} ms, scan phase {k['scan_phase_ms']:g} ms"
                 + (f", filter {k['filter']!r}" if k.get("filter") else ""))
    if k.get("alignment"):
        lines.append(f"  alignment      {k['alignment']}")
    for side in ("primary", "secondary"):
        c = s["captures"][side]
        note = ", Ethernet header synthesised" if c["synthesised_ethernet"] else ""
        lines.append(f"  {side:<14} {c['frames']} frames from {c['path']} ({c['format']}{note})")
    h = s["held_ms"]
    held = (f"held p50 {h['p50']:.3f} / p95 {h['p95']:.3f} / p99 {h['p99']:.3f} / max {h['max']:.3f} ms"
            if h else "held -")
    lines.append(f"  released       {s['released']} ({_fmt(s['released_by_cause'])}); {held}")
    lines.append(f"  requests       {s['checkpoint_requests']} ({_fmt(s['checkpoint_requests_by_cause'])})")
    lines.append(f"  checkpoints    {s['checkpoints']} performed ({_fmt(s['checkpoints_by_cause'])})")
    lines.append(f"  divergences    {s['divergences']}")
    sq = s["still_queued"]
    lines.append(f"  still queued   {sq['primary']} primary, {sq['secondary']} secondary at the end of the captures")
    nc = s["never_compared"]
    lines.append(f"  never compared unsupported {nc['unsupported']}, truncated {nc['truncated']}, "
                 f"filtered {nc['filtered']}")
    lines.append(f"  queue drops    {s['queue_drops']}; table resets {s['table_resets']}; "
                 f"QEMU would crash {s['qemu_crashes']}; undefined reads {s['undefined']}")
    if s["error"]:
        lines.append(f"  error          {s['error']}")
    return "\n".join(lines)


def _fmt(d: dict) -> str:
    return ", ".join(f"{k} {v}" for k, v in d.items()) if d else "none"
