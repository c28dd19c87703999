"""``--qemu RELEASE``: every release of shared/reference/qemu-releases.md §2 maps to its row,
and the row is visible in every output (summary JSON and text, timeline metadata, report,
explain, ``colo-replay qemu-releases``).

The expected rows are the reference's table transcribed (``REFERENCE_ROWS``), not the code's own
``releases.BRANCHES``.  The mapping is checked through the command line's ``--summary-json``
(in-process with click's runner: ~90 replays of the sample pair); errors, ``auto`` and the
one-line contract through the real ``python -m colo_replay.cli``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from colo_replay.cli.main import main
from colo_replay.engine import profiles, releases
from colo_replay.engine.profiles import (
    GATE_UMIN, PROFILES, QEMU_4_1, QEMU_7_2, QEMU_7_2_0, ROWS, switches,
)
from colo_replay.engine.releases import get_profile, release_profile, resolve_release

ROOT = Path(__file__).resolve().parent.parent
PRIMARY = str(ROOT / "sample_pcaps" / "primary.pcap")
SECONDARY = str(ROOT / "sample_pcaps" / "secondary.pcap")
DEBIAN_QEMU = "/usr/bin/qemu-system-x86_64"


def _span(branch: str, first: int, last: int) -> list[str]:
    return [f"{branch}.{m}" for m in range(first, last + 1)]


# qemu-releases.md §2, "Behaviour rows": every upstream release and stable tag the mirror had.
REFERENCE_ROWS = {
    "A": ["4.1.0"],
    "B": ["4.1.1", "4.2.0", "4.2.1"],
    "C": ["5.0.0", "5.0.1"],
    "D": ["5.1.0"],
    "E": ["5.2.0", "6.0.0", "6.0.1"],
    "F": ["6.1.0", "6.1.1"],
    "G": ["6.2.0"],
    "H": ["7.0.0"],
    "I": ["7.1.0"],
    "J": _span("7.2", 0, 14) + _span("8.0", 0, 5) + _span("8.1", 0, 5) + _span("8.2", 0, 7) + _span("9.0", 0, 3)
    + _span("9.1", 0, 1),
    "K": _span("7.2", 15, 18) + _span("8.2", 8, 10) + ["9.0.4"] + _span("9.1", 2, 3) + _span("9.2", 0, 4)
    + _span("10.0", 0, 2) + ["10.1.0", "10.2.0"],
}
EXPECTED = [(release, row) for row, rels in REFERENCE_ROWS.items() for release in rels]


def cli(*args, env=None):
    """The command line in this process (click's runner): (exit code, stdout, stderr)."""
    r = CliRunner().invoke(main, [str(a) for a in args], env=env, catch_exceptions=False)
    return r.exit_code, r.stdout, r.stderr


def run(*args, env=None):
    """The real command line (``python -m colo_replay.cli``)."""
    e = dict(os.environ, **(env or {}))
    r = subprocess.run([sys.executable, "-m", "colo_replay.cli", *map(str, args)], capture_output=True, text=True,
                       env=e)
    assert "Traceback" not in r.stderr, r.stderr
    return r


def summary(tmp_path, *args, env=None, expect=1):
    out = tmp_path / "s.json"
    code, _, err = cli("replay", PRIMARY, SECONDARY, "--filter-rewriter", "-o", tmp_path / "t.jsonl",
                       "--summary-json", out, *args, env=env)
    assert code == expect, err
    return json.loads(out.read_text()), err


# ------------------------------------------------------------------------------ the rows
def test_rows_are_derived_one_from_the_other():
    """A = the 4.1 profile, K = the 7.2 profile; J + the MIN fix (e29bc931e1) = K exactly; every
    profile name is a release string that maps to its own row."""
    assert list(ROWS) == list("ABCDEFGHIJK")
    assert ROWS["A"] is QEMU_4_1 and ROWS["K"] is QEMU_7_2
    assert dataclasses.replace(QEMU_7_2_0, ack_gate=GATE_UMIN, name="7.2", row="K",
                               description=QEMU_7_2.description) == QEMU_7_2
    for row, p in ROWS.items():
        assert p.row == row and PROFILES[p.name] is p
        assert resolve_release(p.name).row == row and get_profile(p.name) is p
    assert get_profile("row:G") is ROWS["G"] and get_profile("6.2.0") is ROWS["G"]
    assert profiles.get_profile("row:G") is ROWS["G"] and profiles.get_profile("7.2") is QEMU_7_2
    with pytest.raises(ValueError, match="unknown QEMU profile"):
        profiles.get_profile("6.2.0")              # (no release strings there: releases.get_profile)
    from colo_replay import Engine
    assert Engine("6.2.0").profile is ROWS["G"] and Engine("4.1").profile is QEMU_4_1


@pytest.mark.parametrize("release,row", EXPECTED, ids=[r for r, _ in EXPECTED])
def test_every_release_string_maps_to_its_row(release, row, tmp_path):
    s, _ = summary(tmp_path, "--qemu", release)
    assert s["qemu"]["release"] == release and s["qemu"]["row"] == row
    assert s["qemu"]["switches"] == switches(ROWS[row])
    assert s["profile"] == ROWS[row].name
    assert release_profile(release) == (row, ROWS[row])


@pytest.mark.parametrize("text,row", [
    ("v8.2.2", "J"), ("9.2", "K"), ("6.2", "G"), ("4.2", "B"), ("5.0", "C"), ("7.2.50", "J"),
    ("QEMU emulator version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3)", "K"),
    ("QEMU emulator version 8.2.2 (Debian 1:8.2.2+ds-0ubuntu1.4)", "J"),
    ("QEMU emulator version 6.2.0 (Debian 1:6.2+dfsg-2ubuntu6.24)", "G"),
    ("1:8.2.2+ds-0ubuntu1.4", "J"), ("1:7.2+dfsg-7+deb12u18", "K"), ("1:7.2+dfsg-7+deb12u9", "K"),
    ("1:7.2+dfsg-7+deb12u8", "J"), ("1:7.2+dfsg-7", "J"), ("1:6.2+dfsg-2ubuntu6.24", "G"),
    ("1:4.2-3ubuntu6.30", "B"), ("1:5.2+dfsg-11+deb11u3", "E"), ("1:10.0.2+ds-2", "K"),
    ("row:G", "G"), ("row:a", "A"), (" ROW:K ", "K"),
])
def test_other_release_forms(text, row):
    assert resolve_release(text).row == row


def test_legacy_profile_names_keep_their_meaning(tmp_path):
    """``4.1`` = 4.1.0 (row A) and ``7.2`` = 7.2.15+ (row K), though 4.1.x and 7.2.x span two rows."""
    assert release_profile("4.1") == ("A", QEMU_4_1) and release_profile("7.2") == ("K", QEMU_7_2)
    s, _ = summary(tmp_path)                      # the default
    assert s["qemu"]["release"] == "7.2" and s["qemu"]["row"] == "K" and s["profile"] == "7.2"
    code, out, _ = cli("replay", "--help")
    assert "4.1 = 4.1.0 (row A), 7.2 = 7.2.15+ (row K)" in " ".join(out.split())


@pytest.mark.parametrize("given,rows", [("8.2", "JK"), ("9.0", "JK"), ("9.1", "JK"), ("9.1.50", "JK"),
                                        ("6.1.50", "FG"), ("4.1.50", "AB")])
def test_a_release_spanning_two_rows_is_refused(given, rows):
    r = run("replay", PRIMARY, SECONDARY, "--qemu", given)
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
    assert f"--qemu {given}:" in r.stderr
    for row in rows:
        assert f"row {row}" in r.stderr and f"row:{row}" in r.stderr


@pytest.mark.parametrize("given,why", [("5.3.0", "no QEMU 5.3 release"), ("4.0.1", "older than QEMU 4.1.0"),
                                       ("seven", "not a QEMU release"), ("row:L", "no such row"),
                                       ("9.9", "no QEMU 9.9 release")])
def test_unknown_releases_are_refused(given, why):
    code, _, err = cli("replay", PRIMARY, SECONDARY, "--qemu", given)
    assert code == 2 and err.count("\n") == 1 and f"--qemu {given}:" in err and why in err, err


@pytest.mark.parametrize("given", ["10.2.1", "10.2.50", "10.3.0", "11.0.0", "11.1"])
def test_a_newer_release_is_row_k_with_a_warning(given, tmp_path):
    s, err = summary(tmp_path, "--qemu", given)
    assert s["qemu"]["row"] == "K"
    warning = [w for w in s["warnings"] if "newest release verified" in w]
    assert len(warning) == 1 and "10.2.0" in warning[0] and f"--qemu {given}" in warning[0]
    assert f"warning: {warning[0]}" in err
    assert not resolve_release("10.2.0").warnings


def test_auto_asks_the_debian_binary(tmp_path):
    line = subprocess.run([DEBIAN_QEMU, "--version"], capture_output=True, text=True, check=True).stdout
    line = line.splitlines()[0].strip()
    assert line.startswith("QEMU emulator version 7.2.")        # Debian 12's, 7.2.15+ (row K)
    s, _ = summary(tmp_path, "--qemu", "auto", env={"COLO_REPLAY_QEMU": DEBIAN_QEMU})
    assert s["qemu"] == {"release": line, "row": "K", "switches": switches(QEMU_7_2), "binary": DEBIAN_QEMU}
    # found on PATH without the variable
    r = run("replay", PRIMARY, SECONDARY, "--filter-rewriter", "--qemu", "auto", "-o", tmp_path / "t.csv",
            "--summary-json", tmp_path / "a.json",
            env={"PATH": os.path.dirname(DEBIAN_QEMU) + ":" + os.environ["PATH"]})
    assert r.returncode == 1 and json.loads((tmp_path / "a.json").read_text())["qemu"]["row"] == "K"


def test_auto_without_a_binary_is_one_line(tmp_path):
    r = run("replay", PRIMARY, SECONDARY, "--qemu", "auto", env={"COLO_REPLAY_QEMU": str(tmp_path / "none")})
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "--qemu auto" in r.stderr, r.stderr
    empty = tmp_path / "bin"
    empty.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "COLO_REPLAY_QEMU"}
    env["PATH"] = str(empty)
    r = subprocess.run([sys.executable, "-m", "colo_replay.cli", "replay", PRIMARY, SECONDARY, "--qemu", "auto"],
                       capture_output=True, text=True, env=env)
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
    assert "--qemu auto: no qemu-system-x86_64 on PATH" in r.stderr


