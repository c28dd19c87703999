"""Partial results from either side (issue 24, item 3): a read error in the primary gives what
was read before it, marked partial, exactly as one in the secondary does, through every option
that reads a capture ahead of the replay (``--filter-rewriter``, ``--align auto``, ``--guest
auto``) and in every command that replays a pair (replay, explain --json, report, sweep)."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parent.parent
P, S = REPO / "sample_pcaps/primary.pcap", REPO / "sample_pcaps/secondary.pcap"
BAD_FRAME = 120


def cli(*args, cwd, timeout=300):
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-m", "colo_replay.cli", *map(str, args)], capture_output=True,
                          text=True, timeout=timeout, env=env, cwd=cwd)


def corrupt(src: Path, dst: Path, frame: int = BAD_FRAME) -> int:
    """A copy of the (little-endian pcap) sample whose record ``frame`` claims a captured length
    no record can have: a read error there.  Returns the record's byte offset."""
    data = bytearray(src.read_bytes())
    pos = 24
    for _ in range(frame - 1):
        pos += 16 + struct.unpack_from("<I", data, pos + 8)[0]
    struct.pack_into("<I", data, pos + 8, 0x7FFFFFF0)
    dst.write_bytes(bytes(data))
    return pos


OPTIONS = [[], ["--filter-rewriter"], ["--align", "auto"], ["--guest", "auto"],
           ["--filter-rewriter", "--align", "auto", "--guest", "auto"]]


@pytest.mark.parametrize("side", ["primary", "secondary"])
@pytest.mark.parametrize("opts", OPTIONS, ids=lambda o: " ".join(o) or "plain")
def test_a_read_error_on_either_side_gives_partial_results(tmp_path, side, opts):
    pri, sec = tmp_path / "p.pcap", tmp_path / "s.pcap"
    if side == "primary":
        offset = corrupt(P, pri)
        sec.write_bytes(S.read_bytes())
    else:
        offset = corrupt(S, sec)
        pri.write_bytes(P.read_bytes())
    bad = pri if side == "primary" else sec
    r = cli("replay", pri, sec, *opts, "-o", "t.csv", "--summary-json", "s.json", cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    first = r.stderr.splitlines()[0]
    assert first.startswith(f"colo-replay: error: {bad}: frame {BAD_FRAME} at byte offset {offset}"), r.stderr
    assert first.endswith("(timeline is partial)")
    assert "colo-replay summary (PARTIAL" in r.stderr
    summary = json.loads((tmp_path / "s.json").read_text())
    assert summary["partial"] and summary["captures"][side]["frames"] == BAD_FRAME - 1
    rows = pd.read_csv(tmp_path / "t.csv")
    assert len(rows) > 100 and (tmp_path / "t.csv.partial").read_text().startswith(str(bad))


@pytest.mark.parametrize("opts", OPTIONS[1:], ids=lambda o: " ".join(o))
def test_explain_report_and_sweep_give_partial_results_from_the_primary(tmp_path, opts):
    pri, sec = tmp_path / "p.pcap", tmp_path / "s.pcap"
    corrupt(P, pri)
    sec.write_bytes(S.read_bytes())
    r = cli("explain", pri, sec, *opts, "--json", "--no-tshark", "--no-other-profile", cwd=tmp_path)
    assert r.returncode == 2 and f"frame {BAD_FRAME}" in r.stderr, r.stderr
    doc = json.loads(r.stdout)
    assert doc["replay"]["partial"] and doc["counts"]["requests"] >= 1
    r = cli("report", pri, sec, *opts, "--json", "r.json", cwd=tmp_path)
    assert r.returncode == 2 and "the report is partial" in r.stderr, r.stderr
    assert json.loads((tmp_path / "r.json").read_text())["verdict"]["status"] == "partial"
    r = cli("sweep", pri, sec, *opts, "--compare-timeout", "300,3000", "-j", "1", "-o", "sw.csv", cwd=tmp_path)
    assert r.returncode == 2 and f"frame {BAD_FRAME}" in r.stderr, r.stderr
    rows = pd.read_csv(tmp_path / "sw.csv")
    assert len(rows) == 2 and rows["partial"].all()
