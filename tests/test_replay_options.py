"""Every ``colo-replay replay`` option, through the command line, under both profiles.

Each test runs the real CLI (``python -m colo_replay.cli``) on small captures written here and
checks the effect of one option on the timeline or the summary, for QEMU 7.2 and for the 4.1
seed where the option exists there (4.1 has no compare_timeout / expired_scan_cycle /
max_queue_size properties: those must be refused with exit 2).
"""

from __future__ import annotations

import json
import struct
import subprocess
import sys

import pandas as pd
import pytest

from tests.support.frames import tcp, udp, with_vnet
from tests.support.pcapwrite import write_pcap

MS = 1_000_000
T0 = 1_700_000_000 * 1_000_000_000
PROFILES = ["7.2", "4.1"]


def run(*args, expect=None):
    r = subprocess.run([sys.executable, "-m", "colo_replay.cli", "replay", *map(str, args)],
                       capture_output=True, text=True)
    if expect is not None:
        assert r.returncode == expect, r.stderr
    assert "Traceback" not in r.stderr
    return r


def timeline(tmp_path, *args, expect=None, name="t.csv"):
    out = tmp_path / name
    summ = tmp_path / "s.json"
    r = run(*args, "-o", out, "--summary-json", summ, expect=expect)
    return pd.read_csv(out), json.loads(summ.read_text()), r


@pytest.fixture
def pair(tmp_path):
    def make(primary, secondary, **kw):
        return (write_pcap(tmp_path / "p.pcap", primary, **kw), write_pcap(tmp_path / "s.pcap", secondary, **kw))
    return make


# --------------------------------------------------------------------------- compare knobs

@pytest.mark.parametrize("knob, value", [("--compare-timeout", 100), ("--expired-scan-cycle", 50),
                                         ("--max-queue-size", 8)])
def test_41_refuses_knobs_it_never_had(pair, knob, value):
    p, s = pair([(T0, udp(b"x"))], [(T0, udp(b"x"))])
    r = run(p, s, "--qemu", "4.1", knob, value, expect=2)
    assert r.stderr.count("\n") == 1 and knob.strip("-").replace("-", "_") in r.stderr


def test_compare_timeout_and_expired_scan_cycle_72(pair, tmp_path):
    p, s = pair([(T0, udp(b"alone"))], [(T0 + 10_000 * MS, udp(b"other", sport=9))])
    ev, summ, _ = timeline(tmp_path, p, s, "--compare-timeout", 250, "--expired-scan-cycle", 100,
                           "--checkpoint-delay", 0, "--allow-empty", expect=1)   # an expiry is a request: 1
    req = ev[ev.kind == "checkpoint_request"].iloc[0]
    # created at T0; first scan at T0+100; expired once older than 250 ms: the scan at T0+300
    assert req.cause == "expired" and req.time_ns == T0 + 300 * MS
    assert summ["knobs"]["compare_timeout"] == 250 and summ["knobs"]["expired_scan_cycle"] == 100


def test_41_expiry_scan_is_3000ms_on_the_vm_clock(pair, tmp_path):
    p, s = pair([(T0, udp(b"alone"))], [(T0 + 20_000 * MS, udp(b"other", sport=9))])
    ev, summ, _ = timeline(tmp_path, p, s, "--qemu", "4.1", "--checkpoint-delay", 0,
                           "--checkpoint-duration", "1s", "--allow-empty", expect=1)
    reqs = ev[ev.kind == "checkpoint_request"]
    assert reqs.iloc[0].cause == "expired" and reqs.iloc[0].time_ns == T0 + 6000 * MS
    assert summ["knobs"]["qemu"] == "4.1"