def test_row_pin(tmp_path):
    s, _ = summary(tmp_path, "--qemu", "row:G")
    assert s["qemu"]["release"] == "row:G" and s["qemu"]["row"] == "G" and s["profile"] == "6.2"


# ------------------------------------------------------------------------------ properties by release
@pytest.mark.parametrize("release,knob,value", [
    ("4.1.1", "--compare-timeout", 100), ("4.2.1", "--expired-scan-cycle", 100), ("4.2.0", "--max-queue-size", 5),
    ("5.0.1", "--max-queue-size", 5), ("row:C", "--max-queue-size", 5),
])
def test_a_knob_the_release_lacks_is_refused(release, knob, value):
    r = run("replay", PRIMARY, SECONDARY, "--qemu", release, knob, value)
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
    assert f"{knob} {value}" in r.stderr and f"QEMU {release} " in r.stderr and "has no" in r.stderr


@pytest.mark.parametrize("release,knobs", [
    ("5.0.0", ["--compare-timeout", 100, "--expired-scan-cycle", 50]),
    ("5.1.0", ["--compare-timeout", 100, "--max-queue-size", 5]),
    ("6.2.0", ["--compare-timeout", 100, "--expired-scan-cycle", 50, "--max-queue-size", 5]),
])
def test_the_knobs_a_release_has_are_taken(release, knobs, tmp_path):
    s, _ = summary(tmp_path, "--qemu", release, *knobs)
    for flag, value in zip(knobs[::2], knobs[1::2]):
        assert s["knobs"][flag[2:].replace("-", "_")] == value


