"""The order colo-compare read its two inputs in, where a real run's trace shows that it is not
the capture's.

A chardev capture stamps each frame with the time its last segment crossed loopback, and the
replay feeds the frames in that order.  colo-compare reads its sockets in its iothread, and
when both are readable at one wake-up it runs primary_in's handler first: GLib dispatches the
ready sources of one priority in the order they were attached, and ``colo_compare_complete``
attaches ``compare_pri_chr_in`` before ``compare_sec_chr_in``.  So when the iothread wakes late
(a loaded host), a secondary frame captured a little before a primary one is read after it,
and colo-compare's comparisons are not the capture order's.  A rig run on a loaded CI host: S#6
captured 0.34 ms before P#9, and colo-compare compared P#8 with the stale S#5 again on P#9's
arrival before S#6 was read, 0.86 ms after its capture; the replay, reading S#6 first, parted
from QEMU's memcmps there, and the trace could no longer decide the undefined reads after it.

The trace shows where this happened: the replay's TCP memcmps part from QEMU's
(``trace_oracle``) at some comparison.  ``repair_read_order`` moves a secondary frame captured
shortly before that comparison after the primaries captured between it and colo-compare's next
traced activity (QEMU cannot have read it earlier than that and can have read them first),
replays again, and keeps the move only if the replay then walks along QEMU's comparisons
further.  It stops when the replay agrees to the end or no move helps.  Each move is reported:
it is a fact about the run (the iothread was late), not a guess the user cannot see.
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass

from ..engine.constants import MS

LOOKBACK_NS = 50 * MS      # how far before the disagreeing comparison a frame QEMU read late may lie
MAX_TRIALS = 64            # replays tried at most (each a full replay of the capture)


@dataclass
class ReadOrderMove:
    """One secondary frame colo-compare read after primaries captured after it."""

    secondary_message: int          # 1-based message number on secondary_in
    captured_ns: int                # its capture time
    read_after_primary: int         # the last primary_in message read before it
    read_ns: int                    # that primary's capture time: the replay's arrival time for it

    def as_dict(self) -> dict:
        return {"secondary_message": self.secondary_message, "captured_ns": self.captured_ns,
                "read_after_primary": self.read_after_primary, "read_ns": self.read_ns,
                "later_us": round((self.read_ns - self.captured_ns) / 1000, 1)}


def _candidates(ptimes, stimes, activity, before_ns: int):
    """Secondary frames (index, new time, primary index) captured within LOOKBACK_NS before
    ``before_ns``, latest first, each with the primaries captured after it and before
    colo-compare's next traced activity (``activity``: sorted times of its trace events)."""
    lo = bisect_left(stimes, before_ns - LOOKBACK_NS)
    hi = bisect_left(stimes, before_ns)
    for k in range(hi - 1, lo - 1, -1):
        ts = stimes[k]
        j = bisect_left(activity, ts)
        if j == len(activity):
            continue
        i = bisect_left(ptimes, activity[j]) - 1          # the last primary captured before it
        if i >= 0 and ptimes[i] > ts:
            yield k, ptimes[i], i


def repair_read_order(ptimes: list[int], stimes: list[int], activity: list[int], trial, check: dict):
    """Secondary arrival times in the order QEMU read the frames, as far as the trace shows it.

    ``trial(stimes)`` replays with those secondary times and returns the trace check
    (``TraceOracle.as_dict()``: ``agree``, ``first``, ``first_time_ns``); ``check`` is the
    capture order's.  Returns (the times, the moves kept, the trace check of the last trial
    kept, the trials run); the times are ``stimes`` itself when no move was kept."""
    times = list(stimes)
    moves: list[ReadOrderMove] = []
    trials = 1
    tried: set = set()
    while check.get("first") is not None and check.get("first_time_ns") is not None and trials < MAX_TRIALS:
        better = None
        for k, t, i in _candidates(ptimes, times, activity, check["first_time_ns"]):
            if trials >= MAX_TRIALS:
                break
            if (k, t) in tried:
                continue
            tried.add((k, t))
            # a frame read later holds back the secondaries after it that the same late
            # wake-up had not read yet (the stream is read in order)
            new = times[:k] + [max(x, t) for x in times[k:]]
            c = trial(new)
            trials += 1
            if c["agree"] > check["agree"] or (c.get("first") is None and check.get("first") is not None):
                better = (new, c, ReadOrderMove(k + 1, stimes[k], i + 1, t))
                break
        if better is None:
            break
        times, check, move = better
        moves.append(move)
    return (times if moves else stimes), moves, check, trials


def qemu_read_order(capture, opts, trace, first: dict):
    """The secondary_in reader of ``capture`` (a ``ChardevCapture``) in the order colo-compare
    read it in the run ``trace`` (a ``QemuTrace``) records, and what was moved: (reader, a dict
    for the summary).  ``first``: the trace check of the replay in capture order, which parted
    from the trace's comparisons (``first["first"]``)."""
    from dataclasses import replace

    from .chardev import ChardevSideReader
    from .driver import replay_partial

    primary, secondary = capture.side_readers()
    activity = sorted(e.time_ns for e in trace.compare_events())

    def trial(stimes):
        rd = ChardevSideReader(capture, replace(capture.secondary_in, times=stimes))
        result, _ = replay_partial(primary, rd, opts, None)
        return result.trace_check or {}

    times, moves, check, trials = repair_read_order(capture.primary_in.times, capture.secondary_in.times,
                                                    activity, trial, first)
    info = {"moved": [m.as_dict() for m in moves], "trials": trials,
            "agree_before": first["agree"], "agree_after": check["agree"]}
    if not moves:
        return secondary, info
    return ChardevSideReader(capture, replace(capture.secondary_in, times=times)), info
