"""Resynchronisation of datagram flows at any rate (issue 22, item 1): a checkpoint leaves each
flow paired as a real COLO would leave it, so no residue from before the flush is compared with
later frames.

Each pair: one free-running datagram flow (ICMP echo replies or a UDP stream) at 1 Hz .. 1 kHz,
the secondary behind by a slowly wandering lag, a planted difference on another flow, and one
source of a residue on the fast flow:

* ``extra``: the SVM sends one datagram the PVM never sends;
* ``reset``: colo-compare's connection table overflows (16386th connection) while a primary of
  the flow waits for its copy, so the primary is discarded and its copy arrives alone.

Both make colo-compare request a checkpoint (QEMU's own decision, in raw replays too).  Before
this rule the flush paired the residue with the next primary "in arrival order", that primary's
real copy was then fed after the flush and compared with the one after it, and so on at every
later flush: one residue cost a checkpoint per frame of the flow for good (583 on a 23 Hz
pinger over a minute).  Now every case costs exactly its two requests, at every checkpoint
duration from 10 ms to 1 s.
"""

from __future__ import annotations

import random

import pytest

import colo_replay
from tests.support import frames as F
from tests.support.pcapwrite import write_pcap

MS = 1_000_000
T0 = 1_000_000_000
SECONDS = 12.0


def _flow_frame(proto: str, i: int) -> bytes:
    body = b"seq-%07d" % i + b"z" * 30
    if proto == "icmp":
        return F.icmp_echo(body, ident_=7, seq=i & 0xFFFF)
    return F.udp(body, sport=5004, dport=40000)