def test_defaults_by_release(tmp_path):
    for release, cycle in (("4.2.1", 3000), ("5.0.1", 3000), ("5.1.0", 3000), ("5.2.0", 1000), ("10.2.0", 1000)):
        s, _ = summary(tmp_path, "--qemu", release)
        assert (s["knobs"]["compare_timeout"], s["knobs"]["expired_scan_cycle"], s["knobs"]["max_queue_size"]) \
            == (3000, cycle, 1024), release


def test_max_queue_size_width_by_release(tmp_path):
    big = (1 << 32) + 7
    code, _, err = cli("replay", PRIMARY, SECONDARY, "--qemu", "5.1.0", "--max-queue-size", big)
    assert code == 2 and "positive 32-bit" in err
    s, err = summary(tmp_path, "--qemu", "5.2.0", "--max-queue-size", big)
    assert s["knobs"]["max_queue_size"] == 7 and "truncates it to 7" in err


# ------------------------------------------------------------------------------ KVM-COLO windows
@pytest.mark.parametrize("release,broken", [("8.2.2", True), ("8.2.3", True), ("8.2.4", False), ("9.0.0", True),
                                            ("9.0.1", False), ("10.0.0", True), ("10.0.6", True), ("10.0.7", False),
                                            ("10.1.2", True), ("10.1.3", False), ("10.2.0", False),
                                            ("1:8.2.2+ds-0ubuntu1.4", True), ("row:J", False)])
