"""Every switch of the profile table, one at a time.

Each test takes the 7.2 profile, flips one switch with ``derive`` and shows the observable
difference the switch stands for; where the 4.1 profile differs, the same steps show 4.1's
behaviour.  (The profiles' values are never re-asserted as literals: 7.2's are checked against
the real QEMU by tests/test_differential_qemu.py, 4.1's by behaviour here and in
tests/test_engine_examples.py.)
"""

import dataclasses
import inspect
import sys

import pytest

from colo_replay import Cause, CompareConfig, Engine, EventKind, PRIMARY, SECONDARY
from colo_replay.engine.compare import HASHTABLE_MAX_SIZE
from colo_replay.engine.profiles import (
    ACK_LAST, ACK_UMAX, GATE_SACK, OVERFLOW_CRASH, QEMU_4_1, QEMU_5_0, QEMU_5_1, QEMU_7_1,
    QEMU_7_2, ZERO_REJECT, derive,
)
from tests.support.frames import eth, ipv4, pad, tcp, udp, with_vnet
from tests.support.steps import all_released, all_requests, run_steps

MS = 1_000_000


# Switches whose effect is shown outside the engine, by the driver that reads them.
TESTED_ELSEWHERE = {
    "send_queue_lifo": "tests/test_live_robustness.py::test_stalled_outdev_backpressure",
    "send_synchronous": "tests/test_live_robustness.py::test_stalled_outdev_backpressure",
    "checkpoint_requests_coalesce": "tests/test_replay_options.py::test_checkpoint_duration_and_coalescing",
    "default_checkpoint_delay": "tests/test_replay_options.py::test_default_checkpoint_delay_is_20s",
    "default_compare_timeout": "tests/test_engine_examples.py::test_G_lone_primary_times_out",
    "default_expired_scan_cycle": "tests/test_engine_examples.py::test_G_lone_primary_times_out",
    "default_max_queue_size": "tests/test_engine_examples.py::test_K_seed_queue_limit_is_1024_plus_one",
    "configurable": "tests/test_replay_options.py::test_41_refuses_knobs_it_never_had",
    "name": "tests/test_replay_options.py::test_41_expiry_scan_is_3000ms_on_the_vm_clock",
    "description": "",
    "row": "tests/test_qemu_releases.py::test_rows_are_derived_one_from_the_other",
}


def test_every_profile_field_is_tested():
    """A new switch must come with a test: one of this file's tests uses it by name, or
    ``TESTED_ELSEWHERE`` names the test that shows its effect (and that test exists)."""
    here = inspect.getsource(sys.modules[__name__]).replace(inspect.getsource(test_every_profile_field_is_tested), "")
    root = __file__.rsplit("/tests/", 1)[0]
    for f in dataclasses.fields(QEMU_7_2):
        where = TESTED_ELSEWHERE.get(f.name)
        if where is None:
            assert f.name in here, f"profile switch {f.name} has no test in tests/test_profile_switches.py"
        elif where:
            path, func = where.split("::")
            assert f"def {func}(" in open(f"{root}/{path}").read(), (f.name, where)


def test_tcp_compare_inverted():
    steps = [("P", tcp(1, b"same"), "p"), ("S", tcp(1, b"same"), "s")]
    inv = derive(QEMU_7_2, "inv", tcp_compare_inverted=True)
    assert run_steps(QEMU_7_2, steps)[1][1].released == ["p"]
    assert run_steps(inv, steps)[1][1].causes == ["MISCOMPARE"]
    assert run_steps(QEMU_4_1, steps)[1][1].causes == ["MISCOMPARE"]


