"""Idle stretches cost O(1): a run of periodic checkpoints while nothing is queued becomes one
``idle_checkpoints`` row, and the summary's counts equal those of stepping through every one."""

from __future__ import annotations


import pytest

from colo_replay import api
from colo_replay.offline.checkpoints import CheckpointModel

PRIMARY, SECONDARY = "sample_pcaps/primary.pcap", "sample_pcaps/secondary.pcap"
LAST_NS = 1795653491744828000          # the sample primary's last frame


def _replay(stepped: bool, monkeypatch, **kw):
    if stepped:
        monkeypatch.setattr(CheckpointModel, "idle_run", lambda self, t: (0, 0, 0))
    else:
        monkeypatch.undo()
    return api.replay(PRIMARY, SECONDARY, **kw)


@pytest.mark.parametrize("qemu", ["4.1", "7.2"])
@pytest.mark.parametrize("delay_ms,until_s", [(1000, 60), (250, 7), (150, 30), (20000, 300)])
def test_idle_rows_count_exactly_what_stepping_counts(monkeypatch, qemu, delay_ms, until_s):
    kw = dict(qemu=qemu, checkpoint_delay_ns=delay_ms * 1_000_000, end_ns=LAST_NS + until_s * 10**9)
    stepped = _replay(True, monkeypatch, **kw)
    fast = _replay(False, monkeypatch, **kw)
    s1, s2 = stepped.summary, fast.summary
    for key in ("checkpoints", "checkpoints_by_cause", "checkpoint_requests_by_cause", "released_by_cause",
                "held_ms", "divergences"):
        assert s1[key] == s2[key], key
    # the same frames and requests at the same times: only the checkpoint rows are folded
    frame_rows = lambda tl: tl.events[~tl.events["kind"].isin(
        ["checkpoint_start", "checkpoint_end", "flush", "idle_checkpoints"])].reset_index(drop=True)
    assert frame_rows(stepped).equals(frame_rows(fast))
    idle = fast.events[fast.events["kind"] == "idle_checkpoints"]
    assert len(idle) >= 1 and idle["detail"].sum() > 1
    assert len(fast) < len(stepped)


def test_a_year_idle_is_one_row_and_fast():
    """Fast because folded: the year's ~1.6 million periodic checkpoints are a handful of rows
    (the cost follows the rows, not the time; no stopwatch, which a loaded machine would fool)."""
    tl = api.replay(PRIMARY, SECONDARY, end_ns=LAST_NS + 365 * 86400 * 10**9, allow_gaps=True)
    assert tl.error is None
    s = tl.summary
    assert s["checkpoints_by_cause"]["periodic"] > 365 * 86400 // 20 - 10
    assert len(tl) < 1000
    ev = tl.events
    idle = ev[ev["kind"] == "idle_checkpoints"]
    starts = ev[ev["kind"] == "checkpoint_start"]
    assert len(idle) >= 1 and idle["detail"].sum() > 365 * 86400 // 20 - 100
    assert idle["detail"].sum() + len(starts) == s["checkpoints"]


@pytest.mark.parametrize("qemu", ["7.2", "4.1"])
@pytest.mark.parametrize("delay_ms,until_s", [(100, 30), (50, 20), (1, 5), (30, 12)])
def test_back_to_back_checkpoints_fold_too(monkeypatch, qemu, delay_ms, until_s):
    """x-checkpoint-delay not above the checkpoint duration (100 ms): checkpoints follow each
    other back to back; with nothing queued they fold into one row as well, whether requests
    coalesce (7.2) or each firing owes one more (4.1's semaphore: a growing debt)."""
    kw = dict(qemu=qemu, checkpoint_delay_ns=delay_ms * 1_000_000, end_ns=LAST_NS + until_s * 10**9)
    monkeypatch.setattr(CheckpointModel, "busy_run", lambda self, t: None)
    monkeypatch.setattr(CheckpointModel, "idle_run", lambda self, t: (0, 0, 0))
    stepped = api.replay(PRIMARY, SECONDARY, **kw)
    monkeypatch.undo()
    fast = api.replay(PRIMARY, SECONDARY, **kw)
    for key in ("checkpoints", "checkpoints_by_cause", "checkpoint_requests_by_cause", "released_by_cause",
                "held_ms"):
        assert stepped.summary[key] == fast.summary[key], key
    frame_rows = lambda tl: tl.events[~tl.events["kind"].isin(
        ["checkpoint_start", "checkpoint_end", "flush", "idle_checkpoints"])].reset_index(drop=True)
    assert frame_rows(stepped).equals(frame_rows(fast))
    assert (fast.events["kind"] == "idle_checkpoints").any() and len(fast) < len(stepped)
    # the checkpoint running at the end, and its number, are the same
    last = lambda tl: tl.events[tl.events["kind"] == "checkpoint_start"].iloc[-1][["time_ns", "detail"]].tolist()
    assert last(stepped) == last(fast)


@pytest.mark.parametrize("qemu", ["7.2", "4.1"])
def test_a_long_until_with_back_to_back_checkpoints_costs_rows_not_time(qemu):
    """``--checkpoint-delay 1 --checkpoint-duration 1ms --until +1000s``: a million back-to-back
    checkpoints after the last frame.  Under 4.1 they were stepped one by one (11.7 s; a day,
    the largest --until, ~17 min: found by the saved-input fuzz); now they fold into a few rows
    under every profile."""
    tl = api.replay(PRIMARY, SECONDARY, qemu=qemu, checkpoint_delay_ns=1_000_000, checkpoint_duration_ns=1_000_000,
                    end_ns=LAST_NS + 86400 * 10**9)
    assert tl.error is None
    assert tl.summary["checkpoints"] > 86400 * 1000 - 10
    assert len(tl) < 20000
