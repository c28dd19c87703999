"""The evidence file of an explain: the frames of its divergences, for Wireshark.

``write_evidence`` writes a pcapng with two interfaces, ``primary`` (0) and ``secondary`` (1),
holding every frame involved in the explained divergences (both frames of each pair, and for
an expired frame the nearest frame on the other side), each once, in replay order (arrival
time on the replay's clock, the primary first at equal times, as the driver merges them), with
its capture timestamp.  Each frame carries a packet comment naming the decision and the peer
frame, e.g. ``P#14: divergence #1 (episode 0, root): checkpoint_request miscompare with S#14;
first difference at frame offset 120 (payload 54): http.date``; Wireshark shows it in the
packet details (``frame.comment``, filterable).  A vnet header is not Ethernet: it is left out
and the comment says so.
"""

from __future__ import annotations

__all__ = ["write_evidence"]


def write_evidence(path, explanation, fetch=None, *, vnet_hdr_len: int = 0, offsets_ns=(0, 0)) -> int:
    """Write ``explanation``'s frames to ``path`` (see the module docstring); returns how many
    frames were written.  Frames are taken from ``explanation.frames``, else ``fetch(side, numbers)``."""
    from ..captures.writer import PcapngWriter

    comments: dict[tuple[int, int], list[str]] = {}
    for d in explanation.divergences:
        role = f"consequence of #{d.consequence_of}" if d.consequence_of is not None else \
            "concurrent root" if d.concurrent else "root"
        tag = f"divergence #{d.request} (episode {d.episode}, {role})"
        where = ""
        if d.offset is not None:
            po = f", payload {d.payload_offset}" if d.payload_offset is not None else ""
            where = f"; first difference at frame offset {d.offset}{po}" + (f": {d.field}" if d.field else "")
        for side, num, peer_side, peer in ((0, d.primary_frame, "S", d.secondary_frame),
                                           (1, d.secondary_frame, "P", d.primary_frame)):
            if num < 1:
                continue
            me = "PS"[side]
            if d.cause == "expired":
                waiting = d.details.get("waiting_frame") == f"{me}#{num}"
                what = (f"waited {d.details.get('age_ms')} ms: checkpoint_request expired" if waiting
                        else f"the nearest frame on the other side of the expired {peer_side}#{peer}")
                text = f"{me}#{num}: {tag}: {what}" + (f"; peer {peer_side}#{peer}" if waiting and peer >= 1 else "")
            else:
                text = (f"{me}#{num}: {tag}: checkpoint_request {d.cause} with "
                        f"{peer_side}#{peer if peer >= 1 else '-'}{where}")
            comments.setdefault((side, num), []).append(text)
    frames = getattr(explanation, "frames", None) or {}
    rows = []
    for side in (0, 1):
        nums = sorted(n for s, n in comments if s == side)
        have = frames.get(side, {})
        missing = [n for n in nums if n not in have]
        if missing and fetch is not None:
            have = {**have, **fetch(side, missing)}
        for n in nums:
            pk = have.get(n)
            if pk is not None:
                rows.append((pk.time_ns + offsets_ns[side], side, n, pk))
    rows.sort(key=lambda r: (r[0], r[1], r[2]))
    from ..output.files import replacing
    with replacing(path, "wb", buffering=1 << 20) as fh, PcapngWriter(fh, ["primary", "secondary"]) as w:
        for _t, side, n, pk in rows:
            v = pk.vnet_hdr_len if pk.vnet_hdr_len is not None else vnet_hdr_len
            text = "; ".join(comments[(side, n)])
            if v:
                text += f" (vnet header of {v} bytes left out)"
            w.write(pk.time_ns, pk.data[v:], comment=text, interface=side)
    return len(rows)
