"""The summary: what a person reads first.  ``summarise`` computes a replay's from the timeline
DataFrame; live mode counts its own as it runs (``LiveCompare.summary()``); ``format_summary``
prints either, in one layout."""

from __future__ import annotations

from ..engine.constants import MS
from .verdict import verdict_line

DIVERGENCE_CAUSES = ("miscompare", "size_mismatch", "ack_gate")


def summarise(df, result) -> dict:
    """Numbers for the summary block and for machines (``--summary-json``).  ``df`` is the
    timeline DataFrame, the collector's numpy columns (``TimelineCollector.columns``) or their
    ``Tally`` (``output.tally``; a streamed timeline's, gathered block by block): the counting
    is done on the kind / cause codes either way, without pandas, and gives the same dict."""
    import numpy as np

    from .tally import Tally
    from .timeline import KIND_CODES, code_columns

    tally = df if isinstance(df, Tally) else Tally.of([code_columns(df)])

    def by_cause(name: str) -> dict:
        return tally.causes(KIND_CODES[name])

    def count(name: str) -> int:
        return tally.count(KIND_CODES[name])

    held = tally.held()
    held_ms = {}
    if len(held):
        # In place: the values' order does not matter to a percentile, and no copy of them is made
        q = np.percentile(held, [50, 95, 99], overwrite_input=True) / MS
        held_ms = {"p50": float(q[0]), "p95": float(q[1]), "p99": float(q[2]), "max": float(held.max() / MS)}
    requests_by_cause = by_cause("checkpoint_request")
    checkpoints_by_cause = by_cause("checkpoint_start")
    # An idle_checkpoints row stands for ``detail`` periodic checkpoints (see timeline.py).
    idle = tally.idle
    if idle:
        checkpoints_by_cause["periodic"] = checkpoints_by_cause.get("periodic", 0) + idle
    divergences = sum(requests_by_cause.get(c, 0) for c in DIVERGENCE_CAUSES)
    released_by_cause = by_cause("release")
    compared = released_by_cause.get("compared_equal", 0) + divergences
    out = {
        "profile": result.knobs["qemu"],
        "qemu": getattr(result, "qemu", None) or qemu_object(result.knobs["qemu"]),
        "knobs": result.knobs,
        "frames": {"primary": result.primary.frames, "secondary": result.secondary.frames},
        "released": count("release"),
        "released_by_cause": released_by_cause,
        "held_ms": held_ms,
        "checkpoint_requests": count("checkpoint_request"),
        "checkpoint_requests_by_cause": requests_by_cause,
        "checkpoints": count("checkpoint_start") + idle,
        "checkpoints_by_cause": checkpoints_by_cause,
        "divergences": divergences,
        "never_compared": {
            "unsupported": count("unsupported"),
            "truncated": result.primary.truncated + result.secondary.truncated,
            "filtered": result.primary.filtered + result.secondary.filtered,
        },
        "queue_drops": count("queue_full_drop"),
        "table_resets": count("table_reset"),
        "qemu_crashes": count("qemu_crash"),
        "undefined": count("undefined"),
        "still_queued": {"primary": result.still_queued[0], "secondary": result.still_queued[1]},
        "captures": {
            "primary": _capture_info(result.primary),
            "secondary": _capture_info(result.secondary),
        },
        "partial": result.partial,
        "error": result.error,
        "interrupted": bool(getattr(result, "interrupted", False)),
        "compared": compared,
        "nothing_compared": nothing_compared(result, compared),
        "warnings": list(getattr(result, "warnings", ())),
        # --qemu-trace: the TCP memcmps walked along with the real run's (offline/trace_oracle.py)
        "qemu_trace": getattr(result, "trace_check", None),
    }
    _after_checkpoint(out, tally, result)
    out["verdict"] = verdict_line(requests_by_cause, out["nothing_compared"], out["error"], out["interrupted"])
    return out


def nothing_compared(result, compared: int) -> str | None:
    """Why nothing was compared (exit status 2 unless --allow-empty), or None: a side with no
    frame to compare after reading, filtering (``--filter``, ``--guest``) or the snaplen, or
    no primary frame that ever met a secondary one."""
    for side in ("primary", "secondary"):
        st = getattr(result, side)
        if st.fed:
            continue
        if not st.frames:
            return f"the {side} capture {st.path} holds no frames"
        why = ", ".join(f"{n} {what}" for n, what in ((st.filtered, "filtered out by --filter/--guest"),
                                                        (st.truncated, "cut by the snaplen"),
                                                        (getattr(st, "superseded", 0),
                                                         "superseded by --after-checkpoint resync")) if n)
        return f"no {side} frame was left to compare ({st.frames} read, {why or 'none fed'})"
    if not compared:
        return ("no primary frame ever met a secondary one (every release was by expiry, flush or "
                "pass-through: check --secondary-offset or try --align auto)")
    return None


