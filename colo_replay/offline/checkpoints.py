"""A model of the COLO checkpoint cycle seen from colo-compare (QEMU migration/colo.c), sans-I/O.

What it mirrors:

* ``colo_checkpoint_notify()``: every checkpoint request (colo-compare's notifier) wakes the
  checkpoint loop *and* re-arms the periodic timer at ``now + x-checkpoint-delay``; the periodic
  timer calls the same function, so a periodic checkpoint comes ``x-checkpoint-delay`` after the
  last request or checkpoint trigger, whichever was later.
* 5.1+ (bb70b66ed7) waits on a ``QemuEvent``: every request that arrives before the loop resets
  the event collapses into one checkpoint; requests arriving while a checkpoint runs give exactly
  one more checkpoint after it.  The seed (4.1) waits on a counting semaphore: every request is
  one checkpoint transaction, run back to back (spec Q18).
* ``colo_do_checkpoint_transaction()`` stops the primary VM, makes compare flush, sends the state
  and restarts the VM.  Here a checkpoint stops the VM for ``duration_ns`` and compare is
  flushed when it ends (4.1's expiry-scan clock stands still meanwhile).

A driver on a real clock (live mode's ``--flush-on-request``) uses ``request`` and ``finish``
instead of ``advance``: it sleeps until ``running_until`` and reports when the flush happened.

Alternatively ``measured`` takes flush times recorded on a real rig: then requests change
nothing and compare is flushed exactly at those times.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from ..engine.constants import NEVER as _NEVER

# causes of a checkpoint (timeline rows "checkpoint_start")
REQUESTED = "requested"     # colo-compare asked for it (miscompare / expired frame)
PERIODIC = "periodic"       # x-checkpoint-delay elapsed
MEASURED = "measured"       # a flush time from --checkpoints-at


@dataclass
class CheckpointAction:
    kind: str        # "start" or "end"
    time: int        # ns
    cause: str       # REQUESTED / PERIODIC / MEASURED
    index: int       # checkpoint number, from 1


class CheckpointModel:
    """The checkpoint cycle.  Tell it about requests; ask it what happens next and when.

    ``delay_ns`` = 0 disables periodic checkpoints.  ``coalesce`` is the profile's
    ``checkpoint_requests_coalesce``.
    """

    def __init__(self, start_ns: int, duration_ns: int, delay_ns: int, coalesce: bool,
                 measured: list[int] | None = None):
        if duration_ns < 0 or delay_ns < 0:
            raise ValueError("checkpoint duration and delay must not be negative")
        self.duration_ns = duration_ns
        self.delay_ns = delay_ns
        self.coalesce = coalesce
        self.measured = sorted(measured) if measured is not None else None
        self._measured_pos = 0
        self.running_until: int | None = None    # end time of the checkpoint in progress
        self.running_cause = ""
        self.pending = 0                         # checkpoints owed after the running one
        self.pending_cause = REQUESTED
        self.periodic_at = start_ns + delay_ns if delay_ns and measured is None else _NEVER
        self.count = 0
        self.requests = 0

    def next_time(self) -> int:
        """When the model next has something to do (ns); a huge number if never."""
        if self.measured is not None:
            if self._measured_pos < len(self.measured):
                return self.measured[self._measured_pos]
            return _NEVER
        t = self.periodic_at
        if self.running_until is not None and self.running_until < t:
            t = self.running_until
        return t

    def request(self, t: int) -> list[CheckpointAction]:
        """colo-compare notified a checkpoint request at ``t``; returns a "start" if one begins."""
        self.requests += 1
        if self.measured is not None:
            return []
        return self._trigger(t, REQUESTED)

    def advance(self, t: int) -> list[CheckpointAction]:
        """Everything that happens up to and including ``t``, in time order."""
        out: list[CheckpointAction] = []
        while True:
            nt = self.next_time()
            if nt > t:
                return out
            if self.measured is not None:
                self._measured_pos += 1
                self.count += 1
                out.append(CheckpointAction("start", nt, MEASURED, self.count))
                out.append(CheckpointAction("end", nt, MEASURED, self.count))
                continue
            if self.running_until is not None and self.running_until <= self.periodic_at:
                out += self._end(self.running_until)
                continue
            if self.running_until is not None:
                # The periodic timer fires (maybe many times, x-checkpoint-delay < duration)
                # while a checkpoint runs: each firing only re-arms it and owes one more
                # checkpoint (4.1: one per firing; 5.1+: one in all).  All at once, in O(1).
                k = (min(self.running_until - 1, t) - self.periodic_at) // self.delay_ns + 1
                self.periodic_at += k * self.delay_ns
                self.pending = 1 if self.coalesce else self.pending + k
                self.pending_cause = PERIODIC
                continue
            # the periodic timer fires: it is colo_checkpoint_notify() too
            out += self._trigger(self.periodic_at, PERIODIC)

    def idle_run(self, t: int) -> tuple[int, int, int]:
        """Jump over a run of periodic checkpoints that all begin and end by ``t``, in O(1).

        For a driver with nothing queued: such checkpoints flush nothing and no request can come
        between them, so they differ only in their times.  Applies only when the model is idle
        (no checkpoint running or owed, not ``measured``) and a periodic checkpoint ends before
        the next one is due (``delay_ns >= duration_ns``: each one is ``start`` at
        ``p + k*delay_ns``, ``end`` ``duration_ns`` later).  Returns ``(first_start, n,
        last_end)`` after counting the ``n`` checkpoints as performed, or ``(0, 0, 0)`` when
        fewer than two would be skipped (the caller then steps as usual)."""
        d, delay = self.duration_ns, self.delay_ns
        p = self.periodic_at
        if (self.measured is not None or self.running_until is not None or self.pending or not delay
                or delay < d or p + delay + d > t):
            return 0, 0, 0
        n = (t - d - p) // delay + 1            # starts p + k*delay whose end is <= t
        self.count += n
        self.periodic_at = p + n * delay        # timer_mod(now + x-checkpoint-delay), n times
        return p, n, p + (n - 1) * delay + d

    def busy_run(self, t: int):
        """Jump over checkpoints that follow each other back to back, in O(1): for a driver with
        nothing queued, when the periodic timer fires at least once per checkpoint
        (``delay_ns <= duration_ns``).  Then the running checkpoint ends at ``r = running_until``
        and another starts at once, at ``r + k * duration_ns`` for every k (each span of
        ``duration_ns`` holds a firing).  With 5.1+'s coalescing one checkpoint is owed however
        many firings; 4.1's semaphore owes one per firing, a debt that grows by the firings
        less the checkpoints (back to back from ``r`` on as soon as one is owed at ``r``, or the
        timer fires at ``r``).

        Returns None when that does not apply or fewer than two would be skipped; else
        ``(end, n, last_end, start)``: the running checkpoint's "end" action at ``r``; ``n``
        checkpoints started at ``r, r + d, ...`` and all ended by ``last_end = r + n * d``; the
        "start" action at ``last_end`` of the one now running.  The model is left as stepping
        would leave it after everything at or before ``last_end``."""
        d, delay, r = self.duration_ns, self.delay_ns, self.running_until
        if (self.measured is not None or r is None or not delay or delay > d
                or d <= 0 or t - r < 2 * d):
            return None
        q = self.periodic_at
        if not self.coalesce and not (self.pending >= 1 or q == r):
            return None             # nothing owed at r: the next one waits for the timer
        n = (t - r) // d
        last = r + n * d
        end = CheckpointAction("end", r, self.running_cause, self.count)
        self.count += n
        if self.coalesce:
            if q <= last:
                # every firing before ``last`` happened, each re-arming the timer; one exactly at
                # ``last`` fires after the checkpoint that starts then (end first, as in advance)
                k = (last - q) // delay + 1
                self.periodic_at = q + k * delay
                self.pending = 1 if (last - q) % delay == 0 else 0
            else:
                self.pending = 0
        else:
            # each firing in [r, last] owes one (or starts one when none was owed), and each of
            # the n + 1 starts at r, r + d, .., last (the one below too) pays one: stepping's
            # debt in one sum (a firing at ``last`` comes after that start, end first)
            fired = (last - q) // delay + 1 if q <= last else 0
            self.periodic_at = q + fired * delay
            self.pending = self.pending + fired - (n + 1)
        self.pending_cause = PERIODIC
        start = self._start(last, PERIODIC)[0]
        return end, n, last, start

    def finish(self, t: int) -> list[CheckpointAction]:
        """For a driver on a real clock (live ``--flush-on-request``), which asks nothing of
        ``advance``: the running checkpoint ended at ``t``, when its timer fired (``t`` may be
        later than ``running_until``).  Returns its "end" and, when requests came meanwhile,
        the "start" of the one owed after it, at ``t``."""
        if self.running_until is None:
            return []
        return self._end(t)

    def _end(self, t: int) -> list[CheckpointAction]:
        out = [CheckpointAction("end", t, self.running_cause, self.count)]
        self.running_until = None
        if self.pending:
            self.pending -= 1
            out += self._start(t, self.pending_cause)
        return out

    def _trigger(self, t: int, cause: str) -> list[CheckpointAction]:
        if self.delay_ns:
            self.periodic_at = t + self.delay_ns        # timer_mod(now + x-checkpoint-delay)
        if self.running_until is None:
            return self._start(t, cause)
        if self.coalesce:
            self.pending = 1                            # qemu_event_set: one more, however many
        else:
            self.pending += 1                           # qemu_sem_post: one per request
        self.pending_cause = cause
        return []

    def _start(self, t: int, cause: str) -> list[CheckpointAction]:
        self.count += 1
        self.running_until = t + self.duration_ns
        self.running_cause = cause
        return [CheckpointAction("start", t, cause, self.count)]


# ---------------------------------------------------------------- measured flush times

def parse_time(text, what: str = "time") -> int:
    """A point in time on the replay clock: an int (ns), epoch seconds as a decimal string, or
    integer nanoseconds with an ``ns`` suffix (``"1795656000123456789ns"``).  ValueError, naming
    ``what``, otherwise."""
    if isinstance(text, int) and not isinstance(text, bool):
        return text
    try:
        value = str(text).strip()
        if value.endswith("ns"):
            return int(value[:-2])
        return int(Decimal(value) * 1_000_000_000)
    except (ArithmeticError, ValueError):
        raise ValueError(f"{what} {text!r} is not a time (epoch seconds, or nanoseconds with 'ns')") from None


def seconds_text(ns: int) -> str:
    """A time in ns as exact decimal seconds (``1795653485.000000001``): what ``parse_time``
    reads back to the same ns.  (``ns / 1e9`` is a float: 53 bits hold only ~16 digits, so an
    epoch time loses its last nanoseconds and a user copying it gets another time.)"""
    sign = "-" if ns < 0 else ""
    whole, frac = divmod(abs(ns), 1_000_000_000)
    return f"{sign}{whole}.{frac:09d}"


_UNITS = {"ns": 1, "us": 1_000, "µs": 1_000, "ms": 1_000_000, "s": 1_000_000_000}


def parse_until(text) -> tuple[int | None, int | None]:
    """``--until``: ``(absolute_ns, None)`` for a time (``parse_time``), or ``(None, after_ns)``
    for ``+DURATION`` after the last frame (``+5s``, ``+250ms``; a bare number is seconds)."""
    if isinstance(text, str) and text.strip().startswith("+"):
        import re
        m = re.fullmatch(r"\+\s*(\d+(?:\.\d*)?|\.\d+)\s*(ns|us|µs|ms|s)?", text.strip())
        if not m:
            raise ValueError(f"--until {text!r} is not +DURATION after the last frame (e.g. +5s, +250ms)")
        return None, int(Decimal(m.group(1)) * _UNITS[m.group(2) or "s"])
    return parse_time(text, "--until"), None


def _check_times(times: list[int], where) -> list[int]:
    """Flush times must be positive and in order: a typo there silently moves every flush."""
    for i, t in enumerate(times):
        if t < 0:
            raise ValueError(f"{where(i)}: negative time {seconds_text(t)}")
        if i and t < times[i - 1]:
            raise ValueError(f"{where(i)}: {seconds_text(t)} is before the time above it "
                             f"({seconds_text(times[i - 1])}): times must be in order")
    return times


def read_checkpoint_times(path) -> list[int]:
    """A ``--checkpoints-at`` file: one flush time per line, seconds since the epoch (replay
    clock) as a decimal number, or integer nanoseconds with an ``ns`` suffix; ``#`` starts a
    comment; a UTF-8 byte-order mark and CRLF line ends are fine.  ValueError naming the file and
    line for anything else; OSError if unreadable.

    A file without a time (empty, or only blank lines and comments) is the record of a run in
    which no checkpoint happened (``live --record`` leaves checkpoints.txt so): an empty list,
    measured flushes none of which came, so the replay flushes nothing; never "use the model"."""
    times = []
    lines = []
    with open(path, encoding="utf-8-sig") as fh:     # a byte-order mark (some editors) is not text
        for lineno, line in enumerate(fh, 1):
            text = line.split("#", 1)[0].strip().rstrip(",")
            if not text:
                continue
            try:
                times.append(parse_time(text))
            except ValueError:
                raise ValueError(f"{path}: line {lineno}: {text!r} is not a time "
                                 f"(seconds, or nanoseconds with 'ns')") from None
            lines.append(lineno)
    return _check_times(times, lambda i: f"{path}: line {lines[i]}")


def checkpoint_times(spec) -> list[int] | None:
    """``checkpoints_at`` as the API takes it: None, a path to a ``--checkpoints-at`` file, or an
    iterable of times (ints in ns, or strings as ``parse_time`` reads them)."""
    if spec is None:
        return None
    if isinstance(spec, (str, bytes)) or hasattr(spec, "__fspath__"):
        return read_checkpoint_times(spec)
    return _check_times([parse_time(t, "checkpoints_at") for t in spec], lambda i: f"checkpoints_at[{i}]")
