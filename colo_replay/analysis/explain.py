"""Why did it diverge: the root divergences of a replay, explained down to the byte and field.

``explain_timeline`` takes a replay's timeline and a way to fetch frames by number, and gives
one ``Divergence`` per **distinct divergence**:

* the **root** of each episode (``episodes``: its first checkpoint request; the requests after
  it on its connection, up to the flush, are its consequences);
* a **concurrent root**: the first request of *another* connection in the same episode.
  colo-compare's queues are per connection, so that request was not caused by the root: it is
  an independent divergence the same flush happened to clear (flagged ``concurrent``; it costs
  no checkpoint of its own, the episode's checkpoints are the root's).

For each: the flow, both frames (numbers as the replay gave them: Wireshark numbering for
captures, stream order for chardev streams), the first differing byte as colo-compare compares
(TCP: each side from its own header, lined up by sequence number when the segments overlap,
from both payloads' starts when they do not; UDP / ICMP: from the
L4 header; other protocols: the whole frame after the vnet header; differences in checksums
skipped when another byte differs), its offset in the frame and in the L4 payload, a hex window
and the fields covering it on both sides: the application field tshark named and the package's
own L2-L4 field.  By cause: a size mismatch gives both sizes and what is extra; an ACK gate both
ACK numbers; an expired frame its age and the nearest frame of its connection on the other
side with their first difference (nearest by the time the timeline shows it, the best the
timeline knows).  With ``other`` (the timeline of a replay of the same captures with the other
QEMU profile), each divergence says what that profile decided about the same frame when it
decided differently; a 4.1 replay's TCP miscompare whose compared payloads are identical is
reported as 4.1's inverted TCP test (spec Q1).

Then the **classes** (``classes.group_classes``) and the JSON schema (``SCHEMA``, documented
in ``Explanation.to_dict``).  Pure analysis: no replay is run here (``api.explain`` wires).

**What it costs is what it shows.**  Every divergence gets the cheap part (flow, first
differing byte, L2-L4 field: what the selection by flow and the classes need).  The rest is
done for the divergences shown only: the hex window, and tshark, which dissects just their
frames plus one *representative* per group of the divergences not shown (same cause, protocol,
L2-L4 field, service port and payload offset: the same application field in practice), at most
``NAMED_GROUPS`` groups, largest first.  The other members of a group take its representative's
application field name for the classes (``named_from`` in their field entry); divergences beyond
those groups keep their L2-L4 name.  tshark runs over temporary pcapngs of at most
``TSHARK_BATCH`` divergence frames each, one per side, its PDML streamed (``appfields``), each
run with a timeout that scales with its frames.  A TCP divergence's frame goes with its
connection's frames, both directions, among the ``CONTEXT_BEFORE`` capture frames before it and
the ``CONTEXT_AFTER`` after it (``_context``): the earlier segments of a PDU tshark reassembles
(its fields are put back in their frames, ``appfields``) and the handshake a dissector needs.  So
``--limit``, ``--request`` and ``--frame`` bound the dissection, and a hung or crawling tshark
costs seconds, not minutes.  Measured on ``bench/make_free_pair.py --frames 100000 --seed 1``
(``explain P S --json --no-other-profile``, 6 divergences, 2 of them TCP): 1.03 s before the
context, 1.29 s with it (one more read of each capture up to the last frame asked for), the same
peak RSS (163 MB).

When the capture has only the guest's direction of a connection and tshark names nothing better
than the payload, ``likely`` guesses the field from the bytes, marked ``likely``, with a note that
tshark needs the other direction.  After naming, ``_chain_consequences`` makes a later divergence
that follows from an earlier one (other TLS/SSH keys, a session id carried on) a consequence of
that root (``consequence_of``; the root's ``details["chain"]``).
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field as _dc_field
from datetime import datetime, timezone
from typing import Callable, Iterable

import numpy as np
import pandas as pd

from . import fields as _f
from . import mechanics
from .appfields import app_field_at, app_fields, tshark_timeout
from .classes import group_classes
from .episodes import episodes
from .hexdiff import hexdiff
from .likely import GENERIC_FIELDS, likely_field

__all__ = ["SCHEMA", "Selection", "Divergence", "Explanation", "explain_timeline", "DIVERGENCE_COLUMNS"]

SCHEMA = "colo-replay/explain/1"

NAMED_GROUPS = 256
"""At most this many groups of divergences not shown get an application field name from a
representative (two frames each in tshark): enough for every distinct field of a real pair,
bounded for a hostile one."""
ORDER_WINDOW = 8
"""A datagram miscompare is checked for the compare-order artefact against this many frames
either side of each of its frames, in the capture and along its connection on the timeline
(``_order_neighbours``): enough for the frames a flow has waiting at once in practice (a few),
bounded per divergence."""
ORDER_FRAMES = 200_000
"""At most this many neighbouring frames are read for that check over the whole explain (the
first divergences in time are checked; the rest are not, and ``counts`` says how many)."""
FIFO_ROWS = "QEMU 4.1.0 to 6.2.x (behaviour rows A to G)"
"""The releases whose non-TCP queues are compared oldest primary first (no tail pop: 7.0's
a5f038e2c5 made it newest first), so two waiting primaries meet their copies in order."""
CONTEXT_BEFORE = 64
"""With a TCP divergence's frame, tshark is given the frames of its connection (both
directions) among the ``CONTEXT_BEFORE`` capture frames before it: the earlier segments of a
PDU spanning segments, and the handshake a dissector needs (SSH, TLS, HTTP responses to HEAD).
Bounded per divergence, never the whole capture."""
CONTEXT_AFTER = 16
"""... and among the ``CONTEXT_AFTER`` frames after it: the later segments that complete the
PDU (its fields are dissected at its last segment, and put back in this frame)."""
TSHARK_BATCH = 2000
"""Frames per tshark run (one temporary pcapng each): bounds what one run holds and how long a
run may take before its timeout (``appfields.tshark_timeout``)."""

DIVERGENCE_COLUMNS = ("request", "episode", "concurrent", "time_ns", "cause", "side", "conn", "protocol",
                      "src", "dst", "sport", "dport", "primary_frame", "secondary_frame", "offset",
                      "secondary_offset", "payload_offset", "field", "primary_value", "secondary_value",
                      "consequences", "checkpoints", "consequence_of", "note")
"""Columns of ``Explanation.roots`` (one row per divergence, in time order):

    request          the divergence's request number (1 = the replay's first checkpoint request)
    episode          its episode (from 0)
    concurrent       True for the first request of another connection in an episode
    time_ns, cause, side, conn    the request's timeline values
    protocol, src, dst, sport, dport   the flow (sport/dport -1 when the protocol has none)
    primary_frame, secondary_frame     frame numbers (-1 when none); for an expired frame the
                     other side's is the nearest candidate (``details["candidate"]``)
    offset, secondary_offset, payload_offset   the first differing byte (-1 when none)
    field, primary_value, secondary_value      the innermost field covering it, both values
    consequences     later requests of the episode on the same connection, and the divergences
                     chained to it (``consequence_of``) with theirs
    checkpoints      the checkpoints the episode cost (0 for a concurrent root), with its chain's
    consequence_of   the request of the root whose state change this divergence follows from
                     (a later TLS record after a ServerHello random that differed), -1 for a root
    note             the other profile's differing verdict, 4.1's inverted test, ... ("" if none)
"""


@dataclass
class Selection:
    """Which divergences to explain (all when empty): ``request`` N (the divergence that
    checkpoint request N belongs to, 1-based), ``frame`` ``"P#N"`` / ``"S#N"`` (the divergence
    whose request involves that frame), ``flow`` (words that must all appear in the flow text,
    e.g. ``"udp :53"``), ``limit`` (at most this many, earliest first)."""

    request: int | None = None
    frame: str | None = None
    flow: str | None = None
    limit: int | None = None

    def parse_frame(self) -> tuple[int, int] | None:
        """``frame`` as (side, number); ValueError when it is not ``P#N`` / ``S#N``."""
        if self.frame is None:
            return None
        text = self.frame.strip().upper()
        digits = text[2:]
        # ASCII digits only (str.isdigit takes '²'), and no more than a frame number can have
        # (int() refuses 4,300 digits with a line naming no option)
        if len(text) < 3 or text[0] not in "PS" or text[1] != "#" or not (digits.isascii() and digits.isdigit()) \
                or len(digits) > 19:
            raise ValueError(f"--frame {_short(self.frame, 40)!r}: expected P#N or S#N (a primary or secondary "
                             f"frame number)")
        return (0 if text[0] == "P" else 1), int(digits)


