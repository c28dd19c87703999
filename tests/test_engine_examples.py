"""The worked examples of colo-compare-spec.md (§2.13 and Appendix A), in both profiles.

Each test states what QEMU did in the recorded runs ([RUN41] = v4.1.0, [RUN72] = Debian 7.2.22).
"""

import pytest

from colo_replay import Cause, CompareConfig, EventKind
from tests.support.frames import (
    B, C, arp_reply, icmp_echo, ipv6_udp, pad, tcp, udp, vlan, with_vnet,
)
from tests.support.steps import all_released, all_requests, run_steps


def test_A_identical_tcp_data():
    steps = [("P", tcp(1000, b"hello world"), "p"), ("S", tcp(1000, b"hello world"), "s")]
    _, r41 = run_steps("4.1", steps)
    assert r41[1].causes == ["MISCOMPARE"] and all_released(r41) == []   # inverted compare (Q1)
    _, r72 = run_steps("7.2", steps)
    assert r72[1].released == ["p"] and all_requests(r72) == 0


def test_B_different_tcp_data_same_range():
    steps = [("P", tcp(1000, b"hello world"), "p"), ("S", tcp(1000, b"HELLO WORLD"), "s"), ("FLUSH",)]
    _, r41 = run_steps("4.1", steps)
    assert r41[1].released == ["p"] and all_requests(r41) == 0
    _, r72 = run_steps("7.2", steps)
    assert r72[1].causes == ["MISCOMPARE"] and r72[1].released == []
    assert r72[2].released == ["p"]
    ev = r72[1].requests[0]
    assert ev.frame.ident == "p" and ev.other.ident == "s"   # both frames on the request


def test_C_udp_primary_two_ahead():
    steps = [("P", udp(b"one"), "p1"), ("P", udp(b"two"), "p2"),
             ("S", udp(b"one"), "s1"), ("S", udp(b"two"), "s2")]
    _, r41 = run_steps("4.1", steps)
    assert [r.released for r in r41] == [[], [], ["p1"], ["p2"]] and all_requests(r41) == 0
    _, r72 = run_steps("7.2", steps)
    assert r72[2].causes == ["MISCOMPARE"] and r72[2].released == []
    assert r72[3].released == ["p2", "p1"]


def test_D_udp_flush_order():
    steps = [("P", udp(b"1"), "p1"), ("P", udp(b"2"), "p2"), ("P", udp(b"3"), "p3"), ("FLUSH",)]
    assert run_steps("4.1", steps)[1][3].released == ["p1", "p2", "p3"]
    assert run_steps("7.2", steps)[1][3].released == ["p3", "p2", "p1"]


@pytest.mark.parametrize("profile", ["4.1", "7.2"])
def test_E_tcp_flush_ascending(profile):
    steps = [("P", tcp(1010, b"x" * 10), 1010), ("P", tcp(1000, b"x" * 10), 1000),
             ("P", tcp(1020, b"x" * 10), 1020), ("FLUSH",)]
    assert run_steps(profile, steps)[1][3].released == [1000, 1010, 1020]


@pytest.mark.parametrize("profile", ["4.1", "7.2"])
def test_F_unsupported_frames_pass_through(profile):
    short_ip = tcp(1, b"")[:16]
    steps = [("P", arp_reply(), "arp"), ("P", vlan(udp(b"v")), "vlan"), ("P", short_ip, "short"),
             ("P", ipv6_udp(), "v6"),
             ("S", arp_reply(), "sarp"), ("S", vlan(udp(b"v")), "svlan"), ("S", short_ip, "sshort")]
    _, res = run_steps(profile, steps)
    assert [r.released for r in res[:4]] == [["arp"], ["vlan"], ["short"], ["v6"]]
    assert all(r.released == [] for r in res[4:])
    for r in res[4:]:
        drops = r.kinds(EventKind.SECONDARY_DROPPED)
        assert [d.cause for d in drops] == [Cause.UNSUPPORTED_FRAME]
    assert all_requests(res) == 0
    causes = [r.kinds(EventKind.UNSUPPORTED)[0].cause for r in res[:4]]
    short_cause = Cause.IP_HEADER_TRUNCATED if profile == "4.1" else Cause.TOO_SHORT
    assert causes == [Cause.NOT_IPV4, Cause.VLAN, short_cause, Cause.NOT_IPV4]