@pytest.mark.parametrize("qemu, queued", [("7.2", 9), ("4.1", 1025)])
def test_max_queue_size(pair, tmp_path, qemu, queued):
    frames = [udp(bytes([i % 256]) * 8, sport=1000) for i in range(1100)]
    p, s = pair([(T0 + i * 1000, f) for i, f in enumerate(frames)], [(T0 + 5000 * MS, udp(b"z", sport=7))])
    args = [p, s, "--qemu", qemu, "--checkpoint-delay", 0]
    if qemu == "7.2":
        args += ["--max-queue-size", 8]
    ev, summ, _ = timeline(tmp_path, *args)
    # both push while g_queue_get_length(queue) <= limit, so limit + 1 frames fit (7.2: max_queue_size,
    # 4.1: MAX_QUEUE_SIZE 1024); the differential suite checks this against the real 7.2
    assert summ["queue_drops"] == 1100 - queued


@pytest.mark.parametrize("qemu", PROFILES)
def test_vnet_hdr_len_replays_frames_with_a_vnet_header(pair, tmp_path, qemu):
    frames = [with_vnet(udp(bytes([i]) * 30, sport=2000 + i), 10) for i in range(5)]
    p, s = pair([(T0 + i * MS, f) for i, f in enumerate(frames)], [(T0 + i * MS + 1000, f) for i, f in enumerate(frames)])
    ev, summ, _ = timeline(tmp_path, p, s, "--qemu", qemu, "--vnet-hdr-len", 10, expect=0)
    rel = ev[ev.kind == "release"]
    assert list(rel.cause) == ["compared_equal"] * 5 and (rel["size"] == 10 + 14 + 20 + 8 + 30).all()
    assert summ["knobs"]["vnet_hdr_support"] is True and summ["knobs"]["vnet_hdr_len"] == 10
    # read without --vnet-hdr-len, the vnet bytes are taken for the Ethernet header: not IP at all
    ev2, summ2, _ = timeline(tmp_path, p, s, "--qemu", qemu, name="t2.csv")
    assert summ2["never_compared"]["unsupported"] + summ2["released_by_cause"].get("passthrough", 0) > 0
    assert "compared_equal" not in set(ev2.cause)


def test_vnet_hdr_len_needs_vnet_hdr_support_off_is_refused(pair):
    p, s = pair([(T0, udp(b"x"))], [(T0, udp(b"x"))])
    r = run(p, s, "--vnet-hdr-len", 10, "--no-vnet-hdr-support", "--allow-empty")
    assert r.returncode == 0        # --vnet-hdr-len implies vnet_hdr_support
    r = run(p, s, "--vnet-hdr-len", -1)
    assert r.returncode == 2


# ------------------------------------------------------------------------------ clocks

@pytest.mark.parametrize("qemu", PROFILES)
@pytest.mark.parametrize("opt, shift_p, shift_s", [("--primary-offset", 300, 0), ("--secondary-offset", 0, 300),
                                                   ("--primary-delay", 300, 0), ("--secondary-delay", 0, 300)])
def test_offsets_and_delays_shift_arrivals(pair, tmp_path, qemu, opt, shift_p, shift_s):
    f = udp(b"same")
    p, s = pair([(T0, f)], [(T0 + 100 * MS, f)])
    ev, summ, _ = timeline(tmp_path, p, s, "--qemu", qemu, opt, "300ms", expect=0)
    rel = ev[ev.kind == "release"].iloc[0]
    arrive_p, arrive_s = T0 + shift_p * MS, T0 + (100 + shift_s) * MS
    assert rel.time_ns == max(arrive_p, arrive_s) and rel.held_ns == max(0, arrive_s - arrive_p)


@pytest.mark.parametrize("qemu", PROFILES)
def test_align_auto_both_profiles(pair, tmp_path, qemu):
    frames = [udp(bytes([i]) * 20, sport=1000 + i) for i in range(40)]
    p, s = pair([(T0 + i * 10 * MS, f) for i, f in enumerate(frames)],
                [(T0 - 2000 * MS + i * 10 * MS + 200_000, f) for i, f in enumerate(frames)])
    ev, summ, r = timeline(tmp_path, p, s, "--qemu", qemu, "--align", "auto", expect=0)
    assert summ["knobs"]["secondary_offset_ms"] == pytest.approx(1999.8)
    assert (ev[ev.kind == "release"].held_ns == 0).all()