@dataclass
class Divergence:
    """One explained divergence (see the module docstring); ``to_dict`` is its JSON entry."""

    request: int
    episode: int
    concurrent: bool
    time_ns: int
    cause: str
    side: str
    conn: int
    flow: dict
    protocol: str
    primary_frame: int
    secondary_frame: int
    consequences: int
    checkpoints: int
    offset: int | None = None
    secondary_offset: int | None = None
    payload_offset: int | None = None
    fields: list = _dc_field(default_factory=list)      # [{name, primary, secondary}], innermost first
    hex: object = None                                   # HexDiff or None
    details: dict = _dc_field(default_factory=dict)
    notes: list = _dc_field(default_factory=list)
    other_profile: dict | None = None
    consequence_of: int | None = None                     # the request of the root it follows from
    _field_len: int = 1 << 30                             # length of the L2-L4 field named (if any)

    @property
    def field(self) -> str:
        """The class's field: the innermost field named (in its context when that has a hint of
        its own: ``json.value.string (member request_id)``, ``classes.context_class``), or a marker
        (``inverted-tcp-test``, ``compare-order``, colo-compare's mechanics, a COLO artefact:
        ``padded-syn-ack``, ``rewriter-handshake-reset``)."""
        if self.details.get("inverted_tcp_test"):
            return "inverted-tcp-test"
        if self.details.get("compare_order"):
            return "compare-order"
        if self.details.get("mechanics"):
            return self.details["mechanics"]["name"]
        if self.details.get("colo_artefact"):
            return self.details["colo_artefact"]["name"]
        if not self.fields:
            return ""
        from .classes import context_class
        return context_class(self.fields[0]["name"], self.fields[0].get("context"))

    @property
    def class_key(self) -> dict:
        from .classes import class_key
        k = class_key(self.cause, self.protocol, self.field)
        return {"cause": k.cause, "protocol": k.protocol, "field": k.field}

    def to_dict(self) -> dict:
        return {
            "request": self.request, "episode": self.episode, "concurrent": self.concurrent,
            "time_ns": self.time_ns, "time": _iso(self.time_ns), "cause": self.cause, "side": self.side,
            "conn": self.conn, "flow": self.flow,
            "primary_frame": _num(self.primary_frame), "secondary_frame": _num(self.secondary_frame),
            "offset": self.offset, "secondary_offset": self.secondary_offset, "payload_offset": self.payload_offset,
            "fields": self.fields, "class": self.class_key, "consequences": self.consequences,
            "checkpoints": self.checkpoints, "consequence_of": self.consequence_of, "details": self.details,
            "other_profile": self.other_profile, "notes": self.notes,
            "hex": self.hex.to_dict() if self.hex is not None else None,
        }


@dataclass
class Explanation:
    """The answer: ``divergences`` (selected, explained), ``classes`` (DataFrame over *all*
    divergences, ``classes.CLASS_COLUMNS``), ``counts`` (episodes, divergences, concurrent,
    requests, checkpoints), ``replay`` (profile and options), ``app_fields`` ("tshark" or the
    one line saying why application fields are not named)."""

    divergences: list
    classes: pd.DataFrame
    counts: dict
    replay: dict
    app_fields: str
    selection: dict
    frames: dict = _dc_field(default_factory=dict, repr=False)   # side -> {number: Picked} fetched
    timeline: object = _dc_field(default=None, repr=False)      # the replay explained (api.explain)

    @property
    def roots(self) -> pd.DataFrame:
        """The selected divergences as a DataFrame (``DIVERGENCE_COLUMNS``)."""
        rows = []
        for d in self.divergences:
            f = d.fields[0] if d.fields else {}
            fl = d.flow
            rows.append((d.request, d.episode, d.concurrent, d.time_ns, d.cause, d.side, d.conn, d.protocol,
                         fl.get("src"), fl.get("dst"), _neg(fl.get("sport")), _neg(fl.get("dport")),
                         d.primary_frame, d.secondary_frame, _neg(d.offset), _neg(d.secondary_offset),
                         _neg(d.payload_offset), f.get("name", ""), _s(f.get("primary")), _s(f.get("secondary")),
                         d.consequences, d.checkpoints, _neg(d.consequence_of), "; ".join(d.notes)))
        return pd.DataFrame(rows, columns=list(DIVERGENCE_COLUMNS))

    def to_frame(self) -> pd.DataFrame:
        """The selected divergences as a DataFrame (``roots``)."""
        return self.roots

    def to_dict(self) -> dict:
        """The JSON document (``SCHEMA``)::

            {"schema": "colo-replay/explain/1",
             "replay": {profile, after_checkpoint, ...}, "counts": {episodes, divergences,
             concurrent, requests, checkpoints, compare_order (divergences that are the
             compare-order artefact), order_unchecked (miscompares not checked for it:
             beyond ORDER_FRAMES), chained (divergences that are a root's consequence,
             ``_chain_consequences``: not counted in divergences), mechanics (divergences with
             nothing to find in the guests: a class of ``mechanics.NOT_THE_GUESTS``), roots
             (divergences - mechanics: what to look for in the guests)}, "app_fields": "tshark" | reason,
             "selection": {request, frame, flow, limit},
             "divergences": [{request, episode, concurrent, time_ns, time, cause, side, conn,
                 flow: {proto (tcp, udp, icmp, ip-<n>, ...), src, dst, sport, dport (null when
                 the protocol has none), ip_proto}, primary_frame, secondary_frame (null
                 when none), offset, secondary_offset, payload_offset (null when none),
                 fields: [{name, primary, secondary, context (a JSON value's "member KEY", an
                 HTTP line's "header NAME"; only when there is one), likely (true: guessed from
                 the bytes, tshark needing the other direction), named_from}] (innermost
                 first), class: {cause, protocol, field}, consequences, checkpoints,
                 consequence_of (the request of the root it follows from, or null),
                 details: {...by cause; chain: [{request, primary_frame, secondary_frame,
                 field}] of a root; consequence_of: {request, field, changed};
                 compare_order: {matching_frame, compared_with, copy_of, oldest_first_pairs_them};
                 mechanics: {name (segmentation-residue, compare-order, table-reset), ...evidence}},
                 other_profile: {profile, verdict, differs} | null, notes: [...],
                 hex: {offset, s_offset, width, rows: [...]} | null}],
             "classes": [{cause, protocol, field, count, share, checkpoints, first_ns, last_ns,
                 examples: [[P, S], ...], hint}]}
        """
        classes = []
        for row in self.classes.itertuples(index=False):
            classes.append({"cause": row.cause, "protocol": row.protocol, "field": row.field,
                            "count": int(row.count), "share": float(row.share),
                            "checkpoints": int(row.checkpoints), "first_ns": int(row.first_ns),
                            "last_ns": int(row.last_ns), "examples": [[int(a), int(b)] for a, b in row.examples],
                            "hint": row.hint})
        return {"schema": SCHEMA, "replay": self.replay, "counts": self.counts, "app_fields": self.app_fields,
                "selection": self.selection, "divergences": [d.to_dict() for d in self.divergences],
                "classes": classes}

    def headline(self) -> str:
        c = self.counts
        chained = f", {c['chained']} chained to a root" if c.get("chained") else ""
        line = (f"{c['episodes']} episodes, {c['divergences']} distinct divergences ({c['concurrent']} concurrent"
                f"{chained}); {c['requests']} checkpoint requests, {c['checkpoints']} checkpoints")
        if c.get("mechanics"):
            line += (f"\nroots: {c['roots']} in the guests' output; {c['mechanics']} from colo-compare's own "
                     f"mechanics or COLO itself, with nothing to find in the guests (their classes say which)")
        if len(self.classes):
            top = self.classes.iloc[0]
            line += f"\nheadline: {int(top['count'])} of {c['divergences']}: {_class_text(top)}"
        return line

    def format(self, hex_window: bool = True) -> str:
        """The human text: headline, classes with hints, then each selected divergence."""
        r = self.replay
        out = [f"colo-replay explain: QEMU {r.get('profile')}, after-checkpoint {r.get('after_checkpoint')}",
               self.headline()]
        if r.get("warning"):
            out.append(f"warning: {r['warning']}")
        if self.app_fields != "tshark":
            out.append(f"note: {self.app_fields}")
        if len(self.classes):
            out.append("")
            out.append("classes (cause, protocol, field):")
            for row in self.classes.itertuples(index=False):
                ex = ", ".join(f"{_label('P', a)}/{_label('S', b)}" for a, b in row.examples)
                out.append(f"  {int(row.count):>4} x {_class_text(row._asdict())}  "
                           f"{100 * float(row.share):.0f}% of checkpoints, {_iso(int(row.first_ns))} .. "
                           f"{_iso(int(row.last_ns))}; e.g. {ex}")
                out.append(f"         hint: {row.hint}")
        sel = {k: v for k, v in self.selection.items() if v is not None and k != "frame_rows"}
        out.append("")
        out.append(f"divergences ({len(self.divergences)} shown" + (f", selected by {_fmt_sel(sel)}" if sel else "")
                   + "):")
        if "frame_rows" in self.selection:
            rows = self.selection["frame_rows"]
            out.append(f"  {self.selection['frame']} is in no checkpoint request; the timeline has it as: "
                       + (", ".join(rows) if rows else "nothing (not fed, or no such frame)"))
        for d in self.divergences:
            out.append("")
            out.extend(_format_divergence(d, hex_window))
        return "\n".join(out)


