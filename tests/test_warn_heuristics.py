"""The replay's warning heuristics, vectorised, against their per-frame reference.

``offline/rewriter.synack_table`` (TCP ISNs differ -> "use --filter-rewriter", and the
filter-rewriter's own table) and ``offline/align.estimate_alignment`` (clock skew -> "try --align
auto", and ``--align auto`` itself) select frames with numpy over the batch buffer and pair
content keys by fingerprint.  They must give exactly what the per-frame code gave
(tests/support/warn_reference.py, the code as it was): the same tables, the same ``Alignment``
or the same ``ValueError``, on the sample pair and on generated captures full of odd frames
(VLAN, IPv6, ARP, runts, IP and TCP options, bogus IHL and total lengths, fragments, Ethernet
padding, snaplen cuts, vnet headers, fingerprint collisions, duplicates), read as pcap in big and
tiny chunks (one frame a batch: frames straddle nothing, gathers run off the buffer's end), as
pcapng (list batches) and as hand-made batches (memoryview buffers, gaps between frames, times
that do not fit int64).  scripts/test runs this file on the interpreted install too (the pcap
reader's batches come from the compiled or the interpreted reader).
"""

from __future__ import annotations

import random
import struct
from array import array
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from colo_replay.captures import Batch, open_capture
from colo_replay.captures.writer import PcapngWriter
from colo_replay.offline.replay_warnings import sample_heuristics
from colo_replay.offline import align, rewriter
from tests.support import warn_reference as ref
from tests.support.frames import arp_reply, eth, ip4, ipv4, ipv6_udp, vlan
from tests.support.pcapwrite import write_pcap

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = (ROOT / "sample_pcaps" / "primary.pcap", ROOT / "sample_pcaps" / "secondary.pcap")
T0 = 1_700_000_000 * 10**9


def _alignment(estimate, p_reader, s_reader, vnet):
    try:
        return estimate(p_reader, s_reader, vnet)
    except ValueError as exc:
        return f"ValueError: {exc}"


def assert_same(primary, secondary, vnet: int = 0, **open_kw) -> tuple:
    """The new and the reference heuristics agree on this pair of captures (paths); returns the
    reference's (primary table, secondary table, alignment) for the caller's own checks."""
    def rd(path):
        return open_capture(path, **open_kw)

    old = (ref.synack_table(rd(primary), vnet), ref.synack_table(rd(secondary), vnet),
           _alignment(ref.estimate_alignment, rd(primary), rd(secondary), vnet))
    new = (rewriter.synack_table(rd(primary), vnet), rewriter.synack_table(rd(secondary), vnet),
           _alignment(align.estimate_alignment, rd(primary), rd(secondary), vnet))
    assert new[0] == old[0]
    assert new[1] == old[1]
    assert new[2] == old[2]
    # the replay's warnings read each sample once for both (offline.replay_warnings.sample_heuristics): the same
    # tables and alignment (None where estimate_alignment raises), and either one alone too
    both = sample_heuristics(rd(primary), rd(secondary), vnet, True, True)
    assert both == ([old[0], old[1]], None if isinstance(old[2], str) else old[2])
    assert sample_heuristics(rd(primary), rd(secondary), vnet, True, False) == ([old[0], old[1]], None)
    assert sample_heuristics(rd(primary), rd(secondary), vnet, False, True) == ([{}, {}], both[1])
    return old


def test_sample_pair():
    pt, st_, found = assert_same(*SAMPLES)
    assert len(pt) == len(st_) == 9 and found.anchors == 81
    # the filter-rewriter table of the primary, read in tiny chunks (a frame or so a batch)
    assert rewriter.synack_table(open_capture(SAMPLES[0], chunk_size=64)) == pt


# -- generated captures -------------------------------------------------------------------------

