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


def make_pair(tmp_path, hz: float, proto: str, residue: str, seed: int = 1) -> tuple[str, str, set]:
    """The pair's two capture paths and the primary frame numbers of the fast flow."""
    rng = random.Random(seed)
    pri, sec = [], []
    n = int(hz * SECONDS)
    period = int(1e9 / hz)
    # the lag wanders between 0.2 ms and 2 ms, below the flow's period: slower than that, a 7.x
    # colo-compare pops the newer of two waiting primaries first (tail pop) and requests a
    # checkpoint of its own, a compare-order artefact that is no residue (tested apart below)
    lo, hi = 200_000, min(2 * MS, period * 2 // 5)
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
