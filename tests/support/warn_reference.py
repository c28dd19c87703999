"""The warning heuristics' per-frame code as it was before the columnar rewrite (commit 452dae0,
offline/rewriter.synack_table and offline/align.estimate_alignment), kept verbatim as the
reference the differential tests compare the vectorised versions against."""

from __future__ import annotations

import struct

from colo_replay.offline.align import Alignment

_u16 = struct.Struct("!H").unpack_from
_u32x2 = struct.Struct("!II").unpack_from
TH_SYN, TH_ACK = 0x02, 0x10


def _tcp_offsets(frame: bytes, vnet: int):
    """(ip_offset, tcp_offset, tcp_end) for an untagged Ethernet/IPv4/TCP frame, else None."""
    eth = vnet
    if len(frame) < eth + 34 or frame[eth + 12] != 0x08 or frame[eth + 13] != 0x00:
        return None
    ip = eth + 14
    if frame[ip] >> 4 != 4 or frame[ip + 9] != 6 or _u16(frame, ip + 6)[0] & 0x3FFF:
        return None
    tcp = ip + (frame[ip] & 0x0F) * 4
    end = ip + _u16(frame, ip + 2)[0]
    if end > len(frame) or tcp + 20 > end:
        return None
    return ip, tcp, end


def synack_table(reader, vnet: int = 0) -> dict:
    """Every SYN|ACK of a capture: {(src, sport, dst, dport): [(seq, ack), ...]} in order."""
    table: dict = {}
    for batch in reader.batches():
        for frame in batch.frames:
            offs = _tcp_offsets(frame, vnet)
            if offs is None:
                continue
            ip, tcp, _end = offs
            if frame[tcp + 13] & (TH_SYN | TH_ACK) != TH_SYN | TH_ACK:
                continue
            key = (frame[ip + 12:ip + 20], frame[tcp:tcp + 4])
            table.setdefault(key, []).append(_u32x2(frame, tcp + 4))
    return table


def content_key(frame: bytes, vnet: int = 0) -> bytes | None:
    """The bytes colo-compare would compare for this frame, or None when it has none worth
    anchoring on (non-IPv4, pure ACKs, truncated headers)."""
    d = vnet
    if len(frame) < d + 34 or frame[d + 12:d + 14] != b"\x08\x00":
        return None
    ip = d + 14
    ihl = (frame[ip] & 0x0F) * 4
    proto = frame[ip + 9]
    total = int.from_bytes(frame[ip + 2:ip + 4], "big")
    end = min(len(frame), ip + total) if total >= ihl else len(frame)   # drop Ethernet padding
    l4 = ip + ihl
    if proto == 6:
        if l4 + 13 > len(frame):
            return None
        body = frame[l4 + (frame[l4 + 12] >> 4) * 4:end]
        return b"\x06" + body if len(body) >= 8 else None      # short payloads repeat too often
    if proto in (1, 17):
        body = frame[l4:end]
        return bytes((proto,)) + body if body else None
    return None


def _first_times(reader, vnet: int) -> dict:
    seen: dict = {}
    dup = set()
    for batch in reader.batches():
        for t, f in zip(batch.timestamps, batch.frames):
            k = content_key(f, vnet)
            if k is None or k in dup:
                continue
            if k in seen:
                dup.add(k)
                del seen[k]
            else:
                seen[k] = t
    return seen


def estimate_alignment(primary_reader, secondary_reader, vnet: int = 0) -> Alignment:
    """Read both captures once and estimate the secondary's clock offset.  Raises ValueError
    when no frame matches on both sides."""
    p = _first_times(primary_reader, vnet)
    s = _first_times(secondary_reader, vnet)
    diffs = sorted(p[k] - s[k] for k in p.keys() & s.keys())
    if not diffs:
        raise ValueError("--align auto: no frame has the same content in both captures")
    offset = diffs[len(diffs) // 2]
    res = sorted(abs(x - offset) for x in diffs)
    return Alignment(offset, len(diffs), res[len(res) // 2], res[min(len(res) - 1, (len(res) * 95) // 100)])
