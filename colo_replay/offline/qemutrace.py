"""QEMU's own trace of a real COLO run: ``-trace enable=colo_* -msg timestamp=on -D FILE``.

QEMU's log trace backend writes one line per event, ``TID@EPOCH.USEC:event args`` (the host's
wall clock, the clock a loopback capture of the chardev sockets has too).  In a KVM COLO run it
is the only record of the checkpoints: ``query-migrate`` says only ``colo``.  What is read here:

* **checkpoints**, from the COLO thread's messages (migration/colo.c,
  ``colo_do_checkpoint_transaction``): on the primary ``Send 'checkpoint-request'``, ``Receive
  'checkpoint-reply'``, ``Change 'run' => 'stop'``, ``Send 'vmstate-send'``, ``Send
  'vmstate-size'``, ``Receive 'vmstate-received'``, ``Receive 'vmstate-loaded'``, ``Change
  'stop' => 'run'``; the secondary's trace has the same messages the other way round.
* **colo-compare's own events** (net/colo-compare.c), on the primary: ``colo_compare_ip_info``
  (every payload ``memcmp``), ``colo_compare_tcp_info`` (both sides of every successful TCP mark,
  with seq/ack), ``colo_compare_udp_miscompare`` / ``colo_compare_icmp_miscompare`` (sizes),
  ``colo_old_packet_check_found`` (the creation ms of the frame an expiry scan found: the only
  record of when the scan timer fired), ``colo_compare_main``.

**When colo-compare flushed.**  Since 5.1 (4fa8ed25b8 "Move colo_notify_compares_event to the
right place", with bb70b66ed7 "Use event instead of semaphore") the primary flushes colo-compare
right after it *received* ``vmstate-received``, having reset its checkpoint event just before;
in 4.1-5.0 it flushed right after stopping the VM (``'run' => 'stop'``).  ``flush_times`` gives
the one the release does.

A line that does not parse is an error naming the file and the line (``TraceError``); lines QEMU
itself writes to the same file with ``-msg timestamp=on`` (``2026-12-07T10:00:00.123456Z
qemu-system-x86_64: ...``) and empty lines are skipped; a last line cut short (QEMU killed
mid-write) is dropped with a warning.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

# TID@SECONDS.MICROSECONDS:event_name rest
_LINE = re.compile(rb"(\d+)@(\d+)\.(\d{1,9}):([A-Za-z_][A-Za-z0-9_]*)(?: (.*))?\Z")
_QEMU_MESSAGE = re.compile(rb"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d")       # -msg timestamp=on lines
_MESSAGE = re.compile(r"(Send|Receive) '([a-z-]+)' message\Z")
_STATE = re.compile(r"Change '([a-z-]+)' => '([a-z-]+)'\Z")
_TCP_INFO = re.compile(r"(pri|sec): seq/ack= (\d+)/(\d+) hdlen= (\d+) pdlen= (\d+) offset= (\d+) flags=(\d+)\Z")
_IP_INFO = re.compile(r"ppkt size = (-?\d+), ip_src = ([0-9.]+), ip_dst = ([0-9.]+), "
                      r"spkt size = (-?\d+), ip_src = ([0-9.]+), ip_dst = ([0-9.]+)\Z")
_MISCOMPARE = re.compile(r":? ?(.*?) = (-?\d+)\Z")          # ": primary pkt size = 125"
_MAX_LINE = 1 << 16

PRIMARY, SECONDARY = "primary", "secondary"


class TraceError(ValueError):
    """A QEMU trace that cannot be read; the message names the file and line."""


@dataclass
class TraceCheckpoint:
    """One checkpoint of the COLO thread, times in ns on the host's wall clock (None: not in the
    trace, e.g. the run ended mid-checkpoint)."""

    request_ns: int
    line: int                            # line of the request in its trace
    reply_ns: int | None = None
    stop_ns: int | None = None           # 'run' => 'stop'
    vmstate_send_ns: int | None = None
    vmstate_size_ns: int | None = None
    received_ns: int | None = None       # 'vmstate-received'
    loaded_ns: int | None = None
    run_ns: int | None = None            # 'stop' => 'run': the VMs run again

    @property
    def complete(self) -> bool:
        return self.run_ns is not None

    def as_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass
class CompareEvent:
    """One of colo-compare's trace events: ``kind`` is the event's name without ``colo_``
    (``compare_ip_info``, ``compare_tcp_info``, ``compare_udp_miscompare``,
    ``compare_icmp_miscompare``, ``old_packet_check_found``, ``compare_main``,
    ``compare_drop_packet``), ``fields`` its parsed arguments."""

    time_ns: int
    kind: str
    fields: dict
    line: int


@dataclass
class SideTrace:
    """One QEMU's trace file."""

    path: str
    side: str                                     # PRIMARY or SECONDARY
    lines: int
    events: int
    colo_start_ns: int | None                     # the first 'stop' => 'run' (COLO running)
    checkpoints: list[TraceCheckpoint]
    compare: list[CompareEvent]
    last_ns: int                                  # the last event's time
    warnings: list[str] = field(default_factory=list)


