"""Name the bytes of a frame: the package's own L2-L4 dissector, for explaining divergences.

Given a frame's bytes (as colo-compare saw them, vnet header included), ``dissect`` lists its
fields in Wireshark display-filter naming (``eth.src``, ``ip.id``, ``tcp.options.timestamp.tsval``,
``udp.payload``, ...), each with its byte offset in the frame, its length and its value, so that
the first differing byte between a primary and a secondary frame can be given a name a person
can paste into Wireshark.

Scope: an optional vnet header, Ethernet II, 802.1Q / 802.1ad tags, ARP, IPv4 (with options),
TCP (with options), UDP, ICMP; anything else is named as undissected data (``data.data``), as
Wireshark does.  Application fields (DNS, NTP, HTTP, TLS) are not parsed here: see
``appfields`` (tshark, once, over the frames involved).

Robustness is a requirement, not a nicety: frames come from captures and may be truncated or
garbage.  Nothing here raises on any input; a field that runs past the end of the frame is
returned clamped, with ``truncated=True``, and dissection stops there.

Pure Python over ``bytes`` and ``struct``; no per-frame third-party dissector.
"""

from __future__ import annotations

from dataclasses import dataclass, field as _dc_field
from typing import NamedTuple

__all__ = ["Field", "Flow", "Dissection", "dissect", "fields", "fields_at", "field_at",
           "first_difference", "explaining_difference", "payload_offset", "flow", "compare_start"]

ETH_HLEN = 14
_PAYLOAD_PREVIEW = 16       # bytes of a payload shown in its value


@dataclass(frozen=True)
class Field:
    """One named field of a frame.

    ``offset`` and ``length`` are in bytes from the start of the frame as given (vnet header
    included).  Bit fields share their bytes with their neighbours, as in Wireshark
    (``ip.version`` and ``ip.hdr_len`` both cover byte 0 of the IP header).  ``value`` is an
    int for numbers, a display string for addresses and byte runs.  ``truncated`` means the
    frame ended inside the field: ``length`` is what is present, ``value`` the hex of it.
    """

    name: str
    offset: int
    length: int
    value: int | str
    truncated: bool = False

    @property
    def end(self) -> int:
        """One past the field's last byte."""
        return self.offset + self.length

    def covers(self, offset: int) -> bool:
        return self.offset <= offset < self.offset + self.length

    def __str__(self) -> str:
        v = f"0x{self.value:x}" if isinstance(self.value, int) and self.name.endswith("checksum") \
            else str(self.value)
        return f"{self.name} = {v}" + (" (truncated)" if self.truncated else "")


class Flow(NamedTuple):
    """A frame's flow: IP protocol number (``None`` if not IPv4), addresses and ports
    (``None`` when the protocol has no ports or the frame is too short for them)."""

    proto: int | None
    src: str | None
    dst: str | None
    sport: int | None
    dport: int | None


@dataclass
class Dissection:
    """The result of ``dissect``: the fields in frame order plus the layer offsets.

    ``net_off``/``l4_off``/``payload_off`` are ``None`` when the frame has no such layer (or is
    too short to reach it); ``payload_end`` is where the L4 payload ends according to the IP
    total length (Ethernet padding after it is ``eth.padding`` / ``eth.trailer``).
    """

    fields: list[Field] = _dc_field(default_factory=list)
    vnet_hdr_len: int = 0
    ethertype: int | None = None
    net_off: int | None = None
    l4_off: int | None = None
    payload_off: int | None = None
    payload_end: int | None = None
    ip_proto: int | None = None
    src: str | None = None
    dst: str | None = None
    sport: int | None = None
    dport: int | None = None

    @property
    def flow(self) -> Flow:
        return Flow(self.ip_proto, self.src, self.dst, self.sport, self.dport)

    @property
    def protocol(self) -> str:
        """A short protocol name for the frame: tcp, udp, icmp, ip-<n>, arp, ipv6, eth, ..."""
        if self.ip_proto is not None:
            return _IP_PROTO_NAMES.get(self.ip_proto, f"ip-{self.ip_proto}")
        if self.ethertype is not None:
            return _ETHERTYPE_NAMES.get(self.ethertype, f"eth-0x{self.ethertype:04x}")
        return "frame"


_IP_PROTO_NAMES = {1: "icmp", 2: "igmp", 6: "tcp", 17: "udp", 33: "dccp", 47: "gre", 50: "esp",
                   51: "ah", 132: "sctp", 136: "udplite"}
