"""analysis.fields and analysis.hexdiff: field names, offsets and values on hand-built frames;
never an exception on truncated or arbitrary bytes."""

import struct

from hypothesis import given, settings, strategies as st

from colo_replay.analysis.fields import (compare_start, dissect, field_at, fields, fields_at,
                                         first_difference, flow, payload_offset)
from colo_replay.analysis.hexdiff import hexdiff
from tests.support.frames import (arp_reply, eth, icmp_echo, ip_other, ipv4, qinq, tcp_segment, udp,
                                  udp_padded, with_vnet)

TS_OPTS = bytes([1, 1, 8, 10]) + struct.pack("!II", 1000, 2000)      # NOP NOP TS(1000, 2000)
SYN_OPTS = (struct.pack("!BBH", 2, 4, 1460) + bytes([4, 2]) + struct.pack("!BBII", 8, 10, 7, 0)
            + bytes([1]) + bytes([3, 3, 7]))                            # MSS SACK_PERM TS NOP WS


def by_name(fl):
    return {f.name: f for f in fl}


def tcp_frame(payload=b"hello", options=TS_OPTS, **kw):
    return eth(ipv4(6, tcp_segment(80, 40000, 5, 6, payload, options=options, **kw), ident=0x1234))


def test_tcp_fields_offsets_and_values():
    f = tcp_frame()
    d = by_name(fields(f))
    assert (d["eth.type"].offset, d["eth.type"].value) == (12, 0x0800)
    assert (d["ip.id"].offset, d["ip.id"].length, d["ip.id"].value) == (18, 2, 0x1234)
    assert d["ip.src"].value == "10.0.0.1" and d["ip.dst"].offset == 30
    assert (d["tcp.srcport"].offset, d["tcp.srcport"].value) == (34, 80)
    assert (d["tcp.seq"].offset, d["tcp.seq"].value) == (38, 5)
    assert (d["tcp.ack"].offset, d["tcp.ack"].value) == (42, 6)
    assert d["tcp.hdr_len"].value == 32 and d["tcp.flags"].value == 0x18
    assert (d["tcp.window_size_value"].offset, d["tcp.window_size_value"].value) == (48, 65535)
    assert (d["tcp.options.timestamp.tsval"].offset, d["tcp.options.timestamp.tsval"].value) == (58, 1000)
    assert (d["tcp.options.timestamp.tsecr"].offset, d["tcp.options.timestamp.tsecr"].value) == (62, 2000)
    assert (d["tcp.payload"].offset, d["tcp.payload"].length, d["tcp.payload"].value) == (66, 5, b"hello".hex())
    assert not any(x.truncated for x in fields(f))
    assert flow(f) == (6, "10.0.0.1", "10.0.0.2", 80, 40000)
    assert compare_start(f) == 66
    assert payload_offset(f, 68) == 2 and payload_offset(f, 60) is None


def test_tcp_syn_options():
    f = eth(ipv4(6, tcp_segment(80, 40000, 0, 1, flags=0x12, options=SYN_OPTS)))
    d = by_name(fields(f))
    assert d["tcp.options.mss_val"].value == 1460 and d["tcp.options.mss_val"].offset == 56
    assert d["tcp.options.sack_perm"].offset == 58
    assert d["tcp.options.timestamp.tsval"].value == 7
    assert d["tcp.options.wscale.shift"].value == 7
    assert "tcp.payload" not in d
    assert field_at(f, 63).name == "tcp.options.timestamp.tsval"


def test_sack_blocks_and_vnet_header():
    sack = bytes([1, 1, 5, 18]) + struct.pack("!IIII", 100, 200, 300, 400)
    f = with_vnet(tcp_frame(b"x", options=sack), 12)
    fl = fields(f, vnet_hdr_len=12)
    assert fl[0].name == "virtio_net_hdr" and fl[0].length == 12
    les = [x for x in fl if x.name == "tcp.options.sack_le"]
    res = [x for x in fl if x.name == "tcp.options.sack_re"]
    assert [x.value for x in les] == [100, 300] and [x.value for x in res] == [200, 400]
    assert les[0].offset == 12 + 54 + 4
    assert compare_start(f, 12) == by_name(fl)["tcp.payload"].offset


def test_udp_icmp_arp_other_and_padding():
    u = udp_padded(b"x", sport=123, dport=53)
    d = by_name(fields(u))
    assert d["udp.srcport"].value == 123 and d["udp.length"].value == 9
    assert (d["udp.payload"].offset, d["udp.payload"].length) == (42, 1)
    assert (d["eth.padding"].offset, d["eth.padding"].length) == (43, 17)
    assert compare_start(u) == 34            # 14 + the primary's 4 * ip_hl
    assert "eth.trailer" in by_name(fields(udp_padded(b"x", pad_byte=0xAA)))     # non-zero padding

    i = icmp_echo(b"ping", ident_=0x434F, seq=9)
    d = by_name(fields(i))
    assert (d["icmp.type"].value, d["icmp.ident"].value, d["icmp.seq"].value) == (0, 0x434F, 9)
    assert (d["icmp.seq"].offset, d["data.data"].offset) == (40, 42)
    assert flow(i) == (1, "10.0.0.1", "10.0.0.2", None, None)
    assert dissect(i).protocol == "icmp"

    a = by_name(fields(arp_reply()))
    assert a["arp.opcode"].value == 2 and a["arp.src.proto_ipv4"].value == "10.0.0.1"
    assert flow(arp_reply()) == (None, None, None, None, None)

    g = by_name(fields(ip_other(47, b"\x00\x00\x08\x00abc")))
    assert g["data.data"].offset == 34 and dissect(ip_other(47, b"abcd")).protocol == "gre"
    assert compare_start(ip_other(47, b"abcd")) == 0      # "other": whole frames

    q = qinq(udp(b"v"), 100, 10)
    names = [x.name for x in fields(q)]
    assert names.count("vlan.id") == 2 and "udp.payload" in names