@dataclass
class QemuTrace:
    """The traces of one COLO run (the primary's, the secondary's, or both)."""

    primary: SideTrace | None
    secondary: SideTrace | None

    @property
    def sides(self) -> list[SideTrace]:
        return [s for s in (self.primary, self.secondary) if s is not None]

    @property
    def checkpoints(self) -> list[TraceCheckpoint]:
        """The COLO thread's checkpoints: the primary's record (the secondary's when only it was
        given)."""
        return (self.primary or self.secondary).checkpoints

    @property
    def warnings(self) -> list[str]:
        return [w for s in self.sides for w in s.warnings]

    def request_times(self) -> list[int]:
        """When the primary's COLO thread sent each ``checkpoint-request`` (ns)."""
        return [c.request_ns for c in self.checkpoints]

    def flush_times(self, flush_after_vmstate: bool = True) -> list[int]:
        """When colo-compare was flushed in each checkpoint: at ``vmstate-received`` (5.1+,
        ``flush_after_vmstate``) or at ``'run' => 'stop'`` (4.1-5.0).  A checkpoint the trace
        ends in before that point had no flush."""
        attr = "received_ns" if flush_after_vmstate else "stop_ns"
        return [t for t in (getattr(c, attr) for c in self.checkpoints) if t is not None]

    def compare_events(self, kind: str | None = None) -> list[CompareEvent]:
        if self.primary is None:
            return []
        return [e for e in self.primary.compare if kind is None or e.kind == kind]

    def scan_anchors(self) -> list[int]:
        """Times the expiry-scan timer fired, as far as the trace shows them: every
        ``colo_old_packet_check_found`` (one per scan that found a frame)."""
        out = []
        for e in self.compare_events("old_packet_check_found"):
            if not out or e.time_ns != out[-1]:
                out.append(e.time_ns)
        return out

    def describe(self) -> str:
        lines = []
        for s in self.sides:
            done = sum(1 for c in s.checkpoints if c.complete)
            lines.append(f"  {s.side:<9} {s.path}: {s.events} events, {len(s.checkpoints)} checkpoints "
                         f"({done} complete), {len(s.compare)} colo-compare events")
        return "\n".join(lines)

    def as_dict(self) -> dict:
        return {s.side: {"path": s.path, "events": s.events, "checkpoints": len(s.checkpoints),
                         "compare_events": dict(sorted(_kinds(s.compare).items()))} for s in self.sides}


def _kinds(events) -> dict:
    out: dict[str, int] = {}
    for e in events:
        out[e.kind] = out.get(e.kind, 0) + 1
    return out


def read_traces(paths) -> QemuTrace:
    """Read one or two trace files (either side, in any order) into a ``QemuTrace``."""
    if isinstance(paths, (str, bytes, os.PathLike)):
        paths = [paths]
    paths = list(paths)
    if not 1 <= len(paths) <= 2:
        raise TraceError(f"--qemu-trace: give the primary's trace, the secondary's, or both ({len(paths)} given)")
    got: dict[str, SideTrace] = {}
    for p in paths:
        t = read_trace(p)
        if t.side in got:
            raise TraceError(f"{os.fsdecode(p)}: a second {t.side} trace (the first: {got[t.side].path}); give "
                             f"one trace per side")
        got[t.side] = t
    return QemuTrace(got.get(PRIMARY), got.get(SECONDARY))


def read_trace(path) -> SideTrace:
    """Parse one QEMU trace file.  Raises ``TraceError`` (file and line) or ``OSError``."""
    name = os.fsdecode(path)
    with open(path, "rb") as fh:
        data = fh.read()
    return parse_trace(data, name)