def _ipv4(proto: int, l4: bytes, rnd: random.Random, options: bytes = b"") -> bytes:
    ihl = 5 + len(options) // 4
    frag = rnd.choice((0x4000, 0x4000, 0x4000, 0, 0x2000, 0x0001, 0x00B9, 0x8000))
    total = ihl * 4 + len(l4)
    if rnd.random() < 0.08:
        total = rnd.choice((0, 3, ihl * 4 - 1, ihl * 4, total - 1, total + 1, total + 300, 0xFFFF))
    vihl = (4 << 4) | ihl
    if rnd.random() < 0.05:
        vihl = rnd.choice(((6 << 4) | ihl, (4 << 4) | rnd.randrange(5), (4 << 4) | 15))
    src, dst = rnd.choice((("10.0.0.1", "10.0.0.2"), ("10.0.0.1", "10.0.0.3"), ("10.0.0.4", "10.0.0.2")))
    return struct.pack("!BBHHHBBH4s4s", vihl, 0, total & 0xFFFF, rnd.randrange(1 << 16), frag, 64, proto, 0,
                       ip4(src), ip4(dst)) + options + l4


def _options(rnd: random.Random) -> bytes:
    return bytes(rnd.randrange(256) for _ in range(4 * rnd.choice((0, 0, 0, 1, 2, 10))))


