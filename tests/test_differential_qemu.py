"""Differential tests: the real QEMU 7.2 colo-compare against ``colo_replay.Engine("7.2")``.

Every scenario of ``tests/support/scenarios.py`` is run through a fresh QEMU process (start-up is
~50-70 ms, so one process per scenario is cheap and every scenario starts from empty state) and
through the engine, and the results are compared step by step:

* released frames (bytes and vnet length, in outdev order) must be equal for every step;
* checkpoint requests (DO_CHECKPOINT on notify_dev) must be equal for every step, except in
  timer-driven scenarios (those with WAIT steps): QEMU's scan phase relative to the steps is
  unknown, so there the running totals may differ by at most one per WAIT step so far.

The QEMU binary is required: if it is missing or does not start, these tests fail (never skip).
"""

from __future__ import annotations

import signal

import pytest

from colo_replay import PRIMARY, Cause, Engine, EventKind
from colo_replay.engine.profiles import ACK_UMAX, GATE_SACK, QEMU_7_2, derive

from tests.support import frames as F
from tests.support.differential import SCENARIOS, compare, qemu_run, report
from tests.support.engine_runner import config_of, run_engine
from tests.support.qemu_oracle import QemuOracle, zero_length_frame_bytes
from tests.support.scenarios import Scenario

pytestmark = pytest.mark.qemu

# ---------------------------------------------------------------------- the differential tests
@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
def test_qemu_and_engine_agree(scenario: Scenario):
    qres = qemu_run(scenario)
    _, eres = run_engine(scenario)
    problems = compare(scenario, qres, eres)
    assert not problems, report(scenario, qres, eres, problems)


def test_qemu_properties_are_applied():
    """The oracle really configures colo-compare (read back with qom-get)."""
    with QemuOracle(compare_timeout=200, expired_scan_cycle=100, max_queue_size=3, vnet_hdr_support=True) as q:
        assert q.qom_get("compare_timeout") == 200
        assert q.qom_get("expired_scan_cycle") == 100
        assert q.qom_get("max_queue_size") == 3
        assert q.qom_get("vnet_hdr_support") is True
    with QemuOracle() as q:
        resolved = config_of(Scenario("defaults", [])).resolve(QEMU_7_2)
        assert q.qom_get("compare_timeout") == resolved.compare_timeout
        assert q.qom_get("expired_scan_cycle") == resolved.expired_scan_cycle
        assert q.qom_get("max_queue_size") == resolved.max_queue_size
        assert q.qom_get("vnet_hdr_support") is False


def test_zero_length_primary_frame_aborts_qemu_and_engine_says_so():
    """A zero-length frame on primary_in: QEMU 7.2 dies on assert(data) (SIGABRT); the engine
    emits QEMU_CRASH / SIGABRT_ASSERT_DATA."""
    with QemuOracle() as q:
        cap = q.step(("P", F.udp(b"before")))
        assert cap.releases == [] and cap.checkpoints == 0
        q.send_raw("pri", zero_length_frame_bytes())
        rc = q.wait_exit(10.0)
        stderr = q.stderr_text()
    assert rc == -signal.SIGABRT, (rc, stderr)
    assert "Assertion" in stderr and "data" in stderr, stderr

    eng = Engine("7.2")
    eng.feed(PRIMARY, F.udp(b"before"), 1_000_000)
    events = eng.feed(PRIMARY, b"", 2_000_000)
    crashes = [ev for ev in events if ev.kind == EventKind.QEMU_CRASH]
    assert crashes and crashes[0].cause == Cause.SIGABRT_ASSERT_DATA, [ev.describe() for ev in events]


MUTATIONS = {
    # name: (profile switches, a behaviour the real QEMU 7.2 shows)
    "non-TCP oldest-first (pre-7.0)": dict(nontcp_pop_tail=False),
    "TCP head pop, ties LIFO (pre-7.0)": dict(tcp_pop_tail=False),
    "min_ack = sack (7.2.0-7.2.14)": dict(ack_gate=GATE_SACK),
    "pack/sack unsigned max (pre-6.2)": dict(ack_tracking=ACK_UMAX),
    "one global ICMP connection (pre-6.2)": dict(portless_key_has_ips=False),
    "inverted TCP compare (4.1)": dict(tcp_compare_inverted=True),
    "vnet counted as TCP payload (pre-6.1)": dict(header_size_subtracts_vnet=True),
    "14-byte minimum frame (pre-7.2)": dict(min_frame_len=14),
    "no vnet length bound (pre-7.2)": dict(max_vnet_hdr_len=None),
}


@pytest.mark.parametrize("name", list(MUTATIONS), ids=list(MUTATIONS))
def test_suite_detects_a_wrong_engine(name):
    """Sensitivity: an engine with one 7.2 switch flipped back to an older QEMU's behaviour must
    disagree with the real QEMU on at least one scenario (QEMU results are reused)."""
    prof = derive(QEMU_7_2, "mutant", **MUTATIONS[name])
    caught = []
    for sc in SCENARIOS:
        _, eres = run_engine(sc, profile=prof)
        if compare(sc, qemu_run(sc), eres):
            caught.append(sc.name)
    assert caught, f"no scenario tells QEMU 7.2 from an engine with {name}"