# ---------------------------------------------------------------------------------- building


def explain_timeline(events: pd.DataFrame, fetch: Callable[[int, Iterable[int]], dict], *,
                     replay: dict | None = None, vnet_hdr_len: int = 0, inverted_tcp: bool = False,
                     other: pd.DataFrame | None = None, other_profile: str | None = None,
                     selection: Selection | None = None, tshark: bool = True, qemu_row: str | None = None,
                     config=None, offsets_ns: tuple = (0, 0)) -> Explanation:
    """Explain the divergences of a replay's timeline.

    ``fetch(side, numbers)`` returns ``{number: Picked}`` (``captures.pick``) for side 0
    (primary) or 1 (secondary), with the bytes as the replay fed them.  ``replay``: what to
    report of the replay (profile, options); ``vnet_hdr_len``: the frames' vnet header length
    (when ``Picked`` carries none); ``inverted_tcp``: the replay's profile has 4.1's inverted
    TCP test; ``other``/``other_profile``: the timeline of the other profile's replay (or a
    function of the divergences' primary and secondary frame numbers giving its rows about
    them, or None) and its name; ``selection``: which divergences to detail (the classes
    always cover all);
    ``tshark``: name application fields (one tshark run); ``qemu_row``, ``config``, ``offsets_ns``:
    the replay's behaviour row, its ``CompareConfig`` and each side's clock offset: with them,
    each divergence shown says which rows would decide differently (``row_verdicts``, in
    ``details["releases"]``).
    """
    selection = selection or Selection()
    eps = episodes(events)
    req = eps.requests
    n_req = len(req)
    req = req.assign(request=np.arange(1, n_req + 1))
    div_mask = (req["role"] == "root").to_numpy() | req["new_conn"].to_numpy(dtype=bool)
    group = pd.Series(list(zip(req["episode"].to_numpy(), req["conn"].to_numpy())), index=req.index)
    per_group = group.value_counts().to_dict()
    divs = req[div_mask]
    root_checkpoints = dict(zip(eps.roots["episode"].tolist(), eps.roots["checkpoints"].tolist()))
    counts = {"episodes": int(len(eps.roots)), "divergences": int(len(divs)),
              "concurrent": int(div_mask.sum() - len(eps.roots)), "requests": int(n_req),
              "checkpoints": int(_count(events, "checkpoint_start"))}

    # every divergence gets its protocol and field (the classes cover all); the selected ones
    # get the full explanation.  Frames are fetched once for all of them.
    # the highest frame number of each side in the timeline: the frames the replay read
    last = tuple(int(events[c].max()) if len(events) else 0 for c in ("primary_frame", "secondary_frame"))
    selected = _select(divs, req, group, selection, last)
    conn_rows = mechanics.ConnRows(events)
    expired_peer = _expired_candidates(conn_rows, divs)
    need = {0: set(), 1: set()}
    records = list(zip(divs.index, divs.to_dict("records")))
    for idx, row in records:
        for side, col in ((0, "primary_frame"), (1, "secondary_frame")):
            if row[col] >= 1:
                need[side].add(int(row[col]))
        cand = expired_peer.get(idx)
        if cand is not None:
            need[cand[0]].add(cand[1])
    # (neighbours only among the frames the replay read: past them a capture may not be readable)
    # (the datagrams the resync model superseded as owed carry no connection: a copy may be one)
    superseded = np.unique(events["secondary_frame"].to_numpy()[
        ((events["kind"] == "superseded") & (events["cause"] == "owed")).to_numpy()])
    order_checked = _order_neighbours(records, need, last, conn_rows, superseded)
    resets = mechanics.reset_discards(events)
    for side, nums in enumerate(mechanics.frames_to_read(resets)):
        need[side].update(n for n in nums if n <= last[side])
    frames = {side: (fetch(side, sorted(nums)) if nums else {}) for side, nums in need.items()}

    built = []
    for idx, row in records:
        ep = int(row["episode"])
        concurrent = row["role"] != "root"
        d = Divergence(
            request=int(row["request"]), episode=ep, concurrent=bool(concurrent), time_ns=int(row["time_ns"]),
            cause=str(row["cause"]), side=str(row["side"]), conn=int(row["conn"]), flow={}, protocol="",
            primary_frame=int(row["primary_frame"]), secondary_frame=int(row["secondary_frame"]),
            consequences=int(per_group[(row["episode"], row["conn"])]) - 1,
            checkpoints=0 if concurrent else int(root_checkpoints[ep]))
        _explain_one(d, row, frames, vnet_hdr_len, inverted_tcp, expired_peer.get(idx))
        if idx in order_checked:
            _compare_order_into(d, frames, vnet_hdr_len, order_checked[idx])
        built.append((idx, d))
    mechanics.classify([d for _i, d in built], conn_rows, frames, lambda pk: mechanics.flow_key(
        _flow_of(_f.dissect(pk.data, _vnet(pk, vnet_hdr_len)))), resets, mechanics.reach_ms(config))
    counts["compare_order"] = sum(1 for _i, d in built if d.details.get("compare_order"))
    # (only miscompares with both frames are checked for it: _order_neighbours)
    counts["order_unchecked"] = sum(1 for idx, d in built if idx not in order_checked and d.cause == "miscompare"
                                    and d.primary_frame >= 1 and d.secondary_frame >= 1)

    words = selection.flow.lower().split() if selection.flow else []
    chosen = [d for idx, d in built if idx in selected and _flow_matches(d, words)]
    if selection.limit is not None:
        chosen = chosen[:max(0, selection.limit)]
    for d in chosen:
        _hex_into(d, frames)
    if qemu_row is not None and config is not None:
        _releases_into(chosen, events, fetch, qemu_row, config, offsets_ns)
    # application fields: the divergences shown, plus a representative per group for the classes
    app_note = _name_app_fields(chosen, [d for _i, d in built], frames, vnet_hdr_len, fetch, last) if tshark else \
        "application fields not asked for (tshark off)"
    if app_note == "tshark":
        _chain_consequences(built, frames)
    chained = sum(1 for _i, d in built if d.consequence_of is not None)
    counts["divergences"] -= chained
    counts["chained"] = chained
    # what the user has to look for in the guests, apart from colo-compare's own mechanics
    counts["mechanics"] = sum(1 for _i, d in built if d.consequence_of is None and d.field in mechanics.NOT_THE_GUESTS)
    counts["roots"] = counts["divergences"] - counts["mechanics"]
    classes = group_classes(pd.DataFrame(
        [{"cause": d.cause, "protocol": d.protocol, "field": d.field, "time_ns": d.time_ns,
          "primary_frame": d.primary_frame, "secondary_frame": d.secondary_frame,
          "checkpoints": d.checkpoints if not d.concurrent else 0} for _i, d in built
         if d.consequence_of is None]))
    if other is not None and chosen:
        if callable(other):
            other = other({d.primary_frame for d in chosen if d.primary_frame >= 1},
                          {d.secondary_frame for d in chosen if d.secondary_frame >= 1})
        if other is not None:
            _other_verdicts(chosen, other, other_profile or "other")
    fr = selection.parse_frame()
    fate = None
    if fr is not None and not chosen:
        col = "primary_frame" if fr[0] == 0 else "secondary_frame"
        hit = events[events[col].to_numpy() == fr[1]]
        fate = sorted({f"{k} {c}" for k, c in zip(hit["kind"].astype(str), hit["cause"].astype(str))})
    return Explanation(divergences=chosen, classes=classes, counts=counts, replay=dict(replay or {}),
                       app_fields=app_note, frames=frames,
                       selection={"request": selection.request, "frame": selection.frame,
                                  "flow": selection.flow, "limit": selection.limit,
                                  **({"frame_rows": fate} if fate is not None else {})})