def test_header_size_subtracts_vnet():
    """Seed Q7: with a vnet header, payload_size and seq_end grow by its length and a pure ACK
    is compared as data (the TCP header's tail)."""
    cfg = CompareConfig(vnet_hdr_support=True)
    ack = with_vnet(tcp(100, ack=5), 10)
    steps = [("P", ack, "p", 10), ("S", ack, "s", 10)]
    _, fixed = run_steps(QEMU_7_2, steps, cfg)
    assert fixed[1].released == ["p"] and fixed[1].kinds(EventKind.RELEASE)[0].cause == Cause.ZERO_PAYLOAD
    buggy = derive(QEMU_7_2, "q7", header_size_subtracts_vnet=True)
    _, res = run_steps(buggy, steps, cfg)
    rel = res[1].kinds(EventKind.RELEASE)[0]
    assert rel.cause == Cause.COMPARED_EQUAL and rel.frame.payload_size == 10 and rel.frame.seq_end == 110
    # and the seed, with its inverted compare, asks for a checkpoint on these equal bytes
    assert run_steps("4.1", steps, cfg)[1][1].causes == ["MISCOMPARE"]


def _ack_steps(p1_ack, p2_ack, s_ack):
    data = bytes(range(20))
    return [("P", tcp(1000, data[:10], ack=p1_ack), "p1"), ("P", tcp(1010, data[10:], ack=p2_ack), "p2"),
            ("S", tcp(1000, data, ack=s_ack), "s")]


def test_ack_tracking():
    """pack: unsigned max (seed) vs last ACK enqueued (6.2+).  P1 ack 505, P2 ack 500, S ack 510:
    MIN(pack, sack) is 505 with umax (P1 passes the gate) and 500 with last (P1 is held)."""
    steps = _ack_steps(505, 500, 510)
    umax = derive(QEMU_7_2, "umax", ack_tracking=ACK_UMAX)
    assert run_steps(umax, steps)[1][2].released == ["p1", "p2"]
    _, last = run_steps(QEMU_7_2, steps)
    assert last[2].released == [] and last[2].requests[0].cause == Cause.ACK_GATE
    # 4.1 tracks the unsigned max: with its inverted TCP compare set right, P1 passes the gate
    # (and would not, were 4.1 tracking the last ACK)
    straight41 = derive(QEMU_4_1, "41-straight", tcp_compare_inverted=False)
    assert run_steps(straight41, steps)[1][2].released == ["p1", "p2"]
    assert run_steps(derive(straight41, "41-last", ack_tracking=ACK_LAST), steps)[1][2].causes == ["ACK_GATE"]


def test_ack_gate():
    """min_ack: MIN(pack, sack) (4.1-6.1; 9.2+ and 7.2.15+, 8.2.8+, 9.0.4, 9.1.2+) vs always sack
    (6.2.0 .. 9.1.1 otherwise)."""
    steps = _ack_steps(505, 500, 510)      # pack = 500 (last), sack = 510
    sack_gate = derive(QEMU_7_2, "sack", ack_gate=GATE_SACK)
    assert run_steps(sack_gate, steps)[1][2].released == ["p1", "p2"]
    assert run_steps(QEMU_7_2, steps)[1][2].causes == ["ACK_GATE"]
    # Under 4.1's unsigned-max tracking pack >= every queued primary's ACK, so MIN(pack, sack)
    # and sack gate alike there: 4.1's ack_gate value has no observable effect.


def test_ack_gate_unsigned_wrap():
    """The seed's pack/sack are unsigned maxima that never decrease (spec 2.4): once both sides'
    ACKs wrap past 2^32, min_ack stays near 2^32 and every partial match fails the gate."""
    d = bytes(range(30))
    steps = [("P", tcp(1000, d[:10], ack=0xFFFFFFF0), "p1"), ("S", tcp(1000, d[:10], ack=0xFFFFFFF0), "s1"),
             ("P", tcp(1010, d[10:20], ack=16), "p2"), ("S", tcp(1010, d[10:30], ack=16), "s2")]
    umax = derive(QEMU_7_2, "umax", ack_tracking=ACK_UMAX)
    _, res = run_steps(umax, steps)
    assert res[1].released == ["p1"] and res[3].causes == ["ACK_GATE"]
    _, res = run_steps(QEMU_7_2, steps)
    assert res[1].released == ["p1"] and res[3].released == ["p2"]


