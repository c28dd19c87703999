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
        slow(self, lambda: (time.sleep(1.0), run())[1])
    monkeypatch.setattr(background.BackgroundReplay, "__init__", late)
    x = colo_replay.explain(P, S, filter_rewriter=True, after_checkpoint="raw", tshark=False)
    assert x.divergences and all(d.other_profile is None for d in x.divergences)
    assert x.replay["other_profile"].startswith("QEMU 4.1's replay of the pair did not finish within 0x")
    # the sample's own verdicts are all there
    assert x.counts["divergences"] == 11


def test_a_child_that_dies_is_a_note_not_a_crash():
    job = background.BackgroundReplay(lambda: os._exit(3))
    assert job.rows_about({1}, {1}, time.monotonic() + 30) is None
    assert job.error.startswith("the replay's process ended")
