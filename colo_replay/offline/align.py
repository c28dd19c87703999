"""Estimate the clock skew between the primary's and the secondary's capture (``--align auto``).

Frames that the two VMs produced identically are the anchors: a frame's *content key* is what
colo-compare would compare — the TCP payload (when there is one), or everything after the IP
header for UDP/ICMP — together with the IP protocol.  Keys seen exactly once on each side pair
up; the offset to add to the secondary's timestamps is the median of (primary time - secondary
time) over those pairs, and the residual is the spread around it.  Header fields (IP ID, TTL,
TCP sequence numbers, which differ with the ISNs) are deliberately left out of the key.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Alignment:
    offset_ns: int          # add this to every secondary timestamp
    anchors: int            # frame pairs used
    residual_p50_ns: int    # median |diff - offset|
    residual_p95_ns: int

    def describe(self) -> str:
        return (f"secondary offset {self.offset_ns / 1e6:+.3f} ms from {self.anchors} matching frames, "
                f"residual p50 {self.residual_p50_ns / 1e6:.3f} ms / p95 {self.residual_p95_ns / 1e6:.3f} ms")


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
