"""The checkpoint resynchronisation model (offline/resync.py, ``--after-checkpoint resync``):
on a generated free-running pair with planted differences, and on hand-built streams for the
straddling (trimmed) and ahead (requeued) rules."""

import numpy as np
import pytest

import colo_replay
from colo_replay.offline.driver import ReplayOptions

from tests.support.frames import tcp, udp
from tests.support.pcapwrite import write_pcap
from tests.support.planted import make_planted_pair

T0 = 1_700_000_000_000_000_000
MS = 1_000_000


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    return make_planted_pair(tmp_path_factory.mktemp("planted"))


@pytest.fixture(scope="module")
def planted_mid_stream(tmp_path_factory):
    return make_planted_pair(tmp_path_factory.mktemp("planted-mid"), mid_stream=True)


def _requests(tl):
    e = tl.events
    return e[e["kind"] == "checkpoint_request"]


@pytest.mark.parametrize("which", ["planted", "planted_mid_stream"])
def test_resync_gives_one_checkpoint_per_planted_difference_at_its_frames(which, request):
    """TCP differences at the end of a response, or in the middle of a stream that goes on
    while the checkpoint runs (its frames are held until the VMs resume), alike."""
    p, s, found = request.getfixturevalue(which)
    assert {d.proto for d in found} == {"tcp", "udp", "icmp", "ip-253"}
    tl = colo_replay.replay(p, s, after_checkpoint="resync")
    req = _requests(tl)
    assert len(req) == len(found) == 8
    assert tl.summary["checkpoints"] == len(found)
    assert list(zip(req["primary_frame"], req["secondary_frame"])) == \
        [(d.primary_frame, d.secondary_frame) for d in found]
    # the behind secondary's late copies were superseded: driver rows, never QEMU decisions
    e = tl.events
    sup = e[e["kind"] == "superseded"]
    assert len(sup) == tl.result.resync["superseded"] > 0
    assert set(sup["side"].astype(str)) == {"secondary"}
    assert set(sup["cause"].astype(str)) <= {"already_sent", "owed"}
    assert tl.result.knobs["after_checkpoint"] == "resync"
    # frames sent while a modelled checkpoint had the VMs stopped were held and fed at its end
    assert tl.result.primary.held > 0 and tl.result.secondary.held > 0
    assert tl.result.primary.fed == tl.result.primary.frames
    assert tl.result.secondary.fed == tl.result.secondary.frames - tl.result.resync["superseded"]


def test_raw_cascades_on_the_same_pair(planted):
    p, s, found = planted
    tl = colo_replay.replay(p, s, after_checkpoint="raw")
    req = _requests(tl)
    assert len(req) > 100 * len(found)
    assert tl.summary["checkpoints"] > 5 * len(found)
    assert not (tl.events["kind"] == "superseded").any()
    # the summary sees the cascade signature and warns; under resync it has nothing to warn about
    ac = tl.summary["after_checkpoint"]
    assert ac["mode"] == "raw" and ac["cascade"]["cascade"]
    assert ac["cascade"]["re_diverged"] >= 0.9 * ac["cascade"]["followed"] > 50
    assert "warning        " in tl.format_summary() and "--after-checkpoint resync" in ac["warning"]
    assert ac["warning"] in tl.summary["warnings"]          # also in the list the CLI prints on stderr
    rs = colo_replay.replay(p, s, after_checkpoint="resync")
    assert "warning" not in rs.summary["after_checkpoint"]
    assert "resync: " in rs.format_summary() and "warning" not in rs.format_summary()


def test_no_cascade_warning_on_the_sample_pair_raw():
    tl = colo_replay.replay("sample_pcaps/primary.pcap", "sample_pcaps/secondary.pcap", filter_rewriter=True,
                            after_checkpoint="raw")
    sig = tl.summary["after_checkpoint"]["cascade"]
    assert sig == {"flushes": 11, "followed": 9, "re_diverged": 2, "cascade": False}


def _pair(tmp_path, prim, sec):
    pp = write_pcap(tmp_path / "p.pcap", [(T0 + t, f) for t, f in prim], nanos=True)
    sp = write_pcap(tmp_path / "s.pcap", [(T0 + t, f) for t, f in sec], nanos=True)
    return str(pp), str(sp)


def _rows(tl, kind):
    e = tl.events
    return e[e["kind"] == kind]