_ETHERTYPE_NAMES = {0x0800: "ip", 0x0806: "arp", 0x86DD: "ipv6", 0x8100: "vlan", 0x88A8: "vlan"}


class _Reader:
    """Appends fields while they fit; the first one that does not is added clamped and
    marks the dissection as ended (``ok`` False)."""

    __slots__ = ("b", "out", "ok")

    def __init__(self, b: bytes, out: list):
        self.b = b
        self.out = out
        self.ok = True

    def has(self, off: int, n: int) -> bool:
        return off + n <= len(self.b)

    def add(self, name: str, off: int, n: int, kind: str = "int", fmt=None) -> bool:
        """Add a field of ``n`` bytes at ``off``.  ``kind``: int (big-endian), mac, ip4, hex,
        or a callable taking the bytes.  Returns False (after adding it clamped) if truncated."""
        if not self.ok:
            return False
        b = self.b
        if off >= len(b):
            self.ok = False
            return False
        raw = b[off:off + n]
        if len(raw) < n:
            self.out.append(Field(name, off, len(raw), raw.hex(), True))
            self.ok = False
            return False
        if fmt is not None:
            value = fmt(raw)
        elif kind == "int":
            value = int.from_bytes(raw, "big")
        elif kind == "mac":
            value = ":".join(f"{x:02x}" for x in raw)
        elif kind == "ip4":
            value = ".".join(str(x) for x in raw)
        else:
            value = _preview(raw)
        self.out.append(Field(name, off, n, value))
        return True


def _preview(raw: bytes) -> str:
    if len(raw) <= _PAYLOAD_PREVIEW:
        return raw.hex()
    return raw[:_PAYLOAD_PREVIEW].hex() + f"... ({len(raw)} bytes)"


def dissect(frame: bytes, vnet_hdr_len: int = 0) -> Dissection:
    """Dissect ``frame`` (bytes-like, vnet header of ``vnet_hdr_len`` bytes first).

    Never raises: garbage gives whatever fields could be read, ending with a truncated one.
    """
    b = bytes(frame)
    d = Dissection(vnet_hdr_len=max(0, int(vnet_hdr_len)))
    r = _Reader(b, d.fields)
    v = d.vnet_hdr_len
    if v:
        r.add("virtio_net_hdr", 0, v, "hex")
    if not r.add("eth.dst", v, 6, "mac") or not r.add("eth.src", v + 6, 6, "mac") \
            or not r.add("eth.type", v + 12, 2):
        return d
    etype = int.from_bytes(b[v + 12:v + 14], "big")
    off = v + 14
    # VLAN tags: 802.1Q (0x8100) and 802.1ad (0x88a8), possibly stacked.  colo-compare refuses
    # 0x8100 but accepts 0x88a8 (spec 1.3/1.4); naming the bytes is the same either way.
    while etype in (0x8100, 0x88A8):
        if not r.add("vlan.id", off, 2, fmt=lambda x: int.from_bytes(x, "big") & 0x0FFF) \
                or not r.add("vlan.etype", off + 2, 2):
            return d
        etype = int.from_bytes(b[off + 2:off + 4], "big")
        off += 4
    d.ethertype = etype
    if etype == 0x0800:
        _ipv4(r, d, b, off)
    elif etype == 0x0806:
        _arp(r, b, off)
        _trailer(r, b, r.out[-1].end if r.ok and r.out else len(b))
    elif off < len(b):
        r.add("data.data", off, len(b) - off, "hex")
    return d


def _arp(r: _Reader, b: bytes, off: int) -> None:
    if not (r.add("arp.hw.type", off, 2) and r.add("arp.proto.type", off + 2, 2)
            and r.add("arp.hw.size", off + 4, 1) and r.add("arp.proto.size", off + 5, 1)
            and r.add("arp.opcode", off + 6, 2)):
        return
    hs, ps = b[off + 4], b[off + 5]
    o = off + 8
    for who in ("src", "dst"):
        if not r.add(f"arp.{who}.hw_mac", o, hs, "mac" if hs == 6 else "hex"):
            return
        o += hs
        if not r.add(f"arp.{who}.proto_ipv4", o, ps, "ip4" if ps == 4 else "hex"):
            return
        o += ps


