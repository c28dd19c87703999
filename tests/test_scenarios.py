"""The scenario list of the differential suites, checked without QEMU: every scenario is well
formed and free of undefined behaviour, and the oracle's barrier frames change nothing in the
engine (so the engine runner may leave them out).  The QEMU comparisons themselves are in
``tests/test_differential_qemu.py`` and ``tests/test_live_differential.py``."""

from __future__ import annotations

from colo_replay import EventKind

from tests.support.differential import SCENARIOS
from tests.support.engine_runner import run_engine
from tests.support.scenarios import no_barrier_flow


def test_scenarios_are_well_formed():
    """No scenario touches the barrier flow, contains a zero-length frame, or gives a vnet length
    without vnet_hdr_support; the engine finds no undefined behaviour in any of them."""
    for sc in SCENARIOS:
        assert no_barrier_flow(sc), sc.name
        for st in sc.steps:
            assert st[0] in ("P", "S", "FLUSH", "WAIT"), (sc.name, st)
            if st[0] in ("P", "S"):
                assert len(st[1]) > 0, sc.name
                assert sc.vnet_hdr_support or len(st) == 2 or st[2] == 0, sc.name
        _, res = run_engine(sc)
        undefined = [ev.describe() for r in res for ev in r.events
                     if ev.kind in (EventKind.UNDEFINED, EventKind.QEMU_CRASH)]
        assert not undefined, (sc.name, undefined)


def test_barrier_frames_change_nothing_in_the_engine():
    """The engine runner does not feed the oracle's barrier frames.  Feeding them (P then S after
    every step, as the oracle writes them) must give the same releases and checkpoints."""
    for sc in SCENARIOS:
        _, plain = run_engine(sc)
        _, fed = run_engine(sc, feed_barriers=True)
        for i, (a, b) in enumerate(zip(plain, fed)):
            assert a.releases == b.releases, (sc.name, i)
            assert a.checkpoints == b.checkpoints, (sc.name, i)
