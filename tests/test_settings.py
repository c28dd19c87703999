"""One settings value (``offline.settings.Settings``) for every command, and the defects the
mapping by hand had let in: options a chardev capture cannot take accepted by the API,
``--allow-gaps`` forgotten when explain and report read frames again, ``os.PathLike`` paths
refused, ``-o -`` refused by replay.  Each test here failed before the settings value."""

from __future__ import annotations

import io
import json
import os
import struct
import subprocess
import sys
from dataclasses import FrozenInstanceError, fields
from pathlib import Path

import pytest

from colo_replay import api
from colo_replay.cli.main import main as cli_group
from colo_replay.engine.constants import MS
from colo_replay.offline.settings import MANIFEST_FIELDS, NOT_WITH_CHARDEV, SETTINGS_FIELDS, Settings

REPO = Path(__file__).resolve().parent.parent
P, S = REPO / "sample_pcaps/primary.pcap", REPO / "sample_pcaps/secondary.pcap"
CHARDEV = REPO / "sample_pcaps/chardev-lo.pcap"
DAY_S = 86_400

# a value for every pair-only field, and the flag the command line spells it with
PAIR_ONLY = {"primary_offset_ns": (5 * MS, ["--primary-offset", "5ms"]),
             "secondary_offset_ns": (-3 * MS, ["--secondary-offset", "-3ms"]),
             "primary_delay_ns": (MS, ["--primary-delay", "1ms"]),
             "secondary_delay_ns": (2 * MS, ["--secondary-delay", "2ms"]),
             "vnet_hdr_len": (12, ["--vnet-hdr-len", "12"]),
             "align": ("auto", ["--align", "auto"]),
             "guest": ("auto", ["--guest", "auto"]),
             "filter_rewriter": (True, ["--filter-rewriter"])}


def cli(*args, timeout=300, **kw):
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-m", "colo_replay.cli", *map(str, args)], capture_output=True,
                          text=True, timeout=timeout, env=env, cwd=REPO, **kw)


# -- the value itself ---------------------------------------------------------------------------

def test_settings_are_validated_when_built_and_frozen():
    s = Settings(compare_timeout=100, checkpoint_duration_ns=50 * MS)
    with pytest.raises(FrozenInstanceError):
        s.compare_timeout = 3
    assert s.replace(compare_timeout=200).compare_timeout == 200 and s.compare_timeout == 100
    for bad, message in (({"qemu": "4.1", "compare_timeout": 100}, "--compare-timeout 100: QEMU 4.1 \\(row A\\) colo-compare has no compare_timeout"),
                         ({"compare_timeout": 0}, "compare_timeout must be a positive 32-bit integer"),
                         ({"checkpoint_duration_ns": -1}, "must not be negative"),
                         ({"checkpoint_delay_ns": 1}, "whole number of milliseconds"),
                         ({"peer_isn": True}, "--peer-isn goes with --filter-rewriter"),
                         ({"align": "auto", "secondary_offset_ns": 1}, "do not give --secondary-offset too"),
                         ({"after_checkpoint": "sometimes"}, "after_checkpoint must be 'resync' or 'raw'"),
                         ({"end_ns": "+soon"}, "is not [+]DURATION after the last frame"),
                         ({"qemu": "9.9"}, "--qemu 9.9: there is no QEMU 9.9 release")):
        with pytest.raises(ValueError, match=message):
            Settings(**bad)
        with pytest.raises(ValueError, match=message):      # replace() validates again
            Settings().replace(**bad)


def test_checkpoints_at_is_read_once_into_times(tmp_path):
    f = tmp_path / "c.txt"
    f.write_text("1795653490.5\n1795653491000000001ns\n")
    s = Settings(checkpoints_at=f)
    assert s.checkpoints_at == (1795653490_500_000_000, 1795653491_000_000_001)
    assert Settings(checkpoints_at=[5, "6ns"]).checkpoints_at == (5, 6)
    assert s.replace(compare_timeout=100).checkpoints_at == s.checkpoints_at
    assert s.replay_options().after_checkpoint == "raw" and Settings().replay_options().after_checkpoint == "resync"