def _request_times_ms(results):
    return [e.time // 1_000_000 for r in results for e in r.requests]


def test_G_lone_primary_times_out():
    # 7.2: host-clock scan every 1000 ms, strict age > 3000: frame at 100 ms -> ticks 4000, 5000, 6000
    _, r72 = run_steps("7.2", [("P", udp(b"lonely"), "p"), ("WAIT", 6000)])
    assert _request_times_ms(r72) == [4000, 5000, 6000]
    assert all(e.cause == Cause.EXPIRED and e.frame.ident == "p" for r in r72 for e in r.requests)
    assert r72[1].requests[0].detail == 3900   # the age, in ms
    # 4.1: 3000 ms virtual-clock ticks: age 2900 at 3000 (not old), 5900 at 6000
    _, r41 = run_steps("4.1", [("P", udp(b"lonely"), "p"), ("WAIT", 9000)])
    assert _request_times_ms(r41) == [6000, 9000]


def test_G2_lone_secondary():
    _, r72 = run_steps("7.2", [("S", udp(b"lonely"), "s"), ("WAIT", 5000)])
    assert _request_times_ms(r72) == [4000, 5000]
    _, r41 = run_steps("4.1", [("S", udp(b"lonely"), "s"), ("WAIT", 8000)])
    assert all_requests(r41) == 0                 # seed scans primary lists only


@pytest.mark.parametrize("profile", ["4.1", "7.2"])
def test_H_pure_ack_waits_for_secondary(profile):
    steps = [("P", tcp(500, ack=77), "p"), ("WAIT", 500), ("S", tcp(500, ack=77), "s")]
    _, res = run_steps(profile, steps)
    assert res[0].released == [] and res[1].released == []
    assert res[2].released == ["p"]
    assert res[2].kinds(EventKind.RELEASE)[0].cause == Cause.ZERO_PAYLOAD


def test_I_icmp_connection_keys():
    steps = [("P", icmp_echo(b"to B", dst=B), "pB"), ("P", icmp_echo(b"to C", dst=C), "pC"),
             ("S", icmp_echo(b"to C", dst=C), "sC")]
    _, r41 = run_steps("4.1", steps)   # one global ICMP connection: head-of-line P->B miscompares
    assert r41[2].causes == ["MISCOMPARE"] and all_released(r41) == []
    _, r72 = run_steps("7.2", steps)
    assert r72[2].released == ["pC"] and all_requests(r72) == 0


def test_I_seed_matches_across_hosts():
    # Spec 1.5: with one shared ICMP connection and the IP header skipped, equal bodies match
    steps = [("P", icmp_echo(b"same", dst=B), "pB"), ("S", icmp_echo(b"same", dst=C), "sC")]
    _, r41 = run_steps("4.1", steps)
    assert r41[1].released == ["pB"]
    _, r72 = run_steps("7.2", steps)
    assert all_released(r72) == [] and all_requests(r72) == 0


@pytest.mark.parametrize("profile", ["4.1", "7.2"])
def test_J_zero_length_frame_is_a_flagged_crash(profile):
    _, res = run_steps(profile, [("P", b"", "zero"), ("S", b"", "szero")])
    crash = res[0].kinds(EventKind.QEMU_CRASH)
    assert len(crash) == 1
    assert crash[0].cause == (Cause.SIGSEGV_NULL_FRAME if profile == "4.1" else Cause.SIGABRT_ASSERT_DATA)
    assert res[0].released == []       # size 0: compare_chr_send writes nothing
    assert res[1].kinds(EventKind.SECONDARY_DROPPED)[0].cause == Cause.UNSUPPORTED_FRAME


def test_K_queue_overflow_admits_n_plus_one():
    steps = [("P", udp(bytes([i])), f"p{i}") for i in range(1, 6)] + [("FLUSH",)]
    _, res = run_steps("7.2", steps, CompareConfig(max_queue_size=2))
    assert res[5].released == ["p3", "p2", "p1"]
    drops = [e.frame.ident for r in res for e in r.kinds(EventKind.QUEUE_FULL_DROP)]
    assert drops == ["p4", "p5"]


def test_K_seed_queue_limit_is_1024_plus_one():
    steps = [("P", udp(i.to_bytes(2, "big")), i) for i in range(1030)] + [("FLUSH",)]
    _, res = run_steps("4.1", steps, gap_ms=0)
    assert len(res[-1].released) == 1025
    assert [e.frame.ident for r in res for e in r.kinds(EventKind.QUEUE_FULL_DROP)] == [1025, 1026, 1027, 1028, 1029]


def test_L1_one_primary_two_secondaries():
    data = bytes(range(20))
    steps = [("P", tcp(1000, data), "p"), ("S", tcp(1000, data[:10]), "s1"),
             ("S", tcp(1010, data[10:]), "s2"), ("WAIT", 5000)]
    _, r72 = run_steps("7.2", steps)
    assert r72[1].released == [] and r72[2].released == ["p"]
    assert r72[1].kinds(EventKind.SECONDARY_DROPPED)[0].cause == Cause.CONSUMED
    # the fully consumed s2 stays queued and expires (about 4 s and 5 s later) [RUN72 L1]
    assert [(e.cause, e.frame.ident) for e in r72[3].requests] == [(Cause.EXPIRED, "s2")] * 2
    _, r41 = run_steps("4.1", steps[:3])
    assert all_requests(r41) == 2 and all_released(r41) == []


def test_L2_two_primaries_one_secondary():
    data = bytes(range(20))
    steps = [("P", tcp(1000, data[:10]), "p1"), ("P", tcp(1010, data[10:]), "p2"),
             ("S", tcp(1000, data), "s"), ("WAIT", 5000)]
    _, r72 = run_steps("7.2", steps)
    assert r72[2].released == ["p1", "p2"]
    assert len(r72[3].requests) == 2 and r72[3].requests[0].frame.ident == "s"
    _, r41 = run_steps("4.1", steps[:3])
    assert all_requests(r41) >= 1 and all_released(r41) == []


@pytest.mark.parametrize("profile", ["4.1", "7.2"])
def test_L3_ack_gate(profile):
    data = bytes(range(20))
    steps = [("P", tcp(1000, data[:10], ack=600), "p"), ("S", tcp(1000, data, ack=500), "s")]
    _, res = run_steps(profile, steps)
    assert all_released(res) == [] and len(res[1].requests) == 1
    if profile == "7.2":
        assert res[1].requests[0].cause == Cause.ACK_GATE


def test_L4_same_range_ignores_ack():
    steps = [("P", tcp(1000, b"0123456789", ack=600), "p"), ("S", tcp(1000, b"0123456789", ack=500), "s")]
    assert run_steps("7.2", steps)[1][1].released == ["p"]
    assert run_steps("4.1", steps)[1][1].causes == ["MISCOMPARE"]


@pytest.mark.parametrize("profile", ["4.1", "7.2"])
def test_M_standing_mismatch_renotifies(profile):
    steps = [("P", udp(b"aaaa"), "p"), ("S", udp(b"bbbb"), "s1"), ("S", udp(b"cccc"), "s2"),
             ("S", udp(b"dddd"), "s3")]
    _, res = run_steps(profile, steps)
    assert [len(r.requests) for r in res] == [0, 1, 1, 1]


def test_N_retransmission():
    steps = [("P", tcp(1000, b"hello"), "p"), ("S", tcp(1000, b"hello"), "s"),
             ("P", tcp(1000, b"hello"), "p_rtx"), ("S", tcp(1005, b"world"), "s2")]
    _, r72 = run_steps("7.2", steps)
    assert [r.released for r in r72] == [[], ["p"], [], ["p_rtx"]]
    assert r72[3].kinds(EventKind.RELEASE)[0].cause == Cause.ALREADY_COMPARED
    _, r41 = run_steps("4.1", steps)
    assert all_requests(r41) == 3


@pytest.mark.parametrize("profile", ["4.1", "7.2"])
def test_O_vnet_header_not_compared(profile):
    cfg = CompareConfig(vnet_hdr_support=True)
    u = udp(b"payload")
    steps = [("P", with_vnet(u, 10, 0x11), "p", 10), ("S", with_vnet(u, 10, 0x22), "s", 10),
             ("P", arp_reply(), "arp", 0)]
    _, res = run_steps(profile, steps, cfg)
    assert [r.released for r in res] == [[], ["p"], ["arp"]]
    rel = res[1].kinds(EventKind.RELEASE)[0]
    assert rel.frame.vnet_hdr_len == 10 and rel.frame.data[:10] == b"\x11" * 10


def test_P_equal_seq_tie_order():
    steps = [("P", tcp(500, ack=501), 501), ("P", tcp(500, ack=502), 502), ("P", tcp(500, ack=503), 503),
             ("FLUSH",)]
    assert run_steps("4.1", steps)[1][3].released == [503, 502, 501]
    assert run_steps("7.2", steps)[1][3].released == [501, 502, 503]


def test_P2_one_pure_ack_per_secondary():
    steps = [("P", tcp(500, ack=501), 501), ("P", tcp(500, ack=502), 502), ("P", tcp(500, ack=503), 503),
             ("S", tcp(500, ack=501), "s")]
    assert run_steps("4.1", steps)[1][3].released == [503]
    assert run_steps("7.2", steps)[1][3].released == [501]


@pytest.mark.parametrize("profile", ["4.1", "7.2"])
def test_Q_sequence_wraparound(profile):
    steps = [("P", tcp(5, b"after"), "late"), ("P", tcp(0xFFFFFFFB, b"befor"), "early"), ("FLUSH",)]
    assert run_steps(profile, steps)[1][2].released == ["early", "late"]


def test_S_vnet_length_over_20():
    cfg = CompareConfig(vnet_hdr_support=True)
    steps = [("P", with_vnet(udp(b"aaaa"), 24), "p", 24), ("S", with_vnet(udp(b"bbbb"), 24), "s", 24),
             ("FLUSH",)]
    _, r72 = run_steps("7.2", steps, cfg)
    assert r72[0].released == ["p"] and all_requests(r72) == 0
    assert r72[0].kinds(EventKind.UNSUPPORTED)[0].cause == Cause.VNET_TOO_LONG
    _, r41 = run_steps("4.1", steps, cfg)
    assert r41[1].causes == ["MISCOMPARE"] and r41[2].released == ["p"]


def test_T_ethernet_padding_is_tcp_payload():
    steps = [("P", tcp(500, ack=9, pad_to=60), "p"), ("S", pad(tcp(500, ack=9), 60, 0xFF), "s")]
    _, r72 = run_steps("7.2", steps)
    assert r72[1].causes == ["MISCOMPARE"]
    p = r72[1].requests[0].frame
    assert p.payload_size == 6 and p.seq_end == 506
    _, r41 = run_steps("4.1", steps)
    assert r41[1].released == ["p"]