def test_kvm_colo_windows(release, broken):
    assert (resolve_release(release).kvm_colo is not None) == broken


def test_kvm_colo_window_warns_and_refuses_modelled_checkpoints(tmp_path):
    s, err = summary(tmp_path, "--qemu", "8.2.2")
    assert "secondary aborts" in s["qemu"]["kvm_colo"]
    assert any("--qemu 8.2.2: QEMU 8.2.0-8.2.3" in w for w in s["warnings"])
    for opts in (["--checkpoint-delay", "5s"], ["--checkpoint-duration", "50ms"], ["--after-checkpoint", "resync"]):
        r = run("replay", PRIMARY, SECONDARY, "--qemu", "10.0.2", *opts)
        assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
        assert "--qemu 10.0.2" in r.stderr and opts[0] in r.stderr and "KVM COLO never starts" in r.stderr
    # measured flushes (a Xen COLO run, say) are fine
    flushes = tmp_path / "flushes.txt"
    flushes.write_text("")
    s, _ = summary(tmp_path, "--qemu", "10.0.2", "--checkpoints-at", flushes, "--checkpoint-duration", "50ms")
    assert s["qemu"]["row"] == "K"


# ------------------------------------------------------------------------------ visible everywhere
def test_text_summary_names_release_row_and_differences():
    for release, row, versus in (("6.2.0", "G", "ack_gate=sack (7.2: umin), tcp_pop_tail=False (7.2: True)"),
                                 ("8.2.2", "J", "ack_gate=sack (7.2: umin)\n")):
        code, _, err = cli("replay", PRIMARY, SECONDARY, "--filter-rewriter", "--qemu", release)
        assert code == 1
        assert f"  qemu           {release} = row {row} (" in err
        assert f"  row {row} (from " in err and "  then row " in err
        assert "  vs 7.2 (row K) " + versus in err + "\n"
    code, _, err = cli("replay", PRIMARY, SECONDARY, "--filter-rewriter", "--qemu", "8.2.2")
    assert "  KVM COLO       cannot run on this release" in err


