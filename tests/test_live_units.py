"""Unit tests of live-mode pieces that need no sockets: the fast frame front, the clock, the
simulated checkpoint, the recorder's pcapng (read back by the project's own reader)."""

from __future__ import annotations

import random

import pytest

from colo_replay import NET_BUFSIZE, Frame, FrameDecoder, encode_frame
from colo_replay.captures import open_capture
from colo_replay.live.checkpoint_sim import CheckpointSim
from colo_replay.live.clock import LiveClock
from colo_replay.engine.fastframes import FastDecoder
from colo_replay.live.recorder import PcapngWriter
from tests.support.live_stubs import stub_live_compare


def _exact(stream: bytes, cuts, vnet):
    d = FrameDecoder(vnet)
    out, errs = [], []
    for a, b in zip(cuts, cuts[1:]):
        for fr in d.feed(stream[a:b]):
            (out.append((fr.data, fr.vnet_hdr_len)) if isinstance(fr, Frame) else errs.append(fr))
    return out, errs, d.disabled


def _fast(stream: bytes, cuts, vnet):
    d = FastDecoder(vnet)
    out, errs = [], []
    for a, b in zip(cuts, cuts[1:]):
        frames, err = d.feed(stream[a:b])
        out += frames
        if err is not None:
            errs.append(err)
    return out, errs, d.disabled


def test_fast_decoder_equals_exact_decoder_for_every_cut():
    rng = random.Random(7)
    for vnet in (False, True):
        frames = [rng.randbytes(rng.randint(1, 300)) for _ in range(20)]
        wire = b"".join(encode_frame(f, rng.randint(0, 24) if vnet else 0, vnet) for f in frames)
        zero = (b"\0" * (8 if vnet else 4))
        tail_cases = [b"", zero + encode_frame(b"after-zero", 0, vnet),
                      encode_frame(b"x" * (NET_BUFSIZE + 5), 0, vnet) + encode_frame(b"never", 0, vnet),
                      encode_frame(b"y" * NET_BUFSIZE, 0, vnet)]
        for tail in tail_cases:
            stream = wire + tail
            for cut in list(range(0, min(len(stream), 400))) + [len(stream) - 3, len(stream)]:
                cuts = [0, cut, len(stream)] if 0 < cut < len(stream) else [0, len(stream)]
                e = _exact(stream, cuts, vnet)
                f = _fast(stream, cuts, vnet)
                assert f[0] == e[0] and f[2] == e[2], (vnet, cut)
                assert [(x.declared_len, x.offset) for x in f[1]] == [(x.declared_len, x.offset) for x in e[1]]
            many = sorted(rng.sample(range(1, len(stream)), 30))
            cuts = [0] + many + [len(stream)]
            assert _fast(stream, cuts, vnet)[0] == _exact(stream, cuts, vnet)[0]


def test_clock_is_strictly_increasing_and_ms_aligned():
    c = LiveClock()
    assert c.offset % 1_000_000 == 0
    seq = [c.now() for _ in range(1000)]
    assert all(b > a for a, b in zip(seq, seq[1:]))


def test_checkpoint_sim_coalesces_like_5_1_and_counts_like_4_1():
    s = CheckpointSim(100, coalesce=True)
    assert s.request(0) == 100 and s.request(10) is None and s.request(20) is None
    assert s.finish(100) == 200 and s.finish(200) is None
    s = CheckpointSim(100, coalesce=False)
    assert s.request(0) == 100 and s.request(10) is None and s.request(20) is None
    assert s.finish(100) == 200 and s.finish(200) == 300 and s.finish(300) is None


def test_recorder_pcapng_reads_back_with_ns_stamps(tmp_path):
    p = tmp_path / "x.pcapng"
    w = PcapngWriter(str(p), "primary_in")
    t0 = 1_795_000_000_123_456_789
    w.write(t0, b"\x01" * 61, "vnet_hdr_len=0")
    w.write(t0 + 7, b"\x02" * 64)
    w.write(t0 + 9, b"", "end", orig_len=1)
    w.close()
    rows = [(t, bytes(f), o) for b in open_capture(str(p)).batches()
            for t, f, o in zip(b.timestamps, b.frames, b.orig_lens)]
    assert rows == [(t0, b"\x01" * 61, 61), (t0 + 7, b"\x02" * 64, 64), (t0 + 9, b"", 1)]


