"""Which QEMU releases would decide a root differently: its connection, replayed in every row.

``explain`` shows a root divergence as the replay's QEMU row decided it.  A user on another
release asks whether theirs would have decided the same.  Replaying the whole pair once per
behaviour row (eleven replays) costs eleven times the replay; instead this replays **only the
root's connection**, from the flush before the root (colo-compare's queues are empty after a
flush) up to the root's own frames, in a fresh ``Engine`` of every row A..K
(``engine.releases.ROW_RELEASES``), and reports the rows whose first decision differs, grouped
into release ranges:

    {"on": "its connection's frames alone", "frames": 7, "rows": [
        {"rows": "A-G", "releases": "4.1.0; 4.1.1, 4.2.x; ...; 6.2.0",
         "verdict": "release compared_equal P#11", "same_as_replay": false},
        {"rows": "H-K", "releases": "7.0.0; ...", "verdict": "checkpoint_request miscompare P#11",
         "same_as_replay": true}]}

It is a local what-if, said so in the result: other connections are not replayed (a table reset
or a checkpoint they would cause is not seen), nor the connection's TCP state from before the
flush.  So it is given only when the replay's own row, run the same way, makes the decision the
replay made (the same cause on the same primary frame); otherwise ``None``.  A connection with
more than ``MAX_FRAMES`` frames in that span is not replayed.
"""

from __future__ import annotations

from ..engine.compare import Engine
from ..engine.events import Cause, EventKind
from ..engine.profiles import ROWS, CompareConfig
from ..engine.releases import ROW_RELEASES

__all__ = ["MAX_FRAMES", "row_verdicts"]

MAX_FRAMES = 4000
"""At most this many frames (both sides) of the root's connection are replayed per row."""

_DECIDED = ("miscompare", "size_mismatch", "ack_gate")


def row_verdicts(frames: list, root_primary: int, cause: str, row: str, config: CompareConfig) -> dict | None:
    """``frames``: the connection's ``(time_ns, side, number, Picked)`` from the flush before the
    root up to its frames, any order; ``root_primary``: the root's primary frame number;
    ``cause``: the replay's cause for it; ``row``: the replay's row; ``config``: its
    compare_timeout / expired_scan_cycle / max_queue_size / vnet_hdr_support.  Returns the
    result described in the module docstring, or ``None``."""
    if cause not in _DECIDED or not frames or len(frames) > MAX_FRAMES or row not in ROWS:
        return None
    ordered = sorted(frames, key=lambda f: (f[0], f[1], f[2]))
    verdicts = {r: _first_decision(ROWS[r], config, ordered, root_primary) for r in ROWS}
    if verdicts[row] != f"checkpoint_request {cause} P#{root_primary}":
        return None                 # the connection alone does not show the replay's decision
    groups: list[dict] = []
    for r in sorted(ROWS):
        v = verdicts[r]
        if groups and groups[-1]["verdict"] == v and groups[-1]["_last"] == chr(ord(r) - 1):
            groups[-1]["_last"] = r
            groups[-1]["_rows"].append(r)
        else:
            groups.append({"verdict": v, "_last": r, "_rows": [r]})
    out = []
    for g in groups:
        rows = g["_rows"]
        out.append({"rows": rows[0] if len(rows) == 1 else f"{rows[0]}-{rows[-1]}",
                    "releases": _releases(rows), "verdict": g["verdict"],
                    "same_as_replay": g["verdict"] == verdicts[row]})
    return {"on": "its connection's frames alone", "frames": len(ordered), "rows": out}


def _first_decision(profile, config: CompareConfig, ordered: list, root_primary: int) -> str:
    """The first checkpoint request the engine makes on these frames, or what became of the
    root's primary frame (released, dropped, still waiting) once all were fed."""
    try:
        eng = Engine(profile, config, start_ns=ordered[0][0])
    except ValueError:
        return "not configurable so (a knob this release does not have)"
    fate = None
    for t, side, num, pk in ordered:
        vnet = pk.vnet_hdr_len or 0
        for ev in eng.feed(side, pk.data, t, vnet, ident=("PS"[side], num)):
            kind = ev.kind
            if kind == EventKind.CHECKPOINT_REQUEST:
                return f"checkpoint_request {Cause(ev.cause).name.lower()} {_label(ev)}"
            if kind == EventKind.QEMU_CRASH:
                return f"qemu_crash {Cause(ev.cause).name.lower()}"
            if ev.frame is not None and getattr(ev.frame, "ident", None) == ("P", root_primary) \
                    and kind in (EventKind.RELEASE, EventKind.PRIMARY_LOST, EventKind.QUEUE_FULL_DROP):
                fate = f"{EventKind(kind).name.lower()} {Cause(ev.cause).name.lower()} P#{root_primary}"
    return fate or f"no request: P#{root_primary} still waiting"


def _label(ev) -> str:
    ident = getattr(ev.frame, "ident", None)
    return f"{ident[0]}#{ident[1]}" if isinstance(ident, tuple) else "?"


def _releases(rows: list) -> str:
    return "; ".join(ROW_RELEASES[r] for r in rows)