def test_the_command_line_options_are_the_settings_fields():
    """Every command's parameter that is a setting has the field's name and its flag: the
    command line maps nothing by hand (``cli.options.take_settings`` pops them by name)."""
    every = set()
    for name in ("replay", "explain", "report", "sweep", "verify", "live"):
        for p in cli_group.commands[name].params:
            if p.name in SETTINGS_FIELDS:
                every.add(p.name)
                flag = SETTINGS_FIELDS[p.name].metadata["flag"]
                assert flag in p.opts, (name, p.name, p.opts, flag)
    assert every == set(SETTINGS_FIELDS)
    replay_params = {p.name for p in cli_group.commands["replay"].params}
    assert set(SETTINGS_FIELDS) <= replay_params
    # the sweep manifest's keys are the flags too
    assert {f.metadata["flag"][2:].replace("-", "_") for f in fields(Settings)} == set(MANIFEST_FIELDS)


def test_live_takes_colo_compares_properties_only():
    with pytest.raises(ValueError, match="--primary-offset not applicable to a live run"):
        Settings(primary_offset_ns=MS).check_live()
    Settings(qemu="4.1", vnet_hdr_support=True).check_live()


# -- pair-only options and a chardev capture: one rule, one message ----------------------------

@pytest.mark.parametrize("field", sorted(PAIR_ONLY))
def test_chardev_refuses_pair_only_options_in_the_api_as_on_the_command_line(field):
    value, flags = PAIR_ONLY[field]
    message = f"{flags[0]} {NOT_WITH_CHARDEV}"
    with pytest.raises(ValueError) as exc:
        api.replay_chardev(CHARDEV, **{field: value})
    assert str(exc.value) == message
    with pytest.raises(ValueError) as exc:
        api.verify(CHARDEV, **{field: value})
    assert str(exc.value) == message
    for command in ("replay", "explain"):
        r = cli(command, "--chardev", CHARDEV, *flags)
        assert (r.returncode, r.stderr) == (2, f"colo-replay: error: {message}\n"), (command, r.stderr)
    r = cli("report", "--chardev", CHARDEV, *flags, "--json", "-")
    assert (r.returncode, r.stderr) == (2, f"colo-replay: error: {message}\n"), r.stderr


def test_chardev_refuses_resync_and_names_every_option_at_once():
    message = f"--filter-rewriter, --primary-offset, --after-checkpoint resync {NOT_WITH_CHARDEV}"
    with pytest.raises(ValueError) as exc:
        api.replay_chardev(CHARDEV, primary_offset_ns=MS, filter_rewriter=True, after_checkpoint="resync")
    assert str(exc.value) == message
    assert api.replay_chardev(CHARDEV, after_checkpoint="raw").summary["checkpoint_requests"] > 0


# -- --allow-gaps where explain and report read frames again -------------------------------------