def _after_checkpoint(out: dict, tally, result) -> None:
    """``after_checkpoint``: the mode and, under resync, what it did; under raw with modelled
    checkpoints, the cascade signature (``output.cascade``) and a warning when it is there."""
    k = result.knobs
    mode = k.get("after_checkpoint")
    if mode is None:
        return
    info = {"mode": mode}
    if getattr(result, "resync", None) is not None:
        info.update(result.resync)
        info["held"] = {"primary": getattr(result.primary, "held", 0), "secondary": getattr(result.secondary, "held", 0)}
    elif k.get("checkpoints") == "model" and out["checkpoints"]:
        from .cascade import cascade_signature
        window = (k.get("compare_timeout") or 3000) * MS + (k.get("expired_scan_cycle") or 1000) * MS
        sig = cascade_signature(tally.cascade_columns(), window)
        info["cascade"] = sig
        if sig["cascade"]:
            info["warning"] = (f"{sig['re_diverged']} of {sig['followed']} flushes were followed by a request on a "
                               f"connection the flush had frames of: the cascade of captures taken without COLO "
                               f"(the secondary is behind at each modelled flush); --after-checkpoint resync "
                               f"models what the checkpoints do to it")
            out.setdefault("warnings", []).append(info["warning"])
    out["after_checkpoint"] = info


def _capture_info(st) -> dict:
    return {"path": st.path, "format": st.format, "linktypes": st.linktypes,
            "synthesised_ethernet": st.synthesised_ethernet, "frames": st.frames, "fed": st.fed,
            "truncated": st.truncated, "filtered": st.filtered}