def test_a_segment_straddling_the_mark_is_trimmed(tmp_path):
    # P1 (1000..1200) miscompares with S1 (1000..1100); the flush at 101 ms releases P1, so the
    # mark is 1200.  S2 (1100..1300) comes after it: its first 100 bytes were sent by the primary,
    # the rest is fed and compares equal with P3 (1200..1300).
    body = bytes(range(200)) + bytes(range(100, 200))
    prim = [(0, tcp(1000, b"A" + body[1:200])), (103 * MS, tcp(1200, body[200:300]))]
    sec = [(1 * MS, tcp(1000, body[:100])), (102 * MS, tcp(1100, body[100:300]))]
    until = f"{T0 + 5000 * MS}ns"
    tl = colo_replay.replay(*_pair(tmp_path, prim, sec), after_checkpoint="resync", end_ns=until)
    assert len(_requests(tl)) == 1
    trimmed = _rows(tl, "superseded")
    assert list(trimmed["cause"].astype(str)) == ["trimmed"]
    assert list(trimmed["secondary_frame"]) == [2] and list(trimmed["detail"]) == [100]
    rel = _rows(tl, "release")
    eq = rel[rel["cause"] == "compared_equal"]
    assert list(zip(eq["primary_frame"], eq["secondary_frame"])) == [(2, 2)]
    assert tl.result.resync == {"superseded": 0, "trimmed": 1, "requeued": 0}
    # raw: P3 is released against the end of S2, whose first 100 bytes then wait for a primary
    # that never comes: S2 expires, a second checkpoint
    raw = colo_replay.replay(*_pair(tmp_path, prim, sec), after_checkpoint="raw", end_ns=until)
    req = _requests(raw)
    assert list(req["cause"].astype(str)) == ["miscompare", "expired"]
    assert list(req["secondary_frame"]) == [1, 2]


def test_secondary_data_ahead_of_the_primary_is_requeued_once(tmp_path):
    # The secondary is ahead: S1 and S2 (1100..1200) wait for the primary; P1 differs from S1 at
    # 2 ms, the flush at 102 ms drops both, P2 comes only after it.  The resynchronised SVM sends
    # S2's data again, so S2 is requeued at the flush and P2 compares equal with it.
    prim = [(2 * MS, tcp(1000, b"a" * 100)), (110 * MS, tcp(1100, b"c" * 100))]
    sec = [(0, tcp(1000, b"b" * 100)), (1 * MS, tcp(1100, b"c" * 100))]
    tl = colo_replay.replay(*_pair(tmp_path, prim, sec), after_checkpoint="resync")
    req = _rows(tl, "requeued")
    assert len(req) == 1 and list(req["secondary_frame"]) == [2]
    assert str(req["cause"].iloc[0]) == "ahead"
    rel = _rows(tl, "release")
    eq = rel[rel["cause"] == "compared_equal"]
    assert list(zip(eq["primary_frame"], eq["secondary_frame"])) == [(2, 2)]
    # the requeued frame is fed right after the flush that dropped it, at its time
    flush_t = _rows(tl, "flush")["time_ns"].to_numpy()
    assert int(req["time_ns"].iloc[0]) in set(flush_t)
    # requeued at most once, however many flushes drop it
    assert tl.result.resync["requeued"] == 1


def test_a_datagram_copy_after_the_flush_is_superseded_as_owed(tmp_path):
    # A UDP flow's P1 differs from S1: a checkpoint, flushed at 101 ms.  Another flow's P2, sent
    # before it started, is released by that flush before its copy S2 arrives: S2 is the owed
    # counterpart.  Raw leaves S2 queued until it expires (3 s): a second request.
    prim = [(0, udp(b"one-p")), (500_000, udp(b"two", sport=6000))]
    sec = [(1 * MS, udp(b"one-s")), (101 * MS + 500_000, udp(b"two", sport=6000))]
    tl = colo_replay.replay(*_pair(tmp_path, prim, sec), after_checkpoint="resync", end_ns=f"{T0 + 5000 * MS}ns")
    sup = _rows(tl, "superseded")
    assert list(sup["cause"].astype(str)) == ["owed"] and list(sup["secondary_frame"]) == [2]
    assert len(_requests(tl)) == 1
    raw = colo_replay.replay(*_pair(tmp_path, prim, sec), after_checkpoint="raw", end_ns=f"{T0 + 5000 * MS}ns")
    assert list(_requests(raw)["cause"].astype(str)) == ["miscompare", "expired"]


def test_raw_is_the_replay_options_default_and_bad_values_are_refused(tmp_path):
    assert ReplayOptions().after_checkpoint == "raw"
    prim = [(0, udp(b"x"))]
    with pytest.raises(ValueError, match="after_checkpoint"):
        colo_replay.replay(*_pair(tmp_path, prim, prim), after_checkpoint="sometimes")


def test_resync_changes_no_frame_of_a_pair_without_divergence(planted, tmp_path):
    p, _s, _found = planted
    tl = colo_replay.replay(p, p, after_checkpoint="resync")
    assert len(_requests(tl)) == 0
    assert tl.result.resync == {"superseded": 0, "trimmed": 0, "requeued": 0}
    assert np.array_equal(tl.events["time_ns"].to_numpy(),
                          colo_replay.replay(p, p, after_checkpoint="raw").events["time_ns"].to_numpy())


