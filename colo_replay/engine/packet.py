"""Packets and the header parsing colo-compare does on them (QEMU net/colo.c, net/eth.c).

Everything here works on ``bytes`` with offsets computed once per frame; no header
objects are built.  Field widths follow the C structs (``Packet.header_size`` is a
uint8_t, ``payload_size`` and ``offset`` are uint16_t, sequence numbers uint32_t), and
values are masked where C truncates them (spec Q14).

Where QEMU's C code reads past the end of a frame (spec Q13), the result depends on heap
contents.  We read zero bytes instead and report it, so a verdict that rests on such a
read is never silently trusted.
"""

from __future__ import annotations

from struct import Struct

try:
    import cython
except ImportError:                 # Cython absent: the decorators below are no-ops
    from . import _cython_shim as cython

from .constants import MS, U32
from .events import Cause

PRIMARY = 0
SECONDARY = 1
SIDE_NAMES = ("primary", "secondary")

ETH_P_IP = b"\x08\x00"
ETH_P_VLAN = b"\x81\x00"    # 802.1Q
ETH_P_DVLAN = b"\x88\xa8"   # 802.1ad (QinQ): NOT refused by parse_packet_early (spec 1.4)

IPPROTO_ICMP = 1
IPPROTO_TCP = 6
IPPROTO_UDP = 17
IPPROTO_AH = 51
# fill_connection_key reads the 4 bytes at the transport header as "ports" for these
PORTED_PROTOCOLS = frozenset({6, 17, 33, 50, 132, 136})  # TCP UDP DCCP ESP SCTP UDPLITE

_tcp_seq_ack = Struct("!II").unpack_from

# How far past the transport header a parse may read, so short frames can be padded once:
# TCP reads th_seq..th_flags (14 bytes), AH reads the SPI at +4..+8, others 4 "port" bytes.
_L4_READ = {IPPROTO_TCP: 14, IPPROTO_AH: 8}


class Packet:
    """One frame as colo-compare holds it (QEMU ``Packet``), plus the caller's identity.

    ``data`` is the whole frame as received, vnet header included; it is what a release
    writes to outdev, together with ``vnet_hdr_len``.  ``ident`` is the caller's handle
    for the frame (a capture frame number, say), ``side`` is PRIMARY or SECONDARY and
    ``time`` the arrival time in ns.  The TCP fields are filled when the frame is queued.

    A frame the offline replay queues on its fast path may hold no copy of its bytes for a
    while (``Engine.lazy_frames``): ``data`` is then None and the frame is
    ``chunk[chunk_off:chunk_off + size]``, in the capture's read buffer.  Only the engine's fast
    path sees such a frame; the engine gives it its own ``data`` (``Engine.settle``) before any
    other code can (otherwise ``chunk`` is None).
    """

    __slots__ = (
        "data", "chunk", "chunk_off", "size", "vnet_hdr_len", "side", "ident", "time",
        "net_off", "l4_off", "ip_proto",
        "tcp_seq", "tcp_ack", "seq_end", "header_size", "payload_size", "offset", "flags",
        "undefined",
    )

    def __init__(self, data: bytes, side: int, time: int, vnet_hdr_len: int = 0, ident=None):
        self.data = data
        self.chunk = None
        self.chunk_off = 0
        self.size = len(data)
        self.vnet_hdr_len = vnet_hdr_len
        self.side = side
        self.ident = ident
        self.time = time
        self.net_off = self.l4_off = self.ip_proto = 0
        self.tcp_seq = self.tcp_ack = self.seq_end = 0
        self.header_size = self.payload_size = self.offset = self.flags = 0
        self.undefined = False  # set when a decision about this frame read past its end

    @property
    def creation_ms(self) -> int:
        """QEMU: packet_new() stamps qemu_clock_get_ms(QEMU_CLOCK_HOST), integer ms.  Computed
        when asked (only the expiry scan does): a division per frame saved."""
        return self.time // MS

    def __repr__(self) -> str:
        return (f"Packet({'PS'[self.side]}#{self.ident}, {self.size} B, proto={self.ip_proto}, "
                f"seq={self.tcp_seq}..{self.seq_end}, off={self.offset})")


@cython.locals(a=cython.p_uchar, b=cython.p_uchar)
def _equal_at(abuf: bytes, ao: int, bbuf: bytes, bo: int, n: int) -> bool:
    """``abuf[ao:ao + n] == bbuf[bo:bo + n]`` for ranges inside both (the caller checks): a
    memcmp in the compiled core, no slices (the fast path's and the TCP comparator's payload
    tests; QEMU's colo_compare_packet_payload is a memcmp too)."""
    if cython.compiled:
        a = abuf
        b = bbuf
        return memcmp(a + ao, b + bo, n) == 0  # noqa: F821 - memcmp is cimported by packet.pxd
    return abuf[ao:ao + n] == bbuf[bo:bo + n]


def padded(data: bytes, upto: int) -> bytes:
    """``data`` extended with zero bytes to at least ``upto`` bytes (the stand-in for UB reads)."""
    short = upto - len(data)
    return data + bytes(short) if short > 0 else data


