"""explain's second replay (the other QEMU profile) runs beside the first in a forked child
(offline/background.py) and is cut at its time budget: explain then still answers, every
divergence without the other profile's verdict, and the replay's note says why."""

from __future__ import annotations

import os
import time

import colo_replay
from colo_replay.offline import background

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
P = os.path.join(ROOT, "sample_pcaps", "primary.pcap")
S = os.path.join(ROOT, "sample_pcaps", "secondary.pcap")


def test_the_other_profile_answers_within_its_budget():
    x = colo_replay.explain(P, S, filter_rewriter=True, after_checkpoint="raw", tshark=False)
    assert "other_profile" not in x.replay
    assert all(d.other_profile is not None and d.other_profile["profile"] == "4.1" for d in x.divergences)


def test_past_its_budget_the_note_says_so(monkeypatch):
    monkeypatch.setattr(background, "OTHER_BUDGET", 0.0)
    monkeypatch.setattr(background, "OTHER_MIN_S", 0.0)
    slow = background.BackgroundReplay.__init__

    def late(self, run):                 # the child's replay takes a second longer
        slow(self, lambda path: (time.sleep(1.0), run(path))[1])
    monkeypatch.setattr(background.BackgroundReplay, "__init__", late)
    x = colo_replay.explain(P, S, filter_rewriter=True, after_checkpoint="raw", tshark=False)
    assert x.divergences and all(d.other_profile is None for d in x.divergences)
    assert x.replay["other_profile"].startswith("QEMU 4.1's replay of the pair did not finish within 0x")
    # the sample's own verdicts are all there
    assert x.counts["divergences"] == 11


def test_a_child_that_dies_is_a_note_not_a_crash():
    job = background.BackgroundReplay(lambda path: os._exit(3))
    assert job.rows_about({1}, {1}, time.monotonic() + 30) is None
    assert job.error.startswith("the replay's process ended")
    assert not os.path.exists(job._dir)        # its folder went with it


def test_the_child_streams_its_timeline_and_sends_the_rows_naming_the_frames():
    """The child writes its timeline to a file (flat memory) and sends back the rows naming the frames
    asked about: the same DataFrame as those rows of the whole timeline, every category kept, also when
    no row matches; its folder is removed when the job is closed, stopped at the deadline or not."""
    import numpy as np

    from colo_replay.output.timeline import frame_from_columns

    whole = colo_replay.replay(P, S, filter_rewriter=True, qemu="4.1").columns
    for primary, secondary in (({3, 40, 41, 120}, {7, 90}), (set(), {5}), ({10**6}, {10**6})):
        job = background.BackgroundReplay(lambda path: colo_replay.replay(P, S, filter_rewriter=True, qemu="4.1",
                                                                          output=path))
        got = job.rows_about(primary, secondary, time.monotonic() + 60)
        keep = np.isin(whole["primary_frame"], sorted(primary)) | np.isin(whole["secondary_frame"], sorted(secondary))
        want = frame_from_columns({name: col[keep] for name, col in whole.items()})
        assert got.equals(want) and (got.dtypes == want.dtypes).all(), (primary, secondary)
        assert len(got) == keep.sum() and (len(got) > 0) == bool(primary - {10**6} or secondary - {10**6})
        assert not os.path.exists(job._dir)
    # stopped before it could answer: the folder is removed all the same
    job = background.BackgroundReplay(lambda path: (open(path, "wb").write(b"x"), time.sleep(30)))
    time.sleep(0.5)
    assert os.listdir(job._dir) == ["timeline.parquet"]
    assert job.rows_about({1}, {1}, time.monotonic() + 0.2) is None and job.error == "timeout"
    assert not os.path.exists(job._dir)
