"""Wait for a condition, not for a time: tests that need something to have happened poll for it
with a generous deadline, instead of sleeping a fixed time and asserting (which fails on a slow
or loaded machine, and wastes time on a fast one)."""

from __future__ import annotations

import time

DEADLINE_S = 60.0


def wait_until(condition, what: str, timeout: float = DEADLINE_S, interval: float = 0.02):
    """Call ``condition()`` until it returns something true, and return that; an AssertionError
    naming ``what`` (and the last value) if ``timeout`` seconds pass first."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up after {timeout:g} s waiting for {what} (last: {value!r})")
        time.sleep(interval)
