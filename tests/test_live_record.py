"""``--record DIR`` round trip: replaying what ``colo-replay live`` recorded reproduces the live run.

The live run writes its timeline (``-o``) and a recording (one pcapng per stream, flush times,
manifest).  ``colo_replay.replay`` on the recording, with the recorded flush times as
``checkpoints_at`` and the manifest's ``scan_phase_ns`` (the live expiry-scan grid), must give
the same releases (time, primary frame number, cause), the same secondary drops and the same
checkpoint requests (time and cause) as the live run, and so must the ``colo-replay replay``
command line the manifest names.  Two rigs: a notify_dev peer that flushes with COLO_CHECKPOINT,
and no notify_dev with ``--flush-on-request``.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import time

import pandas as pd

import colo_replay
from colo_replay.captures import open_capture

from tests.support import frames as F
from tests.support.live_harness import REPO, LiveHarness

KINDS = ["release", "secondary_dropped", "checkpoint_request", "queue_full_drop", "unsupported", "flush"]
COLS = ["time_ns", "kind", "cause", "primary_frame", "secondary_frame", "size"]


def decisions(df: pd.DataFrame) -> list:
    d = df[df["kind"].astype(str).isin(KINDS)][COLS]
    return [tuple(str(x) if i in (1, 2) else int(x) for i, x in enumerate(row)) for row in d.itertuples(index=False)]


def steps():
    u = [F.udp(b"u%d" % i, sport=7000 + i % 3) for i in range(12)]
    t = [F.tcp(1000 + 10 * i, b"0123456789") for i in range(6)]
    out = []
    for i in range(6):
        out += [("P", u[i]), ("S", u[i] if i != 2 else F.udp(b"DIFF", sport=7002)), ("P", t[i])]
        out += [("S", t[i])] if i % 2 else []
    # The last primary frame has no secondary: it must expire before the run stops.  It is old
    # enough at 200 ms (compare_timeout) and seen at the next scan, at most 100 ms later
    # (expired_scan_cycle): 450 ms leaves a loaded machine 150 ms to spare (250 did not, 1 run in ~6).
    out += [("P", F.arp_reply()), ("S", F.arp_reply()), ("WAIT", 350), ("P", u[7]), ("WAIT", 450)]
    return out


def check_round_trip(rec_dir, timeline_path):
    manifest = json.load(open(os.path.join(rec_dir, "manifest.json")))
    live = pd.read_json(timeline_path, lines=True)
    live_dec = decisions(live)
    assert any(k == "release" for _, k, *_ in live_dec) and any(k == "checkpoint_request" for _, k, *_ in live_dec)
    flushes = [int(line.split("ns")[0]) for line in open(os.path.join(rec_dir, "checkpoints.txt"))
               if line.strip() and not line.startswith("#")]
    assert flushes, "no flush recorded"
    # the pcapngs hold exactly the frames live read, with their arrival times
    prim = list(open_capture(os.path.join(rec_dir, "primary_in.pcapng")).batches())
    assert sum(len(b.frames) for b in prim) == manifest["frames"]["primary_in"] > 1
    assert manifest["replay_options"]["end_ns"] == manifest["stop_ns"]
    # Python API
    tl = colo_replay.replay(os.path.join(rec_dir, "primary_in.pcapng"), os.path.join(rec_dir, "secondary_in.pcapng"),
                            checkpoints_at=flushes, **manifest["replay_options"])
    assert decisions(tl.events) == live_dec
    # the command line the manifest gives
    cmd = shlex.split(manifest["replay_command"])
    assert cmd[:2] == ["colo-replay", "replay"]
    out = os.path.join(rec_dir, "replayed.jsonl")
    r = subprocess.run([sys.executable, "-m", "colo_replay.cli", *cmd[1:], "-o", out], capture_output=True,
                       text=True, env=dict(os.environ, PYTHONPATH=REPO), timeout=120)
    assert r.returncode in (0, 1), r.stderr
    assert decisions(pd.read_json(out, lines=True)) == live_dec
    return manifest, live_dec


def test_record_round_trip_with_notify_dev(tmp_path):
    rec, tlp = tmp_path / "rec", tmp_path / "live.jsonl"
    with LiveHarness(compare_timeout=200, expired_scan_cycle=100,
                     extra_args=("--record", str(rec), "-o", str(tlp))) as h:
        for i, st in enumerate(steps()):
            h.step(st)
            if i in (7, 16):
                h.step(("FLUSH",))
        h.step(("FLUSH",))
        rc, err = h.stop()
    assert rc == 1, err
    manifest, dec = check_round_trip(str(rec), str(tlp))
    assert manifest["replay_options"]["compare_timeout"] == 200


def test_record_round_trip_with_flush_on_request(tmp_path):
    rec, tlp = tmp_path / "rec", tmp_path / "live.jsonl"
    with LiveHarness(compare_timeout=200, expired_scan_cycle=100, notify=False,
                     extra_args=("--record", str(rec), "-o", str(tlp), "--flush-on-request", "30ms")) as h:
        for st in steps():
            if st[0] == "WAIT":
                time.sleep(st[1] / 1000)
            else:
                h.send_frame("pri" if st[0] == "P" else "sec", st[1])
                time.sleep(0.005)
        time.sleep(0.1)
        rc, err = h.stop()
    assert rc == 1, err
    check_round_trip(str(rec), str(tlp))
    assert "flush-on-request" in open(rec / "checkpoints.txt").read()
