"""Scenario steps and the one clock that steps through them, for every driver in tests/support.

A step is one of

* ``("P", frame[, vnet_len])``  a frame on primary_in
* ``("S", frame[, vnet_len])``  a frame on secondary_in
* ``("FLUSH",)``                a finished checkpoint (``COLO_CHECKPOINT`` on notify_dev)
* ``("WAIT", ms)``              let time pass (timeout-driven steps)

The engine-level example tests write frames as ``("P", frame, ident[, vnet_len])`` instead, to
name the frames they look for (``parse_step(..., with_ident=True)``).

``StepClock`` is the scenario time: every P / S / FLUSH step takes ``step_ms``, a WAIT its own
``ms``.  ``drive_engine`` runs steps through an ``Engine`` on that clock (``run_steps`` here,
``tests/support/engine_runner.py``); the chardev harnesses (``QemuOracle``, ``LiveHarness``) run
the same steps on the host clock, a WAIT being a real wait of ``ms``.
"""

from __future__ import annotations

from typing import Iterator, NamedTuple

from colo_replay import PRIMARY, SECONDARY, CompareConfig, Engine, EventKind

MS = 1_000_000
OPS = ("P", "S", "FLUSH", "WAIT")


def P(frame, vnet=None):
    return ("P", frame) if vnet is None else ("P", frame, vnet)


def S(frame, vnet=None):
    return ("S", frame) if vnet is None else ("S", frame, vnet)


FLUSH = ("FLUSH",)


def WAIT(ms):
    return ("WAIT", ms)


class Step(NamedTuple):
    op: str
    frame: bytes | None = None
    vnet: int = 0
    ident: object = None
    ms: int = 0            # WAIT only

    @property
    def side(self):
        return PRIMARY if self.op == "P" else SECONDARY


def parse_step(step: tuple, index: int = 0, with_ident: bool = False) -> Step:
    """The ``Step`` of a step tuple; frames are named ``{op}{index}`` unless the tuple names them."""
    op = step[0]
    if op == "WAIT":
        return Step(op, ms=step[1])
    if op == "FLUSH":
        return Step(op)
    if op not in ("P", "S"):
        raise ValueError(f"unknown step {step!r}")
    rest = list(step[2:])
    ident = rest.pop(0) if with_ident and rest else f"{op}{index}"
    vnet = rest[0] if rest else 0
    return Step(op, step[1], vnet, ident)


class StepClock:
    """Scenario time in ns: each P / S / FLUSH step advances it by ``step_ms``, a WAIT by its ms."""

    def __init__(self, step_ms: int, start_ns: int = 0):
        self.step_ns = step_ms * MS
        self.now_ns = start_ns

    def advance(self, step: Step) -> int:
        self.now_ns += step.ms * MS if step.op == "WAIT" else self.step_ns
        return self.now_ns


def drive_engine(eng: Engine, steps, clock: StepClock, with_ident: bool = False) -> Iterator[tuple]:
    """Run ``steps`` through ``eng`` on ``clock``; yields ``(index, Step, time_ns, events)`` per
    step: WAIT advances the engine, FLUSH completes a checkpoint, P / S feed the frame."""
    for i, raw in enumerate(steps):
        st = parse_step(raw, i, with_ident)
        t = clock.advance(st)
        if st.op == "WAIT":
            events = eng.advance(t)
        elif st.op == "FLUSH":
            events = eng.checkpoint(t)
        else:
            events = eng.feed(st.side, st.frame, t, vnet_hdr_len=st.vnet, ident=st.ident)
        yield i, st, t, events


# ---------------------------------------------------------------------- engine-level examples
class StepResult:
    def __init__(self, events):
        self.events = events
        self.released = [e.frame.ident for e in events if e.kind == EventKind.RELEASE]
        self.requests = [e for e in events if e.kind == EventKind.CHECKPOINT_REQUEST]
        self.causes = [e.cause.name for e in self.requests]

    def kinds(self, kind):
        return [e for e in self.events if e.kind == kind]


def run_steps(profile: str, steps, config: CompareConfig | None = None, gap_ms: int = 100,
              start_ns: int = 0):
    """Steps ``("P", frame, ident[, vnet_len])`` ... ``gap_ms`` apart (a WAIT says otherwise);
    returns the engine and a ``StepResult`` per step."""
    eng = Engine(profile, config, start_ns=start_ns)
    clock = StepClock(gap_ms, start_ns)
    return eng, [StepResult(events) for _, _, _, events in drive_engine(eng, steps, clock, with_ident=True)]


def all_released(results):
    return [x for r in results for x in r.released]


def all_requests(results):
    return sum(len(r.requests) for r in results)