def test_readme_summary_excerpt_is_what_the_summary_prints():
    """README's --qemu 6.2.0 / 8.2.2 excerpt, line by line (its KVM COLO line is shortened)."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = text.split("## QEMU releases", 1)[1].split("differs from 7.2", 1)[1].split("```")[1]
    printed = ""
    for release in ("6.2.0", "8.2.2"):
        printed += cli("replay", PRIMARY, SECONDARY, "--filter-rewriter", "--qemu", release)[2]
    lines = [ln for ln in block.splitlines() if ln.strip() and "(...)" not in ln]
    assert len(lines) == 8
    for ln in lines:
        assert ln + "\n" in printed, ln


def test_timeline_metadata_report_and_explain_carry_the_qemu_object(tmp_path):
    from colo_replay import api
    from colo_replay.output.timeline import read_timeline_qemu

    code, _, err = cli("replay", PRIMARY, SECONDARY, "--filter-rewriter", "--qemu", "6.2.0",
                       "-o", tmp_path / "t.parquet", "--summary-json", tmp_path / "s.json")
    want = resolve_release("6.2.0").as_dict()
    assert read_timeline_qemu(tmp_path / "t.parquet") == want
    assert json.loads((tmp_path / "s.json").read_text())["qemu"] == want
    tl = api.replay(PRIMARY, SECONDARY, qemu="6.2.0", filter_rewriter=True)
    assert tl.events.attrs["qemu"] == want
    tl.write(tmp_path / "again.parquet")
    assert read_timeline_qemu(tmp_path / "again.parquet") == want
    rep = api.report(PRIMARY, SECONDARY, qemu="6.2.0", filter_rewriter=True)
    assert rep.data["run"]["qemu"] == want and rep.data["run"]["profile"] == "6.2"
    assert "QEMU 6.2.0: row G" in rep.html() and "release 6.2.0 = row G" in rep.markdown()
    # a saved run: the summary JSON's object
    saved = api.report(timeline=tmp_path / "t.parquet", summary=tmp_path / "s.json")
    assert saved.data["run"]["qemu"] == want
    why = api.explain(PRIMARY, SECONDARY, qemu="6.2.0", filter_rewriter=True, tshark=False, other_profile=False,
                      limit=1)
    assert why.replay["qemu"] == want


def test_the_other_commands_take_a_release(tmp_path):
    code, out, err = cli("verify", ROOT / "sample_pcaps" / "chardev-lo.pcap", "--qemu", "7.2.22",
                         "--compare-timeout", 200, "--expired-scan-cycle", 100)
    assert code == 0, err
    code, out, err = cli("explain", PRIMARY, SECONDARY, "--filter-rewriter", "--qemu", "1:8.2.2+ds-0ubuntu1.4",
                         "--no-tshark", "--json", "--limit", "1", "--no-other-profile")
    assert code == 1 and json.loads(out)["replay"]["qemu"]["row"] == "J"
    code, out, err = cli("sweep", PRIMARY, SECONDARY, "--filter-rewriter", "--qemu", "5.0.1",
                         "--compare-timeout", "100,3000", "-j", 1, "-o", tmp_path / "sweep.csv")
    assert code in (0, 1), err
    code, _, err = cli("sweep", PRIMARY, SECONDARY, "--qemu", "4.2.1", "--compare-timeout", "100,3000")
    assert code == 2 and "QEMU 4.2.1 (row B) colo-compare has no compare_timeout" in err
    code, _, err = cli("report", PRIMARY, SECONDARY, "--qemu", "9.1", "--json", tmp_path / "r.json")
    assert code == 2 and "--qemu 9.1: ambiguous" in err
    code, _, err = cli("live", *(f"--{c}=socket,host=127.0.0.1,port={i + 1}"
                                 for i, c in enumerate(("primary-in", "secondary-in", "outdev"))),
                       "--qemu", "4.2.0", "--max-queue-size", 5)
    assert code == 2 and err.count("\n") == 1 and "--max-queue-size 5: QEMU 4.2.0 (row B)" in err, err


# ------------------------------------------------------------------------------ the table command
def test_qemu_releases_command():
    code, out, _ = cli("qemu-releases", "--json")
    assert code == 0
    d = json.loads(out)
    assert [r["row"] for r in d["rows"]] == list(ROWS) and d["newest_verified"] == "10.2.0"
    for r in d["rows"]:
        assert r["switches"] == switches(ROWS[r["row"]]) and r["profile"] == ROWS[r["row"]].name
    assert d["rows"][2]["properties"] == ["compare_timeout", "expired_scan_cycle"]
    assert [w["releases"] for w in d["kvm_colo_broken"]] == ["8.2.0-8.2.3", "9.0.0", "10.0.0-10.0.6", "10.1.0-10.1.2"]
    code, out, _ = cli("qemu-releases")
    assert code == 0 and "row G  profile 6.2" in out and "ack_gate" in out
    code, out, _ = cli("qemu-releases", "6.2.0", "1:7.2+dfsg-7+deb12u8", "--json")
    assert [r["row"] for r in json.loads(out)] == ["G", "J"]
    code, _, err = cli("qemu-releases", "8.2")
    assert code == 2 and "ambiguous" in err
    assert releases.ROW_CHANGES.keys() == ROWS.keys() == releases.ROW_RELEASES.keys()


def test_live_summary_carries_the_qemu_object():
    from colo_replay.live.runtime import LiveCompare
    from colo_replay.offline.settings import Settings

    lc = LiveCompare({}, release=Settings(qemu="5.0.1").release)
    s = lc.summary()
    assert s["qemu"] == resolve_release("5.0.1").as_dict() and s["profile"] == "5.0"
    assert lc.profile.old_packet_timeout_broken
    s = LiveCompare({}, qemu="7.2").summary()                   # a release string, as before
    assert s["qemu"]["row"] == "K" and s["profile"] == "7.2"
