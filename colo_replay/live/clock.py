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

from .lean import LiveClock

__all__ = ["LiveClock"]       # (in lean.py, the compiled core: FastInput reads it as C fields)