def _trailer(r: _Reader, b: bytes, end: int) -> None:
    """Bytes after the IP datagram (or ARP body): Wireshark's ``eth.padding`` when they are
    all zero, ``eth.trailer`` otherwise.  colo-compare compares them all the same."""
    if r.ok and end < len(b):
        rest = b[end:]
        r.add("eth.padding" if not any(rest) else "eth.trailer", end, len(rest), "hex")


def _ipv4(r: _Reader, d: Dissection, b: bytes, off: int) -> None:
    d.net_off = off
    if off >= len(b):
        return
    ihl = (b[off] & 0x0F) * 4
    if not (r.add("ip.version", off, 1, fmt=lambda x: x[0] >> 4)
            and r.add("ip.hdr_len", off, 1, fmt=lambda x: (x[0] & 0x0F) * 4)
            and r.add("ip.dsfield", off + 1, 1) and r.add("ip.len", off + 2, 2)
            and r.add("ip.id", off + 4, 2)
            and r.add("ip.flags", off + 6, 1, fmt=lambda x: x[0] >> 5)
            and r.add("ip.frag_offset", off + 6, 2, fmt=lambda x: int.from_bytes(x, "big") & 0x1FFF)
            and r.add("ip.ttl", off + 8, 1) and r.add("ip.proto", off + 9, 1)
            and r.add("ip.checksum", off + 10, 2) and r.add("ip.src", off + 12, 4, "ip4")
            and r.add("ip.dst", off + 16, 4, "ip4")):
        return
    d.ip_proto = b[off + 9]
    d.src = r.out[-2].value
    d.dst = r.out[-1].value
    if ihl > 20 and not r.add("ip.options", off + 20, ihl - 20, "hex"):
        return
    # colo-compare takes the L4 header at 4*ip_hl whatever it says, even < 20 (spec 1.3); we
    # only dissect L4 when the header length is sane, and name the rest as data otherwise.
    l4 = off + max(ihl, 20)
    total = int.from_bytes(b[off + 2:off + 4], "big")
    end = off + total if ihl <= total and off + total <= len(b) else len(b)
    if end < l4:
        end = len(b)
    frag = int.from_bytes(b[off + 6:off + 8], "big") & 0x1FFF
    d.l4_off = l4
    d.payload_end = end
    proto = d.ip_proto
    if ihl < 20 or frag:
        # a bogus header length, or a non-first fragment: no L4 header here
        d.payload_off = l4
        if l4 < end:
            r.add("data.data", l4, end - l4, "hex")
    elif proto == 6:
        _tcp(r, d, b, l4, end)
    elif proto == 17:
        _udp(r, d, b, l4, end)
    elif proto == 1:
        _icmp(r, d, b, l4, end)
    else:
        d.payload_off = l4
        # colo-compare's connection key reads ports for these (spec 1.5); the flow shows them
        if proto in (33, 132, 136) and l4 + 4 <= len(b):
            d.sport = int.from_bytes(b[l4:l4 + 2], "big")
            d.dport = int.from_bytes(b[l4 + 2:l4 + 4], "big")
        if l4 < end:
            r.add("data.data", l4, end - l4, "hex")
    _trailer(r, b, end)


def _tcp(r: _Reader, d: Dissection, b: bytes, t: int, end: int) -> None:
    if not (r.add("tcp.srcport", t, 2) and r.add("tcp.dstport", t + 2, 2)):
        return
    d.sport = r.out[-2].value
    d.dport = r.out[-1].value
    if not (r.add("tcp.seq", t + 4, 4) and r.add("tcp.ack", t + 8, 4)
            and r.add("tcp.hdr_len", t + 12, 1, fmt=lambda x: (x[0] >> 4) * 4)
            and r.add("tcp.flags", t + 12, 2, fmt=lambda x: int.from_bytes(x, "big") & 0x0FFF)
            and r.add("tcp.window_size_value", t + 14, 2) and r.add("tcp.checksum", t + 16, 2)
            and r.add("tcp.urgent_pointer", t + 18, 2)):
        return
    thl = (b[t + 12] >> 4) * 4
    opt_end = t + max(thl, 20)
    if thl > 20:
        _tcp_options(r, b, t + 20, opt_end)
    # colo-compare's payload starts at the header length whatever the IP length says
    # (spec 2.3); the named payload stops at the IP length, padding is named after it.
    d.payload_off = opt_end
    if r.ok and opt_end < end:
        r.add("tcp.payload", opt_end, end - opt_end, "hex")