def test_scan_phase_moves_the_tick_grid(pair, tmp_path):
    p, s = pair([(T0, udp(b"alone"))], [(T0 + 10_000 * MS, udp(b"b", sport=9))])
    base = ["--compare-timeout", 250, "--expired-scan-cycle", 100, "--checkpoint-delay", 0]
    ev, _, _ = timeline(tmp_path, p, s, *base, "--scan-phase", "40ms", "--allow-empty", expect=1)
    assert ev[ev.kind == "checkpoint_request"].iloc[0].time_ns == T0 + 340 * MS


# ------------------------------------------------------------------------- checkpoints

@pytest.mark.parametrize("qemu, checkpoints", [("7.2", 2), ("4.1", 3)])
def test_checkpoint_duration_and_coalescing(pair, tmp_path, qemu, checkpoints):
    """Three miscompares, the last two while the first checkpoint runs: 7.2 coalesces those two
    into one more checkpoint (QemuEvent), 4.1 runs one checkpoint per request (semaphore).  Raw:
    these streams are what colo-compare reads (resync would hold the frames sent while the
    checkpoint runs until it ends)."""
    pf = [udp(b"P%d" % i, sport=3000 + i) for i in range(3)] + [udp(b"end", sport=1)]
    sf = [udp(b"S%d" % i, sport=3000 + i) for i in range(3)] + [udp(b"end", sport=1)]
    times = [0, 1, 2, 1000]      # the last pair keeps the clock running past every checkpoint
    p, s = pair([(T0 + t * MS, f) for t, f in zip(times, pf)], [(T0 + t * MS + 500_000, f) for t, f in zip(times, sf)])
    ev, summ, _ = timeline(tmp_path, p, s, "--qemu", qemu, "--checkpoint-duration", "50ms",
                           "--checkpoint-delay", 0, "--after-checkpoint", "raw", expect=1)
    assert summ["checkpoint_requests"] == 3 and summ["checkpoints"] == checkpoints
    start = ev[ev.kind == "checkpoint_start"].iloc[0]
    end = ev[ev.kind == "checkpoint_end"].iloc[0]
    assert end.time_ns - start.time_ns == 50 * MS


@pytest.mark.parametrize("qemu", PROFILES)
def test_checkpoint_delay_periodic(pair, tmp_path, qemu):
    frames = [udp(bytes([i]), sport=4000 + i) for i in range(30)]
    p, s = pair([(T0 + i * 100 * MS, f) for i, f in enumerate(frames)],
                [(T0 + i * 100 * MS, f) for i, f in enumerate(frames)])
    ev, summ, _ = timeline(tmp_path, p, s, "--qemu", qemu, "--checkpoint-delay", "1s",
                           "--checkpoint-duration", "10ms", expect=0)
    starts = ev[ev.kind == "checkpoint_start"]
    assert set(starts.cause) == {"periodic"} and len(starts) == 2      # at 1.0 s and 2.01 s in 2.9 s
    assert starts.iloc[0].time_ns == T0 + 1000 * MS


@pytest.mark.parametrize("qemu", PROFILES)
def test_default_checkpoint_delay_is_20s(pair, tmp_path, qemu):
    """Without --checkpoint-delay, both profiles checkpoint periodically every 20 s
    (x-checkpoint-delay's default): identical traffic over 45 s gives two periodic checkpoints,
    20 s and 40 s in (the timer is re-armed when a checkpoint is triggered)."""
    frames = [udp(bytes([i]), sport=4000 + i) for i in range(46)]
    p, s = pair([(T0 + i * 1000 * MS, f) for i, f in enumerate(frames)],
                [(T0 + i * 1000 * MS, f) for i, f in enumerate(frames)])
    ev, summ, _ = timeline(tmp_path, p, s, "--qemu", qemu, "--checkpoint-duration", "10ms", expect=0)
    starts = ev[ev.kind == "checkpoint_start"]
    assert set(starts.cause) == {"periodic"} and len(starts) == 2
    assert list(starts.time_ns) == [T0 + 20000 * MS, T0 + 40000 * MS]
    assert summ["knobs"]["checkpoint_delay_ms"] == 20000