def test_a_bug_in_a_callback_stops_cleanly_with_one_line():
    """An exception inside a socket callback must not leave a half-dead process printing
    tracebacks: one error line, then the normal stop (summary, exit status 2)."""
    import asyncio
    import io
    from colo_replay.live.logs import Log
    from colo_replay.live.runtime import LiveCompare

    stream = io.StringIO()
    lc = LiveCompare({}, log=Log(stream=stream))

    async def main():
        lc.loop = asyncio.get_running_loop()
        lc._stop = lc.loop.create_future()
        lc.loop.set_exception_handler(lc._on_loop_error)
        lc.loop.call_soon(lambda: 1 / 0)
        return await asyncio.wait_for(lc._stop, 5)

    assert asyncio.run(main()) == "internal error"
    text = stream.getvalue()
    assert text.count("\n") == 1 and "internal_error" in text and "ZeroDivisionError" in text
    assert "Traceback" not in text


@pytest.mark.parametrize("vnet", [False, True])
def test_lean_input_loop_writes_what_the_event_loop_writes(vnet):
    """Live mode without a timeline runs the engine with compact_pairs and its lean loop (and
    writes long reads in groups); with a timeline every event is handled.  Same reads in: the
    same bytes on outdev, the same DO_CHECKPOINTs, the same counters.  With vnet_hdr_support,
    frames with and without a vnet header (the fast path takes only the latter)."""
    from tests.support import frames as F
    from colo_replay.output.timeline import TimelineCollector
    rng = random.Random(5)
    reads = []
    for r in range(12):
        pri, sec = [], []
        for i in range(rng.choice([3, 300, 700])):
            k = rng.random()
            if k < 0.4:
                f = F.udp(rng.randbytes(rng.choice([10, 60])), sport=1000 + i % 50)
            elif k < 0.8:
                f = F.tcp(1000 + r * 1000 + i, rng.randbytes(rng.choice([0, 40])), sport=2000 + i % 50)
            elif k < 0.9:
                f = bytes(12) + b"\x86\xdd" + rng.randbytes(50)          # IPv6: passed through
            else:
                f = F.udp(b"P" * 20, sport=3000 + i)                    # secondary differs below
                pri.append(f)
                sec.append(F.udp(b"S" * 20, sport=3000 + i))
                continue
            pri.append(f)
            sec.append(f)
        if vnet:
            hdr = [rng.choice([0, 0, 10, 12]) for _ in pri]
            reads.append((0, b"".join(encode_frame(bytes(h) + f, h, True) for h, f in zip(hdr, pri))))
            reads.append((1, b"".join(encode_frame(bytes(h) + f, h, True) for h, f in zip(hdr, sec))))
        else:
            reads.append((0, b"".join(encode_frame(f) for f in pri)))
            reads.append((1, b"".join(encode_frame(f) for f in sec)))
    lean, full = stub_live_compare(None, vnet), stub_live_compare(TimelineCollector(), vnet)
    assert lean.engine.compact_pairs and not full.engine.compact_pairs
    for side, chunk in reads:
        lean._input(side, chunk)
        full._input(side, chunk)
    for name in ("outdev", "notify_dev"):
        assert b"".join(lean.channels[name].writes) == b"".join(full.channels[name].writes)
    assert len(lean.channels["outdev"].writes) > len(full.channels["outdev"].writes)   # grouped
    a, b = lean.stats.as_dict(), full.stats.as_dict()
    assert a == b and a["released"] > 1000 and a["passthrough"] > 100 and a["checkpoint_requests"] > 0


def test_reads_are_sized_to_a_few_hundred_frames():
    from colo_replay.live import runtime
    from tests.support import frames as F
    lc = stub_live_compare(None)
    small = b"".join(encode_frame(F.udp(b"x" * 58, sport=1000 + i)) for i in range(10))
    lc._input(0, small)
    assert lc.channels["primary_in"].read_size == len(small) // 10 * runtime.READ_FRAMES
    big = b"".join(encode_frame(F.udp(b"x" * 1400, sport=1000 + i)) for i in range(10))
    lc._input(1, big)
    assert lc.channels["secondary_in"].read_size == runtime.READ_SIZE
    tiny = b"".join(encode_frame(bytes(14)) for i in range(10))
    lc._input(0, tiny)
    assert lc.channels["primary_in"].read_size == runtime.MIN_READ_SIZE
