"""Offline replay: options, time model, timeline and summary (synthetic captures written here)."""

import json

import pytest

from colo_replay.api import replay
from tests.support.frames import tcp, udp
from tests.support.pcapwrite import write_pcap

MS = 1_000_000
T0 = 1_700_000_000 * 1_000_000_000   # a realistic epoch


@pytest.fixture
def pair(tmp_path):
    def make(primary, secondary, **kw):
        p = write_pcap(tmp_path / "p.pcap", primary, **kw)
        s = write_pcap(tmp_path / "s.pcap", secondary, **kw)
        return str(p), str(s)
    return make


def test_matching_pair_releases_everything(pair):
    frames = [tcp(1000 + 10 * i, bytes([i]) * 10) for i in range(20)]
    p, s = pair([(T0 + i * MS, f) for i, f in enumerate(frames)],
                [(T0 + i * MS + 200_000, f) for i, f in enumerate(frames)])
    tl = replay(p, s)
    ev = tl.events
    rel = ev[ev.kind == "release"]
    assert len(rel) == 20 and list(rel.primary_frame) == list(range(1, 21))
    assert list(rel.secondary_frame) == list(range(1, 21))
    assert (rel.held_ns == 200_000).all()
    assert tl.summary["divergences"] == 0 and tl.summary["held_ms"]["p50"] == 0.2
    assert str(ev.kind.dtype) == "category"


def test_divergence_checkpoint_and_flush(pair):
    p, s = pair([(T0, udp(b"primary says A"))], [(T0 + MS, udp(b"primary says B"))])
    tl = replay(p, s, checkpoint_duration_ns=50 * MS)
    ev = tl.events
    assert list(ev.kind) == ["checkpoint_request", "checkpoint_start", "flush", "release",
                             "secondary_dropped", "checkpoint_end"]
    req = ev.iloc[0]
    assert req.cause == "miscompare" and req.primary_frame == 1 and req.secondary_frame == 1
    rel = ev[ev.kind == "release"].iloc[0]
    assert rel.cause == "flush" and rel.time_ns == T0 + 51 * MS and rel.held_ns == 51 * MS
    assert tl.summary["divergences"] == 1 and tl.summary["checkpoints"] == 1


def test_secondary_offset_shifts_arrivals(pair):
    f = udp(b"x")
    p, s = pair([(T0 + 500 * MS, f)], [(T0, f)])
    # without an offset the secondary arrives 500 ms early: the match happens at the primary
    rel = replay(p, s).events.query("kind == 'release'").iloc[0]
    assert rel.time_ns == T0 + 500 * MS and rel.held_ns == 0
    rel = replay(p, s, secondary_offset_ns=800 * MS).events.query("kind == 'release'").iloc[0]
    assert rel.time_ns == T0 + 800 * MS and rel.held_ns == 300 * MS


def test_timeout_grid_and_scan_phase(pair):
    p, s = pair([(T0, udp(b"lonely"))], [(T0 + 60_000 * MS, udp(b"late"))])
    ev = replay(p, s, checkpoint_delay_ns=0, checkpoint_duration_ns=0).events
    req = ev[ev.kind == "checkpoint_request"]
    assert req.iloc[0].cause == "expired" and req.iloc[0].time_ns == T0 + 4000 * MS
    ev = replay(p, s, checkpoint_delay_ns=0, checkpoint_duration_ns=0, scan_phase_ns=500 * MS).events
    assert ev[ev.kind == "checkpoint_request"].iloc[0].time_ns == T0 + 3500 * MS


def test_41_profile_refuses_knobs(pair):
    p, s = pair([(T0, udp(b"x"))], [(T0, udp(b"x"))])
    with pytest.raises(ValueError, match="no compare_timeout"):
        replay(p, s, qemu="4.1", compare_timeout=100)


def test_truncated_frames_are_uncomparable(pair):
    f = udp(b"y" * 100)
    p, s = pair([(T0, f[:60], len(f))], [(T0 + MS, f)])
    tl = replay(p, s)
    ev = tl.events
    assert list(ev[ev.kind == "uncomparable"].cause) == ["truncated"]
    assert tl.summary["never_compared"]["truncated"] == 1
    assert not (ev.kind == "release").any()


