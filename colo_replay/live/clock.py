"""The live engine clock.

QEMU stamps a frame with ``qemu_clock_get_ms(QEMU_CLOCK_HOST)`` when it has been read, and arms
the 7.2 expiry scan on the same host clock (net/colo-compare.c ``colo_compare_timer_init``).
We drive the engine from the **monotonic** clock instead, so an NTP step cannot fire or starve
scans, but shift it once, at start-up, by a whole number of milliseconds so that engine times
read like wall-clock epoch nanoseconds (recordings get meaningful host timestamps) while the
engine's integer-ms arithmetic (``creation_ms = ns // 1e6``) is unchanged by the shift.

Every reading is strictly greater than the previous one: two reads of the same socket chunk
share one reading, two different chunks never do, so a recording replays in the same order.
"""

from __future__ import annotations

import time

from ..engine.constants import MS


class LiveClock:
    def __init__(self):
        mono = time.monotonic_ns()
        wall = time.time_ns()
        self.offset = ((wall - mono) // MS) * MS     # whole ms: ns // MS is shift-invariant
        self._last = 0

    def now(self) -> int:
        t = time.monotonic_ns() + self.offset
        if t <= self._last:
            t = self._last + 1
        self._last = t
        return t

    def to_loop_time(self, engine_ns: int) -> float:
        """Engine ns -> ``loop.time()`` seconds (asyncio's loop clock is time.monotonic)."""
        return (engine_ns - self.offset) / 1e9