@pytest.mark.parametrize("keys_before", [16384, 16385], ids=["16384-keys-no-reset", "16385-keys-reset"])
def test_connection_table_reset(keys_before):
    """QEMU 7.1+ empties the connection table when a new key arrives while it already holds 16385
    keys: every queued frame is silently lost.  The barrier flow is a connection too, so here the
    engine is fed the barrier frames exactly where the oracle writes them."""
    cfg = dict(compare_timeout=600000, expired_scan_cycle=600000)   # no timer involvement
    first = F.udp(b"first", sport=1000)
    # first + barrier connection + fill = keys_before distinct keys
    fill = [F.udp(b"fill", sport=1000, src=f"10.2.{i >> 8}.{i & 255}") for i in range(keys_before - 2)]
    last = F.udp(b"last", sport=1001)

    with QemuOracle(**cfg) as q:
        q.step(("P", first))                        # barrier 1
        for f in fill:
            q.send_frame("pri", f)
        q.barrier()                                 # barrier 2
        q.step(("P", last))                         # barrier 3
        flush_cap = q.step(("FLUSH",))              # barrier 4

    from colo_replay import SECONDARY, CompareConfig
    from tests.support.qemu_oracle import barrier_frame, is_barrier_frame
    eng = Engine("7.2", CompareConfig(**cfg))
    t = 0
    events = []

    def feed(side, frame):
        nonlocal t
        t += 1000
        events.extend(eng.feed(side, frame, t))

    def barrier(n):
        feed(PRIMARY, barrier_frame(n))
        feed(SECONDARY, barrier_frame(n))

    feed(PRIMARY, first)
    barrier(1)
    for f in fill:
        feed(PRIMARY, f)
    barrier(2)
    feed(PRIMARY, last)
    barrier(3)
    before_flush = len(events)
    events.extend(eng.checkpoint(t + 1000))
    barrier(4)
    eng_flush = [(ev.frame.data, ev.frame.vnet_hdr_len) for ev in events[before_flush:]
                 if ev.kind == EventKind.RELEASE and not is_barrier_frame(ev.frame.data)]
    resets = [ev for ev in events if ev.kind == EventKind.TABLE_RESET]
    assert flush_cap.checkpoints == 0
    assert len(flush_cap.releases) == len(eng_flush), (len(flush_cap.releases), len(eng_flush), len(resets))
    if keys_before == 16385:
        assert len(resets) == 1 and flush_cap.releases == eng_flush == [(last, 0)]
    else:
        # 16384 frames in one flush back-pressure outdev; QEMU's send queue then leaves
        # newest-first, which the engine (no send queue) does not model: compare as multisets.
        assert flush_cap.settled
        assert not resets and len(flush_cap.releases) == keys_before
        assert sorted(flush_cap.releases) == sorted(eng_flush)


def test_oversized_frame_disables_the_input():
    """A frame longer than NET_BUFSIZE (69632) makes QEMU stop reading that chardev for good:
    FrameDecoder reports Oversized and is disabled; QEMU logs the error and never handles the
    primary input again (a pass-through ARP written afterwards is not released), while the
    notify input keeps working."""
    from colo_replay import NET_BUFSIZE, FrameDecoder, Oversized, encode_frame

    oversized = F.pad(F.udp(b"too-long"), NET_BUFSIZE + 1)
    arp = F.arp_reply()
    wire = encode_frame(oversized) + encode_frame(arp)
    dec = FrameDecoder()
    out = dec.feed(wire)
    assert len(out) == 1 and isinstance(out[0], Oversized) and dec.disabled

    with QemuOracle() as q:
        biggest = F.pad(F.udp(b"max-size"), NET_BUFSIZE)                  # exactly the limit: fine
        q.step(("P", biggest))
        ok = q.step(("S", biggest))
        q.send_raw("pri", wire)
        q.collect_for(0.3)
        q.send_notify(b"COLO_USERSPACE_PROXY_INIT")
        q.collect_for(0.3)
        stderr = q.stderr_text()
        released = [d for _, d, _ in q.out_frames]
        replies = [m for _, m in q.notify_msgs]
    assert ok.releases == [(biggest, 0)] and ok.checkpoints == 0
    assert "oversized packet" in stderr and "primary_in error" in stderr, stderr
    assert arp not in released, "QEMU read primary_in again after an oversized frame"
    assert replies == [b"COLO_COMPARE_GET_XEN_INIT"], replies


def test_harness_fails_loudly():
    """A missing binary or a QEMU that dies at start-up is an error (so the suite fails, never
    skips); compare_timeout=0 makes 7.2 abort on an assertion (qemu-oracle.md)."""
    from tests.support.qemu_oracle import QemuError

    with pytest.raises(QemuError, match="not found"):
        with QemuOracle(binary="/nonexistent/qemu-system-x86_64"):
            pass
    with pytest.raises(QemuError, match="exited with status"):
        with QemuOracle(compare_timeout=0):
            pass