def format_summary(s: dict) -> str:
    """The human summary printed on stderr, for a replay (``summarise``) or a live run
    (``LiveCompare.summary()``, recognised by its ``frames_in``): the same rows in the same
    layout, live adding the counters only sockets have."""
    if "frames_in" in s:
        return _format_live(s)
    k = s["knobs"]
    lines = []
    status = ("INTERRUPTED (results up to it)" if s.get("interrupted") else
              "PARTIAL (read error, results up to it)" if s["partial"] else "complete")
    lines.append(f"colo-replay summary ({status})")
    lines.append(f"  verdict        {s['verdict']}")
    lines.append(_profile_row(s["profile"], k))
    lines += qemu_rows(s.get("qemu"))
    lines.append(f"  checkpoints    {k['checkpoints']}: duration={k['checkpoint_duration_ms']:g} ms "
                 f"x-checkpoint-delay={k['checkpoint_delay_ms']:g} ms" if k["checkpoint_delay_ms"] is not None
                 else f"  checkpoints    {k['checkpoints']}")
    lines.append(f"  clocks         primary offset {k['primary_offset_ms']:g} ms, secondary offset "
                 f"{k['secondary_offset_ms']:g} ms, "
                 + (f"scan ticks pinned at the trace's {k['scan_anchors']} firings" if k.get("scan_anchors")
                    else f"scan phase {k['scan_phase_ms']:g} ms")
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
    lines.append(_still_queued_row(sq["primary"], sq["secondary"], "at the end of the captures"))
    nc = s["never_compared"]
    lines.append(f"  never compared unsupported {nc['unsupported']}, truncated {nc['truncated']}, "
                 f"filtered {nc['filtered']}")
    lines.append(_anomalies_row(s["queue_drops"], s["table_resets"], s["qemu_crashes"])
                 + f"; undefined reads {s['undefined']}")
    tc = s.get("qemu_trace")
    if tc:
        lines.append(f"  qemu trace     {tc['agree']} of {tc['trace']} TCP payload compares in step with the trace's "
                     f"(ip_info/tcp_info), {tc['outcome_disagreements']} decided otherwise; tcp_info seq/ack/lengths "
                     f"{tc.get('tcp_info_agree', 0)} of {tc.get('tcp_info', 0)} the same; undefined reads decided "
                     f"by QEMU's outcome {tc['undefined_resolved']}, by the zero stand-in {tc['undefined_unresolved']}"
                     + (f"; {len(tc['read_order']['moved'])} secondary_in frame(s) read after primary_in frames "
                        f"captured later (the iothread woke late)" if (tc.get("read_order") or {}).get("moved") else "")
                     + (f"; out of step from {tc['first']}" if tc.get("first") else "")
                     + (f"; first tcp_info differing: {tc['tcp_info_first']}" if tc.get("tcp_info_first") else ""))
    ac = s.get("after_checkpoint")
    if ac is not None:
        lines.append(_after_checkpoint_row(ac))
    if s["error"]:
        lines.append(f"  error          {s['error']}")
    if ac is not None and ac.get("warning"):
        lines.append(f"  warning        {ac['warning']}")
    return "\n".join(lines)


def _after_checkpoint_row(ac: dict) -> str:
    if ac["mode"] == "resync":
        held = ac.get("held") or {}
        return (f"  after ckpt     resync: {ac.get('superseded', 0)} secondary frames superseded, "
                f"{ac.get('trimmed', 0)} trimmed, {ac.get('requeued', 0)} requeued; held while checkpoints ran: "
                f"{held.get('primary', 0)} primary, {held.get('secondary', 0)} secondary")
    return "  after ckpt     raw (streams as captured)"


def _profile_row(profile: str, k: dict) -> str:
    return (f"  profile        QEMU {profile}: compare_timeout={k['compare_timeout']} ms "
            f"expired_scan_cycle={k['expired_scan_cycle']} ms max_queue_size={k['max_queue_size']} "
            f"vnet_hdr_support={'on' if k['vnet_hdr_support'] else 'off'}")


def qemu_object(release: str) -> dict:
    """The ``qemu`` object (``Release.as_dict()``) of a release string (a result made without one)."""
    from ..engine.releases import resolve_release
    return resolve_release(release).as_dict()


def qemu_rows(q) -> list[str]:
    """The summary's lines on the release: its row and what makes that row differ from its
    neighbours and from the default (7.2, row K)."""
    if not isinstance(q, dict):
        return []
    from ..engine.releases import row_differences
    row = q["row"]
    near, versus = row_differences(row)
    lines = [f"  qemu           {q['release']} = row {row} ({near['releases']})"]
    if q.get("binary"):
        lines[0] += f", asked {q['binary']}"
    for label, text in near["neighbours"]:
        lines.append(f"  {label:<14} {text}")
    lines.append(f"  vs 7.2 (row K) {versus}")
    if q.get("kvm_colo"):
        lines.append(f"  KVM COLO       cannot run on this release: {q['kvm_colo']}")
    return lines


def _still_queued_row(primary: int, secondary: int, when: str) -> str:
    return f"  still queued   {primary} primary, {secondary} secondary {when}"


def _anomalies_row(queue_drops: int, table_resets: int, crashes: int) -> str:
    return f"  queue drops    {queue_drops}; table resets {table_resets}; QEMU would crash {crashes}"


def _format_live(s: dict) -> str:
    """A live run's summary: the replay's rows where the two have the same numbers, then the
    counters only sockets have (bytes, outdev / notify losses, inputs disabled, reconnects)."""
    lines = [
        f"colo-replay live summary (stopped by {s['stop_reason'] or '?'} after {s['runtime_s']} s"
        + (f", {s['event_loop']} event loop)" if s.get("event_loop") else ")"),
        _profile_row(s.get("profile") or s["qemu"], s),
        *qemu_rows(s.get("qemu")),
        f"  frames in      primary {s['frames_in'][0]}, secondary {s['frames_in'][1]} "
        f"(bytes {s['bytes_in'][0]} / {s['bytes_in'][1]})",
        f"  released       {s['released']} (pass-through {s['passthrough']}), {s['bytes_out']} bytes to outdev",
        f"  requests       {s['checkpoint_requests']}",
        f"  checkpoints    {s['checkpoints']} performed (flushes)",
        _still_queued_row(s["still_queued"][0], s["still_queued"][1],
                          "at exit (not released, as QEMU's finalize)"),
        _anomalies_row(s["queue_full_drops"], s["table_resets"], s["qemu_crash_events"]),
        f"  outputs        lost on outdev {s['outdev_lost']}, DO_CHECKPOINT lost {s['notify_lost']} "
        f"(peer disconnected)",
        f"  inputs         disabled by an oversized frame {s['oversized']}, unsupported notify messages "
        f"{s['unsupported_instructions']}",
    ]
    if s.get("reconnects"):
        lines.append("  reconnects     " + ", ".join(f"{k} {v}" for k, v in s["reconnects"].items()))
    if s.get("record"):
        lines.append(f"  recorded in    {s['record']['dir']}; replay: {s['record']['replay_command']}")
    return "\n".join(lines)


def _fmt(d: dict) -> str:
    return ", ".join(f"{k} {v}" for k, v in d.items()) if d else "none"