def _frame(rnd: random.Random, bodies: list, ports: list) -> bytes:
    kind = rnd.choices(("tcp", "udp", "icmp", "other", "vlan", "ipv6", "arp", "runt", "ethertype"),
                       (50, 15, 8, 3, 3, 2, 2, 3, 4))[0]
    body = rnd.choice(bodies)
    if kind == "ethertype":                         # IPv4 inside, but not EtherType 0x0800
        inner = _frame(rnd, bodies, ports)
        return inner[:12] + struct.pack("!H", rnd.choice((0x0801, 0x0808, 0x0000, 0x1800))) + inner[14:]
    if kind == "runt":
        return eth(b"\x45" * rnd.randrange(30))[:rnd.randrange(50)]
    if kind == "arp":
        return arp_reply()
    if kind == "ipv6":
        return ipv6_udp(body)
    if kind in ("tcp", "vlan"):
        sport, dport = rnd.choice(ports)
        flags = rnd.choice((0x12, 0x12, 0x02, 0x10, 0x18, 0x18, 0x18, 0x11, 0x04, 0x1A, 0x13))
        topts = _options(rnd)
        seg = struct.pack("!HHIIBBHHH", sport, dport, rnd.randrange(1 << 32), rnd.randrange(1 << 32),
                          (5 + len(topts) // 4) << 4, flags, 65535, 0, 0) + topts + body
        if rnd.random() < 0.04:                     # a data offset past the segment
            seg = seg[:12] + bytes([0xF0]) + seg[13:]
        frame = eth(_ipv4(6, seg, rnd, _options(rnd)))
        return vlan(frame) if kind == "vlan" else frame
    if kind == "udp":
        return eth(_ipv4(17, struct.pack("!HHHH", 5353, 53, 8 + len(body), 0) + body, rnd))
    if kind == "icmp":
        return eth(_ipv4(1, body, rnd, _options(rnd)))      # the same bodies as UDP: protocols differ
    return eth(_ipv4(rnd.choice((47, 132)), body, rnd))


def _bodies(rnd: random.Random) -> list:
    """Payloads shared by both sides: short ones (under the 8-byte TCP minimum, single bytes),
    long ones, and sets of one length whose first and last 8 bytes agree (one fingerprint,
    different keys)."""
    out = [b"", b"x", b"1234567", b"12345678", b"123456789"]
    out += [rnd.randbytes(rnd.choice((1, 5, 8, 9, 16, 100, 1400))) for _ in range(25)]
    for _ in range(3):
        head, tail, n = rnd.randbytes(8), rnd.randbytes(8), rnd.choice((17, 40, 1000))
        out += [head + rnd.randbytes(n - 16) + tail for _ in range(3)]
    return out


def odd_pair(seed: int, frames: int, vnet: int = 0):
    """Records (time, frame, orig_len) of a primary and a secondary capture that share much
    content: the secondary drops, repeats and changes some frames and its clock is off."""
    rnd = random.Random(seed)
    bodies = _bodies(rnd)
    ports = [(80, 40000 + i) for i in range(4)] + [(40001, 80)]
    skew = rnd.choice((0, 3_000_000, -250 * 10**6))
    prim, sec = [], []
    t = T0 + rnd.randrange(10**9)
    for _ in range(frames):
        t += rnd.randrange(1, 5_000_000)
        frame = _frame(rnd, bodies, ports)
        if rnd.random() < 0.1:
            frame += rnd.randbytes(rnd.randrange(1, 30))            # padding or trailing junk
        if vnet:
            frame = rnd.randbytes(vnet) + frame
        orig = len(frame)
        if rnd.random() < 0.06:                                     # cut by a snaplen
            frame = frame[:rnd.randrange(len(frame) + 1)]
        prim.append((t, frame, orig))
        roll = rnd.random()
        ts = t + skew + rnd.randrange(-200_000, 200_000)
        if roll < 0.75:
            sec.append((ts, frame, orig))
        elif roll < 0.85:
            sec += [(ts, frame, orig), (ts + 1000, frame, orig)]
        elif roll < 0.95:
            other = frame if vnet else _frame(rnd, bodies, ports)
            sec.append((ts, other, len(other)))
    sec.sort(key=lambda r: r[0])
    return prim, sec


def write_pair(tmp_path: Path, prim, sec, fmt: str):
    paths = []
    for name, records in (("p", prim), ("s", sec)):
        path = tmp_path / f"{name}.{fmt}"
        if fmt == "pcap":
            write_pcap(path, records, nanos=True, snaplen=262144)
        else:
            w = PcapngWriter(str(path))
            for t, frame, orig in records:
                w.write(t, frame, orig_len=orig)
            w.close()
        paths.append(path)
    return paths


@pytest.mark.parametrize("vnet", [0, 10, 12])
@pytest.mark.parametrize("seed", range(6))
def test_generated_pairs_in_every_layout(tmp_path, seed, vnet):
    prim, sec = odd_pair(seed, 600, vnet)
    p, s = write_pair(tmp_path, prim, sec, "pcap")
    pt, _st, found = assert_same(p, s, vnet)
    assert pt and isinstance(found, align.Alignment)        # the generator gives both some work
    assert_same(p, s, vnet, chunk_size=80)                  # about a frame a batch
    assert_same(p, s, vnet, chunk_size=2048)
    assert_same(*write_pair(tmp_path, prim, sec, "pcapng"), vnet)


@pytest.mark.parametrize("held", [0, 3000])
def test_primary_buffers_compacted_as_they_are_read(tmp_path, monkeypatch, held):
    """A whole capture under --align auto: past ``_HELD_WHOLE`` bytes of kept batch buffers the
    primary's new keys are copied out of them (here after every batch, or every few)."""
    monkeypatch.setattr(align, "_HELD_WHOLE", held)
    for seed in range(3):
        prim, sec = odd_pair(100 + seed, 500, 0)
        p, s = write_pair(tmp_path, prim, sec, "pcap")
        assert_same(p, s, chunk_size=600)
        assert_same(*write_pair(tmp_path, prim, sec, "pcapng"))
    assert_same(*SAMPLES, chunk_size=1000)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**32), frames=st.integers(0, 300), vnet=st.sampled_from([0, 0, 4, 12]),
       chunk=st.sampled_from([64, 200, 1500, 1 << 18]))
def test_random_pairs(tmp_path, seed, frames, vnet, chunk):
    prim, sec = odd_pair(seed, frames, vnet)
    assert_same(*write_pair(tmp_path, prim, sec, "pcap"), vnet, chunk_size=chunk)


# -- hand-made batches --------------------------------------------------------------------------

class BatchReader:
    """A reader of batches made here (the API's readers are this and ``batches()``)."""

    def __init__(self, batches):
        self._batches = batches

    def batches(self):
        yield from self._batches


