"""Run a scenario through ``colo_replay.Engine`` and summarise it in the oracle's result shape.

Per step: the released frames, in order, as ``(bytes, vnet_hdr_len)`` (events of kind
``EventKind.RELEASE``), and the number of checkpoint requests (``EventKind.CHECKPOINT_REQUEST``),
which the real QEMU writes as ``DO_CHECKPOINT`` on notify_dev.

Clock: ``StepClock`` of ``tests/support/steps.py``.  The engine is created at t = 0 (its first
expiry scan one ``expired_scan_cycle`` later); every P / S / FLUSH step advances the synthetic
clock by ``STEP_MS`` (1 ms, about what one step plus its barrier takes against QEMU), a
``("WAIT", ms)`` step advances it by ``ms`` and calls ``engine.advance``.  The real QEMU's scan
phase relative to the steps is unknown, which is why the differential test compares
timer-driven checkpoint counts with a tolerance (see ``tests/support/differential.py``).

Barrier frames: by default the runner does **not** feed the oracle's barrier frames.  The
barrier flow (10.99.99.1:9999 -> 10.99.99.2:9999) is a connection of its own in QEMU, but it is
always empty when a step ends (its primary and secondary copies match at once, with no
checkpoint), so it never changes a decision: the expiry scan only stops at a connection holding
an old frame, a flush walks an empty connection, and ``max_queue_size`` is per queue.
``feed_barriers=True`` feeds them anyway (P then S after every step, exactly as the oracle
writes them) and filters them out of the releases; a test checks that both ways give the same
results for every scenario.  The one place the barrier connection does count is the size of the
connection table (the 16385-key reset): ``test_connection_table_reset`` therefore feeds the
engine the barrier frames itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from colo_replay import PRIMARY, SECONDARY, CompareConfig, Engine, EventKind

from .qemu_oracle import barrier_frame, is_barrier_frame
from .steps import StepClock, drive_engine

STEP_MS = 1


@dataclass
class EngineStep:
    releases: list = field(default_factory=list)       # [(bytes, vnet_hdr_len)]
    checkpoints: int = 0                                # all CHECKPOINT_REQUEST events
    timer_checkpoints: int = 0                          # those with Cause.EXPIRED
    events: list = field(default_factory=list)


def config_of(scenario) -> CompareConfig:
    return CompareConfig(compare_timeout=scenario.compare_timeout,
                         expired_scan_cycle=scenario.expired_scan_cycle,
                         max_queue_size=scenario.max_queue_size,
                         vnet_hdr_support=scenario.vnet_hdr_support)


def _summarise(events, into: EngineStep) -> None:
    for ev in events:
        into.events.append(ev)
        if ev.kind == EventKind.RELEASE:
            data = ev.frame.data
            if is_barrier_frame(data):
                continue
            into.releases.append((data, ev.frame.vnet_hdr_len))
        elif ev.kind == EventKind.CHECKPOINT_REQUEST:
            into.checkpoints += 1
            if ev.cause.name == "EXPIRED":
                into.timer_checkpoints += 1


def run_engine(scenario, feed_barriers: bool = False, profile: str = "7.2"):
    """Return ``(engine, [EngineStep per step])``."""
    eng = Engine(profile, config_of(scenario), start_ns=0)
    results = []
    for i, _, t, events in drive_engine(eng, scenario.steps, StepClock(STEP_MS)):
        res = EngineStep()
        _summarise(events, res)
        if feed_barriers:
            bf = barrier_frame(i + 1)
            _summarise(eng.feed(PRIMARY, bf, t, ident=f"barrier{i + 1}P"), res)
            _summarise(eng.feed(SECONDARY, bf, t, ident=f"barrier{i + 1}S"), res)
        results.append(res)
    return eng, results


def undefined_events(scenario) -> list:
    """Every UNDEFINED / QEMU_CRASH event the engine reports for ``scenario`` (reads past a
    frame's end are undefined behaviour in QEMU: such scenarios cannot be compared)."""
    _, results = run_engine(scenario)
    return [ev for r in results for ev in r.events
            if ev.kind in (EventKind.UNDEFINED, EventKind.QEMU_CRASH)]
