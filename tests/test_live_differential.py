"""Differential tests of live mode: ``colo-replay live`` against the real QEMU 7.2 colo-compare.

Every scenario of ``tests/support/scenarios.py`` is driven through ``colo-replay live`` (a
subprocess connecting to the test's unix sockets, exactly as QEMU's client chardevs do) by the
same ``ChardevHarness`` step/barrier protocol that drives QEMU, and the per-step results are
compared with QEMU's by the differential suite's own ``compare``:

* the released frames (bytes, vnet length, outdev order) of every step are equal;
* the DO_CHECKPOINT count of every step is equal, except in timer-driven scenarios (WAIT steps),
  where the running totals may differ by at most one scan tick per WAIT so far (both programs
  run their expiry scan on a real clock whose phase relative to the steps is unknown).

QEMU's results come from ``tests/test_differential_qemu.py``'s per-session cache (each scenario
runs once in QEMU per session, whichever test asks first).  The QEMU binary is required: these
tests fail, never skip, without it.
"""

from __future__ import annotations

import pytest

from tests.support.live_harness import LiveHarness
from tests.test_differential_qemu import SCENARIOS, compare, describe_frame, qemu_run, short_hex

pytestmark = pytest.mark.qemu


def live_run(scenario):
    with LiveHarness(**scenario.config_args()) as h:
        res = h.run(scenario.steps)
        rc, stderr = h.stop()
    return res, rc, stderr


def report(scenario, qres, lres, problems, stderr) -> str:
    lines = [f"scenario {scenario.name!r} ({scenario.description})", f"config: {scenario.config_args()}",
             "disagreements:"]
    lines += [f"  step {i}: {what}" for i, what in problems]
    bad = {i for i, _ in problems}
    lines.append("all steps (QEMU releases/checkpoints | live releases/checkpoints):")
    for i, (step, q, e) in enumerate(zip(scenario.steps, qres, lres)):
        label = f"{step[0]} {describe_frame(step[1], step[2] if len(step) > 2 else 0)}" if step[0] in "PS" \
            else " ".join(map(str, step))
        lines.append(f"{'!!' if i in bad else '  '}{i:3d} {label}")
        if q.releases or e.releases or q.checkpoints or e.checkpoints:
            qs = ", ".join(short_hex(d, 6, 6) for d, _ in q.releases)
            es = ", ".join(short_hex(d, 6, 6) for d, _ in e.releases)
            lines.append(f"        QEMU [{qs}] ck={q.checkpoints} | live [{es}] ck={e.checkpoints}")
    lines.append("colo-replay live stderr (tail):")
    lines.append(stderr[-3000:])
    return "\n".join(lines)


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
def test_live_and_qemu_agree(scenario):
    qres = qemu_run(scenario)
    lres, rc, stderr = live_run(scenario)
    problems = compare(scenario, qres, lres)
    assert not problems, report(scenario, qres, lres, problems, stderr)
    # exit status: 1 when it requested a checkpoint, else 0; never a traceback
    requested = sum(s.checkpoints for s in lres)
    assert rc == (1 if requested else 0), (rc, stderr[-2000:])
    assert "Traceback" not in stderr, stderr


def test_every_scenario_applies():
    """All scenarios run live: none needs anything live mode lacks (the list is the full one)."""
    assert len(SCENARIOS) == 92, len(SCENARIOS)
