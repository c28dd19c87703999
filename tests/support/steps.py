"""Drive an Engine through a list of steps and summarise what it did, per step.

A step is ("P", frame[, ident]) / ("S", frame[, ident]) / ("FLUSH",) / ("WAIT", ms).
Steps are 100 ms apart unless a WAIT says otherwise.
"""

from __future__ import annotations

from colo_replay import PRIMARY, SECONDARY, CompareConfig, Engine, EventKind

MS = 1_000_000


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
    eng = Engine(profile, config, start_ns=start_ns)
    t = start_ns
    results = []
    for i, step in enumerate(steps):
        op = step[0]
        if op == "WAIT":
            t += step[1] * MS
            results.append(StepResult(eng.advance(t)))
            continue
        t += gap_ms * MS
        if op == "FLUSH":
            results.append(StepResult(eng.checkpoint(t)))
            continue
        side = PRIMARY if op == "P" else SECONDARY
        ident = step[2] if len(step) > 2 else f"{op}{i}"
        vnet = step[3] if len(step) > 3 else 0
        results.append(StepResult(eng.feed(side, step[1], t, vnet_hdr_len=vnet, ident=ident)))
    return eng, results


def all_released(results):
    return [x for r in results for x in r.released]


def all_requests(results):
    return sum(len(r.requests) for r in results)