def test_jsonl_csv_parquet_outputs(pair, tmp_path):
    frames = [udp(bytes([i])) for i in range(5)]
    p, s = pair([(T0 + i * MS, f) for i, f in enumerate(frames)], [(T0 + i * MS, f) for i, f in enumerate(frames)])
    tl = replay(p, s)
    import pandas as pd
    tl.write(str(tmp_path / "t.parquet"))
    tl.write(str(tmp_path / "t.csv"))
    tl.write(str(tmp_path / "t.jsonl"))
    assert len(pd.read_parquet(tmp_path / "t.parquet")) == len(tl.events)
    assert len(pd.read_csv(tmp_path / "t.csv")) == len(tl.events)
    rows = [json.loads(x) for x in open(tmp_path / "t.jsonl")]
    assert rows[0]["kind"] == tl.events.iloc[0].kind


def test_corrupt_capture_gives_partial_timeline(pair, tmp_path):
    frames = [udp(bytes([i])) for i in range(10)]
    p, s = pair([(T0 + i * MS, f) for i, f in enumerate(frames)], [(T0 + i * MS, f) for i, f in enumerate(frames)])
    data = open(p, "rb").read()
    open(p, "wb").write(data[:-10])           # cut the last frame short
    tl = replay(p, s)
    assert tl.partial and "frame 10" in tl.error
    assert (tl.events.kind == "release").sum() == 9


def test_package_api_is_the_replay_function_and_imports_no_pandas():
    import subprocess
    import sys
    code = ("import sys, colo_replay; assert callable(colo_replay.replay); "
            "assert 'pandas' not in sys.modules, 'pandas imported eagerly'")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_cli_exit_codes(pair, tmp_path):
    import subprocess
    import sys
    f = udp(b"same")
    p, s = pair([(T0, f)], [(T0 + MS, f)])
    run = lambda *a: subprocess.run([sys.executable, "-m", "colo_replay.cli", "replay", *a],
                                    capture_output=True, text=True)
    ok = run(p, s, "-o", str(tmp_path / "t.csv"))
    assert ok.returncode == 0 and "divergences    0" in ok.stderr and ok.stdout == ""
    bad = run(p, str(tmp_path / "missing.pcap"))
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "Traceback" not in bad.stderr
    knob = run(p, s, "--qemu", "4.1", "--compare-timeout", "10")
    assert knob.returncode == 2 and "no compare_timeout property" in knob.stderr
    jl = run(p, s)
    assert jl.returncode == 0 and jl.stdout.startswith("{")      # JSON Lines on stdout
    bpf = run(p, s, "--filter", "udp portx")
    assert bpf.returncode == 2 and "bad BPF filter" in bpf.stderr and "Traceback" not in bpf.stderr


def test_align_auto_recovers_a_clock_skew(pair, tmp_path):
    from colo_replay.offline.align import estimate_alignment
    from colo_replay.captures import open_capture
    frames = [udp(bytes([i]) * 20, sport=1000 + i) for i in range(30)] + [tcp(5000 + i, b"data%04d" % i) for i in range(30)]
    skew = -5_000 * MS          # the secondary's clock runs 5 s behind
    p, s = pair([(T0 + i * 10 * MS, f) for i, f in enumerate(frames)],
                [(T0 + skew + i * 10 * MS + 300_000, f) for i, f in enumerate(frames)])
    found = estimate_alignment(open_capture(p), open_capture(s))
    assert found.offset_ns == 5_000 * MS - 300_000 and found.anchors == 60
    assert found.residual_p95_ns == 0
    import subprocess
    import sys
    r = subprocess.run([sys.executable, "-m", "colo_replay.cli", "replay", p, s, "--align", "auto", "-o", str(tmp_path / "t.csv")],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "alignment      auto: secondary offset +4999.700 ms from 60 matching frames" in r.stderr
