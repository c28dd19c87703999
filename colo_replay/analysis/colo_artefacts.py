"""Checkpoints that COLO itself causes, recognised on the two frames colo-compare compared.

Seen in a real COLO pair (reports/rig-checkpoints.md: QEMU 7.2.22, e1000 NICs, Linux guests,
the secondary's filter-rewriter), each costing one checkpoint per TCP connection that meets it,
with guests that answer byte for byte the same:

* ``padded-syn-ack``: the secondary's SYN+ACK, padded to the 60-byte Ethernet minimum.
  colo-compare takes "frame size minus headers" as the TCP payload and never reads the IP total
  length (spec Q8, every release), so the padding is 2 bytes of data and the SYN+ACK does not
  take the zero-payload shortcut; the filter-rewriter does not rewrite the SYN+ACK (it learns
  the offset from the client's handshake ACK), so it is partly matched against the primary's,
  lingers consumed in the secondary queue (Q15), and the primary's next segment (the padded ACK
  of the client's request, 6 bytes of "data") is compared against it: past its end, then the
  ACK gate (7.x) or the inverted test (4.1.0).
* ``rewriter-handshake-reset``: a checkpoint between the secondary's SYN+ACK and the client's
  handshake ACK.  Every checkpoint zeroes every filter-rewriter offset (``reset_seq_offset``,
  4.1.0 .. 10.2.0), also the one holding the secondary's ISN until the handshake ends; the
  offset then comes out as ``-(ack - 1)``, the client's ACKs are rewritten to 1, and the
  secondary (now a copy of the primary) answers with a RST of sequence number 1.

``artefact(p, s)`` names the one the two frames show, with what it saw, or None.
"""

from __future__ import annotations

import struct

TH_FIN, TH_SYN, TH_RST, TH_ACK = 0x01, 0x02, 0x04, 0x10

NOTES = {
    "padded-syn-ack":
        "the secondary frame compared is its SYN+ACK, {padding} bytes of Ethernet padding counted as TCP "
        "payload (spec Q8, every release): the filter-rewriter leaves a SYN+ACK's sequence number alone, so it "
        "was partly matched against the primary's SYN+ACK and waited in the queue, consumed (Q15); the "
        "primary's next segment was compared with it",
    "rewriter-handshake-reset":
        "the secondary sent a RST with sequence number 1: a checkpoint between its SYN+ACK and the client's "
        "handshake ACK zeroed the filter-rewriter's offset (reset_seq_offset, 4.1.0 .. 10.2.0), which held the "
        "secondary's ISN, so the client's ACKs were rewritten to 1 and the secondary reset the connection",
}


def _tcp(frame: bytes, vnet: int = 0):
    """(flags, seq, ack, padding bytes) of an IPv4/TCP frame, or None."""
    b = memoryview(frame)[vnet:]
    if len(b) < 54 or b[12:14] != b"\x08\x00" or b[14] >> 4 != 4 or b[23] != 6:
        return None
    ihl = (b[14] & 15) * 4
    total = struct.unpack_from("!H", b, 16)[0]
    if len(b) < 14 + ihl + 14:
        return None
    seq, ack = struct.unpack_from("!II", b, 14 + ihl + 4)
    flags = b[14 + ihl + 13]
    return flags, seq, ack, max(0, len(b) - 14 - total)


def artefact(primary: bytes | None, secondary: bytes | None, cause: str, pvnet: int = 0,
             svnet: int = 0) -> dict | None:
    """The COLO artefact the compared frames show (``{"name", ...what was seen}``), or None;
    ``pvnet`` / ``svnet``: each frame's vnet header length."""
    if secondary is None or cause not in ("miscompare", "ack_gate"):
        return None
    s = _tcp(secondary, svnet)
    if s is None:
        return None
    flags, seq, ack, padding = s
    if flags & (TH_SYN | TH_ACK) == TH_SYN | TH_ACK and padding:
        p = _tcp(primary, pvnet) if primary is not None else None
        return {"name": "padded-syn-ack", "padding": padding, "secondary_seq": seq,
                "primary_padding": None if p is None else p[3]}
    if flags & TH_RST and seq == 1:
        return {"name": "rewriter-handshake-reset", "secondary_seq": seq, "secondary_ack": ack}
    return None


def note(found: dict) -> str:
    return NOTES[found["name"]].format(**found)