def _count(events: pd.DataFrame, kind: str) -> int:
    return int((events["kind"] == kind).sum())


def _select(divs: pd.DataFrame, req: pd.DataFrame, group: pd.Series, sel: Selection, last: tuple) -> set:
    """Timeline indexes of the divergences selected by request and frame (flow and limit are
    applied once the divergences are dissected); ``last``: the highest frame number of each
    side in the timeline (a frame past it is refused, as a request past the last is)."""
    keep = list(divs.index)
    by_group = {g: i for i, g in zip(divs.index, group[divs.index])}
    if sel.request is not None:
        if not 1 <= sel.request <= len(req):
            raise ValueError(f"--request {sel.request}: the replay has {len(req)} checkpoint requests (1..{len(req)})")
        i = req.index[sel.request - 1]
        keep = [k for k in keep if k == by_group[group[i]]]
    fr = sel.parse_frame()
    if fr is not None:
        side, num = fr
        if not 1 <= num <= last[side]:
            raise ValueError(f"--frame {sel.frame}: the replay's timeline has {('primary', 'secondary')[side]} frames "
                             f"1..{last[side]}")
        col = "primary_frame" if side == 0 else "secondary_frame"
        hits = req.index[req[col].to_numpy() == num]
        wanted = {by_group[group[i]] for i in hits}
        keep = [k for k in keep if k in wanted]
    return set(keep)


def _flow_matches(d: Divergence, words: list) -> bool:
    text = _flow_text(d.flow, d.protocol).lower()
    return all(w in text for w in words)


def _flow_text(flow: dict, protocol: str) -> str:
    src, dst = flow.get("src") or "?", flow.get("dst") or "?"
    if flow.get("sport") is not None:
        return f"{protocol} {src}:{flow['sport']} > {dst}:{flow['dport']}"
    return f"{protocol} {src} > {dst}"


def _expired_candidates(rows, divs: pd.DataFrame) -> dict:
    """For expired divergences: the frame of the same connection on the other side nearest in
    time to the waiting frame's arrival (request time - age): ``{index: (side, number)}``.
    ``rows``: the timeline's ``mechanics.ConnRows`` (each connection's rows in timeline order)."""
    out = {}
    exp = divs[divs["cause"] == "expired"]
    for idx, row in exp.iterrows():
        c = rows.of(int(row["conn"]))
        waiting_primary = row["primary_frame"] >= 1 and str(row["side"]) == "primary"
        other_side = 1 if waiting_primary else 0
        other_col = c["secondary_frame" if waiting_primary else "primary_frame"].to_numpy()
        arrived = int(row["time_ns"]) - int(row["detail"]) * 1_000_000
        cand = np.flatnonzero(other_col >= 1)
        if not len(cand):
            continue
        best = cand[np.argmin(np.abs(c["time_ns"].to_numpy()[cand] - arrived))]
        out[idx] = (other_side, int(other_col[best]))
    return out


def _flow_of(dis) -> dict:
    """A dissected frame's flow, as ``Divergence.flow`` has it."""
    return {"proto": dis.protocol, "src": dis.src, "dst": dis.dst, "sport": dis.sport, "dport": dis.dport,
            "ip_proto": dis.ip_proto}


def _explain_one(d: Divergence, row, frames: dict, vnet: int, inverted_tcp: bool, peer) -> None:
    p = frames[0].get(d.primary_frame)
    s = frames[1].get(d.secondary_frame)
    pv = _vnet(p, vnet)
    sv = _vnet(s, vnet)
    base = p if p is not None else s
    if base is None:
        d.notes.append("frames not found in the captures")
        return
    dis = _f.dissect(base.data, _vnet(base, vnet))
    d.flow = _flow_of(dis)
    d.protocol = dis.protocol
    cause = d.cause
    if cause == "expired":
        waiting, wside = (p, 0) if d.side == "primary" and p is not None else (s, 1)
        d.details = {"waiting_frame": _label("PS"[wside], d.primary_frame if wside == 0 else d.secondary_frame),
                     "age_ms": int(row["detail"])}
        if peer is None:
            d.details["candidate"] = None
            d.notes.append("no frame of this connection on the other side to compare with")
            return
        cside, cnum = peer
        cand = frames[cside].get(cnum)
        d.details["candidate"] = _label("PS"[cside], cnum)
        if cand is None:
            return
        # the difference between the waiting frame and the candidate, primary first
        pp, ss = (waiting, cand) if wside == 0 else (cand, waiting)
        if wside == 0:
            d.secondary_frame = cnum
        else:
            d.primary_frame = cnum
        _difference_into(d, pp, ss, _vnet(pp, vnet), _vnet(ss, vnet), inverted_tcp=False,
                         p_dis=dis if pp is base else None)
        d.details["candidate_difference"] = ({"offset": d.offset, "field": d.field} if d.offset is not None
                                             else "identical as compared")
        return
    if p is None or s is None:
        d.notes.append("only one frame of the pair is known")
        return
    if cause == "ack_gate":
        pa = _field_value(p.data, pv, "tcp.ack")
        sa = _field_value(s.data, sv, "tcp.ack")
        d.details = {"primary_ack": pa, "secondary_ack": sa}
        d.fields = [{"name": "tcp.ack", "primary": pa, "secondary": sa}]
        d.notes.append("payload equal; the primary acknowledges data the secondary has not acknowledged yet")
        _colo_artefact_into(d, p, s, pv, sv)
        return
    _difference_into(d, p, s, pv, sv, inverted_tcp, p_dis=dis if p is base else None)
    if cause == "size_mismatch":
        d.details.update(_size_details(p.data, s.data, pv))
    _colo_artefact_into(d, p, s, pv, sv)


def _colo_artefact_into(d: Divergence, p, s, pv: int, sv: int) -> None:
    """A checkpoint COLO itself causes, seen on the two frames compared (colo_artefacts.py):
    ``details["colo_artefact"]``, a note, and the class's field is its name."""
    from . import colo_artefacts

    found = colo_artefacts.artefact(p.data, s.data, d.cause, pv, sv)
    if found is not None:
        d.details["colo_artefact"] = found
        d.notes.append(colo_artefacts.note(found))


