"""Valid input at the edges (issue 19): what the bad-input work must not refuse, and what it
must not hide.

* an empty ``--checkpoints-at`` file is the honest record of a run without a checkpoint (``live
  --record`` leaves checkpoints.txt empty then): measured flushes, none of them; never the model;
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pandas as pd
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
P, S = os.path.join(REPO, "sample_pcaps/primary.pcap"), os.path.join(REPO, "sample_pcaps/secondary.pcap")


def cli(*args, timeout=300):
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-m", "colo_replay.cli", *map(str, args)], capture_output=True,
                          text=True, timeout=timeout, env=env, cwd=REPO)


# ------------------------------------------------------------------ an empty --checkpoints-at

EMPTY_RECORDS = {"empty": "", "blank-lines": "\n\n  \n", "comments-only": "# live --record, no flush\n\n# end\n"}


@pytest.mark.parametrize("text", EMPTY_RECORDS.values(), ids=EMPTY_RECORDS.keys())
def test_an_empty_checkpoints_at_file_means_no_flush_at_all(tmp_path, text):
    """Measured flushes, none of them: no checkpoint of any cause (the model would flush on
    every request: 26 requested checkpoints on the sample pair), every request still counted,
    and what was never flushed stays queued."""
    times = tmp_path / "checkpoints.txt"
    times.write_text(text)
    r = cli("replay", P, S, "--checkpoints-at", times, "-o", tmp_path / "t.csv", "--summary-json", tmp_path / "s.json")
    assert r.returncode == 1, r.stderr            # requests were made: 1, as always
    assert "error" not in r.stderr and "Traceback" not in r.stderr
    summ = json.loads((tmp_path / "s.json").read_text())
    assert summ["knobs"]["checkpoints"] == "measured"
    assert summ["checkpoints"] == 0 and summ["checkpoint_requests"] > 0
    assert summ["released_by_cause"].get("flush", 0) == 0
    assert summ["after_checkpoint"]["mode"] == "raw"
    ev = pd.read_csv(tmp_path / "t.csv")
    assert not ev.kind.isin(["checkpoint_start", "checkpoint_end", "idle_checkpoints"]).any()


def test_an_empty_checkpoints_at_file_through_the_api(tmp_path):
    from colo_replay import api
    times = tmp_path / "checkpoints.txt"
    times.write_text("")
    tl = api.replay(P, S, checkpoints_at=str(times))
    assert tl.summary["knobs"]["checkpoints"] == "measured"
    assert tl.summary["checkpoints"] == 0 and tl.summary["checkpoint_requests"] > 0
    # the same as an empty list of times, and not the model
    assert api.replay(P, S, checkpoints_at=[]).summary["checkpoints"] == 0
    assert api.replay(P, S).summary["checkpoints"] > 0


def test_read_checkpoint_times_of_an_empty_file_is_an_empty_list(tmp_path):
    from colo_replay.offline.checkpoints import checkpoint_times, read_checkpoint_times
    (tmp_path / "c.txt").write_text("# nothing\n\n")
    assert read_checkpoint_times(tmp_path / "c.txt") == []
    assert checkpoint_times(str(tmp_path / "c.txt")) == []
    assert checkpoint_times(None) is None