@pytest.mark.parametrize("qemu", PROFILES)
def test_checkpoints_at_replaces_the_model(pair, tmp_path, qemu):
    p, s = pair([(T0, udp(b"A")), (T0 + 2500 * MS, udp(b"late", sport=1))],
                [(T0 + MS, udp(b"B")), (T0 + 2500 * MS, udp(b"late", sport=1))])
    times = tmp_path / "flushes.txt"
    times.write_text(f"# measured on the rig\n{(T0 + 7 * MS) / 1e9:.6f}\n{T0 + 2000 * MS}ns\n")
    ev, summ, _ = timeline(tmp_path, p, s, "--qemu", qemu, "--checkpoints-at", times, expect=1)
    rel = ev[ev.kind == "release"].iloc[0]
    assert rel.cause == "flush" and rel.time_ns == T0 + 7 * MS
    assert summ["checkpoints"] == 2 and summ["knobs"]["checkpoints"] == "measured"
    times.write_text("soon\n")
    assert run(p, s, "--checkpoints-at", times, expect=2).stderr.count("\n") == 1


def test_negative_durations_are_refused(pair):
    p, s = pair([(T0, udp(b"A"))], [(T0, udp(b"A"))])
    assert "must not be negative" in run(p, s, "--checkpoint-duration", "-5ms", expect=2).stderr
    assert "is not a duration" in run(p, s, "--secondary-offset", "soon", expect=2).stderr


# ------------------------------------------------------------------ selection and links

@pytest.mark.parametrize("qemu", PROFILES)
def test_filter_bpf(pair, tmp_path, qemu):
    p, s = pair([(T0, udp(b"dns", dport=53)), (T0 + MS, udp(b"other", dport=99))],
                [(T0, udp(b"dns", dport=53)), (T0 + MS, udp(b"OTHER", dport=99))])
    ev, summ, _ = timeline(tmp_path, p, s, "--qemu", qemu, "--filter", "udp port 53", expect=0)
    assert summ["never_compared"]["filtered"] == 2 and summ["knobs"]["filter"] == "udp port 53"


def _sll(frame: bytes) -> bytes:
    """Linux cooked (SLL) header for an outgoing Ethernet frame's payload."""
    return struct.pack("!HHH8sH", 4, 1, 6, frame[6:12] + b"\0\0", 0x0800) + frame[14:]


@pytest.mark.parametrize("qemu", PROFILES)
@pytest.mark.parametrize("linktype, wrap", [(101, lambda f: f[14:]), (113, _sll)])
def test_raw_ip_and_sll_captures_replay_like_ethernet(tmp_path, qemu, linktype, wrap):
    frames = [udp(bytes([i]) * 12, sport=5000 + i) for i in range(4)] + [tcp(100, b"seg")]
    eth_p = write_pcap(tmp_path / "ep.pcap", [(T0 + i * MS, f) for i, f in enumerate(frames)])
    eth_s = write_pcap(tmp_path / "es.pcap", [(T0 + i * MS + 10, f) for i, f in enumerate(frames)])
    lp = write_pcap(tmp_path / "lp.pcap", [(T0 + i * MS, wrap(f)) for i, f in enumerate(frames)], linktype=linktype)
    ls = write_pcap(tmp_path / "ls.pcap", [(T0 + i * MS + 10, wrap(f)) for i, f in enumerate(frames)], linktype=linktype)
    code = 0 if qemu == "7.2" else 1     # 4.1's inverted TCP compare checkpoints on the equal segment
    ev_eth, _, _ = timeline(tmp_path, eth_p, eth_s, "--qemu", qemu, expect=code, name="e.csv")
    ev_l, summ, _ = timeline(tmp_path, lp, ls, "--qemu", qemu, expect=code, name="l.csv")
    cols = ["kind", "cause", "primary_frame", "secondary_frame", "time_ns"]
    assert ev_l[cols].equals(ev_eth[cols])
    assert summ["captures"]["primary"]["synthesised_ethernet"] is True
    assert summ["captures"]["primary"]["linktypes"] == [linktype]