def test_rules_end_when_caught_up_or_after_compare_timeout():
    """A mark ends at the first segment at or after it, a pure ACK included; a mark (or owed
    datagram) nothing came for within compare_timeout is forgotten, so that it stops costing a
    check per secondary frame."""
    from colo_replay.engine.compare import Engine
    from colo_replay.offline.resync import FEED, SUPERSEDE, Resync

    eng = Engine("7.2")
    rs = Resync(eng, 3000)
    eng.feed(0, tcp(1000, b"a" * 100), T0, 0, 1)
    eng.feed(1, tcp(1000, b"b" * 100), T0 + MS, 0, 1)           # miscompare: both stay queued
    evs = eng.checkpoint(T0 + 100 * MS)
    assert rs.after_flush(evs, T0 + 100 * MS) == [] and rs.marks and rs.active
    assert rs.check_secondary(tcp(1000, b""), 0, T0 + 101 * MS).action == SUPERSEDE   # behind the mark
    assert rs.check_secondary(tcp(1100, b""), 0, T0 + 102 * MS).action == FEED        # at it: caught up
    assert not rs.active
    # the same flush again, then silence: the sweep forgets the rule after compare_timeout
    eng.feed(0, tcp(1100, b"c" * 100), T0 + 200 * MS, 0, 2)
    eng.feed(1, tcp(1100, b"d" * 100), T0 + 201 * MS, 0, 2)
    rs.after_flush(eng.checkpoint(T0 + 300 * MS), T0 + 300 * MS)
    assert rs.active
    rs.sweep(T0 + 3200 * MS)
    assert rs.active
    rs.sweep(T0 + 3301 * MS)
    assert not rs.active


def test_frames_sent_during_a_checkpoint_wait_for_its_end(tmp_path):
    """Under resync a modelled checkpoint stops the VMs: the diverged connection's next segments
    (sent at 50 ms, while the checkpoint runs) are fed at the flush, after the pair that caused
    it was flushed, and compare equal: one request, one checkpoint.  Raw compares them at 50 ms
    against the miscompared pair still at the queues' heads: requests, and coalescing adds a
    second checkpoint."""
    prim = [(0, tcp(1000, b"a" * 100)), (50 * MS, tcp(1100, b"c" * 100))]
    sec = [(1 * MS, tcp(1000, b"b" * 100)), (51 * MS, tcp(1100, b"c" * 100))]
    tl = colo_replay.replay(*_pair(tmp_path, prim, sec), after_checkpoint="resync")
    assert len(_requests(tl)) == 1 and tl.summary["checkpoints"] == 1
    rel = _rows(tl, "release")
    eq = rel[rel["cause"] == "compared_equal"]
    assert list(zip(eq["primary_frame"], eq["secondary_frame"], eq["time_ns"])) == [(2, 2, T0 + 101 * MS)]
    assert tl.result.primary.held == tl.result.secondary.held == 1
    raw = colo_replay.replay(*_pair(tmp_path, prim, sec), after_checkpoint="raw")
    assert len(_requests(raw)) > 1 and raw.summary["checkpoints"] == 2


def test_the_fast_rule_check_agrees_with_the_rules_dicts():
    """The merge loop's check of a secondary while rules are pending (driver._ruleless: a C
    hash of the frame's addresses and ports into Resync.rule_slots) says "no rule" exactly when
    the frame's connection key is in neither marks nor owed, on both cores, including keys that
    share a slot, and the slot counts follow rules set and dropped."""
    from colo_replay.engine.compare import Engine
    from colo_replay.engine.profiles import get_profile
    from colo_replay.offline.driver import ruleless
    from colo_replay.offline.resync import RULE_SLOTS, Resync, rule_slot

    rs = Resync(Engine(get_profile("7.2")), 3000)
    frames = [tcp(1, b"x" * 40, sport=1000 + i, src=f"10.0.{i % 7}.{i % 251}") for i in range(300)]
    frames += [udp(b"y" * 40, sport=2000 + i, dst=f"10.1.{i % 5}.{i % 241}") for i in range(300)]
    keys = [f[26:38] + (b"\x11" if f[23] == 17 else b"") for f in frames]
    rules = (rs.marks, rs.owed, rs.rule_slots)
    assert all(ruleless(f, 0, len(f), rules) for f in frames)
    # rules on every third connection: the others still pass, ruled ones never do
    for i, key in enumerate(keys[::3]):
        if key.endswith(b"\x11"):
            rs.owed[key] = object()
        else:
            rs.marks[key] = i
            rs._mark_until[key] = 0
        rs._count_rule(key, 1)
    ruled = set(keys[::3])
    slots_used = {rule_slot(k) for k in ruled}
    shared = [k for k in keys if k not in ruled and rule_slot(k) in slots_used]
    assert shared, "no unruled key shares a slot with a ruled one: the exact look-up is untested"
    padded = b"\0" * 5
    for f, key in zip(frames, keys):
        # (the frame inside a larger buffer, at an offset, as in a batch)
        assert ruleless(padded + f + padded, 5, len(f), rules) == (key not in ruled)
    assert sum(rs.rule_slots) == len(ruled) and len(rs.rule_slots) == RULE_SLOTS
    for key in list(rs.marks):
        rs._drop_mark(key)
    for key in list(rs.owed):
        rs._drop_owed(key)
    assert not any(rs.rule_slots)
    assert all(ruleless(f, 0, len(f), rules) for f in frames)
    # what the C check leaves to the slow path: not IPv4 with a 20-byte header, too short, ICMP
    assert not ruleless(frames[0][:47], 0, 47, rules)
    other = bytearray(frames[0])
    other[23] = 1
    assert not ruleless(bytes(other), 0, len(other), rules)
