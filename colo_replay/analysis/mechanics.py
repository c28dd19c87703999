"""Checkpoint requests that colo-compare's own mechanics cause, recognised on the timeline.

Two VMs that send the same data can still make colo-compare request checkpoints, and on a
long free-running pair most requests may be of this kind.  They are real QEMU decisions (the
replay is exact), but there is nothing to find in the guests: explain gives them a class of
their own, with the evidence, instead of presenting them as divergences.

* ``segmentation-residue``: a TCP frame waited ``compare_timeout`` and expired although its
  twin on the other side (same connection, same sequence range) was released.  colo-compare
  pairs segments by queue position, and the two VMs cut this connection's stream into
  different segments (the timeline shows a partial compare on it: a primary matched against
  part of a longer secondary).  A fully compared secondary then stays queued until the next
  primary of the connection takes it (spec 2.4, "a fully consumed secondary stays queued"),
  so a segment without payload (an ACK, a FIN) meets the wrong partner and its twin's copy is
  left over.  The remedy is the old COLO advice: TSO/GSO off in both guests.
* ``compare-order`` (TCP): the same, on a connection whose segments all matched one for one.
* ``table-reset``: a request on a connection created after a connection-table reset (the
  16,386th connection: ``connection_get`` clears the table, and 7.1+ drop every queued frame,
  spec 1.7), on a flow whose frames the reset discarded.  The discarded primary's secondary
  copy then meets the flow's next primary (a miscompare), or waits alone and expires.

``classify(divergences, events, frames)`` sets ``details["mechanics"]`` and a note on each
divergence these explain; ``Divergence.field`` then names the class.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

SEGMENTATION = "segmentation-residue"
COMPARE_ORDER = "compare-order"
TABLE_RESET = "table-reset"

NOT_THE_GUESTS = frozenset({SEGMENTATION, COMPARE_ORDER, TABLE_RESET, "inverted-tcp-test", "padded-syn-ack",
                            "rewriter-handshake-reset"})
"""Class fields of requests with nothing to find in the guests' output: colo-compare's own
mechanics (this module, ``explain._compare_order_into``), QEMU 4.1's inverted TCP test, and the
COLO artefacts of ``colo_artefacts``."""

RESET_FRAMES = 10_000
"""At most this many frames discarded by table resets are read to learn their flows."""

def reach_ms(config=None) -> int:
    """How long after a reset a request can still follow from it: compare_timeout, then up to
    two scan cycles before the expiry is found (``config``: the replay's ``CompareConfig``;
    QEMU 5.2+'s defaults, 3000 and 1000 ms, for what it leaves unset)."""
    timeout = getattr(config, "compare_timeout", None) or 3000
    cycle = getattr(config, "expired_scan_cycle", None) or 1000
    return timeout + 2 * cycle


def reset_discards(events: pd.DataFrame) -> list[dict]:
    """The connection-table resets of a timeline: ``[{time_ns, first_conn, primary: [numbers],
    secondary: [numbers]}]``, where ``first_conn`` is the index of the first connection made
    after it (connections are numbered in creation order) and the lists name the frames it
    discarded (``primary_lost`` and ``secondary_dropped``/``table_reset`` rows)."""
    # (comparisons on the categorical columns: no string per row of a long timeline)
    at = np.flatnonzero((events["kind"] == "table_reset").to_numpy())
    if not len(at):
        return []
    lost = (events["kind"] == "primary_lost").to_numpy()
    dropped = (events["kind"] == "secondary_dropped").to_numpy()
    by_reset = (events["cause"] == "table_reset").to_numpy()
    t = events["time_ns"].to_numpy()
    conn = events["conn"].to_numpy()
    pf = events["primary_frame"].to_numpy()
    sf = events["secondary_frame"].to_numpy()
    top = np.maximum.accumulate(np.where(conn >= 0, conn, -1))     # highest connection so far
    out = []
    for i in at:
        gone = (t == t[i]) & by_reset
        # (a connection whose frames were all still queued has no row before the reset: its
        # discarded frames' rows, which follow the reset's, name it)
        first = max(int(top[i]), int(conn[gone].max()) if gone.any() else -1) + 1
        out.append({"time_ns": int(t[i]), "first_conn": first,
                    "primary": [int(n) for n in pf[gone & lost] if n >= 1],
                    "secondary": [int(n) for n in sf[gone & dropped] if n >= 1]})
    return out


def frames_to_read(resets: list[dict]) -> tuple[set, set]:
    """The discarded frames whose flows ``classify`` needs (``RESET_FRAMES`` at most)."""
    need = (set(), set())
    budget = RESET_FRAMES
    for r in resets:
        for side, key in ((0, "primary"), (1, "secondary")):
            take = r[key][:max(0, budget)]
            need[side].update(take)
            budget -= len(take)
    return need


def classify(divergences: list, rows: "ConnRows", frames: dict, flow_of, resets: list[dict],
             reach: int = 5000) -> None:
    """Set ``details["mechanics"]`` (and a note) on each divergence that colo-compare's own
    mechanics explain.  ``rows``: the timeline's ``ConnRows``; ``frames``: side -> {number:
    Picked} read for the explain, the resets' discarded frames among them; ``flow_of(picked)``:
    a frame's flow key, as ``Divergence.flow`` gives it (``flow_key``); ``reach``: ``reach_ms``."""
    reset_flows = []
    for r in resets:
        flows: dict = {}
        for side, key in ((0, "primary"), (1, "secondary")):
            for n in r[key]:
                pk = frames[side].get(n)
                if pk is not None:
                    flows.setdefault(flow_of(pk), []).append(("PS"[side], n))
        reset_flows.append((r, flows))
    for d in divergences:
        if d.details.get("mechanics") or d.details.get("compare_order") or \
                d.primary_frame < 1 and d.secondary_frame < 1:
            continue
        found = _after_reset(d, reset_flows, reach) or \
            (_residue(d, rows, resets) if d.cause == "expired" and d.protocol == "tcp" else None)
        if found is not None:
            d.details["mechanics"] = found
            d.notes.insert(0, found.pop("note"))


def flow_key(flow: dict) -> tuple:
    """The flow of a divergence (``Divergence.flow``) as a key (both sides' frames are the
    guests' outbound ones: one direction)."""
    return (flow.get("ip_proto"), flow.get("src"), flow.get("sport"), flow.get("dst"), flow.get("dport"))


def _after_reset(d, reset_flows: list, reach: int) -> dict | None:
    key = flow_key(d.flow)
    for r, flows in reversed(reset_flows):
        if r["time_ns"] > d.time_ns:     # (at the same instant: conn >= first_conn says it came after)
            continue
        if d.time_ns - r["time_ns"] > reach * 1_000_000 or d.conn < r["first_conn"]:
            return None
        gone = flows.get(key)
        if not gone:
            return None
        names = ", ".join(f"{s}#{n}" for s, n in gone[:6]) + (f" and {len(gone) - 6} more" if len(gone) > 6 else "")
        return {"name": TABLE_RESET, "reset_ns": r["time_ns"], "discarded": [f"{s}#{n}" for s, n in gone],
                "note": (f"colo-compare's connection table was reset {(d.time_ns - r['time_ns']) / 1e6:.0f} ms "
                         f"before (its 16,386th connection: connection_get clears the table, and QEMU 7.1+ "
                         f"drop every queued frame); it discarded {names} of this flow, so the flow's "
                         f"frames after it met the wrong counterparts. Not a divergence in the guests.")}
    return None


class ConnRows:
    """The timeline's rows grouped by connection (sorted once, each connection's rows in timeline
    order), for the per-divergence lookups of explain and this module."""

    def __init__(self, events: pd.DataFrame):
        conn = events["conn"].to_numpy()
        order = np.argsort(conn, kind="stable")
        # (int32 row numbers where they fit: half the memory of argsort's int64, kept for the
        # whole explain; 8M rows of the 4M-frame pairs)
        self.order = order.astype(np.int32) if len(order) < 2**31 else order
        del order
        self.conn = conn[self.order]
        self.events = events

    def of(self, conn: int) -> pd.DataFrame:
        # (the keys in the column's own dtype: searchsorted would otherwise cast the whole sorted
        # column to the keys' int64 at every call, a timeline-sized copy each time)
        keys = np.array([conn, conn + 1], dtype=self.conn.dtype)
        lo, hi = np.searchsorted(self.conn, keys)
        return self.events.iloc[self.order[lo:hi]]


def _residue(d, rows: ConnRows, resets: list[dict] = ()) -> dict | None:
    """An expired TCP frame whose twin on the other side was released: see the module docstring.
    On a connection made after a table reset, the twin may have been released in the flow's
    entry before it (found by its sequence range: random ISNs make it the flow's): then the
    reset is the mechanism."""
    c = rows.of(d.conn)
    req = c[(c["kind"].astype(str) == "checkpoint_request") & (c["time_ns"] == d.time_ns)]
    if not len(req):
        return None
    w = req.iloc[0]
    seq, end = int(w["tcp_seq"]), int(w["tcp_seq_end"])
    if seq < 0:
        return None
    waiting_primary = str(w["side"]) == "primary"
    twin_kind = "secondary_dropped" if waiting_primary else "release"
    col = "secondary_frame" if waiting_primary else "primary_frame"
    kind = c["kind"].astype(str)
    twins = c[(kind == twin_kind) & (c["tcp_seq"] == seq) & (c["tcp_seq_end"] == end) &
              (c["time_ns"] <= d.time_ns) & (c[col] >= 1)]
    if not len(twins):
        return _twin_before_reset(d, rows.events, seq, end, waiting_primary, resets)
    twin = int(twins.iloc[0][col])
    cause = c["cause"].astype(str)
    partial = c[(kind == "release") & (cause == "compared_equal") & (c["size"] != c["other_size"])]
    waiting = f"{'P' if waiting_primary else 'S'}#{int(w['primary_frame' if waiting_primary else 'secondary_frame'])}"
    twin_label = f"{'S' if waiting_primary else 'P'}#{twin}"
    if len(partial):
        ex = partial.iloc[0]
        return {"name": SEGMENTATION, "waiting_frame": waiting, "twin": twin_label,
                "partial_compare": [f"P#{int(ex['primary_frame'])}", f"S#{int(ex['secondary_frame'])}"],
                "note": (f"segmentation residue, not a divergence: {twin_label}, the twin of the waiting "
                         f"{waiting} (same sequence range), was released; the two VMs cut this connection's "
                         f"stream into different segments (P#{int(ex['primary_frame'])}, {int(ex['size'])} bytes, "
                         f"was matched against part of S#{int(ex['secondary_frame'])}, {int(ex['other_size'])} "
                         f"bytes), colo-compare pairs segments by queue position, and {waiting} was left "
                         f"without a partner until compare_timeout")}
    return {"name": COMPARE_ORDER, "waiting_frame": waiting, "twin": twin_label,
            "note": (f"compare order, not a divergence: {twin_label}, the twin of the waiting {waiting} (same "
                     f"sequence range), was released, paired by colo-compare with another frame of the "
                     f"connection; {waiting} was left without a partner until compare_timeout")}


def _twin_before_reset(d, events: pd.DataFrame, seq: int, end: int, waiting_primary: bool,
                       resets: list[dict]) -> dict | None:
    """The waiting frame's twin released in an entry of the flow older than the last table reset
    before the request, when the request's connection was made after that reset."""
    before = [r for r in resets if r["time_ns"] <= d.time_ns]
    if not before or d.conn < before[-1]["first_conn"]:
        return None
    reset = before[-1]
    col = "secondary_frame" if waiting_primary else "primary_frame"
    hit = np.flatnonzero((events["tcp_seq"].to_numpy() == seq) & (events["tcp_seq_end"].to_numpy() == end) &
                         (events["kind"] == ("secondary_dropped" if waiting_primary else "release")).to_numpy() &
                         (events["conn"].to_numpy() < reset["first_conn"]) & (events[col].to_numpy() >= 1) &
                         (events["time_ns"].to_numpy() <= reset["time_ns"]))
    if not len(hit):
        return None
    twin = f"{'S' if waiting_primary else 'P'}#{int(events[col].iloc[hit[0]])}"
    waiting = f"{'P' if waiting_primary else 'S'}#{d.primary_frame if waiting_primary else d.secondary_frame}"
    return {"name": TABLE_RESET, "reset_ns": reset["time_ns"], "waiting_frame": waiting, "twin": twin,
            "note": (f"colo-compare's connection table was reset {(d.time_ns - reset['time_ns']) / 1e6:.0f} ms "
                     f"before (its 16,386th connection): {twin}, the twin of the waiting {waiting} (same "
                     f"sequence range), was released in the flow's entry before the reset, and the new "
                     f"entry had nothing to pair {waiting} with. Not a divergence in the guests.")}