# ------------------------------------------------------------------- output and exit codes

def test_thresholds_turn_exit_code_1(pair, tmp_path):
    f = udp(b"same")
    p, s = pair([(T0, f)], [(T0 + 30 * MS, f)])
    timeline(tmp_path, p, s, "--max-held-p99", 50, expect=0)
    _, _, r = timeline(tmp_path, p, s, "--max-held-p99", 10, expect=1)
    assert "held p99 30.000 ms > --max-held-p99 10" in r.stderr
    # raw: under resync the periodic checkpoint at 10 ms releases the primary by flush and the
    # secondary's copy is superseded (nothing compared); this test is about the threshold
    raw = ("--after-checkpoint", "raw")
    timeline(tmp_path, p, s, *raw, "--checkpoint-delay", "10ms", "--max-checkpoints", 5, expect=0)
    _, _, r = timeline(tmp_path, p, s, *raw, "--checkpoint-delay", "10ms", "--max-checkpoints", 1, expect=1)
    assert "--max-checkpoints 1" in r.stderr


def test_progress_bar_on_stderr_keeps_stdout_clean(tmp_path):
    frames = [udp(bytes([i % 256]) * 4, sport=1000 + i % 50) for i in range(70_000)]
    p = write_pcap(tmp_path / "p.pcap", [(T0 + i * 1000, f) for i, f in enumerate(frames)])
    s = write_pcap(tmp_path / "s.pcap", [(T0 + i * 1000 + 10, f) for i, f in enumerate(frames)])
    r = run(p, s, "--progress", "--checkpoint-delay", 0)
    assert r.returncode == 0, r.stderr
    bar = r.stderr.replace("\r", "\n")
    assert "replaying [" in bar and "100%" in bar and "140,000 frames" in bar   # on stderr
    lines = r.stdout.splitlines()
    assert len(lines) == 2 * 70_000 and all(line.startswith("{") for line in lines[:100])
    json.loads(lines[-1])
    quiet = run(p, s, "--no-progress", "-o", tmp_path / "t.parquet", "--checkpoint-delay", 0)
    assert "replaying" not in quiet.stderr and quiet.stdout == ""


@pytest.mark.parametrize("qemu", PROFILES)
def test_until_runs_the_clock_past_the_last_frame(pair, tmp_path, qemu):
    p, s = pair([(T0, udp(b"alone"))], [(T0 + MS, udp(b"other", sport=9))])
    ev, summ, _ = timeline(tmp_path, p, s, "--qemu", qemu, "--checkpoint-delay", 0, "--allow-empty", expect=0)
    assert not (ev.kind == "checkpoint_request").any()          # the clock stopped at T0 + 1 ms
    until = T0 + 10_000 * MS
    ev, summ, _ = timeline(tmp_path, p, s, "--qemu", qemu, "--checkpoint-delay", 0, "--until", f"{until}ns",
                           "--allow-empty", name="u.csv", expect=1)
    req = ev[ev.kind == "checkpoint_request"]
    assert len(req) >= 1 and set(req.cause) == {"expired"} and req.time_ns.max() <= until
    assert summ["knobs"]["until_ns"] == until
    assert "is not a time" in run(p, s, "--until", "later", expect=2).stderr


def test_measured_flushes_after_the_last_frame_still_happen(pair, tmp_path):
    p, s = pair([(T0, udp(b"A"))], [(T0 + MS, udp(b"B"))])
    times = tmp_path / "flushes.txt"
    times.write_text(f"{T0 + 7 * MS}ns\n")
    ev, summ, _ = timeline(tmp_path, p, s, "--checkpoints-at", times, expect=1)
    rel = ev[ev.kind == "release"]
    assert list(rel.cause) == ["flush"] and rel.iloc[0].time_ns == T0 + 7 * MS