def _difference_into(d: Divergence, p, s, pv: int, sv: int, inverted_tcp: bool, p_dis=None) -> None:
    pd_ = p_dis if p_dis is not None else _f.dissect(p.data, pv)
    sd = _f.dissect(s.data, sv)
    off = s_off = None
    if pd_.ip_proto == 6 and sd.ip_proto == 6 and pd_.payload_off is not None and sd.payload_off is not None:
        # colo-compare compares each side from its own header plus its offset (the part already
        # matched by an earlier, shorter frame).  When the two segments overlap in sequence
        # space those offsets line them up by sequence number, which is what is done here;
        # when they do not (sequence spaces not aligned: no filter-rewriter), a first compare
        # starts both at their payloads.
        pseq = _field_value(p.data, pv, "tcp.seq", pd_) or 0
        sseq = _field_value(s.data, sv, "tcp.seq", sd) or 0
        plen = max(0, len(p.data) - pd_.payload_off)
        slen = max(0, len(s.data) - sd.payload_off)
        ahead = (pseq - sseq) & 0xFFFFFFFF          # the primary starts this much later
        behind = (sseq - pseq) & 0xFFFFFFFF         # the secondary starts this much later
        if 0 < ahead < slen:
            p_from, s_from = pd_.payload_off, sd.payload_off + ahead
        elif 0 < behind < plen:
            p_from, s_from = pd_.payload_off + behind, sd.payload_off
        else:
            p_from, s_from = pd_.payload_off, sd.payload_off
        first = _f.first_difference(p.data, s.data, p_from, s_from)
        d.details["compared_from"] = p_from
        if first is not None:
            off, s_off = first, first - p_from + s_from
        elif inverted_tcp and d.cause == "miscompare":
            d.details["inverted_tcp_test"] = True
            d.notes.append("QEMU 4.1's TCP payload test is inverted (spec Q1): the compared payloads are "
                           "identical, and 4.1 requests a checkpoint for identical TCP data")
            return
    else:
        start = _f.compare_start(p.data, pv, pd_)
        d.details["compared_from"] = start
        first = _f.explaining_difference(p.data, s.data, start, start, pv, pd_)
        if first is not None:
            off = s_off = first
    if off is None:
        d.notes.append("no difference in the compared bytes")
        return
    d.offset, d.secondary_offset = off, s_off
    po = _f.payload_offset(p.data, off, pv, pd_)
    d.payload_offset = po
    fp = _f.field_at(p.data, off, pv, pd_) if off < len(p.data) else None
    fs = _f.field_at(s.data, s_off, sv, sd) if s_off < len(s.data) else None
    if fp is not None or fs is not None:
        name = (fp or fs).name
        d._field_len = (fp or fs).length
        if (fp or fs).length > 8:
            # a payload or data run: its value is the bytes around the difference, not its start
            pv_, sv_ = _around(p.data, off), _around(s.data, s_off)
        else:
            pv_ = _val(fp) if fp is not None else None
            sv_ = _val(fs) if fs is not None and fs.name == name else (None if fs is None else f"{fs.name} = {_val(fs)}")
        d.fields = [{"name": name, "primary": pv_, "secondary": sv_}]


def _releases_into(chosen: list, events: pd.DataFrame, fetch, row: str, config, offsets_ns: tuple) -> None:
    """``details["releases"]`` and a note for each divergence shown: its connection's frames from
    the flush before it up to it, replayed in every behaviour row (``row_verdicts``)."""
    from .row_verdicts import MAX_FRAMES, row_verdicts

    times = events["time_ns"].to_numpy()
    flushes = times[(events["kind"] == "flush").to_numpy()]
    conn_col = events["conn"].to_numpy()
    pf, sf = events["primary_frame"].to_numpy(), events["secondary_frame"].to_numpy()
    spans, need = [], {0: set(), 1: set()}
    for d in chosen:
        if d.cause not in ("miscompare", "size_mismatch", "ack_gate") or d.primary_frame < 1:
            continue
        before = flushes[flushes < d.time_ns]
        after = flushes[flushes > d.time_ns]
        lo = before.max() if len(before) else np.iinfo(np.int64).min
        hi = after.min() if len(after) else np.iinfo(np.int64).max
        mask = (conn_col == d.conn) & (times > lo) & (times <= hi)
        nums = ({int(n) for n in pf[mask] if n >= 1}, {int(n) for n in sf[mask] if n >= 1})
        if len(nums[0]) + len(nums[1]) > MAX_FRAMES:
            continue
        need[0] |= nums[0]
        need[1] |= nums[1]
        spans.append((d, nums))
    if not spans:
        return
    got = {side: (fetch(side, sorted(n)) if n else {}) for side, n in need.items()}
    for d, nums in spans:
        frames = []
        for side in (0, 1):
            for n in nums[side]:
                pk = got[side].get(n)
                if pk is not None and pk.time_ns + offsets_ns[side] <= d.time_ns:
                    frames.append((pk.time_ns + offsets_ns[side], side, n, pk))
        found = row_verdicts(frames, d.primary_frame, d.cause, row, config)
        if found is None:
            continue
        d.details["releases"] = found
        other = [g for g in found["rows"] if not g["same_as_replay"]]
        if other:
            d.notes.append("other releases, on its connection's frames alone: " + "; ".join(
                f"rows {g['rows']} ({g['releases']}): {g['verdict']}" for g in other))


def _hex_into(d: Divergence, frames: dict) -> None:
    """The hex window of a divergence shown (its frames as ``_difference_into`` compared them:
    for an expired frame, the waiting one and its candidate)."""
    if d.offset is None:
        return
    p = frames[0].get(d.primary_frame)
    s = frames[1].get(d.secondary_frame)
    if p is not None and s is not None:
        d.hex = hexdiff(p.data, s.data, d.offset, d.secondary_offset)


def _order_neighbours(records: list, need: dict, last: tuple, rows, superseded=()) -> dict:
    """Add to ``need`` the frames around each miscompare's frames: ``ORDER_WINDOW`` either side
    in the capture, and the ``ORDER_WINDOW`` nearest of its connection either side on the
    timeline (``rows``: ``mechanics.ConnRows``), so that a fast flow among much other traffic is
    searched as far as a slow one, and on the secondary side the ``4 * ORDER_WINDOW`` nearest of
    the datagrams the resync model superseded as owed (``superseded``, sorted: they name no
    connection, and other flows' are among them); none past ``last``, the highest frame number
    of each side in the timeline; ``ORDER_FRAMES`` in all.  Returns ``{timeline index: (primary
    candidates, secondary candidates)}`` for the miscompares whose neighbours were added."""
    checked = {}
    budget = ORDER_FRAMES
    for idx, row in records:
        pf, sf = int(row["primary_frame"]), int(row["secondary_frame"])
        if row["cause"] != "miscompare" or pf < 1 or sf < 1:
            continue
        if budget < 8 * ORDER_WINDOW + 4:
            break
        c = rows.of(int(row["conn"]))
        cands = []
        for side, num, col in ((0, pf, "primary_frame"), (1, sf, "secondary_frame")):
            flow = np.unique(c[col].to_numpy())
            flow = flow[(flow >= 1) & (flow <= last[side])]
            at = int(np.searchsorted(flow, num))
            near = set(range(max(1, num - ORDER_WINDOW), min(num + ORDER_WINDOW, last[side]) + 1))
            near.update(int(n) for n in flow[max(0, at - ORDER_WINDOW):at + ORDER_WINDOW + 1])
            if side == 1 and len(superseded):
                at = int(np.searchsorted(superseded, num))
                near.update(int(n) for n in superseded[max(0, at - 4 * ORDER_WINDOW):at + 4 * ORDER_WINDOW]
                            if 1 <= n <= last[side])
            near.discard(num)
            need[side].update(near)
            need[side].add(num)
            cands.append(sorted(near, key=lambda n, num=num: abs(n - num)))
            budget -= len(near)
        checked[idx] = tuple(cands)
    return checked