def _tcp_options(r: _Reader, b: bytes, o: int, end: int) -> None:
    while o < end and r.ok:
        kind = b[o] if o < len(b) else None
        if kind is None:
            r.add("tcp.option_kind", o, 1)     # truncated: ends the dissection
            return
        if kind == 0:
            r.add("tcp.options.eol", o, end - o, "hex")   # EOL and the padding after it
            return
        if kind == 1:
            r.add("tcp.options.nop", o, 1)
            o += 1
            continue
        if not (r.add("tcp.option_kind", o, 1) and r.add("tcp.option_len", o + 1, 1)):
            return
        ln = b[o + 1]
        if ln < 2 or o + ln > end:
            # a malformed length: name the rest of the option space and stop
            if o + 2 < end:
                r.add("tcp.options.unknown.payload", o + 2, end - o - 2, "hex")
            return
        body, blen = o + 2, ln - 2
        if kind == 2 and ln == 4:
            r.add("tcp.options.mss_val", body, 2)
        elif kind == 3 and ln == 3:
            r.add("tcp.options.wscale.shift", body, 1)
        elif kind == 4 and ln == 2:
            r.add("tcp.options.sack_perm", o, 2, "hex")    # no body: the option itself
        elif kind == 5 and blen % 8 == 0 and blen:
            for k in range(body, body + blen, 8):
                if not (r.add("tcp.options.sack_le", k, 4) and r.add("tcp.options.sack_re", k + 4, 4)):
                    return
        elif kind == 8 and ln == 10:
            r.add("tcp.options.timestamp.tsval", body, 4) and r.add("tcp.options.timestamp.tsecr", body + 4, 4)
        elif blen:
            r.add("tcp.options.unknown.payload", body, blen, "hex")
        o += ln


def _udp(r: _Reader, d: Dissection, b: bytes, u: int, end: int) -> None:
    if not (r.add("udp.srcport", u, 2) and r.add("udp.dstport", u + 2, 2)):
        return
    d.sport = r.out[-2].value
    d.dport = r.out[-1].value
    if not (r.add("udp.length", u + 4, 2) and r.add("udp.checksum", u + 6, 2)):
        return
    d.payload_off = u + 8
    if u + 8 < end:
        r.add("udp.payload", u + 8, end - u - 8, "hex")


def _icmp(r: _Reader, d: Dissection, b: bytes, c: int, end: int) -> None:
    if not (r.add("icmp.type", c, 1) and r.add("icmp.code", c + 1, 1) and r.add("icmp.checksum", c + 2, 2)):
        return
    typ = b[c]
    if typ in (0, 8, 13, 14, 15, 16, 17, 18):      # echo, timestamp, info, address mask
        if not (r.add("icmp.ident", c + 4, 2) and r.add("icmp.seq", c + 6, 2)):
            return
    elif not r.add("icmp.rest_of_header", c + 4, 4, "hex"):   # unused / pointer / gateway / mtu
        return
    d.payload_off = c + 8
    if c + 8 < end:
        r.add("data.data", c + 8, end - c - 8, "hex")


def fields(frame: bytes, vnet_hdr_len: int = 0) -> list[Field]:
    """The fields of ``frame`` in frame order (see ``dissect``)."""
    return dissect(frame, vnet_hdr_len).fields


def fields_at(frame: bytes, start: int, end: int | None = None, vnet_hdr_len: int = 0,
              dissection: Dissection | None = None) -> list[Field]:
    """The fields that overlap the byte range ``[start, end)`` (``end`` defaults to
    ``start + 1``), in frame order.  Pass ``dissection`` to reuse an earlier ``dissect``."""
    if end is None:
        end = start + 1
    d = dissection if dissection is not None else dissect(frame, vnet_hdr_len)
    return [f for f in d.fields if f.offset < end and start < f.end]


def field_at(frame: bytes, offset: int, vnet_hdr_len: int = 0,
             dissection: Dissection | None = None) -> Field | None:
    """The most specific field covering byte ``offset``: the shortest one, the later one on
    ties (so ``ip.hdr_len`` rather than ``ip.version``, ``tcp.flags`` rather than nothing).
    ``None`` past the end of the frame."""
    best = None
    for f in fields_at(frame, offset, offset + 1, vnet_hdr_len, dissection):
        if best is None or f.length <= best.length:
            best = f
    return best


