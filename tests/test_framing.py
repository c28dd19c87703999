"""The chardev framing codec against QEMU's net_fill_rstate semantics (spec 1.8, 2.7, 2.10)."""

import struct

import pytest

from colo_replay.engine.framing import (
    COLO_CHECKPOINT, COLO_COMPARE_GET_XEN_INIT, COLO_USERSPACE_PROXY_INIT, DO_CHECKPOINT, NET_BUFSIZE,
    Frame, FrameDecoder, Oversized, classify_notify, encode_frame, encode_notify_from_compare,
    encode_notify_to_compare,
)


def frames_of(items):
    return [(i.data, i.vnet_hdr_len) for i in items if isinstance(i, Frame)]


@pytest.mark.parametrize("vnet", [False, True])
@pytest.mark.parametrize("chunk", [1, 3, 7, 4096, 1 << 20])
def test_roundtrip_any_chunking(vnet, chunk):
    payloads = [bytes([i]) * (i * 37 + 1) for i in range(40)]
    stream = b"".join(encode_frame(p, vnet_hdr_len=i % 13, vnet_hdr=vnet) for i, p in enumerate(payloads))
    dec = FrameDecoder(vnet_hdr=vnet)
    got = []
    for i in range(0, len(stream), chunk):
        got += dec.feed(stream[i:i + chunk])
    assert frames_of(got) == [(p, (i % 13) if vnet else 0) for i, p in enumerate(payloads)]
    assert not dec.mid_frame
    # offsets point at each frame's length word
    offsets = [f.offset for f in got]
    assert offsets[0] == 0 and offsets[1] == len(encode_frame(payloads[0], 0, vnet))


def test_wire_format():
    assert encode_frame(b"abc") == b"\x00\x00\x00\x03abc"
    assert encode_frame(b"abc", vnet_hdr_len=10, vnet_hdr=True) == b"\x00\x00\x00\x03\x00\x00\x00\x0aabc"
    assert encode_frame(b"") == b""            # compare_chr_send writes nothing for size 0


def test_frame_of_exactly_the_limit_is_accepted():
    big = bytes(NET_BUFSIZE)
    dec = FrameDecoder()
    got = dec.feed(encode_frame(big))
    assert frames_of(got) == [(big, 0)] and not dec.disabled


def test_oversized_frame_disables_the_input():
    good = encode_frame(b"first")
    over = struct.pack("!I", NET_BUFSIZE + 1) + bytes(NET_BUFSIZE + 1)
    after = encode_frame(b"never")
    dec = FrameDecoder()
    got = dec.feed(good + over[:5000])            # under the limit so far: no error yet
    assert frames_of(got) == [(b"first", 0)] and not dec.disabled
    got = dec.feed(over[5000:] + after)
    assert len(got) == 1 and isinstance(got[0], Oversized)
    assert got[0].declared_len == NET_BUFSIZE + 1 and got[0].offset == len(good)
    assert "oversized packet received,connection terminated." in got[0].message()
    assert dec.disabled
    assert dec.feed(encode_frame(b"more")) == [] and dec.ignored > 0


def test_zero_length_frame_waits_for_one_more_byte():
    dec = FrameDecoder()
    assert dec.feed(b"\x00\x00\x00\x00") == []       # while (size > 0): nothing finalises it yet
    assert dec.mid_frame
    got = dec.feed(b"\x00")                          # any next byte finalises the empty frame
    assert frames_of(got) == [(b"", 0)]
    got = dec.feed(b"\x00\x00\x02hi")
    assert frames_of(got) == [(b"hi", 0)]


def test_zero_length_frame_inside_a_read_is_immediate():
    dec = FrameDecoder()
    got = dec.feed(b"\x00\x00\x00\x00" + encode_frame(b"x"))
    assert frames_of(got) == [(b"", 0), (b"x", 0)]


def test_vnet_word_is_not_checked():
    dec = FrameDecoder(vnet_hdr=True)
    got = dec.feed(struct.pack("!II", 3, 0xFFFFFFFF) + b"abc")
    assert frames_of(got) == [(b"abc", 0xFFFFFFFF)]


def test_notify_messages_and_vnet_asymmetry():
    assert len(COLO_USERSPACE_PROXY_INIT) == 25 and len(COLO_COMPARE_GET_XEN_INIT) == 25
    assert len(COLO_CHECKPOINT) == 15 and len(DO_CHECKPOINT) == 13
    # compare -> frame: never a vnet word
    assert encode_notify_from_compare(DO_CHECKPOINT) == b"\x00\x00\x00\x0dDO_CHECKPOINT"
    # frame -> compare: the vnet word when vnet_hdr_support=on
    assert encode_notify_to_compare(COLO_CHECKPOINT, vnet_hdr=True) == b"\x00\x00\x00\x0f\x00\x00\x00\x00COLO_CHECKPOINT"
    dec = FrameDecoder(vnet_hdr=True)
    msg = frames_of(dec.feed(encode_notify_to_compare(COLO_USERSPACE_PROXY_INIT, vnet_hdr=True)))[0][0]
    assert classify_notify(msg) == COLO_USERSPACE_PROXY_INIT
    assert classify_notify(b"COLO_CHECKPOINT\0") is None      # exact length required
    assert classify_notify(b"colo_checkpoint") is None


def test_mid_frame_reporting():
    dec = FrameDecoder()
    dec.feed(b"\x00\x00")
    assert dec.mid_frame
    dec.feed(b"\x00\x02h")
    assert dec.mid_frame
    assert frames_of(dec.feed(b"i")) == [(b"hi", 0)] and not dec.mid_frame