def _compare_order_into(d: Divergence, frames: dict, vnet: int, cands: tuple) -> None:
    """The compare-order artefact of a datagram miscompare: the primary's compared bytes are
    those of *another* secondary frame of its flow, near it in the secondary capture.  Then the
    data never diverged; colo-compare compared the primary with the wrong copy (7.0+'s newest-
    first non-TCP queues with two primaries waiting, or a residue: an extra secondary frame, a
    copy whose primary a table reset discarded).  Sets ``details["compare_order"]`` (the
    matching frame, and whether an oldest-first queue would have paired them); ``cands``: the
    neighbours to look among, per side, nearest first (``_order_neighbours``)."""
    if d.protocol in ("tcp", "") or d.primary_frame < 1 or d.secondary_frame < 1:
        return
    p = frames[0].get(d.primary_frame)
    s = frames[1].get(d.secondary_frame)
    if p is None or s is None:
        return
    pv, sv = _vnet(p, vnet), _vnet(s, vnet)
    start = _f.compare_start(p.data, pv)
    match = _same_compared(p, frames[1], cands[1], start, d.flow, vnet)
    if match is None:
        return
    # an oldest-first queue compares the older waiting primary first: if the secondary colo-
    # compare used is the copy of an *older* primary of the flow, that one would have met it
    older = _same_compared(s, frames[0], [n for n in cands[0] if n < d.primary_frame],
                           _f.compare_start(s.data, sv), d.flow, vnet)
    d.details["compare_order"] = {
        "matching_frame": _label("S", match), "compared_with": _label("S", d.secondary_frame),
        "copy_of": _label("P", older) if older is not None else None,
        "oldest_first_pairs_them": older is not None,
    }
    text = (f"compare order, not a divergence: the primary's compared bytes are those of {_label('S', match)}, "
            f"its copy in the same flow; colo-compare compared it with {_label('S', d.secondary_frame)}")
    if older is not None:
        text += (f", the copy of the older {_label('P', older)} that was still waiting: {FIFO_ROWS} compare the "
                 f"oldest waiting primary first and would have paired them")
    else:
        text += " (a residue: a copy whose primary never reached the comparison, or an extra frame of the SVM)"
    d.notes.append(text)


def _same_compared(frame, others: dict, numbers: list, start: int, flow: dict, default_vnet: int):
    """The first of ``numbers`` (frames of ``others``) whose bytes from ``start`` equal
    ``frame``'s, of the same size and flow."""
    data = frame.data
    tail = data[start:]
    for k in numbers:
        o = others.get(k)
        if o is None or len(o.data) != len(data) or o.data[start:] != tail:
            continue
        od = _f.dissect(o.data, _vnet(o, default_vnet))
        if (od.src, od.dst, od.sport, od.dport, od.ip_proto) == \
                (flow.get("src"), flow.get("dst"), flow.get("sport"), flow.get("dport"), flow.get("ip_proto")):
            return k
    return None


def _size_details(p: bytes, s: bytes, vnet: int) -> dict:
    n = min(len(p), len(s))
    longer, extra_from = ("secondary", s) if len(s) > len(p) else ("primary", p)
    same_prefix = p[:n] == s[:n]
    extra = extra_from[n:]
    det = {"primary_size": len(p), "secondary_size": len(s),
           "extra": {"side": longer if len(p) != len(s) else None, "bytes": abs(len(p) - len(s)),
                     "at": n if len(p) != len(s) else None, "hex": extra[:32].hex(),
                     "after_equal_prefix": same_prefix}}
    return det


def _field_value(data: bytes, vnet: int, name: str, dis=None):
    d = dis if dis is not None else _f.dissect(data, vnet)
    for f in d.fields:
        if f.name == name:
            return f.value
    return None


def _around(data: bytes, off: int, before: int = 6, n: int = 16) -> str:
    """The bytes around ``off`` as a Python bytes literal, with ``...`` where it is cut."""
    lo = max(0, off - before)
    hi = min(len(data), lo + n)
    text = repr(bytes(data[lo:hi]))
    return ("..." if lo > 0 else "") + text + ("..." if hi < len(data) else "")


def _val(f):
    return f.value if not isinstance(f.value, (bytes, bytearray)) else f.value.hex()


def _vnet(picked, vnet: int) -> int:
    if picked is None:
        return vnet
    return picked.vnet_hdr_len if picked.vnet_hdr_len is not None else vnet


# ---------------------------------------------------------------------------------- tshark


def _name_app_fields(shown: list, every: list, frames: dict, vnet: int, fetch=None, last: tuple | None = None) -> str:
    """Name application fields with tshark (see the module docstring): the innermost field
    covering each differing byte of the divergences ``shown``, and of one representative per
    group of the others (``every``), is put first in ``fields``; a group's other members get
    its name (for the classes).  ``fetch`` (as ``explain_timeline``'s): the TCP connection's
    neighbouring frames, both directions, go to tshark with a divergence's frame (``_context``),
    none past ``last`` (each side's highest frame number in the timeline: past the frames the
    replay read, a capture may not be readable).
    Returns "tshark" or the one line saying why not."""
    shown_ids = {id(d) for d in shown}
    groups: dict[tuple, list] = {}
    for d in every:
        if d.offset is not None:
            groups.setdefault(_group_key(d), []).append(d)
    reps: dict[tuple, Divergence] = {}
    for key, members in sorted(groups.items(), key=lambda kv: -len(kv[1]))[:NAMED_GROUPS]:
        reps[key] = next((m for m in members if id(m) in shown_ids), members[0])
    todo = list(shown) + [r for r in reps.values() if id(r) not in shown_ids]
    order = []          # (div, side, number, picked, vnet, offset)
    for d in todo:
        if d.offset is None:
            continue
        for side, num, off in ((0, d.primary_frame, d.offset), (1, d.secondary_frame, d.secondary_offset)):
            pk = frames[side].get(num)
            if pk is not None:
                order.append((d, side, num, pk, _vnet(pk, vnet), off))
    named: dict = {}
    one_way: dict = {}
    for i in range(0, len(order), TSHARK_BATCH):
        reason = _dissect_batch(order[i:i + TSHARK_BATCH], named, one_way, fetch, vnet, last)
        if reason:
            return reason
    inserted = set()
    for d in todo:
        ap = named.get((id(d), 0))
        if one_way.get(id(d)) and (ap is None or ap.name in GENERIC_FIELDS):
            if _likely_into(d, frames, vnet, one_way[id(d)]):
                inserted.add(id(d))
            continue
        # only a field narrower than the package's own names more (a payload's HTTP header, not
        # tshark's second name for the same two bytes, e.g. icmp.seq_le for icmp.seq)
        if ap is None or not ap.name or (d.fields and (ap.name == d.fields[0]["name"]
                                                       or ap.whole >= d._field_len)):
            continue
        sp = named.get((id(d), 1))
        entry = {"name": ap.name, "primary": ap.show,
                 "secondary": sp.show if sp is not None and sp.name == ap.name else None}
        if ap.context:
            entry["context"] = ap.context
        d.fields.insert(0, entry)
        inserted.add(id(d))
    for key, rep in reps.items():
        if id(rep) not in inserted:
            continue                 # tshark named nothing narrower for this group
        for m in groups[key]:
            if m is not rep and id(m) not in shown_ids:
                entry = {"name": rep.fields[0]["name"], "primary": None, "secondary": None,
                         "named_from": f"#{rep.request}"}
                for k in ("context", "likely"):
                    if k in rep.fields[0]:
                        entry[k] = rep.fields[0][k]
                m.fields.insert(0, entry)
    return "tshark"