def first_difference(p: bytes, s: bytes, compare_from: int = 0,
                     s_compare_from: int | None = None) -> int | None:
    """The first primary-frame offset at or after ``compare_from`` where the two frames differ.

    The secondary is read from ``s_compare_from`` (default: the same offset), byte for byte
    alongside: the secondary offset of the answer is ``answer - compare_from + s_compare_from``.
    That is how colo-compare's TCP comparator lines payloads up (each side from its own header
    size).  When one side ends first the difference is where it ends (the other side has a byte
    more).  ``None`` when the compared parts are equal and equally long.  Never raises.
    """
    p = bytes(p)
    s = bytes(s)
    cf = max(0, int(compare_from))
    scf = cf if s_compare_from is None else max(0, int(s_compare_from))
    a = p[cf:]
    b = s[scf:]
    n = min(len(a), len(b))
    if a[:n] != b[:n]:
        # narrow down in halves (C-speed slice compares) rather than byte by byte in Python
        lo, hi = 0, n            # invariant: a[:lo] == b[:lo], a[:hi] != b[:hi]
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if a[lo:mid] == b[lo:mid]:
                lo = mid
            else:
                hi = mid
        return cf + lo
    if len(a) != len(b):
        return cf + n
    return None


def payload_offset(frame: bytes, offset: int, vnet_hdr_len: int = 0,
                   dissection: Dissection | None = None) -> int | None:
    """The offset of frame byte ``offset`` within the L4 payload (TCP payload, UDP payload,
    ICMP data, other IP protocols' payload), or ``None`` if it lies before the payload or the
    frame has none."""
    d = dissection if dissection is not None else dissect(frame, vnet_hdr_len)
    if d.payload_off is None or offset < d.payload_off or offset >= len(frame):
        return None
    return offset - d.payload_off


def flow(frame: bytes, vnet_hdr_len: int = 0) -> Flow:
    """The flow 5-tuple ``(proto, src, dst, sport, dport)`` of ``frame``, with ``None`` for
    what it does not have (ports for ICMP, everything but nothing for ARP)."""
    return dissect(frame, vnet_hdr_len).flow


def compare_start(primary: bytes, vnet_hdr_len: int = 0, dissection: Dissection | None = None) -> int:
    """Where colo-compare (7.2 logic) starts comparing for a frame pair, given the PRIMARY.

    * TCP: the payload, at the TCP header length (each side from its own header: pass the
      secondary's ``compare_start`` as ``s_compare_from`` to ``first_difference``);
    * UDP / ICMP: 14 + the primary's ``4 * ip_hl`` + the vnet length, for both frames (an
      Ethernet header of 14 is assumed even with 802.1ad tags, spec 2.5);
    * anything else: the whole frame after the vnet header (MACs and IP header included).
    """
    d = dissection if dissection is not None else dissect(primary, vnet_hdr_len)
    v = d.vnet_hdr_len
    if d.ip_proto == 6 and d.payload_off is not None:
        return d.payload_off
    if d.ip_proto in (1, 17) and d.net_off is not None and d.net_off < len(primary):
        return 4 * (primary[d.net_off] & 0x0F) + ETH_HLEN + v
    return v


_CHECKSUMS = ("ip.checksum", "tcp.checksum", "udp.checksum", "icmp.checksum")


def explaining_difference(p: bytes, s: bytes, compare_from: int = 0, s_compare_from: int | None = None,
                          vnet_hdr_len: int = 0, dissection: Dissection | None = None) -> int | None:
    """Like ``first_difference``, but skips differences inside checksum fields of the primary
    when a difference follows elsewhere: a checksum differs *because* other bytes do (UDP and
    ICMP compares start at the L4 header, so ``udp.checksum`` is usually the first differing
    byte and names nothing useful).  When only checksums differ, that offset is returned.  Pass
    ``dissection`` (of ``p``) to reuse an earlier ``dissect``."""
    first = first_difference(p, s, compare_from, s_compare_from)
    if first is None:
        return None
    d = dissection if dissection is not None else dissect(p, vnet_hdr_len)
    skip = [f for f in d.fields if f.name in _CHECKSUMS]
    cf = max(0, int(compare_from))
    shift = (cf if s_compare_from is None else max(0, int(s_compare_from))) - cf
    off = first
    while off is not None:
        f = next((f for f in skip if f.covers(off)), None)
        if f is None:
            return off
        off = first_difference(p, s, f.end, f.end + shift)
    return first
