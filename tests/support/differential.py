"""What the differential suites share: the scenario list, QEMU's per-session results, and the
step-by-step comparison of QEMU with another program (the engine, or ``colo-replay live``).

* ``SCENARIOS``: every scenario of ``tests/support/scenarios.py`` (hand-written + seeded random).
* ``qemu_run(scenario)``: the scenario's per-step QEMU captures; each scenario runs once in a
  fresh QEMU per test session, whichever test asks first (``tests/test_differential_qemu.py``,
  ``tests/test_live_differential.py``).
* ``compare(scenario, qres, other)``: the disagreements, as (step index, what) pairs:

  - released frames (bytes and vnet length, in outdev order) must be equal for every step;
  - checkpoint requests must be equal for every step, except in timer-driven scenarios (those
    with WAIT steps): QEMU's scan phase relative to the steps is unknown, so there the running
    totals may differ by at most one per WAIT step so far.

* ``report(...)``, ``describe_frame``, ``short_hex``, ``step_label``: readable failure messages.
"""

from __future__ import annotations

import struct

from .qemu_oracle import QemuOracle
from .scenarios import Scenario, all_scenarios

SCENARIOS = all_scenarios()
_QEMU_CACHE: dict[str, list] = {}


def qemu_run(scenario: Scenario) -> list:
    """The scenario's per-step QEMU captures (each scenario runs once per session)."""
    if scenario.name not in _QEMU_CACHE:
        with QemuOracle(**scenario.config_args()) as q:
            _QEMU_CACHE[scenario.name] = q.run(scenario.steps)
    return _QEMU_CACHE[scenario.name]


# ---------------------------------------------------------------------- comparison and reporting
def short_hex(data: bytes, head: int = 14, tail: int = 10) -> str:
    if len(data) <= head + tail:
        return data.hex()
    return f"{data[:head].hex()}..{data[-tail:].hex()}"


def describe_frame(data: bytes, vnet: int = 0) -> str:
    """A one-line summary of a frame (protocol, addresses, TCP seq/ack/len) plus shortened hex."""
    d = vnet
    desc = f"{len(data)}B"
    if vnet:
        desc += f" vnet={vnet}"
    try:
        et = struct.unpack_from("!H", data, d + 12)[0]
        if et == 0x0800 and len(data) >= d + 34:
            ip = d + 14
            ihl = (data[ip] & 15) * 4
            proto = data[ip + 9]
            src = ".".join(map(str, data[ip + 12:ip + 16]))
            dst = ".".join(map(str, data[ip + 16:ip + 20]))
            l4 = ip + ihl
            if proto == 6 and len(data) >= l4 + 14:
                sp, dp, seq, ack = struct.unpack_from("!HHII", data, l4)
                plen = len(data) - (l4 + (data[l4 + 12] >> 4) * 4)
                desc += f" TCP {src}:{sp}>{dst}:{dp} seq={seq} ack={ack} len={plen}"
            elif proto == 17 and len(data) >= l4 + 4:
                sp, dp = struct.unpack_from("!HH", data, l4)
                desc += f" UDP {src}:{sp}>{dst}:{dp}"
            else:
                desc += f" IPv4 proto={proto} {src}>{dst}"
        else:
            desc += f" ethertype=0x{et:04x}"
    except (struct.error, IndexError):
        pass
    return f"{desc} [{short_hex(data)}]"


def step_label(step: tuple) -> str:
    if step[0] in ("P", "S"):
        vnet = step[2] if len(step) > 2 else 0
        return f"{step[0]} {describe_frame(step[1], vnet)}"
    return " ".join(str(x) for x in step)


def compare(scenario: Scenario, qres: list, eres: list) -> list[tuple[int, str]]:
    """The disagreements, as (step index, what) pairs; empty when QEMU and the engine agree."""
    problems = []
    if len(qres) != len(eres):
        return [(-1, f"step counts differ: QEMU {len(qres)}, engine {len(eres)}")]
    cum_q = cum_e = waits = 0
    for i, (step, q, e) in enumerate(zip(scenario.steps, qres, eres)):
        if q.releases != e.releases:
            problems.append((i, "releases differ"))
        if q.other_notify:
            problems.append((i, f"unexpected notify messages from QEMU: {q.other_notify!r}"))
        if scenario.timer_driven:
            waits += step[0] == "WAIT"
            cum_q += q.checkpoints
            cum_e += e.checkpoints
            if abs(cum_q - cum_e) > waits:
                problems.append((i, f"checkpoint totals so far differ by more than {waits} scan tick(s) "
                                    f"(QEMU {cum_q}, engine {cum_e})"))
        elif q.checkpoints != e.checkpoints:
            problems.append((i, "checkpoint counts differ"))
    return problems


def report(scenario: Scenario, qres: list, eres: list, problems: list, other: str = "engine",
           tail: str = "") -> str:
    """A failure message: the disagreements, the first disagreeing step in full, every step's
    releases and checkpoint counts side by side (QEMU | ``other``), then ``tail``."""
    lines = [f"scenario {scenario.name!r} ({scenario.description})",
             f"config: {scenario.config_args()}" + (f", seed {scenario.seed}" if scenario.seed is not None else ""),
             "disagreements:"]
    lines += [f"  step {i}: {what}" for i, what in problems]
    first = problems[0][0]
    bad = {i for i, _ in problems}
    if first >= 0:
        q, e = qres[first], eres[first]
        lines.append(f"first disagreeing step {first}: {step_label(scenario.steps[first])}")
        lines.append(f"  QEMU   released {len(q.releases)}, DO_CHECKPOINT x{q.checkpoints}:")
        lines += [f"    {describe_frame(d, v)}" for d, v in q.releases]
        lines.append(f"  {other} released {len(e.releases)}, checkpoint requests x{e.checkpoints}:")
        lines += [f"    {describe_frame(d, v)}" for d, v in e.releases]
        if getattr(e, "events", None) is not None:
            lines.append(f"  {other} events of that step:")
            lines += [f"    {ev.describe()}" for ev in e.events]
    lines.append(f"all steps (QEMU releases/checkpoints | {other} releases/checkpoints):")
    for i, (step, q, e) in enumerate(zip(scenario.steps, qres, eres)):
        mark = "!!" if i in bad else "  "
        lines.append(f"{mark}{i:3d} {step_label(step)}")
        if q.releases or e.releases or q.checkpoints or e.checkpoints:
            qs = ", ".join(short_hex(d, 6, 6) for d, _ in q.releases)
            es = ", ".join(short_hex(d, 6, 6) for d, _ in e.releases)
            lines.append(f"        QEMU [{qs}] ck={q.checkpoints} | {other} [{es}] ck={e.checkpoints}")
    if tail:
        lines.append(tail)
    return "\n".join(lines)