def _likely_into(d: Divergence, frames: dict, vnet: int, flow: tuple) -> bool:
    """A one-direction TCP capture: tshark could not dissect the byte (it needs the other
    direction); say so, and which field it most likely is (``likely.likely_field``)."""
    src, dst = flow
    p = frames[0].get(d.primary_frame)
    s = frames[1].get(d.secondary_frame)
    guess = None
    if p is not None and d.offset is not None:
        dis = _f.dissect(p.data, _vnet(p, vnet))
        if dis.payload_off is not None:
            guess = likely_field(p.data[dis.payload_off:], d.offset - dis.payload_off)
    if guess is None:
        d.notes.append(f"tshark needs the other direction to name this field: the capture holds no frame of "
                       f"the connection from {dst} to {src} (capture both directions, e.g. without --guest's "
                       f"filter)")
        return False
    entry = {"name": guess.name, "primary": _around(p.data, d.offset),
             "secondary": _around(s.data, d.secondary_offset) if s is not None else None, "likely": True}
    if guess.span is not None:
        # the value where the layout says it is, on each side (the secondary's from its own payload)
        entry["primary"] = _likely_value(p.data[dis.payload_off:], guess.span)
        if s is not None:
            sdis = _f.dissect(s.data, _vnet(s, vnet))
            sg = likely_field(s.data[sdis.payload_off:], d.secondary_offset - sdis.payload_off) \
                if sdis.payload_off is not None else None
            entry["secondary"] = _likely_value(s.data[sdis.payload_off:], sg.span) \
                if sg is not None and sg.name == guess.name and sg.span is not None else None
    if guess.context:
        entry["context"] = guess.context
    d.fields.insert(0, entry)
    d.notes.append(f"most likely {guess.name} ({guess.what}); tshark needs the other direction to dissect it: the "
                   f"capture holds no frame of the connection from {dst} to {src}")
    return True


def _likely_value(payload: bytes, span: tuple) -> str:
    raw = bytes(payload[span[0]:span[1]])
    text = raw.decode("ascii", "replace")
    return text if raw.isascii() and text.isprintable() else ":".join(f"{b:02x}" for b in raw)


def _group_key(d: Divergence) -> tuple:
    """Divergences whose differing byte is in the same application field in practice: same
    cause, protocol, L2-L4 field, payload offset and service port (the lower of the two ports:
    the other is a client's ephemeral one, different on every connection)."""
    ports = [p for p in (d.flow.get("sport"), d.flow.get("dport")) if p is not None]
    return (d.cause, d.protocol, d.fields[0]["name"] if d.fields else "", d.payload_offset,
            min(ports) if ports else None)


def _conn_key(dis) -> tuple | None:
    """A TCP connection, the same for both directions (None for anything else)."""
    if dis.ip_proto != 6 or dis.src is None:
        return None
    a, b = (dis.src, dis.sport), (dis.dst, dis.dport)
    return (a, b) if a <= b else (b, a)


def _context(side: int, nums: list, fetch, vnet: int, last: int | None = None) -> tuple[dict, dict]:
    """The frames tshark needs with the TCP frames ``nums`` of one side: those of the same
    connection, both directions, from ``CONTEXT_BEFORE`` capture frames before each to
    ``CONTEXT_AFTER`` after it (earlier segments of a PDU and the handshake that tells a
    dissector what follows; later segments that complete a PDU), none past ``last``.  Returns ``({number: Picked}``
    of those frames, ``{number: (src, dst)}`` of the frames in ``nums`` whose connection has
    no frame of the other direction there)."""
    window: set = set()
    for n in nums:
        hi = n + CONTEXT_AFTER if last is None else min(n + CONTEXT_AFTER, max(n, last))
        window.update(range(max(1, n - CONTEXT_BEFORE), hi + 1))
    got = fetch(side, sorted(window)) if window else {}
    keys, dirs = {}, {}
    for n, pk in got.items():
        dis = _f.dissect(pk.data, _vnet(pk, vnet))
        keys[n] = _conn_key(dis)
        dirs[n] = (dis.src, dis.dst)
    wanted = {keys.get(n) for n in nums} - {None}
    ctx = {n: pk for n, pk in got.items() if keys[n] in wanted}
    one_way = {}
    for n in nums:
        k = keys.get(n)
        if k is None:
            continue
        src, dst = dirs[n]
        lo, hi = n - CONTEXT_BEFORE, n + CONTEXT_AFTER
        if not any(keys[m] == k and dirs[m] == (dst, src) for m in ctx if lo <= m <= hi):
            one_way[n] = (src, dst)
    return ctx, one_way


def _dissect_batch(order: list, named: dict, one_way: dict, fetch, vnet: int, last: tuple | None = None) -> str:
    """One tshark run per side over a temporary pcapng of ``order``'s frames of that side
    (without their vnet headers), with their TCP connections' context (``_context``: only with
    ``fetch``); ``named[(id(div), side)]`` gets the innermost field at each offset, and
    ``one_way[id(div)]`` the (src, dst) of a TCP divergence whose primary's connection has only
    that direction in the capture.  Returns "" or the one line saying why tshark gave nothing."""
    from ..captures.writer import PcapngWriter

    for side in (0, 1):
        mine = [o for o in order if o[1] == side]
        if not mine:
            continue
        file_frames = {num: pk for _d, _s, num, pk, _v, _off in mine}
        tcp = sorted({num for d, _s, num, _pk, _v, _off in mine if d.protocol == "tcp"})
        ways = {}
        if fetch is not None and tcp:
            ctx, ways = _context(side, tcp, fetch, vnet, last[side] if last is not None else None)
            for num, pk in ctx.items():
                file_frames.setdefault(num, pk)
        numbers = sorted(file_frames)
        index = {num: i + 1 for i, num in enumerate(numbers)}
        offsets: dict = {}
        for _d, _s, num, pk, v, off in mine:
            offsets.setdefault(index[num], []).append(off - v)
        fd, path = tempfile.mkstemp(suffix=".pcapng", prefix="colo-explain-")
        os.close(fd)
        try:
            with PcapngWriter(path, "explain") as w:
                for num in numbers:
                    pk = file_frames[num]
                    w.write(pk.time_ns, pk.data[_vnet(pk, vnet):])
            found = app_fields(path, None, offsets, timeout=tshark_timeout(len(numbers)))
        finally:
            os.unlink(path)
        if found.frames is None:
            return found.reason
        for d, _s, num, _pk, v, off in mine:
            named[(id(d), side)] = app_field_at(found.frames.get(index[num], ()), off - v)
            if side == 0 and num in ways:
                one_way[id(d)] = ways[num]
    return ""


TOKEN_MIN = 8
"""A root's differing value is followed into later frames when it is a token of at least this
many bytes (a session id, a request id): shorter runs (a digit of a clock) match by chance."""
_TOKEN_BYTES = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def _token_at(data: bytes, offset: int) -> bytes:
    """The run of token bytes (letters, digits, ``-``, ``_``) around ``offset``."""
    lo = hi = offset
    while lo > 0 and data[lo - 1] in _TOKEN_BYTES:
        lo -= 1
    while hi < len(data) and data[hi] in _TOKEN_BYTES:
        hi += 1
    return bytes(data[lo:hi])


def _carries(data: bytes, offset: int, token: bytes) -> bool:
    """``offset`` of ``data`` lies inside an occurrence of ``token``."""
    at = data.find(token, max(0, offset - len(token) + 1))
    return 0 <= at <= offset < at + len(token)