def make_pair(tmp_path, hz: float, proto: str, residue: str, seed: int = 1,
              lag: tuple[int, int] | None = None) -> tuple[str, str, set]:
    """The pair's two capture paths and the primary frame numbers of the fast flow; ``lag``:
    the secondary's lag range in ns (default: below the flow's period, see below)."""
    rng = random.Random(seed)
    pri, sec = [], []
    n = int(hz * SECONDS)
    period = int(1e9 / hz)
    # the lag wanders between 0.2 ms and 2 ms, below the flow's period: slower than that, a 7.x
    # colo-compare pops the newer of two waiting primaries first (tail pop) and requests a
    # checkpoint of its own, a compare-order artefact that is no residue (tested apart below)
    lo, hi = lag or (200_000, min(2 * MS, period * 2 // 5))
    lag = (lo + hi) // 2
    at = n // 3
    for i in range(n):
        t = T0 + i * period
        frame = _flow_frame(proto, i)
        lag = min(hi, max(lo, lag + rng.randint(-hi // 20, hi // 20)))
        pri.append((t, frame, True))
        sec.append((t + lag, frame))
        if residue == "extra" and i == at:
            sec.append((t + lo // 2, _flow_frame(proto, 10 ** 6 + i)))
    # the planted difference, on another flow, at two thirds
    tp = T0 + int(SECONDS * 2e9 / 3)
    pri.append((tp, F.udp(b"planted A", sport=53, dport=4000)))
    sec.append((tp + 300_000, F.udp(b"planted B", sport=53, dport=4000)))
    if residue == "reset":
        for j in range(16384):          # the table holds the flow and 16384 more connections ...
            frame = F.udp(b"c", sport=7000, dport=1024 + j % 60000, dst=f"10.1.{j >> 8 & 255}.{j & 255}")
            tj = T0 + period // 2 + j * 5_000
            pri.append((tj, frame))
            sec.append((tj + 1_000, frame))
        # ... and the next new one resets it while primary `at` waits for its copy
        tk = T0 + at * period + lo // 4
        frame = F.udp(b"new", sport=7001, dport=999, dst="10.2.0.1")
        pri.append((tk, frame))
        sec.append((tk + 1_000, frame))
    pri.sort(key=lambda r: r[0])
    sec.sort(key=lambda r: r[0])
    fast = {k for k, r in enumerate(pri, 1) if len(r) == 3}
    pri = [r[:2] for r in pri]
    return (write_pcap(str(tmp_path / "p.pcap"), pri), write_pcap(str(tmp_path / "s.pcap"), sec), fast)


def _requests(tl):
    e = tl.events
    return e[e["kind"] == "checkpoint_request"]


@pytest.mark.parametrize("duration_ms", [10, 100, 1000])
@pytest.mark.parametrize("hz", [1, 23, 100, 1000])
@pytest.mark.parametrize("proto", ["icmp", "udp"])
@pytest.mark.parametrize("residue", ["extra", "reset"])
def test_a_residue_costs_one_request_at_any_rate_and_duration(tmp_path, residue, proto, hz, duration_ms):
    p, s, fast = make_pair(tmp_path, hz, proto, residue)
    tl = colo_replay.replay(p, s, after_checkpoint="resync", checkpoint_duration_ns=duration_ms * MS)
    req = _requests(tl)
    assert list(req["cause"].astype(str)) == ["miscompare", "miscompare"], req.to_string()
    e = tl.events
    assert int((e["kind"] == "table_reset").sum()) == (1 if residue == "reset" else 0)
    # one of the two is the planted difference, at its time; the other is on the fast flow
    tp = T0 + int(SECONDS * 2e9 / 3)
    planted = req[(req["time_ns"] >= tp) & (req["time_ns"] <= tp + (duration_ms + 10) * MS)]
    assert len(planted) == 1, req.to_string()
    assert int(req.drop(planted.index)["primary_frame"].iloc[0]) in fast


@pytest.mark.parametrize("hz", [23, 1000])
def test_the_residue_is_paired_by_content_after_the_flush(tmp_path, hz):
    """The primary the residue was compared with is owed by content: its own copy, arriving
    after the flush, is superseded, and the flow compares equal again from the next frame."""
    p, s, _fast = make_pair(tmp_path, hz, "icmp", "extra")
    tl = colo_replay.replay(p, s, after_checkpoint="resync", checkpoint_duration_ns=100 * MS)
    e = tl.events
    first = _requests(tl).iloc[0]
    sup = e[(e["kind"] == "superseded") & (e["time_ns"] >= first["time_ns"])
            & (e["time_ns"] <= first["time_ns"] + 200 * MS)]
    assert list(sup["cause"].astype(str)) == ["owed"], sup.to_string()
    # every primary of the flow after the episode (up to the planted one's) is released compared_equal
    tp = T0 + int(SECONDS * 2e9 / 3)
    later = e[(e["kind"] == "release") & (e["conn"] == first["conn"])
              & (e["time_ns"] > first["time_ns"] + 200 * MS) & (e["time_ns"] < tp)]
    assert len(later) > hz and set(later["cause"].astype(str)) == {"compared_equal"}


def test_held_frames_are_all_fed_when_checkpoints_follow_each_other(tmp_path):
    """A 1 kHz flow whose secondary lags more than its period: under 7.x's newest-first queues
    every few frames compare out of order, each a checkpoint, and the frames held during one
    (fed at its end) request the next.  Every frame read is still fed in the end (before, the
    ones still held when the captures ended were left out: 300 of 12,001 fed)."""
    p, s, _fast = make_pair(tmp_path, 1000, "udp", "extra", lag=(1_200_000, 2 * MS))
    tl = colo_replay.replay(p, s, after_checkpoint="resync")
    r = tl.result
    assert r.primary.fed == r.primary.frames
    assert r.secondary.fed + r.secondary.superseded == r.secondary.frames
    e = tl.events
    released = e[e["kind"].isin(["release", "primary_lost", "queue_full_drop"])]["primary_frame"]
    assert set(released) >= set(range(1, r.primary.frames + 1)) - set(e[e["kind"] == "unsupported"]["primary_frame"])


@pytest.mark.parametrize("hz, lag, oldest_first", [(1000, (1_200_000, 2 * MS), True),
                                                   (23, None, False)])
def test_explain_calls_out_of_order_compares_compare_order(tmp_path, hz, lag, oldest_first):
    """Issue 22, item 2: a root whose primary has an identical copy in the same flow that
    colo-compare did not pair with it is its own class, ``compare-order``, names the copy, and
    says whether an oldest-first queue (QEMU 4.1 to 6.2) would have paired them: yes for the
    tail-pop artefact of a fast flow, no for a residue (an extra SVM frame).  The planted
    difference stays a divergence of its own."""
    p, s, fast = make_pair(tmp_path, hz, "icmp", "extra", lag=lag)
    x = colo_replay.explain(p, s, other_profile=False, tshark=False, limit=5 if hz == 1000 else None)
    order = [d for d in x.divergences if d.field == "compare-order"]
    assert order and all(d.primary_frame in fast for d in order)
    for d in order:
        co = d.details["compare_order"]
        assert co["matching_frame"].startswith("S#") and co["matching_frame"] != co["compared_with"]
        assert co["oldest_first_pairs_them"] is oldest_first
        assert (co["copy_of"] is not None) is oldest_first
        assert any(n.startswith("compare order, not a divergence") for n in d.notes)
        if oldest_first:
            assert any("QEMU 4.1.0 to 6.2.x" in n for n in d.notes if n.startswith("compare order"))
    classes = x.classes.set_index("field")
    assert "compare-order" in classes.index
    assert "Not a divergence in the guest" in classes.loc["compare-order", "hint"]
    if hz == 23:
        # the residue and the planted difference: two roots, one of each class
        assert x.counts["divergences"] == 2 and x.counts["compare_order"] == 1
        assert sorted(classes.index) == ["compare-order", "udp.payload"]
