"""The report's data, computed from a timeline (and the two captures when they can be read).

Everything here is vectorised over the timeline's columns (boolean masks on the categorical
codes, ``bincount``, one ``groupby`` over the shown connections only): the timeline of a
million-frame pair has two million rows and the report must cost little next to the replay.
The result is plain JSON data; ``html``, ``markdown`` and ``baseline`` only read it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ...engine.constants import MS
from ...engine.packet import PORTED_PROTOCOLS
from ...output.verdict import EXIT_BAD_INPUT, EXIT_INTERRUPTED, exit_status, verdict_line
from ..fields import flow as _flow

__all__ = ["mask", "key_numbers", "connections", "side_times", "add_flows", "notes", "verdict", "flow_of_key", "PROTOCOLS"]

PROTOCOLS = {1: "icmp", 6: "tcp", 17: "udp"}
# rows that end a frame's stay in colo-compare: released, dropped (matched or flushed), lost
_TERMINAL = ("release", "secondary_dropped", "primary_lost", "queue_full_drop")
_DIVERGENCE_CAUSES = ("miscompare", "size_mismatch", "ack_gate")


def mask(col: pd.Series, *names: str) -> np.ndarray:
    """Rows whose categorical (or string) ``col`` is one of ``names``, compared on the codes."""
    if isinstance(col.dtype, pd.CategoricalDtype):
        cats = list(col.cat.categories)
        codes = [cats.index(n) for n in names if n in cats]
        c = col.cat.codes.to_numpy()
        if not codes:
            return np.zeros(len(col), dtype=bool)
        return np.isin(c, codes) if len(codes) > 1 else c == codes[0]
    return np.isin(col.to_numpy(dtype=object), list(names))


def _counts(col: pd.Series, m: np.ndarray) -> dict:
    vc = col[m].astype(str).value_counts() if m.any() else {}
    return {str(k): int(v) for k, v in (vc.items() if len(vc) else ()) if v}


def _held(held_ns: np.ndarray) -> dict:
    if not len(held_ns):
        return {}
    q = np.percentile(held_ns, [50, 95, 99]) / MS
    return {"p50": float(q[0]), "p95": float(q[1]), "p99": float(q[2]), "max": float(held_ns.max() / MS)}


def key_numbers(events: pd.DataFrame, summary: dict, roots: int) -> dict:
    """The numbers a reader (and the baseline gate) looks at first, from the timeline; frame
    counts from the summary (replay: ``frames``; live: ``frames_in``)."""
    kind, cause = events["kind"], events["cause"]
    t = events["time_ns"].to_numpy()
    is_rel = mask(kind, "release")
    is_req = mask(kind, "checkpoint_request")
    is_start = mask(kind, "checkpoint_start")
    held = _held(events["held_ns"].to_numpy()[is_rel])
    frames = summary.get("frames")
    if isinstance(frames, dict):
        fp, fs = frames.get("primary"), frames.get("secondary")
    elif "frames_in" in summary:
        fp, fs = summary["frames_in"][0], summary["frames_in"][1]
    else:
        fp = fs = None
    span_ns = int(t.max() - t.min()) if len(t) else 0
    n_ckpt = int(is_start.sum())
    req_by_cause = _counts(cause, is_req)
    return {
        "frames_primary": fp, "frames_secondary": fs,
        "released": int(is_rel.sum()),
        "checkpoint_requests": int(is_req.sum()),
        "requests_by_cause": req_by_cause,
        "checkpoints": n_ckpt,
        "checkpoints_by_cause": _counts(cause, is_start),
        "divergences": int(sum(v for k, v in req_by_cause.items() if k in _DIVERGENCE_CAUSES)),
        "roots": int(roots),
        "held_p50_ms": held.get("p50"), "held_p95_ms": held.get("p95"), "held_p99_ms": held.get("p99"),
        "held_max_ms": held.get("max"),
        "duration_s": span_ns / 1e9,
        "checkpoints_per_min": (n_ckpt / (span_ns / 60e9)) if span_ns else None,
        "unsupported": int(mask(kind, "unsupported").sum()),
        "truncated": int(mask(kind, "uncomparable").sum()),
        "undefined": int(mask(kind, "undefined").sum()),
        "qemu_crashes": int(mask(kind, "qemu_crash").sum()),
        "queue_drops": int(mask(kind, "queue_full_drop").sum()),
        "table_resets": int(mask(kind, "table_reset").sum()),
    }


def connections(events: pd.DataFrame, top: int) -> dict:
    """The per-connection table (Zeek conn.log style), busiest in checkpoint requests first, then
    in frames: ``total`` connections, ``rows`` for the first ``top``.  Frames and bytes per side
    count the frames that left colo-compare's queues (released, dropped, lost); frames still
    queued at the end have no row.  ``first_frame`` (per side) is what ``add_flows`` reads the
    5-tuple from."""
    conn = events["conn"].to_numpy()
    kind, side = events["kind"], events["side"]
    has = conn >= 0
    if not has.any():
        return {"total": 0, "shown": 0, "rows": []}
    # one bin per connection: the numbers themselves while they are dense (as the replay numbers
    # them, 0, 1, 2, ...), else their ranks (a saved timeline's numbers can be anything up to
    # 2^31 - 1: never a bin per number)
    top_conn = int(conn[has].max())
    if top_conn < 4 * len(conn) + 1024:
        ids, dense, n = None, conn, top_conn + 1
    else:
        ids, inverse = np.unique(conn[has], return_inverse=True)
        dense = np.full(len(conn), -1, dtype=np.int64)
        dense[has] = inverse.reshape(-1)
        n = len(ids)
    term = mask(kind, *_TERMINAL) & has
    is_p = mask(side, "primary")
    is_s = mask(side, "secondary")
    size = events["size"].to_numpy()
    is_rel = mask(kind, "release") & has
    is_req = mask(kind, "checkpoint_request") & has

    def count(m, weights=None):
        return np.bincount(dense[m], weights=None if weights is None else weights[m], minlength=n)

    frames_p, frames_s = count(term & is_p), count(term & is_s)
    bytes_p, bytes_s = count(term & is_p, size), count(term & is_s, size)
    released, requests = count(is_rel), count(is_req)
    seen = count(has)
    order = np.lexsort((np.arange(n), -(frames_p + frames_s), -requests))
    order = order[seen[order] > 0]
    total = len(order)
    shown = order[:top]
    number = (lambda i: int(i)) if ids is None else (lambda i: int(ids[i]))     # bin -> connection number
    rows = []
    if len(shown):
        sub_m = has & np.isin(dense, shown)
        sub = pd.DataFrame({"conn": dense[sub_m], "t": events["time_ns"].to_numpy()[sub_m],
                            "pf": events["primary_frame"].to_numpy()[sub_m],
                            "sf": events["secondary_frame"].to_numpy()[sub_m]})
        g = sub.groupby("conn")
        first_t, last_t = g["t"].min(), g["t"].max()
        pf = sub[sub["pf"] >= 0].groupby("conn")["pf"].min()
        sf = sub[sub["sf"] >= 0].groupby("conn")["sf"].min()
        rel_m = is_rel & sub_m
        rel = pd.DataFrame({"conn": dense[rel_m], "h": events["held_ns"].to_numpy()[rel_m]})
        q = rel.groupby("conn")["h"].quantile([0.5, 0.99]).unstack() if len(rel) else None
        req_m = is_req & sub_m
        # the categorical column indexed first: .to_numpy() of all of it would build millions of strings
        req = pd.DataFrame({"conn": dense[req_m], "cause": events["cause"][req_m].astype(str).to_numpy()})
        by_cause = {}
        for (c, cause), v in req.groupby(["conn", "cause"]).size().items():
            if v:
                by_cause.setdefault(int(c), {})[str(cause)] = int(v)
        for c in shown:
            c = int(c)
            has_q = q is not None and c in q.index
            rows.append({
                "conn": number(c), "flow": None,
                "frames_primary": int(frames_p[c]), "frames_secondary": int(frames_s[c]),
                "bytes_primary": int(bytes_p[c]), "bytes_secondary": int(bytes_s[c]),
                "released": int(released[c]), "requests": int(requests[c]),
                "requests_by_cause": by_cause.get(c, {}),
                "held_p50_ms": float(q.loc[c, 0.5] / MS) if has_q else None,
                "held_p99_ms": float(q.loc[c, 0.99] / MS) if has_q else None,
                "first_ns": int(first_t[c]), "last_ns": int(last_t[c]),
                "first_frame": {"primary": int(pf[c]) if c in pf.index else None,
                                "secondary": int(sf[c]) if c in sf.index else None},
            })
    return {"total": total, "shown": len(rows), "rows": rows}


def side_times(events: pd.DataFrame) -> dict:
    """When each side's frames arrived, from the timeline alone (for the activity plot): a
    primary frame's arrival is its release time minus its held time (exact); a frame with no
    release row (a secondary, a lost or dropped primary) counts at the time it left the queues,
    which for a matched secondary is when its pair was compared."""
    kind, side = events["kind"], events["side"]
    t = events["time_ns"].to_numpy()
    term = mask(kind, *_TERMINAL)
    rel = mask(kind, "release")
    arrival = np.where(rel, t - np.maximum(events["held_ns"].to_numpy(), 0), t)
    return {s: arrival[term & mask(side, s)] for s in ("primary", "secondary")}


def flow_of(frame) -> dict | None:
    """``{proto, src, dst, sport, dport}`` of ``(bytes, vnet_hdr_len)``; None when not IPv4."""
    if frame is None:
        return None
    data, vnet = frame
    f = _flow(data, vnet)
    if f.proto is None:
        return None
    return {"proto": PROTOCOLS.get(f.proto, f"ip-{f.proto}"), "src": f.src, "dst": f.dst,
            "sport": f.sport, "dport": f.dport}


def flow_of_key(ip_proto: int, key: bytes) -> dict | None:
    """The flow in a colo-compare connection key (``engine.packet.connection_key``: source and
    destination address, then the 4 port bytes for ported protocols); None when the key holds no
    addresses (4.1's key of a portless protocol is its number alone)."""
    if len(key) < 8:
        return None
    ported = ip_proto in PORTED_PROTOCOLS and ip_proto != 50 and len(key) >= 12     # ESP: the SPI
    return {"proto": PROTOCOLS.get(ip_proto, f"ip-{ip_proto}"), "src": ".".join(map(str, key[0:4])),
            "dst": ".".join(map(str, key[4:8])),
            "sport": int.from_bytes(key[8:10], "big") if ported else None,
            "dport": int.from_bytes(key[10:12], "big") if ported else None}


def add_flows(table: dict, frames: dict, keys: dict | None = None) -> dict:
    """Fill each row's ``flow`` from the connection ``keys`` (``{conn: (ip_proto, key)}``, what the
    replay's engine held) or else from ``frames`` (``{"primary": {number: (bytes, vnet)}, ...}``),
    the primary's first frame preferred; returns ``{conn: flow}`` for the rows that got one."""
    out = {}
    keys = keys or {}
    for row in table["rows"]:
        if row["conn"] in keys:
            fl = flow_of_key(*keys[row["conn"]])
            if fl is not None:
                row["flow"] = out[row["conn"]] = fl
                continue
        for side in ("primary", "secondary"):
            num = row["first_frame"][side]
            fl = flow_of(frames.get(side, {}).get(num)) if num is not None else None
            if fl is not None:
                row["flow"] = out[row["conn"]] = fl
                break
    return out


_NOTE_KINDS = (
    ("unsupported", ("unsupported",), "frames colo-compare does not parse (passed through on the primary, "
                                      "dropped on the secondary)"),
    ("truncated", ("uncomparable",), "frames cut short by the capture's snaplen: not compared"),
    ("undefined", ("undefined",), "reads QEMU makes outside defined memory (its result is not reproducible)"),
    ("would_crash", ("qemu_crash",), "frames that would crash QEMU"),
    ("queue_drops", ("queue_full_drop",), "frames dropped on a full queue (max_queue_size)"),
    ("table_resets", ("table_reset",), "connection table resets (every queue emptied)"),
)


def notes(events: pd.DataFrame, summary: dict, top: int) -> list[dict]:
    """Anomalies with frame numbers (the first ``top`` of each kind, and the count), then the
    summary's warnings and read error."""
    kind = events["kind"]
    out = []
    for name, kinds, label in _NOTE_KINDS:
        m = mask(kind, *kinds)
        count = int(m.sum())
        if not count:
            continue
        idx = np.flatnonzero(m)[:top]
        sub = events.iloc[idx]
        frames = []
        for t, s, c, pf, sf in zip(sub["time_ns"], sub["side"].astype(str), sub["cause"].astype(str),
                                   sub["primary_frame"], sub["secondary_frame"]):
            num = int(pf) if s == "primary" or (s != "secondary" and pf >= 0) else int(sf)
            frames.append({"time_ns": int(t), "side": s, "frame": num if num >= 0 else None, "cause": c})
        out.append({"kind": name, "label": label, "count": count, "by_cause": _counts(events["cause"], m),
                    "shown": len(frames), "frames": frames})
    warnings = list(summary.get("warnings") or []) + list((summary.get("source") or {}).get("warnings") or [])
    if warnings:
        out.append({"kind": "warnings", "label": "warnings", "count": len(warnings), "by_cause": {},
                    "shown": len(warnings), "frames": [], "messages": [str(w) for w in warnings]})
    if summary.get("error"):
        out.append({"kind": "read_error", "label": "the replay stopped at a read error (results up to it)",
                    "count": 1, "by_cause": {}, "shown": 1, "frames": [], "messages": [str(summary["error"])]})
    return out


def verdict(numbers: dict, summary: dict, saved: bool = False) -> dict:
    """``status`` (interrupted / partial / empty / diverged / clean), one ``text`` line and the
    ``exit_status`` of the project's exit-code contract (``output.verdict``): 0 no checkpoint
    request, 1 requests, 2 a read error or nothing compared, 130 interrupted.  ``nothing_compared``
    is the summary's reason (a saved summary from before it existed: no frame on either side).
    ``saved``: a saved run that was interrupted is 2, partial results (130 would say that the
    report itself was interrupted)."""
    req, ck = numbers["checkpoint_requests"], numbers["checkpoints"]
    nothing = summary.get("nothing_compared")
    if "nothing_compared" not in summary and not numbers["released"] and not req \
            and not (numbers["frames_primary"] or numbers["frames_secondary"]):
        nothing = "no frame reached colo-compare"
    error, interrupted = summary.get("error"), bool(summary.get("interrupted"))
    code = exit_status(requests=req, nothing_compared=nothing, error=error, interrupted=interrupted)
    if saved and code == EXIT_INTERRUPTED:
        code = EXIT_BAD_INPUT
    line = verdict_line(numbers["requests_by_cause"], nothing, error, interrupted)
    crash = f"; {numbers['qemu_crashes']} frames would crash QEMU" if numbers["qemu_crashes"] else ""
    status = ("interrupted" if interrupted else "partial" if error is not None else "empty" if nothing is not None
              else "diverged" if req else "clean")
    detail = (f" in {numbers['roots']} episodes, {ck} checkpoints performed" if req
              else f"; {numbers['released']} frames released, {ck} checkpoints (periodic or measured)")
    if error is not None:
        detail += f" ({error})"
    return {"status": status, "exit_status": code, "text": line + detail + crash, "nothing_compared": nothing}
