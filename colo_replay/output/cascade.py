"""The cascade signature of a raw replay of two free-running VMs' captures.

When a replay models checkpoints that did not happen when the captures were taken (a pair
captured without COLO, replayed with ``--after-checkpoint raw``), every flush releases primaries
whose secondary copies are still on their way: after the flush those copies are compared with
the connection's next primaries, miscompare (or wait until they expire) and request the next
checkpoint.  One divergence then becomes a chain of checkpoints, each started by the connections
the previous flush left misaligned.

The signature, per flush: the first checkpoint request after it is on a connection that flush
released or dropped frames of, within ``window_ns`` (default: compare_timeout + expiry scan cycle,
so that a copy left behind and expiring counts too).  A replay shows the cascade when at least
``min_count`` flushes have that signature and they are at least ``min_share`` of the flushes
followed by a request.  Vectorised work on the timeline (a DataFrame, or the collector's numpy
columns with the kind / cause codes).
"""

from __future__ import annotations

import numpy as np

__all__ = ["cascade_signature"]


def _codes(col, name: str, of: str = "kind") -> np.ndarray:
    if isinstance(col, np.ndarray):             # the collector's columns: the enum values
        from .timeline import CAUSE_CODES, KIND_CODES
        return col == (KIND_CODES if of == "kind" else CAUSE_CODES)[name]
    if hasattr(col, "cat"):
        cats = col.cat.categories
        if name not in cats:
            return np.zeros(len(col), dtype=bool)
        return col.cat.codes.to_numpy() == cats.get_loc(name)
    return col.to_numpy() == name


def cascade_signature(df, window_ns: int = 4_000_000_000, min_count: int = 3, min_share: float = 0.25) -> dict:
    """``{"flushes": n, "followed": n, "re_diverged": n, "cascade": bool}``: of ``n`` flushes,
    ``followed`` had a checkpoint request after them and ``re_diverged`` had it on a connection
    the flush had frames of, within ``window_ns`` (see the module docstring)."""
    kind = df["kind"]
    is_flush = _codes(kind, "flush")
    is_req = _codes(kind, "checkpoint_request")
    flushed = _codes(df["cause"], "flush", "cause") & (_codes(kind, "release") | _codes(kind, "secondary_dropped"))
    pos_f = np.flatnonzero(is_flush)
    pos_r = np.flatnonzero(is_req)
    out = {"flushes": int(len(pos_f)), "followed": 0, "re_diverged": 0, "cascade": False}
    if not len(pos_f) or not len(pos_r):
        return out
    t = np.asarray(df["time_ns"])
    conn = np.asarray(df["conn"])
    # the first request after each flush (by timeline position), if any
    nxt = np.searchsorted(pos_r, pos_f, side="right")
    has = nxt < len(pos_r)
    # a request that is the first after several flushes counts for the last of them only
    last_of = np.ones(len(pos_f), dtype=bool)
    last_of[:-1] = nxt[:-1] != nxt[1:]
    sel = has & last_of
    f_pos = pos_f[sel]
    r_pos = pos_r[nxt[sel]]
    out["followed"] = int(len(f_pos))
    if not len(f_pos):
        return out
    soon = (t[r_pos] - t[f_pos]) <= window_ns
    # the connections each flush released or dropped frames of: the flushed rows after its row
    # and before the next flush row (the driver writes them together)
    fl_pos = np.flatnonzero(flushed)
    owner = np.searchsorted(pos_f, fl_pos, side="right") - 1      # index into pos_f
    pairs = set(zip(owner.tolist(), conn[fl_pos].tolist()))
    idx = np.flatnonzero(sel)
    hit = [bool(s) and (int(i), int(conn[r])) in pairs for i, r, s in zip(idx, r_pos, soon)]
    n = int(sum(hit))
    out["re_diverged"] = n
    out["cascade"] = n >= min_count and n >= min_share * len(f_pos)
    return out
