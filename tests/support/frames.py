"""Hand-built Ethernet frames for tests (standard library only).

Addresses follow the spec's experiments: A = 10.0.0.1 (the guest), B = 10.0.0.2, C = 10.0.0.3.
Checksums are computed properly (QEMU never verifies them, but captures look real).
"""

from __future__ import annotations

import struct

GUEST_MAC = bytes.fromhex("525400123456")
PEER_MAC = bytes.fromhex("525400abcdef")
A, B, C = "10.0.0.1", "10.0.0.2", "10.0.0.3"


def ip4(addr: str) -> bytes:
    return bytes(int(x) for x in addr.split("."))


def checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def eth(payload: bytes, ethertype: int = 0x0800, src: bytes = GUEST_MAC, dst: bytes = PEER_MAC) -> bytes:
    return dst + src + struct.pack("!H", ethertype) + payload


def ipv4(proto: int, payload: bytes, src: str = A, dst: str = B, ident: int = 0, ttl: int = 64,
         options: bytes = b"", tos: int = 0) -> bytes:
    ihl = 5 + len(options) // 4
    total = ihl * 4 + len(payload)
    hdr = struct.pack("!BBHHHBBH4s4s", (4 << 4) | ihl, tos, total, ident, 0x4000, ttl, proto, 0,
                      ip4(src), ip4(dst)) + options
    hdr = hdr[:10] + struct.pack("!H", checksum(hdr)) + hdr[12:]
    return hdr + payload


def _pseudo(src: str, dst: str, proto: int, length: int) -> bytes:
    return ip4(src) + ip4(dst) + struct.pack("!BBH", 0, proto, length)


def tcp_segment(sport: int, dport: int, seq: int, ack: int, payload: bytes = b"", flags: int = 0x18,
                window: int = 65535, src: str = A, dst: str = B, options: bytes = b"") -> bytes:
    off = 5 + len(options) // 4
    hdr = struct.pack("!HHIIBBHHH", sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, off << 4, flags,
                      window, 0, 0) + options
    csum = checksum(_pseudo(src, dst, 6, len(hdr) + len(payload)) + hdr + payload)
    return hdr[:16] + struct.pack("!H", csum) + hdr[18:] + payload


def tcp(seq: int, payload: bytes = b"", ack: int = 1, sport: int = 80, dport: int = 40000, flags: int | None = None,
        src: str = A, dst: str = B, ident: int = 0, ttl: int = 64, window: int = 65535, pad_to: int = 0) -> bytes:
    """An Ethernet/IPv4/TCP frame; ``flags`` defaults to PSH|ACK with data and ACK without."""
    if flags is None:
        flags = 0x18 if payload else 0x10
    seg = tcp_segment(sport, dport, seq, ack, payload, flags, window, src, dst)
    frame = eth(ipv4(6, seg, src, dst, ident, ttl))
    return pad(frame, pad_to)


def udp(payload: bytes, sport: int = 5353, dport: int = 53, src: str = A, dst: str = B, ident: int = 0,
        ttl: int = 64) -> bytes:
    length = 8 + len(payload)
    hdr = struct.pack("!HHHH", sport, dport, length, 0)
    csum = checksum(_pseudo(src, dst, 17, length) + hdr + payload) or 0xFFFF
    seg = hdr[:6] + struct.pack("!H", csum) + payload
    return eth(ipv4(17, seg, src, dst, ident, ttl))


def icmp_echo(payload: bytes = b"ping", ident_: int = 1, seq: int = 1, src: str = A, dst: str = B,
              ip_id: int = 0, ttl: int = 64, reply: bool = True) -> bytes:
    body = struct.pack("!BBHHH", 0 if reply else 8, 0, 0, ident_, seq) + payload
    body = body[:2] + struct.pack("!H", checksum(body)) + body[4:]
    return eth(ipv4(1, body, src, dst, ip_id, ttl))


def ip_other(proto: int, payload: bytes, src: str = A, dst: str = B, ident: int = 0, ttl: int = 64) -> bytes:
    return eth(ipv4(proto, payload, src, dst, ident, ttl))


def arp_reply(sender_ip: str = A, target_ip: str = B) -> bytes:
    body = struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 2, GUEST_MAC, ip4(sender_ip), PEER_MAC, ip4(target_ip))
    return pad(eth(body, 0x0806), 60)


def ipv6_udp(payload: bytes = b"v6") -> bytes:
    src = bytes.fromhex("fe800000000000000000000000000001")
    dst = bytes.fromhex("fe800000000000000000000000000002")
    udp_ = struct.pack("!HHHH", 5353, 53, 8 + len(payload), 0) + payload
    hdr = struct.pack("!IHBB", 6 << 28, len(udp_), 17, 64) + src + dst
    return eth(hdr + udp_, 0x86DD)


def vlan(inner: bytes, vid: int = 10) -> bytes:
    """Insert an 802.1Q tag into an Ethernet frame."""
    return inner[:12] + struct.pack("!HH", 0x8100, vid) + inner[12:]


def pad(frame: bytes, to: int, byte: int = 0) -> bytes:
    return frame + bytes([byte]) * (to - len(frame)) if len(frame) < to else frame


def with_vnet(frame: bytes, vnet_len: int, fill: int = 0) -> bytes:
    """Prefix a vnet header of ``vnet_len`` bytes (contents ``fill``)."""
    return bytes([fill]) * vnet_len + frame


def qinq(inner: bytes, outer_vid: int = 100, inner_vid: int | None = None) -> bytes:
    """Insert an 802.1ad (0x88a8) S-tag, optionally followed by an 802.1Q C-tag, into an
    Ethernet frame.  QEMU's parse_packet_early does NOT refuse 0x88a8 (spec 1.4)."""
    tags = struct.pack("!HH", 0x88A8, outer_vid)
    if inner_vid is not None:
        tags += struct.pack("!HH", 0x8100, inner_vid)
    return inner[:12] + tags + inner[12:]


def runt(length: int, ethertype: int = 0x0800, fill: int = 0x45) -> bytes:
    """A frame of ``length`` bytes (>= 14): an Ethernet header and ``fill`` bytes."""
    return eth(bytes([fill]) * (length - 14), ethertype)


def udp_padded(payload: bytes, pad_to: int = 60, pad_byte: int = 0, **kw) -> bytes:
    """A UDP frame padded to ``pad_to`` bytes with ``pad_byte`` (Ethernet minimum-size padding)."""
    return pad(udp(payload, **kw), pad_to, pad_byte)