def _jumped_pair(tmp_path):
    """The sample pair with both captures' second half two days later: a gap only --allow-gaps
    accepts, with divergences after it."""
    out = []
    for src, name in ((P, "p.pcap"), (S, "s.pcap")):
        data = src.read_bytes()
        recs, pos = [], 24
        while pos < len(data):
            sec, usec, caplen, orig = struct.unpack_from("<IIII", data, pos)
            recs.append([sec, usec, caplen, orig, data[pos + 16:pos + 16 + caplen]])
            pos += 16 + caplen
        for r in recs[len(recs) // 3:]:
            r[0] += 2 * DAY_S
        path = tmp_path / name
        path.write_bytes(data[:24] + b"".join(struct.pack("<IIII", *r[:4]) + r[4] for r in recs))
        out.append(path)
    return out


def test_explain_and_report_read_frames_under_allow_gaps(tmp_path):
    p, s = _jumped_pair(tmp_path)
    r = cli("explain", p, s, "--filter-rewriter", "--no-tshark", "--json")
    assert r.returncode == 2 and "jumps forward" in r.stderr, r.stderr        # without it: refused
    r = cli("explain", p, s, "--filter-rewriter", "--allow-gaps", "--no-tshark", "--json")
    assert r.returncode == 1, r.stderr
    doc = json.loads(r.stdout)
    late = [d for d in doc["divergences"] if d["time_ns"] > 1795653000 * 10**9 + 2 * DAY_S * 10**9 - 10**12]
    assert late and all(d["primary_frame"] and d["offset"] is not None for d in late)
    r = cli("report", p, s, "--filter-rewriter", "--allow-gaps", "--json", tmp_path / "r.json")
    assert r.returncode == 1, r.stderr
    requests = api.replay(p, s, filter_rewriter=True, allow_gaps=True).summary["checkpoint_requests"]
    assert json.loads((tmp_path / "r.json").read_text())["numbers"]["checkpoint_requests"] == requests >= 10


# -- os.PathLike everywhere a path is -------------------------------------------------------------

def test_every_path_may_be_a_pathlike(tmp_path):
    tl = api.replay(P, S, filter_rewriter=True, output=tmp_path / "t.parquet")
    assert tl.output == str(tmp_path / "t.parquet") and len(tl.to_frame()) == len(tl)
    mem = api.replay(P, S, filter_rewriter=True)
    for ext in ("parquet", "csv", "jsonl"):
        mem.write(tmp_path / f"m.{ext}")
        assert (tmp_path / f"m.{ext}").stat().st_size > 0
    (tmp_path / "c.txt").write_text("1795653490.5\n")
    assert api.replay(P, S, checkpoints_at=tmp_path / "c.txt").summary["checkpoints"] == 1
    assert api.replay_chardev(CHARDEV, output=tmp_path / "c.csv").output == str(tmp_path / "c.csv")
    v = api.verify(CHARDEV, compare_timeout=200, expired_scan_cycle=100)
    assert v.to_dict()["ok"] == v.ok and len(v.to_frame()) == len(v.timeline)
    why = api.explain(P, S, filter_rewriter=True, tshark=False, evidence=tmp_path / "e.pcapng", limit=2)
    assert (tmp_path / "e.pcapng").stat().st_size > 0 and len(why.to_frame()) == 2
    rep = api.report(P, S, filter_rewriter=True)
    assert rep.data["numbers"]["checkpoint_requests"] == 10
    api.replay(P, S, filter_rewriter=True, output=tmp_path / "saved.parquet")
    (tmp_path / "saved.json").write_text(json.dumps(mem.to_dict(), default=str))
    saved = api.report(timeline=tmp_path / "saved.parquet", summary=tmp_path / "saved.json")
    assert saved.data["numbers"]["checkpoint_requests"] == 10
    sweep = api.sweep(P, S, grid={"compare_timeout": "300,3000"}, filter_rewriter=True, jobs=1)
    sweep.write(tmp_path / "sw.json")
    sweep.plot(tmp_path / "sw.png")
    assert json.loads((tmp_path / "sw.json").read_text())["settings"] == 2 == len(sweep.to_frame())
    assert len(sweep.to_dict()["rows"]) == 2


def test_live_run_writes_to_a_pathlike(tmp_path):
    from colo_replay.live.session import LiveRun
    from colo_replay.output.timeline import TimelineCollector

    run = LiveRun(None, {"exit_status": 0, "stop_reason": "duration"}, TimelineCollector())
    run.write(tmp_path / "l.jsonl")
    run.write(tmp_path / "l.parquet")
    assert (tmp_path / "l.parquet").exists() and run.to_dict()["exit_status"] == 0


# -- "-" is standard output for every command --------------------------------------------------

def test_dash_is_stdout_for_every_output(tmp_path):
    plain = cli("replay", P, S, "--filter-rewriter")
    dash = cli("replay", P, S, "--filter-rewriter", "-o", "-")
    assert dash.returncode == plain.returncode == 1, dash.stderr
    assert dash.stdout == plain.stdout and dash.stdout.count("\n") > 100
    r = cli("verify", CHARDEV, "--compare-timeout", 200, "--expired-scan-cycle", 100, "-o", "-")
    assert r.returncode in (0, 1) and json.loads(r.stdout.splitlines()[0])["kind"], r.stderr
    r = cli("sweep", P, S, "--compare-timeout", "300,3000", "--filter-rewriter", "-o", "-", "-j", 1)
    assert r.returncode == 1 and r.stdout.startswith("pair,"), r.stderr
    r = cli("report", P, S, "--filter-rewriter", "-o", "-")
    assert r.returncode == 1 and r.stdout.lstrip().lower().startswith("<!doctype html"), r.stderr
    buf = io.StringIO()
    api.replay(P, S, filter_rewriter=True).write(buf)
    assert buf.getvalue() == plain.stdout
    r = cli("replay", P, S, "-o", "")
    assert (r.returncode, r.stderr) == (2, "colo-replay: error: -o: an output path must not be empty\n")