def test_compare_seq_uninitialised():
    e41 = Engine("4.1")
    evs = e41.feed(PRIMARY, udp(b"x"), 0, ident=1)
    flags = [e for e in evs if e.kind == EventKind.UNDEFINED]
    assert [e.cause for e in flags] == [Cause.COMPARE_SEQ_UNINIT]
    e72 = Engine("7.2")
    assert not [e for e in e72.feed(PRIMARY, udp(b"x"), 0, ident=1) if e.kind == EventKind.UNDEFINED]


def test_tcp_pop_tail_tie_order():
    steps = [("P", tcp(7, ack=1), "a"), ("P", tcp(7, ack=2), "b"), ("FLUSH",)]
    head = derive(QEMU_7_2, "head", tcp_pop_tail=False)
    assert run_steps(head, steps)[1][2].released == ["b", "a"]      # LIFO ties
    assert run_steps(QEMU_7_2, steps)[1][2].released == ["a", "b"]  # FIFO ties


def test_nontcp_pop_tail():
    steps = [("P", udp(b"1"), "p1"), ("P", udp(b"2"), "p2"), ("S", udp(b"1"), "s1")]
    fifo = derive(QEMU_7_2, "fifo", nontcp_pop_tail=False)
    assert run_steps(fifo, steps)[1][2].released == ["p1"]
    assert run_steps(QEMU_7_2, steps)[1][2].causes == ["MISCOMPARE"]


def test_portless_key_has_ips():
    from tests.support.frames import B, C, icmp_echo
    steps = [("P", icmp_echo(b"b", dst=B), "pB"), ("S", icmp_echo(b"b", dst=C), "sC")]
    no_ips = derive(QEMU_7_2, "noips", portless_key_has_ips=False)
    assert run_steps(no_ips, steps)[1][1].released == ["pB"]       # one global ICMP connection
    assert all_released(run_steps(QEMU_7_2, steps)[1]) == []