def parse_trace(data: bytes, name: str = "<trace>") -> SideTrace:
    """Parse the bytes of one trace file (``read_trace`` without the file)."""
    warnings: list[str] = []
    raw_lines = data.split(b"\n")
    cut = raw_lines.pop()               # b"" when the file ends with a newline, as QEMU writes it
    if cut.strip():
        # QEMU writes whole lines; one without its newline was cut mid-write (QEMU killed)
        warnings.append(f"{name}: line {len(raw_lines) + 1} is cut short (the file ends mid-line): left out")
    events: list[tuple[int, str, str, int]] = []
    offset = 0
    for i, raw in enumerate(raw_lines, 1):
        where = f"{name}: line {i} (byte offset {offset})"
        offset += len(raw) + 1
        line = raw.rstrip(b"\r")
        if not line.strip() or _QEMU_MESSAGE.match(line):
            continue
        m = _LINE.match(line) if len(line) <= _MAX_LINE else None
        if m is None:
            shown = line[:60].decode("ascii", "backslashreplace")
            raise TraceError(f"{where}: not a QEMU trace line (expected TID@EPOCH.USEC:event, as "
                             f"-trace enable=colo_* -msg timestamp=on -D FILE writes): {shown!r}")
        _tid, sec, frac, ev, rest = m.groups()
        t = int(sec) * 1_000_000_000 + int(frac.ljust(9, b"0"))
        try:
            text = (rest or b"").decode("ascii")
        except UnicodeDecodeError:
            raise TraceError(f"{where}: {ev.decode()}: arguments are not ASCII") from None
        events.append((t, ev.decode(), text, i))
    if not events:
        raise TraceError(f"{name}: no QEMU trace lines (TID@EPOCH.USEC:colo_... ); run QEMU with "
                         f"-trace enable=colo_* -msg timestamp=on -D FILE")
    side = _side_of(events, name)
    checkpoints, colo_start = _checkpoints(events, side, name)
    compare = [_compare_event(t, ev, text, i, name) for t, ev, text, i in events
               if ev.startswith("colo_compare_") or ev == "colo_old_packet_check_found"]
    return SideTrace(name, side, len(raw_lines), len(events), colo_start, checkpoints, compare,
                     max(e[0] for e in events), warnings)


def _side_of(events, name: str) -> str:
    """The primary sends checkpoint-request and receives checkpoint-ready; the secondary the
    other way round.  colo-compare runs on the primary."""
    for _t, ev, text, _i in events:
        if ev in ("colo_send_message", "colo_receive_message"):
            m = _MESSAGE.match(text)
            if m and m.group(2) in ("checkpoint-request", "checkpoint-ready", "vmstate-send"):
                sent = m.group(1) == "Send"
                return PRIMARY if sent == (m.group(2) != "checkpoint-ready") else SECONDARY
        if ev.startswith("colo_compare_") or ev == "colo_old_packet_check_found":
            return PRIMARY
    raise TraceError(f"{name}: neither a primary's nor a secondary's COLO trace (no checkpoint message and no "
                     f"colo-compare event in it)")


_PRIMARY_STEPS = {("Receive", "checkpoint-reply"): "reply_ns", ("Send", "vmstate-send"): "vmstate_send_ns",
                  ("Send", "vmstate-size"): "vmstate_size_ns", ("Receive", "vmstate-received"): "received_ns",
                  ("Receive", "vmstate-loaded"): "loaded_ns"}
_SECONDARY_STEPS = {("Send", "checkpoint-reply"): "reply_ns", ("Receive", "vmstate-send"): "vmstate_send_ns",
                    ("Receive", "vmstate-size"): "vmstate_size_ns", ("Send", "vmstate-received"): "received_ns",
                    ("Send", "vmstate-loaded"): "loaded_ns"}