def _chain_consequences(built: list, frames: dict | None = None) -> None:
    """A later divergence that follows from an earlier one is a consequence of that root, not a
    root: ``consequence_of`` is set to the root's request, the root's ``details["chain"]``
    lists it, its checkpoints and requests are added to the root's, and it leaves the classes.

    * On a flow whose earlier divergence changed the flow's state (``hints.STATE_ROOTS``: TLS
      keys after a handshake difference, an SSH cookie), a later divergence in one of the
      root's dependent fields (its encrypted records).
    * From the same server to the same client (any connection), after a root in a field that
      sets a value the server carries on (``hints.ECHO_ROOTS``: a session id in Set-Cookie), a
      later divergence whose differing bytes are that value again on both sides (the token of
      ``TOKEN_MIN`` bytes or more around each side's differing byte).  ``frames`` (side ->
      {number: Picked}) gives the bytes.

    A later divergence in any other field or value shows an independent cause and stays a root."""
    from .hints import ECHO_ROOTS, STATE_ROOTS
    state: dict = {}                        # flow -> the divergence that changed its state
    tokens: list = []                       # (server, client, primary token, secondary token, root)
    frames = frames or {}
    primary, secondary = frames.get(0, {}), frames.get(1, {})
    for d in sorted((d for _i, d in built), key=lambda d: (d.time_ns, d.request)):
        fl = d.flow
        key = (d.protocol, fl.get("src"), fl.get("dst"), fl.get("sport"), fl.get("dport"))
        server, client = (d.protocol, fl.get("src"), fl.get("sport")), fl.get("dst")
        pk, sk = primary.get(d.primary_frame), secondary.get(d.secondary_frame)
        both = pk is not None and sk is not None and d.offset is not None and d.secondary_offset is not None
        root, why = state.get(key), None
        if root is not None and d.protocol == "tcp" and d.field.startswith(STATE_ROOTS[root.field][1]):
            changed = STATE_ROOTS[root.field][0]
            why = f"its {root.field} difference changed {changed}, so this connection's later bytes differ too"
        elif both:
            hit = next(((ptok, r) for srv, cli, ptok, stok, r in tokens
                        if srv == server and cli == client and _carries(pk.data, d.offset, ptok)
                        and _carries(sk.data, d.secondary_offset, stok)), None)
            if hit is not None:
                ptok, root = hit
                changed = ECHO_ROOTS[root.field]
                why = f"the differing bytes are {changed} again ({_short(ptok.decode('latin-1'), 40)})"
        if why is not None:
            d.consequence_of = root.request
            d.details["consequence_of"] = {"request": root.request, "field": root.field, "changed": changed}
            d.notes.append(f"a consequence of #{root.request}: {why}")
            root.details.setdefault("chain", []).append(
                {"request": d.request, "primary_frame": _num(d.primary_frame),
                 "secondary_frame": _num(d.secondary_frame), "field": d.field})
            root.checkpoints += d.checkpoints
            root.consequences += 1 + d.consequences
            continue
        if d.field in STATE_ROOTS and key not in state:
            state[key] = d
        if d.field in ECHO_ROOTS and both and d.offset < len(pk.data) and d.secondary_offset < len(sk.data):
            ptok, stok = _token_at(pk.data, d.offset), _token_at(sk.data, d.secondary_offset)
            if len(ptok) >= TOKEN_MIN and len(stok) >= TOKEN_MIN:
                tokens.append((server, client, ptok, stok, d))


# ---------------------------------------------------------------------------------- other profile


def _other_verdicts(divs: list, other: pd.DataFrame, profile: str) -> None:
    """What a replay with the other profile decided about each divergence's frame."""
    kind = other["kind"].astype(str).to_numpy()
    cause = other["cause"].astype(str).to_numpy()
    pf = other["primary_frame"].to_numpy()
    sf = other["secondary_frame"].to_numpy()
    for d in divs:
        if d.primary_frame >= 1 and d.side == "primary" or d.secondary_frame < 1:
            col, num, lab = pf, d.primary_frame, _label("P", d.primary_frame)
        else:
            col, num, lab = sf, d.secondary_frame, _label("S", d.secondary_frame)
        if num < 1:
            continue
        rows = np.flatnonzero(col == num)
        reqs = [r for r in rows if kind[r] == "checkpoint_request"]
        if reqs:
            c = cause[reqs[0]]
            verdict = f"checkpoint_request {c}"
            differs = c != d.cause
        else:
            fates = [f"{kind[r]} {cause[r]}" for r in rows if kind[r] in ("release", "secondary_dropped")]
            verdict = fates[0] if fates else "no decision about this frame"
            differs = True
        d.other_profile = {"profile": profile, "verdict": verdict, "differs": bool(differs)}
        if differs:
            why = ""
            if profile == "4.1" and d.protocol == "tcp" and d.offset is not None and verdict.startswith("release"):
                why = " (4.1's inverted TCP test, spec Q1, releases differing payload)"
            d.notes.append(f"QEMU {profile} would decide differently on {lab}: {verdict}{why}")


# ---------------------------------------------------------------------------------- text


def _format_divergence(d: Divergence, hex_window: bool) -> list[str]:
    tag = f"consequence of #{d.consequence_of}" if d.consequence_of is not None else \
        "concurrent root" if d.concurrent else "root"
    lines = [f"#{d.request}  {_iso(d.time_ns)}  {d.cause}  {_flow_text(d.flow, d.protocol)}  "
             f"(episode {d.episode}, {tag}, conn {d.conn})"]
    lines.append(f"    frames        {_label('P', d.primary_frame)}  {_label('S', d.secondary_frame)}")
    if d.offset is not None:
        po = f", payload offset {d.payload_offset}" if d.payload_offset is not None else ""
        so = f" (secondary {d.secondary_offset})" if d.secondary_offset != d.offset else ""
        cf = d.details.get("compared_from")
        cf = f"; colo-compare compares from offset {cf}" if cf is not None else ""
        lines.append(f"    first diff    frame offset {d.offset}{so}{po}{cf}")
    for f in d.fields:
        ctx = f" ({f['context']})" if f.get("context") else ""
        lk = " (most likely)" if f.get("likely") else ""
        lines.append(f"    field         {f['name']}{ctx}{lk}  {_short(f['primary'])}  \u2260  {_short(f['secondary'])}")
    chain = d.details.get("chain")
    if chain:
        lines.append("    chain         " + ", ".join(
            f"#{c['request']} {_label('P', c['primary_frame'])}/{_label('S', c['secondary_frame'])} {c['field']}"
            for c in chain) + f": consequences of this {d.field} difference")
    det = d.details
    if d.cause == "size_mismatch" and det:
        ex = det["extra"]
        lines.append(f"    sizes         primary {det['primary_size']} B, secondary {det['secondary_size']} B"
                     + (f"; the {ex['side']} has {ex['bytes']} more bytes from offset {ex['at']}"
                        + (" (the rest is equal)" if ex["after_equal_prefix"] else "")
                        + (f": {ex['hex']}" if ex["hex"] else "") if ex["side"] else ""))
    if d.cause == "ack_gate" and det:
        lines.append(f"    ack           primary {det['primary_ack']}, secondary {det['secondary_ack']}")
    if d.cause == "expired" and det:
        cand = det.get("candidate")
        lines.append(f"    waiting       {det['waiting_frame']} for {det['age_ms']} ms; nearest on the other side: "
                     + (f"{cand}" if cand else "none")
                     + (f", first difference {det['candidate_difference']}" if det.get("candidate_difference")
                        else ""))
    lines.append(f"    cost          {_plural(d.consequences, 'consequence')}"
                 + (f", {_plural(d.checkpoints, 'checkpoint')}" if not d.concurrent
                    else ", shares the episode's checkpoints"))
    for n in d.notes:
        lines.append(f"    note          {n}")
    if hex_window and d.hex is not None:
        lines.extend("    " + ln for ln in d.hex.text().splitlines())
    return lines


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def _class_text(row) -> str:
    get = row.get if hasattr(row, "get") else (lambda k: row[k])
    parts = [get("protocol") or "?", get("cause")]
    if get("field"):
        parts.append(get("field"))
    return ", ".join(parts)


def _fmt_sel(sel: dict) -> str:
    return ", ".join(f"--{k} {v}" for k, v in sel.items())


def _short(v, n: int = 48) -> str:
    s = str(v)
    return s if len(s) <= n else s[:n - 3] + "..."


def _label(side: str, num) -> str:
    return f"{side}#{num}" if num is not None and int(num) >= 1 else f"{side}#-"


def _num(n: int):
    return int(n) if n is not None and int(n) >= 1 else None


def _neg(v) -> int:
    return -1 if v is None else int(v)


def _s(v) -> str:
    return "" if v is None else str(v)


def _iso(t_ns: int) -> str:
    dt = datetime.fromtimestamp(t_ns // 1_000_000_000, tz=timezone.utc)
    return dt.strftime("%Y-%m-%d %H:%M:%S") + f".{(t_ns % 1_000_000_000) // 1000:06d}Z"