def test_ip_options_shift_l4():
    seg = tcp_segment(80, 40000, 1, 1, b"p")
    f = eth(ipv4(6, seg, options=b"\x01\x01\x01\x00"))
    d = by_name(fields(f))
    assert d["ip.options"].offset == 34 and d["ip.hdr_len"].value == 24
    assert d["tcp.srcport"].offset == 38


def test_truncated_frame_returns_what_it_can():
    f = tcp_frame()
    for cut in range(len(f)):
        fl = fields(f[:cut])
        assert all(x.end <= cut for x in fl)
        if fl:
            assert sum(x.truncated for x in fl) <= 1
    fl = fields(f[:40])
    assert fl[-1].name == "tcp.seq" and fl[-1].truncated and fl[-1].length == 2
    assert field_at(f[:40], 39).name == "tcp.seq"
    assert field_at(f, len(f)) is None


def test_fields_at_range():
    f = tcp_frame()
    names = [x.name for x in fields_at(f, 16, 20)]
    assert names == ["ip.len", "ip.id"]
    assert [x.name for x in fields_at(f, 14)] == ["ip.version", "ip.hdr_len"]
    assert field_at(f, 14).name == "ip.hdr_len"


def test_first_difference():
    a = udp(b"time_ns=1234567")
    b = udp(b"time_ns=1239999")
    off = first_difference(a, b, compare_start(a))
    # the checksum differs before the payload: UDP compares the L4 header too
    assert off == 40 and field_at(a, off).name == "udp.checksum"
    assert first_difference(a, b, 42) == 42 + 11
    assert first_difference(a, a, 0) is None
    assert first_difference(b"abc", b"abcd") == 3 and first_difference(b"abcd", b"abc") == 3
    assert first_difference(b"", b"") is None and first_difference(b"x", b"x", 5) is None
    # TCP: each side from its own header length (different options)
    p = tcp_frame(b"same-then-X")
    s = tcp_frame(b"same-then-Y", options=b"")
    off = first_difference(p, s, compare_start(p), compare_start(s))
    assert off == 66 + 10 and p[off:off + 1] == b"X"
    assert field_at(p, off).name == "tcp.payload" and payload_offset(p, off) == 10


def test_hexdiff_rows_and_text():
    p = udp(b"stat served=1 time_ns=1234567890")
    s = udp(b"stat served=1 time_ns=1234999990xx")
    h = hexdiff(p, s, 42 + 26)
    assert all(len(r.primary) == len(r.secondary) == len(r.differ) == 16 for r in h.rows)
    assert h.rows[0].p_offset == 0x20 and h.rows[-1].p_offset == 0x40
    last = h.rows[-1]
    # 0x40 + 10 .. 11: only the secondary has bytes there
    assert last.primary[10] is None and last.secondary[10] == ord("x") and last.differ[10]
    assert last.differ[4] and not last.differ[0]
    text = h.text()
    assert "^^" in text and "--" in text and text.splitlines()[0].split() == ["primary", "|", "secondary"]
    assert h.to_dict()["rows"][0]["p_offset"] == 0x20
    shifted = hexdiff(p, s, 20, 2)
    assert shifted.rows[0].s_offset == -18 and shifted.rows[0].secondary[0] is None


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200), st.integers(0, 24))
def test_never_raises_on_arbitrary_bytes(data, vnet):
    fl = fields(data, vnet)
    assert all(0 <= x.offset and x.end <= len(data) for x in fl)
    dissect(data, vnet).flow
    compare_start(data, vnet)
    fields_at(data, 0, len(data) + 5, vnet)
    for o in (0, len(data) // 2, len(data)):
        field_at(data, o, vnet)
        payload_offset(data, o, vnet)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=120), st.binary(max_size=120), st.integers(0, 130), st.integers(0, 130))
def test_first_difference_and_hexdiff_never_raise(a, b, cf, scf):
    off = first_difference(a, b, cf, scf)
    if off is None:
        assert a[cf:] == b[scf:]
    else:
        k = off - cf
        assert a[cf:off] == b[scf:scf + k]
        assert a[off:off + 1] != b[scf + k:scf + k + 1]
    h = hexdiff(a, b, off if off is not None else cf, None if off is None else scf + off - cf)
    h.text()
    if off is not None:
        assert h.differing >= 1