def _checkpoints(events, side: str, name: str) -> tuple[list[TraceCheckpoint], int | None]:
    request = ("Send" if side == PRIMARY else "Receive", "checkpoint-request")
    steps = _PRIMARY_STEPS if side == PRIMARY else _SECONDARY_STEPS
    out: list[TraceCheckpoint] = []
    cur: TraceCheckpoint | None = None
    colo_start = None
    for t, ev, text, i in events:
        if ev in ("colo_send_message", "colo_receive_message"):
            m = _MESSAGE.match(text)
            if m is None or (m.group(1) == "Send") != (ev == "colo_send_message"):
                raise TraceError(f"{name}: line {i}: {ev}: cannot read {text!r}")
            key = (m.group(1), m.group(2))
            if key == request:
                cur = TraceCheckpoint(t, i)
                out.append(cur)
            elif cur is not None and key in steps and getattr(cur, steps[key]) is None:
                setattr(cur, steps[key], t)
        elif ev == "colo_vm_state_change":
            m = _STATE.match(text)
            if m is None:
                raise TraceError(f"{name}: line {i}: colo_vm_state_change: cannot read {text!r}")
            if m.groups() == ("run", "stop") and cur is not None and cur.stop_ns is None:
                cur.stop_ns = t
            elif m.groups() == ("stop", "run"):
                if cur is None:
                    if colo_start is None:
                        colo_start = t
                elif cur.run_ns is None:
                    cur.run_ns = t          # (the secondary sends 'vmstate-loaded' after it)
    return out, colo_start


def _compare_event(t: int, ev: str, text: str, i: int, name: str) -> CompareEvent:
    kind = ev[len("colo_"):]
    fields: dict | None = {}
    if kind == "compare_tcp_info":
        m = _TCP_INFO.match(text)
        fields = None if m is None else {
            "side": m.group(1), "seq": int(m.group(2)), "ack": int(m.group(3)), "hdlen": int(m.group(4)),
            "pdlen": int(m.group(5)), "offset": int(m.group(6)), "flags": int(m.group(7))}
    elif kind == "compare_ip_info":
        m = _IP_INFO.match(text)
        fields = None if m is None else {
            "psize": int(m.group(1)), "psrc": m.group(2), "pdst": m.group(3),
            "ssize": int(m.group(4)), "ssrc": m.group(5), "sdst": m.group(6)}
    elif kind in ("compare_udp_miscompare", "compare_icmp_miscompare"):
        m = _MISCOMPARE.match(text)
        fields = None if m is None else {"what": m.group(1), "size": int(m.group(2))}
    elif kind == "old_packet_check_found":
        fields = {"creation_ms": int(text)} if re.fullmatch(r"-?\d+", text) else None
    else:
        fields = {"text": text.lstrip(": ").strip()}
    if fields is None:
        raise TraceError(f"{name}: line {i}: {ev}: cannot read its arguments {text!r}")
    return CompareEvent(t, kind, fields, i)


def scan_schedule(anchors: list[int], cycle_ns: int, start_ns: int, end_ns: int,
                  drift_ns: int | None = None) -> tuple[list[int], int]:
    """The expiry-scan ticks of a real run from the times the trace shows the timer firing.

    QEMU re-arms the timer at ``qemu_clock_get_ms(QEMU_CLOCK_HOST) + expired_scan_cycle`` after
    each scan (check_old_packet_regular), i.e. from when the callback *ran*, truncated to the ms:
    every tick comes a little late and the grid drifts (about 0.1-1 ms a tick in our runs, and
    whole stalls of the iothread now and then).  A fixed grid is therefore wrong by tens or
    hundreds of ms after a minute.  The trace shows a firing at every scan that found an old
    frame (``colo_old_packet_check_found``); the grid is pinned there.  Between two anchors the
    ticks are spread evenly (the nearest whole number of cycles); before the first and after
    the last they step by ``cycle_ns + drift_ns``, the drift a tick measured between anchors
    (the median; ``drift_ns`` overrides).  Returns (ticks from ``start_ns`` to ``end_ns``, the
    drift used)."""
    anchors = sorted(set(anchors))
    if drift_ns is None:
        per_tick = []
        for a, b in zip(anchors, anchors[1:]):
            n = round((b - a) / cycle_ns)
            if n >= 1:
                d = ((b - a) - n * cycle_ns) / n
                if abs(d) < cycle_ns * 0.02:        # a stall in between says nothing of the drift
                    per_tick.append(d)
        per_tick.sort()
        drift_ns = int(per_tick[len(per_tick) // 2]) if per_tick else 0
    step = cycle_ns + drift_ns
    ticks: list[int] = []
    if not anchors:
        return ticks, drift_ns
    first = anchors[0]
    k = max(0, (first - start_ns) // step)
    t = first - k * step
    while t < first:
        if t >= start_ns:
            ticks.append(t)
        t += step
    for a, b in zip(anchors, anchors[1:]):
        n = max(1, round((b - a) / step))
        ticks.extend(a + (b - a) * j // n for j in range(n))
    t = anchors[-1]
    while t <= end_ns:
        ticks.append(t)
        t += step
    return ticks, drift_ns