def parse_packet_early(pkt: Packet, profile) -> int:
    """QEMU's ``parse_packet_early`` followed by the protocol lookup.

    Returns 0 when the frame is supported (and sets ``net_off``, ``l4_off`` and
    ``ip_proto``), else the ``Cause`` saying why it is unsupported.  Sets
    ``pkt.undefined`` when the outcome depended on bytes past the frame's end.
    """
    data = pkt.data
    size = pkt.size
    d = pkt.vnet_hdr_len
    if profile.size_check_before_l2_parse:
        # 7.2 (3772cf0d1b): vnet bound and 18-byte minimum checked before anything is read.
        if profile.max_vnet_hdr_len is not None and d > profile.max_vnet_hdr_len:
            return Cause.VNET_TOO_LONG
        if size < profile.min_frame_len + d:
            return Cause.TOO_SHORT
    else:
        # Seed: eth_get_l2_hdr_length() runs before the ETH_HLEN check and may read bytes
        # 12..17 of a shorter frame; the size check then refuses it whatever was read.
        if size < profile.min_frame_len + d:
            return Cause.TOO_SHORT
    if size < d + 22:
        # The L2 parse may read up to byte 22 (802.1ad + 802.1Q); pad so the reads below are safe
        # and remember whether the outcome depended on the padding.
        view = padded(data, d + 22)
    else:
        view = data
    ethertype = view[d + 12:d + 14]
    if ethertype == ETH_P_VLAN:
        if d + 14 > size:
            pkt.undefined = True
        return Cause.VLAN                      # "COLO-proxy don't support vlan"
    if ethertype == ETH_P_DVLAN:
        l2 = 22 if view[d + 16:d + 18] == ETH_P_VLAN else 18
    else:
        l2 = 14
    net_off = d + l2
    # eth_get_l3_proto(): the ethertype just before the L3 header
    if view[net_off - 2:net_off] != ETH_P_IP:
        if net_off > size:
            pkt.undefined = True
        return Cause.NOT_IPV4
    if net_off >= size:
        pkt.undefined = True
        ihl_byte = 0
    else:
        ihl_byte = data[net_off]
    ip_hl4 = (ihl_byte & 0x0F) << 2            # NO version check, NO ip_hl >= 5 check
    if size < l2 + ip_hl4 + d:
        return Cause.IP_HEADER_TRUNCATED
    l4 = net_off + ip_hl4
    # ip_p (net_off+9) and the addresses (net_off+12..20) lie past the frame when ip_hl < 5,
    # and the key/TCP reads at the transport header may too: pad once for all of them.
    if ip_hl4 < 20 or l4 + 14 > size:
        proto = padded(data, net_off + 20)[net_off + 9]
        need = max(net_off + 20, l4 + _L4_READ.get(proto, 4))
        if need > size:
            pkt.undefined = True
    else:
        proto = data[net_off + 9]
    pkt.net_off = net_off
    pkt.l4_off = l4
    pkt.ip_proto = proto
    return 0


def connection_key(pkt: Packet, key_has_ips_always: bool) -> bytes:
    """QEMU's ``fill_connection_key`` as an opaque bytes key (identity only, never ordered).

    Ported protocols: (src, dst, 4 transport bytes, proto); AH: the SPI instead of ports;
    anything else: proto only in the seed, (src, dst, proto) from 6.2 on (64153ca613).
    TCP, the common case, leaves the protocol byte out: its keys are the only 12-byte ones,
    so they still never equal another protocol's, and the engine's fast path can use the
    frame's bytes 26..38 as they are.
    """
    proto = pkt.ip_proto
    net = pkt.net_off
    l4 = pkt.l4_off
    data = pkt.data
    if pkt.undefined:
        data = padded(data, max(net + 20, l4 + 8))
    if proto == IPPROTO_TCP:
        return data[net + 12:net + 20] + data[l4:l4 + 4]
    if proto in PORTED_PROTOCOLS:
        return data[net + 12:net + 20] + data[l4:l4 + 4] + bytes((proto,))
    if proto == IPPROTO_AH:
        return data[net + 12:net + 20] + data[l4 + 4:l4 + 8] + bytes((proto,))
    if key_has_ips_always:
        return data[net + 12:net + 20] + b"\0\0\0\0" + bytes((proto,))
    return bytes((proto,))


def fill_tcp_info(pkt: Packet, subtract_vnet: bool) -> None:
    """QEMU's ``fill_pkt_tcp_info`` minus the ACK tracking (the engine does that per profile)."""
    l4 = pkt.l4_off
    data = pkt.data
    if l4 + 14 > pkt.size:
        data = padded(data, l4 + 14)   # pkt.undefined was set by parse_packet_early
    seq, ack = _tcp_seq_ack(data, l4 + 4)
    hs = l4 + ((data[l4 + 12] >> 4) << 2)
    if subtract_vnet:
        hs -= pkt.vnet_hdr_len         # seed bug Q7 (fixed in 6.1, 5a2d9929ac)
    hs &= 0xFF                         # uint8_t header_size
    ps = (pkt.size - hs) & 0xFFFF      # uint16_t payload_size; Ethernet padding counts (Q8)
    pkt.tcp_seq = seq
    pkt.tcp_ack = ack
    pkt.header_size = hs
    pkt.payload_size = ps
    pkt.seq_end = (seq + ps) & U32
    pkt.flags = data[l4 + 13]
