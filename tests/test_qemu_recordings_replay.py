"""Every recorded QEMU release, replayed offline against its behaviour row (issue 20, item 5).

``tests/data/qemu-recordings/<release>.json.gz`` holds what a real binary of that release did on
each differential scenario (``tests/support/recordings.py``; how they were made: the README
beside them).  Here each release string is mapped to its row and profile by the product
(``engine.releases.release_profile``, as ``--qemu RELEASE`` does), the engine runs every
recorded scenario with that profile, and ``differential.compare`` must find no disagreement:
released frames (bytes and vnet length, in outdev order) equal at every step, checkpoint
requests equal (within one per WAIT step in the timer scenarios, as for the live 7.2 oracle).

A scenario whose frames make the engine report undefined behaviour (a read past a frame's end)
for that row cannot be compared (QEMU reads memory it does not own there); it is listed, and
the engine must flag it.  The crash cases (a zero-length frame, the 16386th connection) are
checked against each release's recorded outcome: which signal kills it, or that it survives
and what it releases next.  No QEMU binary is needed: CI replays the recordings as they are.
"""

from __future__ import annotations

import glob
import os

import pytest

from colo_replay import PRIMARY, SECONDARY, Cause, Engine, EventKind
from colo_replay.engine.profiles import CompareConfig
from colo_replay.engine.releases import release_profile
from tests.support import frames as F
from tests.support import recordings as R
from tests.support.differential import compare, report
from tests.support.engine_runner import run_engine
from tests.support.scenarios import all_scenarios

HERE = os.path.join(os.path.dirname(__file__), "data", "qemu-recordings")
FILES = sorted(glob.glob(os.path.join(HERE, "*.json.gz")))
SCENARIOS = {s.name: s for s in all_scenarios() + R.extra_scenarios()}
_LOADED: dict = {}


def _load(path):
    if path not in _LOADED:
        _LOADED[path] = R.load_recording(path, list(SCENARIOS.values()))
    return _LOADED[path]


def _undefined(events) -> bool:
    return any(ev.kind in (EventKind.UNDEFINED, EventKind.QEMU_CRASH) for ev in events)


@pytest.mark.parametrize("path", FILES, ids=[os.path.basename(p)[:-len(".json.gz")] for p in FILES])
def test_release_agrees_with_its_row(path):
    meta, runs = _load(path)
    row, profile = release_profile(meta["release"])
    assert row == meta["row"], (meta["release"], row, meta["row"])
    assert runs, "a recording without scenarios proves nothing"
    problems, undefined = [], []
    for name, qres in runs.items():
        scenario = SCENARIOS[name]
        _, eres = run_engine(scenario, profile=profile)
        found = compare(scenario, qres, eres)
        if not found:
            continue
        if any(_undefined(step.events) for step in eres):
            undefined.append(name)          # flagged by the engine: QEMU's result is not defined
        else:
            problems.append(report(scenario, qres, eres, found))
    assert not problems, f"QEMU {meta['release']} (row {row}) and the engine disagree:\n" + "\n\n".join(problems)
    # the disagreements the engine flags as undefined are the runt frames of the rows whose
    # minimum frame is 14 bytes (a read past the frame's end: 6.2 .. 7.1 read other bytes)
    assert set(undefined) <= {"runt-and-truncated-ip"}, undefined
    assert len(runs) - len(undefined) >= 80


def _zero_length_outcome(profile, case: dict):
    """What the engine does with the recording's zero-length case: 'survives' (and releases
    nothing), or the crash cause."""
    vnet = bool(case["vnet_hdr_support"])
    eng = Engine(profile, CompareConfig(vnet_hdr_support=vnet), start_ns=0)
    eng.feed(PRIMARY, F.udp(b"before"), 1_000_000)
    side = PRIMARY if case["input"] == "pri" else SECONDARY
    events = eng.feed(side, b"", 2_000_000, case["vnet_hdr_len"] if vnet else 0)
    crashes = [ev for ev in events if ev.kind == EventKind.QEMU_CRASH]
    if crashes:
        return crashes[0].cause, []
    released = [ev for ev in events if ev.kind == EventKind.RELEASE]
    follow = F.udp(b"after-bad-input", sport=4711)
    after = eng.feed(PRIMARY, follow, 3_000_000) + eng.feed(SECONDARY, follow, 4_000_000)
    return "survives", released + [ev.frame.data for ev in after if ev.kind == EventKind.RELEASE]


@pytest.mark.parametrize("path", FILES, ids=[os.path.basename(p)[:-len(".json.gz")] for p in FILES])
def test_zero_length_frames_as_the_release_did(path):
    meta, _runs = _load(path)
    _row, profile = release_profile(meta["release"])
    cases = {k: v for k, v in meta["crash_cases"].items() if k.startswith("zero-length")}
    assert len(cases) == 4, sorted(meta["crash_cases"])
    for name, case in cases.items():
        outcome, after = _zero_length_outcome(profile, case)
        if case["survived"]:
            # 7.1: rejected, nothing written; the queued primary stays, later traffic flows
            assert outcome == "survives", (meta["release"], name, outcome)
            recorded = [bytes.fromhex(h) for step in case["follow_up"] for h, _v in step["releases"]]
            assert after == recorded, (meta["release"], name)
        else:
            want = {"SIGSEGV": Cause.SIGSEGV_NULL_FRAME, "SIGABRT": Cause.SIGABRT_ASSERT_DATA}[case["signal"]]
            assert outcome == want, (meta["release"], name, outcome, case["signal"])


@pytest.mark.parametrize("path", FILES, ids=[os.path.basename(p)[:-len(".json.gz")] for p in FILES])
def test_the_16386th_connection_as_the_release_did(path):
    """16384 keys fit; one more resets the table: QEMU up to 7.0 aborts (double free), 7.1 on
    discards every queued packet and goes on (the flush then releases only the newest)."""
    meta, _runs = _load(path)
    _row, profile = release_profile(meta["release"])
    fits, resets = meta["crash_cases"]["table-overflow-16384-keys"], meta["crash_cases"]["table-overflow-16385-keys"]
    assert fits["survived"] and fits["flush"]["released"] == 16384
    eng = Engine(profile, CompareConfig(), start_ns=0)
    first = F.udp(b"first", sport=1000)
    fill = [F.udp(b"fill", sport=1000, src=f"10.2.{i >> 8}.{i & 255}") for i in range(16385 - 2)]
    t = 1_000
    events = eng.feed(PRIMARY, first, t)
    # the oracle's barrier flow is one more key: stand-in with one more distinct flow
    events += eng.feed(PRIMARY, F.udp(b"barrier", sport=999, dst="10.9.9.9"), t)
    for f in fill:
        t += 1_000
        events += eng.feed(PRIMARY, f, t)
    assert not any(ev.kind == EventKind.QEMU_CRASH for ev in events)
    events = eng.feed(PRIMARY, F.udp(b"last", sport=1001), t + 1_000)
    crashed = [ev for ev in events if ev.kind == EventKind.QEMU_CRASH]
    if resets["survived"]:
        assert not crashed, meta["release"]
        flushed = [ev for ev in eng.checkpoint(t + 2_000) if ev.kind == EventKind.RELEASE]
        assert len(flushed) == resets["flush"]["released"] == 1
        assert flushed[0].frame.data == F.udp(b"last", sport=1001)
    else:
        assert resets["signal"] == "SIGABRT" and crashed and crashed[0].cause == Cause.DOUBLE_FREE, meta["release"]
