"""The recordings of real QEMU releases (tests/data/qemu-recordings) load, and say what they claim.

This checks the files and ``tests/support/recordings.py`` only (no QEMU needed): each recording
loads against today's scenarios (a changed scenario makes it stale: re-record), has one capture
per step, names the row of qemu-releases.md §2 for its release, and has run every scenario its
release can run.  Replaying the recordings against each row's profile is a separate test.
"""

from __future__ import annotations

import glob
import os

import pytest

from tests.support import recordings as R
from tests.support.qemu_oracle import StepCapture
from tests.support.scenarios import all_scenarios

HERE = os.path.join(os.path.dirname(__file__), "data", "qemu-recordings")
FILES = sorted(glob.glob(os.path.join(HERE, "*.json.gz")))
SCENARIOS = all_scenarios() + R.extra_scenarios()


def test_there_are_recordings():
    assert len(FILES) >= 6, FILES


@pytest.mark.parametrize("path", FILES, ids=[os.path.basename(p) for p in FILES])
def test_recording_loads(path):
    meta, runs = R.load_recording(path, SCENARIOS)
    assert os.path.basename(path) == f"{meta['release']}.json.gz"
    assert meta["row"] == R.reference_row(meta["release"])
    assert meta["binary"]["version"].startswith(f"QEMU emulator version {meta['release']}")
    by_name = {s.name: s for s in SCENARIOS}
    assert set(runs) | set(meta["skipped"]) | set(meta["errors"]) == set(by_name)
    for name in meta["skipped"]:
        assert R.missing_properties(by_name[name], meta["release"]), name
    for name, caps in runs.items():
        assert len(caps) == len(by_name[name].steps), name
        assert all(isinstance(c, StepCapture) for c in caps)
        assert all(isinstance(d, bytes) and isinstance(v, int) for c in caps for d, v in c.releases)


def test_release_rule():
    rows = {"4.1.0": "A", "4.1.1": "B", "4.2.1": "B", "5.0.1": "C", "5.1.0": "D", "5.2.0": "E",
            "6.0.1": "E", "6.1.0": "F", "6.2.0": "G", "7.0.0": "H", "7.1.0": "I", "7.2.14": "J",
            "7.2.15": "K", "8.1.5": "J", "8.2.2": "J", "8.2.8": "K", "9.0.3": "J", "9.0.4": "K",
            "9.1.0": "J", "9.1.2": "K", "9.2.0": "K", "10.2.0": "K"}
    assert {r: R.reference_row(r) for r in rows} == rows
    assert R.release_properties("4.2.1") == frozenset()
    assert R.release_properties("5.0.0") == {"compare_timeout", "expired_scan_cycle"}
    assert R.release_properties("5.1.0") == set(R.PROPERTIES)


def test_large_releases_are_stored_by_reference():
    sc = next(s for s in SCENARIOS if s.name == "big-tcp-u16-payload-size")
    big = sc.steps[0][1]
    cap = StepCapture(releases=[(big, 0), (b"\x01\x02", 0)], checkpoints=2)
    enc = R.encode_scenario(sc, [cap] + [StepCapture()] * (len(sc.steps) - 1))
    first = enc["steps"][0]["releases"]
    assert first[0] == {"step": 0, "len": len(big), "sha256": first[0]["sha256"], "vnet": 0}
    assert first[1] == ["0102", 0]
    back = R.decode_capture(enc["steps"][0], sc)
    assert back.releases == cap.releases and back.checkpoints == 2
