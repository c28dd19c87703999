"""Differential tests of live mode: ``colo-replay live`` against the real QEMU 7.2 colo-compare.

Every scenario of ``tests/support/scenarios.py`` is driven through ``colo-replay live`` (a
subprocess connecting to the test's unix sockets, exactly as QEMU's client chardevs do) by the
same ``ChardevHarness`` step/barrier protocol that drives QEMU, and the per-step results are
compared with QEMU's by ``tests/support/differential.py``'s ``compare``:

* the released frames (bytes, vnet length, outdev order) of every step are equal;
* the DO_CHECKPOINT count of every step is equal, except in timer-driven scenarios (WAIT steps),
  where the running totals may differ by at most one scan tick per WAIT so far (both programs
  run their expiry scan on a real clock whose phase relative to the steps is unknown).

QEMU's results come from ``tests/support/differential.py``'s per-session cache (each scenario
runs once in QEMU per session, whichever test asks first).  The QEMU binary is required: these
tests fail, never skip, without it.
"""

from __future__ import annotations

import pytest

from tests.support.differential import SCENARIOS, compare, qemu_run, report
from tests.support.live_harness import LiveHarness

pytestmark = pytest.mark.qemu


def live_run(scenario):
    with LiveHarness(**scenario.config_args()) as h:
        res = h.run(scenario.steps)
        rc, stderr = h.stop()
    return res, rc, stderr


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
def test_live_and_qemu_agree(scenario):
    qres = qemu_run(scenario)
    lres, rc, stderr = live_run(scenario)
    problems = compare(scenario, qres, lres)
    assert not problems, report(scenario, qres, lres, problems, other="live",
                                tail="colo-replay live stderr (tail):\n" + stderr[-3000:])
    # exit status: 1 when it requested a checkpoint, else 0; never a traceback
    requested = sum(s.checkpoints for s in lres)
    assert rc == (1 if requested else 0), (rc, stderr[-2000:])
    assert "Traceback" not in stderr, stderr

