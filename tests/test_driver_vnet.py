"""The replay driver with per-frame vnet header lengths (``Batch.vnet_lens``), and its merge order."""

import random

import pytest

from colo_replay.captures.base import Batch
from colo_replay.offline.driver import ReplayOptions, replay_partial
from tests.support.frames import udp

MS = 1_000_000
T0 = 1_700_000_000 * 1_000_000_000


class ListReader:
    """A capture reader over in-memory frames: ``rows`` are (time_ns, frame[, vnet_len])."""

    format = "test"

    def __init__(self, rows, batch_size=3, with_vnets=None):
        self.path = "mem"
        self.rows = rows
        self.batch_size = batch_size
        self.with_vnets = len(rows[0]) > 2 if with_vnets is None and rows else with_vnets

    def batches(self):
        for lo in range(0, len(self.rows), self.batch_size):
            part = self.rows[lo:lo + self.batch_size]
            frames = [r[1] for r in part]
            yield Batch(lo + 1, [r[0] for r in part], frames, [len(f) for f in frames], [0] * len(part),
                        vnet_lens=[r[2] for r in part] if self.with_vnets else None)


def events(result):
    return result.collector.to_frame()


def test_each_frame_is_fed_with_its_own_vnet_length():
    bodies = [udp(b"frame %d" % i) for i in range(6)]
    vnets = [0, 4, 12, 20, 10, 0]
    # The same frames on both sides, each with its own vnet header length.  (The lengths must
    # agree within a pair: QEMU compares UDP at the primary's vnet offset in both frames, Q9.)
    prim = [(T0 + i * MS, bytes(v) + b, v) for i, (b, v) in enumerate(zip(bodies, vnets))]
    sec = [(T0 + i * MS + 100, b"\xee" * v + b, v) for i, (b, v) in enumerate(zip(bodies, vnets))]
    result, err = replay_partial(ListReader(prim), ListReader(sec), ReplayOptions(vnet_hdr_support=True))
    assert err is None
    ev = events(result)
    rel = ev[ev.kind == "release"]
    assert list(rel.cause) == ["compared_equal"] * 6
    assert list(rel.primary_frame) == list(range(1, 7)) and list(rel.secondary_frame) == list(range(1, 7))
    assert result.primary.fed == result.secondary.fed == 6


def test_per_frame_vnet_length_reaches_the_engine():
    # 7.2 refuses a vnet header longer than 20 bytes: only the frame that has one is refused.
    body = udp(b"x")
    prim = [(T0, bytes(4) + body, 4), (T0 + MS, bytes(24) + body, 24)]
    sec = [(T0 + 100, body, 0), (T0 + MS + 100, bytes(8) + body, 8)]
    result, _ = replay_partial(ListReader(prim), ListReader(sec), ReplayOptions(vnet_hdr_support=True))
    ev = events(result)
    uns = ev[ev.kind == "unsupported"]
    assert list(uns.cause) == ["vnet_too_long"] and list(uns.primary_frame) == [2]


def test_without_vnet_lens_the_constant_length_is_used():
    body = udp(b"y")
    prim = [(T0, bytes(6) + body)]
    sec = [(T0 + 100, bytes(6) + body)]
    result, _ = replay_partial(ListReader(prim), ListReader(sec), ReplayOptions(vnet_hdr_len=6))
    ev = events(result)
    assert list(ev.kind) == ["release", "secondary_dropped"] and ev.cause.iloc[0] == "compared_equal"


def test_vnet_lens_of_the_wrong_length_is_an_error():
    class Bad(ListReader):
        def batches(self):
            yield Batch(1, [T0], [udp(b"z")], [42], [0], vnet_lens=[0, 0])

    with pytest.raises(ValueError, match="vnet lengths"):
        replay_partial(Bad([(T0, b"")]), ListReader([(T0, udp(b"z"))]), ReplayOptions(vnet_hdr_support=True))


def test_merge_order_is_head_comparison_even_when_timestamps_go_backwards():
    """Frames are fed in the order of comparing the two sides' next frames (primary first at
    equal times), whatever the batch sizes, also when a capture's timestamps go backwards.
    Each frame is a flow of its own (its source port), so the engine's connections, numbered in
    first-seen order (``result.connections``), give the order it was fed in (both cores)."""
    rng = random.Random(7)
    for trial in range(40):
        def times(n):
            t, out = T0, []
            for _ in range(n):
                t += rng.choice([0, 0, 1, 3, 7, -5 if trial % 2 else 2]) * 1000
                out.append(t)
            return out

        pt, st = times(rng.randrange(1, 30)), times(rng.randrange(1, 30))
        prim = [(t, udp(b"p%d" % i, sport=1000 + i)) for i, t in enumerate(pt)]
        sec = [(t, udp(b"s%d" % i, sport=3000 + i)) for i, t in enumerate(st)]
        result, err = replay_partial(ListReader(prim, rng.randrange(1, 6)), ListReader(sec, rng.randrange(1, 6)),
                                     ReplayOptions(checkpoint_delay_ns=0))
        assert err is None
        fed = []
        for _index, _proto, key in sorted(result.connections):
            sport = int.from_bytes(key[8:10], "big")       # key: saddr daddr sport dport proto
            side, n = (0, sport - 1000) if sport < 3000 else (1, sport - 3000)
            fed.append((side, n + 1, (pt if side == 0 else st)[n]))
        # the reference: the original loop's choice, frame by frame
        expect, a, b = [], 0, 0
        while a < len(pt) or b < len(st):
            if a < len(pt) and (b >= len(st) or not st[b] < pt[a]):
                expect.append((0, a + 1, pt[a]))
                a += 1
            else:
                expect.append((1, b + 1, st[b]))
                b += 1
        assert fed == expect, trial