def columnar(first: int, times, frames, gap: bytes = b"", as_view: bool = False) -> Batch:
    """A columnar batch: the frames in one buffer, ``gap`` before each (a record header's place)."""
    starts, parts, pos = array("q"), [], 0
    for f in frames:
        parts += [gap, f]
        starts.append(pos + len(gap))
        pos += len(gap) + len(f)
    buf = b"".join(parts)
    caps = array("q", map(len, frames))
    return Batch(first, array("q", times), None, array("q", caps), [0] * len(frames),
                 buf=memoryview(buf) if as_view else buf, starts=starts, caps=caps)


def listed(first: int, times, frames) -> Batch:
    return Batch(first, list(times), list(frames), [len(f) for f in frames], [0] * len(frames))


def batched(records, make, size: int):
    return [make(i + 1, [r[0] for r in records[i:i + size]], [r[1] for r in records[i:i + size]])
            for i in range(0, len(records), size)]


def both(prim_batches, sec_batches, vnet=0):
    """(reference, new) of the three results, each on fresh readers of the same batches."""
    out = []
    for syn, est in ((ref.synack_table, ref.estimate_alignment), (rewriter.synack_table, align.estimate_alignment)):
        out.append((syn(BatchReader(prim_batches), vnet), syn(BatchReader(sec_batches), vnet),
                    _alignment(est, BatchReader(prim_batches), BatchReader(sec_batches), vnet)))
    return out


@pytest.mark.parametrize("make", [
    lambda first, ts, fr: columnar(first, ts, fr),
    lambda first, ts, fr: columnar(first, ts, fr, gap=b"\x45\x00\xff" * 5, as_view=True),
    listed,
], ids=["columnar", "columnar-gaps-view", "list"])
@pytest.mark.parametrize("size", [1, 7, 500])
def test_hand_made_batches(make, size):
    prim, sec = odd_pair(99, 400, 0)
    old, new = both(batched(prim, make, size), batched(sec, make, size))
    assert new == old and isinstance(old[2], align.Alignment)


@pytest.mark.parametrize("bases", [
    (10**9,), (2**62 - 10**6,), (10**9, 2**63 - 3 * 10**9), (10**9, 2**62), (-(10**9), 2**62 + 10**9),
    (2**64,), (10**9, 2**64 + 10**9), (-(2**70),),
], ids=["small", "under-2^62", "spread-past-2^63", "spread-2^62", "negative", "past-int64", "mixed", "huge-negative"])
def test_times_far_apart(bases):
    """Times near or past what an int64 holds (a hand-made batch can carry any int), differences
    of nearly 2**64: the anchors' differences and residuals are exact either way."""
    prim, sec = odd_pair(7, 300, 0)
    rnd = random.Random(str(bases))
    # mostly the first base on the primary and the last on the secondary: the median difference
    # is then at one extreme, and the residuals of the other extreme span nearly 2**64
    p = [(bases[0 if rnd.random() < 0.8 else -1] + i, f) for i, (_t, f, _o) in enumerate(prim)]
    s = [(bases[-1 if rnd.random() < 0.8 else 0] + 2 * i, f) for i, (_t, f, _o) in enumerate(sec)]
    for make in (columnar, listed):
        fits = all(-2**63 <= t < 2**63 for t, _f in p + s)
        old, new = both(batched(p, make if fits else listed, 50), batched(s, make if fits else listed, 50))
        assert new == old and isinstance(old[2], align.Alignment)