def _distinct_flows(n):
    return [udp(b"q", sport=1000 + (i % 50000), dport=2000 + i // 50000) for i in range(n)]


@pytest.mark.parametrize("profile, crash_causes", [(QEMU_4_1, [Cause.DOUBLE_FREE]), (QEMU_7_2, [])],
                         ids=["4.1", "7.2"])
def test_table_overflow(profile, crash_causes):
    """The 16386th distinct connection resets the table: 4.1 crashes (double free), 7.1+ discards
    every queue silently.  The engine never crashes: it says what QEMU would have done."""
    eng = Engine(profile)
    frames = _distinct_flows(HASHTABLE_MAX_SIZE + 2)
    events = []
    for i, f in enumerate(frames):
        events += eng.feed(PRIMARY, f, i * 1000, ident=i)
    resets = [e for e in events if e.kind == EventKind.TABLE_RESET]
    assert len(resets) == 1 and resets[0].frame is None and resets[0].detail == HASHTABLE_MAX_SIZE + 1
    assert resets[0].time == (HASHTABLE_MAX_SIZE + 1) * 1000   # the 16386th frame
    lost = [e for e in events if e.kind == EventKind.PRIMARY_LOST]
    assert len(lost) == HASHTABLE_MAX_SIZE + 1 and lost[0].cause == Cause.TABLE_RESET
    crashes = [e for e in events if e.kind == EventKind.QEMU_CRASH]
    assert [c.cause for c in crashes] == crash_causes
    assert len(eng.conn_list) == 1 and eng.queue_lengths() == (1, 0)
    # the switch alone decides: 7.2 with the seed's overflow handling crashes too
    if not crash_causes:
        crashing = Engine(derive(profile, "crash", table_overflow=OVERFLOW_CRASH))
        crashed = [e.cause for i, f in enumerate(frames) for e in crashing.feed(PRIMARY, f, i * 1000, ident=i)
                   if e.kind == EventKind.QEMU_CRASH]
        assert crashed == [Cause.DOUBLE_FREE]


def test_min_frame_len():
    """An IPv4 frame of 15 bytes with ip_hl = 0 passes the seed's checks (14-byte minimum, size >=
    l2 + 0) and is queued on reads past its end; 7.2 refuses anything under 18 bytes."""
    frame = eth(b"\x40")
    _, r72 = run_steps(QEMU_7_2, [("P", frame, "p")])
    assert r72[0].released == ["p"] and r72[0].kinds(EventKind.UNSUPPORTED)[0].cause == Cause.TOO_SHORT
    lax = derive(QEMU_7_2, "lax", min_frame_len=14)
    _, res = run_steps(lax, [("P", frame, "p")])
    assert res[0].released == [] and res[0].kinds(EventKind.UNDEFINED)[0].cause == Cause.OOB_READ
    _, r41 = run_steps(QEMU_4_1, [("P", frame, "p")])
    assert r41[0].released == [] and any(e.cause == Cause.OOB_READ for e in r41[0].kinds(EventKind.UNDEFINED))


def test_max_vnet_hdr_len():
    cfg = CompareConfig(vnet_hdr_support=True)
    f = with_vnet(udp(b"x"), 21)
    _, r72 = run_steps(QEMU_7_2, [("P", f, "p", 21)], cfg)
    assert r72[0].kinds(EventKind.UNSUPPORTED)[0].cause == Cause.VNET_TOO_LONG
    unbounded = derive(QEMU_7_2, "unbounded", max_vnet_hdr_len=None)
    assert run_steps(unbounded, [("P", f, "p", 21)], cfg)[1][0].kinds(EventKind.UNSUPPORTED) == []
    ok = with_vnet(udp(b"x"), 20)
    assert run_steps(QEMU_7_2, [("P", ok, "p", 20)], cfg)[1][0].kinds(EventKind.UNSUPPORTED) == []


def test_size_check_before_l2_parse():
    """The seed reads the 802.1ad inner tag of a 16-byte frame before refusing it: flagged as a
    read past the end.  7.2 refuses it on size first, reading nothing."""
    frame = bytes(12) + b"\x88\xa8\x00\x01"
    _, r41 = run_steps(QEMU_4_1, [("P", frame, "p")])
    assert r41[0].released == ["p"] and r41[0].kinds(EventKind.UNDEFINED)
    _, r72 = run_steps(QEMU_7_2, [("P", frame, "p")])
    assert r72[0].released == ["p"] and not r72[0].kinds(EventKind.UNDEFINED)


def test_zero_length_switch():
    # per profile: tests/test_engine_examples.py::test_J_zero_length_frame_is_a_flagged_crash
    _, res = run_steps(derive(QEMU_7_2, "x", zero_length="sigsegv"), [("P", b"", "z")])
    assert res[0].kinds(EventKind.QEMU_CRASH)[0].cause == Cause.SIGSEGV_NULL_FRAME


def test_zero_length_reject():
    """7.1 (8bdab83b34): data = NULL + vnet_hdr_len.  Without a vnet header the frame is unsupported
    and nothing crashes: the primary is neither released nor queued (compare_chr_send(size 0)
    writes nothing), the secondary is dropped.  With a vnet header the pointer is not NULL and
    eth_get_l2_hdr_length faults (SIGSEGV), as before 7.1."""
    rej = derive(QEMU_7_2, "x", zero_length=ZERO_REJECT)
    eng, res = run_steps(rej, [("P", b"", "z"), ("S", b"", "sz"), ("P", udp(b"after"), "p")])
    assert not [e for r in res for e in r.kinds(EventKind.QEMU_CRASH)]
    assert [e.cause for e in res[0].kinds(EventKind.UNSUPPORTED)] == [Cause.ZERO_LENGTH]
    assert res[0].released == [] and not res[0].kinds(EventKind.PRIMARY_LOST)
    assert res[1].kinds(EventKind.SECONDARY_DROPPED)[0].cause == Cause.UNSUPPORTED_FRAME
    assert eng.queue_lengths() == (1, 0)           # only the later frame is queued
    vnet = CompareConfig(vnet_hdr_support=True)
    _, res = run_steps(rej, [("P", b"", "z", 12), ("S", b"", "sz", 12)], vnet)
    assert [e.cause for r in res for e in r.kinds(EventKind.QEMU_CRASH)] == [Cause.SIGSEGV_NULL_FRAME] * 2
    _, res = run_steps(rej, [("P", b"", "z", 0)], vnet)        # vnet_hdr_support on, length word 0
    assert not res[0].kinds(EventKind.QEMU_CRASH)
    # the 7.1 row has it; 7.2's assert(data) aborts on any zero-length frame
    _, res = run_steps(QEMU_7_1, [("P", b"", "z")])
    assert not res[0].kinds(EventKind.QEMU_CRASH) and res[0].kinds(EventKind.UNSUPPORTED)


def test_old_packet_timeout_broken():
    """5.0.x-5.1.x (9cc43c94b3, fixed by 0c4266ef26): the age limit is read as an int64 over
    compare_timeout and expired_scan_cycle, i.e. compare_timeout + 2**32 * expired_scan_cycle ms:
    the scan still runs on its grid, but no frame is ever old enough."""
    broken = derive(QEMU_7_2, "broken", old_packet_timeout_broken=True)
    for side in ("P", "S"):                         # a lone primary, a lone secondary (5.2+ scans both)
        steps = [(side, udp(b"x"), "x"), ("WAIT", 60_000)]
        assert all_requests(run_steps(QEMU_7_2, steps)[1]) > 0
        assert all_requests(run_steps(broken, steps)[1]) == 0
    eng = Engine(broken, CompareConfig(compare_timeout=200, expired_scan_cycle=100), emit_scans=True)
    eng.feed(PRIMARY, udp(b"p"), 0)
    scans = [e for e in eng.advance(1000 * MS) if e.kind == EventKind.SCAN]
    assert [e.time // MS for e in scans] == list(range(100, 1001, 100))      # the scan runs
    assert eng._timeout_ms == 200 + (100 << 32)     # the effective limit (~13.6 years here)
    # the rows that have it: 5.0 and 5.1 (their scan: 3000 ms on the VM clock, primaries only)
    for row in (QEMU_5_0, QEMU_5_1):
        assert all_requests(run_steps(row, [("P", udp(b"p"), "p"), ("WAIT", 60_000)])[1]) == 0
    assert all_requests(run_steps(QEMU_4_1, [("P", udp(b"p"), "p"), ("WAIT", 60_000)])[1]) > 0


def test_max_queue_size_truncates():
    """5.2+ (0c4266ef26) parses max_queue_size as uint64 into the uint32 global; 5.1's setter
    (a2e5cb7a87) is a uint32 and refuses larger values."""
    big = CompareConfig(max_queue_size=(1 << 32) + 7)
    assert Engine(QEMU_7_2, big).config.max_queue_size == 7
    with pytest.raises(ValueError, match="positive 32-bit"):
        Engine(derive(QEMU_7_2, "u32", max_queue_size_truncates=False), big)
    with pytest.raises(ValueError, match="positive 32-bit"):
        Engine(QEMU_5_1, big)
    assert Engine(QEMU_5_1, CompareConfig(max_queue_size=5)).config.max_queue_size == 5


def test_scan_secondary():
    steps = [("S", udp(b"s"), "s"), ("WAIT", 5000)]
    no_sec = derive(QEMU_7_2, "nosec", scan_secondary=False)
    assert all_requests(run_steps(no_sec, steps)[1]) == 0
    assert all_requests(run_steps(QEMU_7_2, steps)[1]) == 2


def test_scan_on_vm_clock_pauses_while_vm_stopped():
    """4.1 scans on QEMU_CLOCK_VIRTUAL: a 2 s VM stop shifts every later tick by 2 s, while ages
    keep counting on the host clock (Q19)."""
    def run(profile):
        eng = Engine(profile)
        evs = eng.feed(PRIMARY, udp(b"p"), 100 * MS, ident="p")
        evs += eng.vm_stop(2500 * MS)
        assert eng.next_scan_ns() is (None if profile.scan_on_vm_clock else eng.next_scan_ns())
        evs += eng.vm_resume(4500 * MS)
        evs += eng.advance(9000 * MS)
        return [e.time // MS for e in evs if e.kind == EventKind.CHECKPOINT_REQUEST]
    assert run(QEMU_4_1) == [5000, 8000]          # virtual ticks 3000, 6000 -> host 5000, 8000
    host = derive(QEMU_4_1, "host41", scan_on_vm_clock=False)
    assert run(host) == [6000, 9000]
    assert run(QEMU_7_2) == [4000, 5000, 6000, 7000, 8000, 9000]


def test_configurable_knobs():
    # The defaults are shown by behaviour: 7.2's equal the real QEMU's (qom-get,
    # test_differential_qemu.py::test_qemu_properties_are_applied); the timeout and scan cycle
    # of both profiles by test_engine_examples.py::test_G_lone_primary_times_out, 4.1's queue
    # limit by test_K_seed_queue_limit_is_1024_plus_one.
    assert Engine("7.2", CompareConfig(compare_timeout=200, expired_scan_cycle=100,
                                       max_queue_size=5)).config.compare_timeout == 200
    with pytest.raises(ValueError, match="no compare_timeout property"):
        Engine("4.1", CompareConfig(compare_timeout=200))
    with pytest.raises(ValueError, match="positive"):
        Engine("7.2", CompareConfig(compare_timeout=0))
    with pytest.raises(ValueError, match="positive"):
        Engine("7.2", CompareConfig(expired_scan_cycle=1 << 32))
    # max_queue_size is parsed as uint64 and truncated into QEMU's uint32 global
    assert Engine("7.2", CompareConfig(max_queue_size=(1 << 32) + 7)).config.max_queue_size == 7
    with pytest.raises(ValueError):
        Engine("nope")


def test_timeout_knobs_change_the_grid():
    cfg = CompareConfig(compare_timeout=200, expired_scan_cycle=100)
    _, res = run_steps("7.2", [("P", udp(b"p"), "p"), ("WAIT", 500)], cfg)
    # frame at 100 ms; ticks every 100 ms; age > 200 first at 400
    assert [e.time // MS for r in res for e in r.requests] == [400, 500, 600]


def test_oob_compare_is_flagged_and_deterministic():
    """A TCP header length pointing past the frame wraps payload_size to ~65k: QEMU's memcmp then
    reads heap memory.  We compare zero bytes instead, flag both frames, and repeat exactly."""
    bad = bytearray(tcp(1, b"abcd"))
    bad[14 + 20 + 12] = 0xF0        # th_off = 15 -> header 60 bytes, frame is shorter
    steps = [("P", bytes(bad), "p"), ("S", bytes(bad), "s")]
    a = run_steps("7.2", steps)[1]
    b = run_steps("7.2", steps)[1]
    assert [ev.kind for ev in a[1].events] == [ev.kind for ev in b[1].events]
    assert a[1].kinds(EventKind.UNDEFINED)
    assert all(ev.cause == Cause.OOB_READ for ev in a[1].kinds(EventKind.UNDEFINED))


def test_truncated_l4_ports_are_flagged():
    frame = eth(ipv4(17, b""))        # UDP with no UDP header: fill_connection_key reads 4 bytes past it
    evs = Engine("7.2").feed(PRIMARY, frame, 0, ident="p")
    assert [e.cause for e in evs if e.kind == EventKind.UNDEFINED] == [Cause.OOB_READ]
    # Ethernet padding puts the same reads inside the frame: nothing undefined, just a key of zeros
    evs = Engine("7.2").feed(SECONDARY, pad(frame, 60), 0, ident="s")
    assert [e.kind for e in evs] == []