def test_fingerprint_collisions_pair_only_equal_keys():
    """Keys with one fingerprint (protocol, length, first and last 8 bytes alike) but different
    middles: each is its own key, counted on its own."""
    head, tail = b"H" * 8, b"T" * 8
    x, y, z = (head + m * 10 + tail for m in (b"x", b"y", b"z"))

    def udp_frame(body, proto=17):
        return eth(ipv4(proto, body))          # no UDP header: the key is the body itself

    # primary: x once, y twice, z once, x as ICMP once; secondary: x once, y once, z twice, x as ICMP once
    prim = [udp_frame(b) for b in (x, y, y, z)] + [udp_frame(x, 1)]
    sec = [udp_frame(b) for b in (z, x, y, z)] + [udp_frame(x, 1)]
    # the reference's content keys for these frames (the vectorised code never builds them)
    assert len({ref.content_key(f)[:1] + ref.content_key(f)[-8:] for f in prim}) == 2
    pb = [listed(1, [T0 + i * 10**6 for i in range(len(prim))], prim)]
    sb = [listed(1, [T0 + i * 10**6 + 500 for i in range(len(sec))], sec)]
    old, new = both(pb, sb)
    assert new == old
    assert old[2].anchors == 2          # x over UDP and x over ICMP: y is repeated, z too
    # one frame of the fingerprint on each side, different keys: no anchor
    assert both([listed(1, [T0], [udp_frame(x)])], [listed(1, [T0], [udp_frame(y)])])[1][2] == \
        "ValueError: --align auto: no frame has the same content in both captures"
    for make in (columnar, listed):     # every frame in a group of one fingerprint
        assert both([make(1, [T0] * 3, [udp_frame(x)] * 3)], [make(1, [T0], [udp_frame(x)])])[1][2] == \
            "ValueError: --align auto: no frame has the same content in both captures"


def test_the_warnings_sample_is_the_first_frames_whatever_the_chunk_size():
    """offline.replay_warnings.Head: exactly the first ``limit`` frames (a batch cut by Batch.head), so the warnings'
    sample does not depend on how the reader chunks the file."""
    from colo_replay.offline.replay_warnings import Head

    whole = list(open_capture(SAMPLES[0]))
    for chunk in (64, 1000, 1 << 20):
        got = [row for batch in Head(open_capture(SAMPLES[0], chunk_size=chunk), 37).batches() for row in batch]
        assert got == whole[:37], chunk
    # a list batch (pcapng, chardev) is cut the same way
    rows = whole[:5]
    batch = Batch(1, [r[1] for r in rows], [r[2] for r in rows], [r[3] for r in rows], [0] * 5, vnet_lens=[0] * 5)
    head = batch.head(3)
    assert list(head) == [tuple(r[:4]) + (0,) for r in rows[:3]] and head.vnet_lens == [0, 0, 0]
    assert batch.head(5) is batch


def test_the_warnings_sample_is_bounded_in_bytes_at_a_frame(tmp_path):
    """Head's ``max_bytes``: the sample ends before the first frame that would take its captured bytes past
    the bound, whatever the chunk size and whichever reader (a pcap's chunk, a pcapng's list of frames); the
    frame limit still applies when it comes first."""
    from itertools import accumulate

    from colo_replay.offline.replay_warnings import Head

    whole = list(open_capture(SAMPLES[0]))
    assert len(whole) > 40
    upto = list(accumulate(len(r[2]) for r in whole))
    ng = tmp_path / "p.pcapng"
    with PcapngWriter(ng) as w:
        for r in whole:
            w.write(r[1], r[2])
    for bound in (upto[0], upto[9] - 1, upto[9], upto[30] + 1):
        n = sum(1 for u in upto if u <= bound)
        for chunk in (64, 1000, 1 << 20):
            got = [row for batch in Head(open_capture(SAMPLES[0], chunk_size=chunk), 10**6, bound).batches()
                   for row in batch]
            assert got == whole[:n], (bound, chunk)
            got = [row for batch in Head(open_capture(SAMPLES[0], chunk_size=chunk), 5, bound).batches()
                   for row in batch]
            assert got == whole[:min(n, 5)], (bound, chunk)
            got = [row[2] for batch in Head(open_capture(ng, chunk_size=chunk), 10**6, bound).batches()
                   for row in batch]
            assert got == [r[2] for r in whole[:n]], (bound, chunk, "pcapng")
    # not even the first frame fits: an empty sample
    assert list(Head(open_capture(SAMPLES[0]), 10**6, upto[0] - 1).batches()) == []
