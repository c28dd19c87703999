"""Judge a replay's checkpoint requests against a real COLO run's (its QEMU trace).

colo-compare does not send a checkpoint request itself in KVM COLO: it *notifies* the COLO
thread (``colo_compare_inconsistency_notify`` -> ``colo_checkpoint_notify``), which sends
``checkpoint-request`` when it gets round to it.  The replay gives the notifications; what the
COLO thread makes of them is modelled here, from migration/colo.c:

* **Coalescing (5.1+, bb70b66ed7).**  A notification sets ``colo_checkpoint_event``; the thread
  waits on it, runs a checkpoint, and resets it just before flushing colo-compare
  (``qemu_event_reset`` before ``colo_notify_compares_event``, at 'vmstate-received').  So a
  notification during a checkpoint before its flush is absorbed by it; one after the flush
  starts the next checkpoint as soon as this one ends ('stop' => 'run').  4.1-5.0 wait on a
  counting semaphore instead: every notification is a checkpoint of its own, run one after
  the other.
* **The periodic timer** (x-checkpoint-delay) is armed when COLO starts and re-armed at now +
  delay by *every* notification, its own firings included (``colo_checkpoint_notify``).
* **Timing.**  The real checkpoints' times (request, flush, resume) come from the trace; a
  notification while the thread is idle is a request at once (the trace shows 0.1-1 ms of
  wake-up).  The expiry timer's drift is handled by the replay itself (the trace pins its
  ticks, ``qemutrace.scan_schedule``).

Every real request is then matched one-to-one with a predicted one within ``tolerance_ms``
(greedy in time order), and classed by the predicted cause; an unmatched real request is
*missed* (``at an undefined read`` when the replay flagged a read past a frame's end there: QEMU
compared heap bytes no replay can know), an unmatched predicted one *extra*, unless the next
real request came late after it (within ``WAKE_MS``: the thread woke late on a loaded host):
if that request matched a re-notification of the same standing mismatch, the checkpoint was
this notification's, absorbed; if it matched nothing, it is this notification's request, matched
(both ``late``).
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections import Counter
from dataclasses import dataclass, field

from ..engine.constants import MS

PERIODIC = "periodic"          # the x-checkpoint-delay timer's own request
WAKE_MS = 50                   # the most a loaded host was seen to delay the COLO thread's request (22 ms)
AFTER_INPUT = "after the capture ended (nothing the replay read can have caused it)"


@dataclass
class Predicted:
    time_ns: int                 # when the COLO thread would send checkpoint-request
    cause: str                   # the notification's cause (miscompare, ack_gate, expired, ..., periodic)
    notify_ns: int               # the notification that made it
    conn: int = -1
    primary_frame: int = -1
    secondary_frame: int = -1


@dataclass
class RequestJudgement:
    """Real checkpoint requests against predicted ones (see the module's text)."""

    tolerance_ms: float
    checkpoint_delay_ms: int
    delay_source: str                         # "given", "from the trace" or "QEMU's default"
    coalescing: bool
    real: int
    predicted: int
    matched: Counter                          # by predicted cause
    missed: list = field(default_factory=list)        # dicts: time_ns, line, why
    extra: list = field(default_factory=list)         # dicts: time_ns, cause, conn, frames
    absorbed: int = 0                         # notifications a running checkpoint took in
    notifications: int = 0
    max_missed_pct: float = 2.0
    max_extra_pct: float = 2.0
    cross_check: dict = field(default_factory=dict)   # colo-compare's own trace events vs the replay
    late: list = field(default_factory=list)  # notifications whose checkpoint the thread started late
    read_order: dict | None = None            # secondary frames colo-compare read late (offline/read_order.py)

    @property
    def after_input(self) -> int:
        """Real requests missed after the capture's last frame (a run's teardown): not judged."""
        return sum(1 for m in self.missed if m["why"] == AFTER_INPUT)

    @property
    def compare_real(self) -> int:
        """Real requests colo-compare triggered: all but those the periodic timer explains and
        those after the capture's last frame."""
        return self.real - self.matched.get(PERIODIC, 0) - self.after_input

    @property
    def compare_matched(self) -> int:
        return sum(n for c, n in self.matched.items() if c != PERIODIC)

    @property
    def compare_predicted(self) -> int:
        return self.predicted - self.matched.get(PERIODIC, 0) - sum(1 for e in self.extra if e["cause"] == PERIODIC)

    @property
    def matched_pct(self) -> float:
        return 100.0 * self.compare_matched / self.compare_real if self.compare_real else 100.0

    @property
    def extra_pct(self) -> float:
        n = sum(1 for e in self.extra if e["cause"] != PERIODIC)
        return 100.0 * n / self.compare_predicted if self.compare_predicted else 0.0

    @property
    def ok(self) -> bool:
        return 100.0 - self.matched_pct <= self.max_missed_pct and self.extra_pct <= self.max_extra_pct

    def missed_by_why(self) -> Counter:
        return Counter(m["why"] for m in self.missed)

    def extra_by_cause(self) -> Counter:
        return Counter(e["cause"] for e in self.extra)

    def as_dict(self) -> dict:
        return {"ok": self.ok, "tolerance_ms": self.tolerance_ms, "checkpoint_delay_ms": self.checkpoint_delay_ms,
                "checkpoint_delay_source": self.delay_source, "coalescing": self.coalescing,
                "real": self.real, "predicted": self.predicted,
                "colo_compare_triggered": self.compare_real, "matched": dict(self.matched),
                "matched_colo_compare": self.compare_matched, "matched_pct": round(self.matched_pct, 3),
                "missed": len(self.missed) - self.after_input, "after_capture_end": self.after_input,
                "missed_by_why": dict(self.missed_by_why()),
                "extra": len(self.extra), "extra_by_cause": dict(self.extra_by_cause()),
                "extra_pct": round(self.extra_pct, 3), "max_missed_pct": self.max_missed_pct,
                "max_extra_pct": self.max_extra_pct, "notifications": self.notifications,
                "absorbed": self.absorbed, "late_wakeups": self.late, "cross_check": self.cross_check,
                "read_order": self.read_order,
                "missed_list": self.missed,
                "extra_list": self.extra}

    def format(self) -> str:
        def by(c: Counter) -> str:
            return ", ".join(f"{k} {v}" for k, v in c.most_common()) or "none"
        verdict = "OK" if self.ok else "DISAGREE"
        lines = [f"checkpoint requests vs the real run ({verdict}; within {self.tolerance_ms:g} ms, "
                 f"x-checkpoint-delay {self.checkpoint_delay_ms} ms {self.delay_source}):",
                 f"  real           {self.real} checkpoint-request(s) in the trace: {self.compare_real} triggered by "
                 f"colo-compare, {self.matched.get(PERIODIC, 0)} periodic (x-checkpoint-delay)"
                 + (f", {self.after_input} after the capture ended (not judged)" if self.after_input else ""),
                 f"  matched        {self.compare_matched} of {self.compare_real} colo-compare-triggered "
                 f"({self.matched_pct:.1f}%; at most {self.max_missed_pct:g}% may be missed): "
                 f"{by(Counter({k: v for k, v in self.matched.items() if k != PERIODIC}))}",
                 f"  missed         {len(self.missed) - self.after_input}: "
                 f"{by(Counter({k: v for k, v in self.missed_by_why().items() if k != AFTER_INPUT}))}",
                 f"  extra          {len(self.extra)} predicted without a real one ({self.extra_pct:.1f}% of "
                 f"colo-compare's; at most {self.max_extra_pct:g}%): {by(self.extra_by_cause())}",
                 f"  notifications  {self.notifications} from the replay, {self.absorbed} absorbed by a "
                 f"checkpoint already running ({'coalescing event, 5.1+' if self.coalescing else 'semaphore, 4.1-5.0: none absorbed'})"
                 + "".join(f"; {len(xs)} {what} the COLO thread started late ("
                           + ", ".join(f"{x['late_ms']:g}" for x in xs[:5]) + " ms after the notification)"
                           for what, xs in (("by one", [x for x in self.late if not x["matched"]]),
                                            ("matched to the request", [x for x in self.late if x["matched"]]))
                           if xs)]
        for name, c in self.cross_check.items():
            lines.append(f"  trace check    {name}: {c['agree']} of {c['trace']} in the trace agree with the replay "
                         f"({c['replay']} in the replay){'; first disagreement: ' + c['first'] if c.get('first') else ''}")
        moved = (self.read_order or {}).get("moved")
        if moved:
            lines.append(f"  read order     {len(moved)} secondary_in frame(s) colo-compare read after primary_in frames "
                         f"captured later (its iothread woke late; the trace's comparisons show it): "
                         + ", ".join(f"message {m['secondary_message']} after primary_in {m['read_after_primary']} "
                                     f"(+{m['later_us']:g} us)" for m in moved[:5]))
        for m in [m for m in self.missed if m["why"] != AFTER_INPUT][:10]:
            lines.append(f"    missed  {_clock(m['time_ns'])}  trace line {m['line']}: {m['why']}")
        for e in self.extra[:10]:
            lines.append(f"    extra   {_clock(e['time_ns'])}  {e['cause']} conn {e['conn']} "
                         f"P#{e['primary_frame']} S#{e['secondary_frame']}")
        return "\n".join(lines)


def _clock(ns: int) -> str:
    import datetime
    t = datetime.datetime.fromtimestamp(ns // 1_000_000_000, datetime.timezone.utc)
    return f"{t:%H:%M:%S}.{ns % 1_000_000_000 // 1000:06d}Z"


def infer_checkpoint_delay_ms(request_times: list[int]) -> int | None:
    """x-checkpoint-delay as a trace shows it: the most common gap (whole ms) between one
    request and the next among gaps of 1 s or more, seen at least twice."""
    gaps = Counter(round((b - a) / MS) for a, b in zip(request_times, request_times[1:]) if b - a >= 1000 * MS)
    if not gaps:
        return None
    gap = gaps.most_common(1)[0][0]
    # a gap a few ms off is the same timer (the request is sent a little after the firing)
    near = sum(v for g, v in gaps.items() if abs(g - gap) <= 2)
    return gap if near >= 2 else None


def judge_requests(timeline_events, trace, *, coalescing: bool, delay_ms: int | None, tolerance_ms: float = 10.0,
                   max_missed_pct: float = 2.0, max_extra_pct: float = 2.0) -> RequestJudgement:
    """Predict the COLO thread's requests from the replay's notifications (``timeline_events``,
    the timeline's DataFrame) and the real checkpoints (``trace``, a ``QemuTrace``), and judge
    them against the trace's real requests.  ``delay_ms``: x-checkpoint-delay (None: from the
    trace, else QEMU's default 20000)."""
    tol = int(tolerance_ms * MS)
    cps = trace.checkpoints
    real = [c.request_ns for c in cps]
    source = "given"
    if delay_ms is None:
        delay_ms = infer_checkpoint_delay_ms(real)
        source = "from the trace"
        if delay_ms is None:
            delay_ms, source = 20000, "QEMU's default"
    ev = timeline_events
    req = ev[ev["kind"] == "checkpoint_request"]
    notes = sorted(zip(req["time_ns"].astype("int64").tolist(), req["cause"].astype(str).tolist(),
                       req["conn"].tolist(), req["primary_frame"].tolist(), req["secondary_frame"].tolist()))
    und = ev[ev["kind"] == "undefined"]["time_ns"].astype("int64").tolist()
    und.sort()
    frames = ev[ev["kind"].isin(["release", "secondary_dropped", "unsupported", "checkpoint_request"])]
    last_input = int(frames["time_ns"].max()) if len(frames) else None
    side = trace.primary or trace.secondary
    start = side.colo_start_ns if side.colo_start_ns is not None else (real[0] if real else 0)
    end = max([side.last_ns, *(n[0] for n in notes[-1:])])
    predicted, absorbed = _colo_thread(notes, cps, coalescing, delay_ms * MS, start, end, tol)
    # one-to-one matching, greedy in time order
    ptimes = [p.time_ns for p in predicted]
    used = [False] * len(predicted)
    matched: Counter = Counter()
    missed_at: dict[int, dict] = {}          # real request index -> its missed entry, in time order
    for n, (c, r) in enumerate(zip(cps, real)):
        j = bisect_left(ptimes, r - tol)
        hit = None
        while j < len(ptimes) and ptimes[j] <= r + tol:
            if not used[j]:
                hit = j
                break
            j += 1
        if hit is None:
            k = bisect_right(und, r)
            if last_input is not None and r > last_input + tol:
                why = AFTER_INPUT
            elif k and r - und[k - 1] <= tol:
                why = "at an undefined read (QEMU compared bytes past a frame's end: heap contents)"
            else:
                why = "no notification predicted"
            missed_at[n] = {"time_ns": r, "line": c.line, "why": why}
        else:
            used[hit] = True
            matched[predicted[hit].cause] += 1
    # A notification the thread was slow to act on: the next real request comes more than the
    # tolerance after it (but within WAKE_MS), and that request matched a later notification
    # (colo-compare re-notifies on every arrival while the mismatch stands, spec Q16).  The real
    # checkpoint is this notification's, late: it is absorbed, not extra.
    # Or that request matched nothing at all (no re-notification came before it): it is this
    # notification's, late, and it is matched, not missed.  Both sides are observed: the trace
    # shows colo-compare's own compare at the notification's time and the COLO thread's
    # 'checkpoint-request' after it (a loaded CI host: 15 ms).  A request can only follow its
    # notification, and only the first real request after it can be the one it caused.
    late = []
    for k, (p, u) in enumerate(zip(predicted, used)):
        if u or p.notify_ns != p.time_ns:
            continue
        j = bisect_right(real, p.time_ns)
        if j >= len(real) or real[j] - p.time_ns > WAKE_MS * MS:
            continue
        if any(used[m] for m in range(k + 1, bisect_right(ptimes, real[j] + tol))):
            own = False                            # absorbed by the re-notification's checkpoint
        elif j in missed_at:          # (even after the capture's end: its last frames caused it)
            own = True                             # the request itself, late
            del missed_at[j]
            matched[p.cause] += 1
        else:
            continue
        used[k] = True
        late.append({"time_ns": p.time_ns, "cause": p.cause, "request_ns": real[j],
                     "late_ms": round((real[j] - p.time_ns) / MS, 3), "matched": own})
    missed = list(missed_at.values())
    extra = [{"time_ns": p.time_ns, "cause": p.cause, "conn": p.conn, "primary_frame": p.primary_frame,
              "secondary_frame": p.secondary_frame} for p, u in zip(predicted, used) if not u]
    return RequestJudgement(tolerance_ms, delay_ms, source, coalescing, len(real), len(predicted), matched,
                            missed, extra, absorbed + sum(not x["matched"] for x in late), len(notes), max_missed_pct, max_extra_pct,
                            cross_check(ev, trace, tol), late)


def cross_check(ev, trace, tol: int) -> dict:
    """colo-compare's own trace events against the replay's decisions, where they overlap:

    * ``colo_old_packet_check_found`` (a scan found a frame older than compare_timeout): the
      replay's ``expired`` notification at the same tick (within ``tol``);
    * ``colo_compare_udp_miscompare`` / ``icmp`` (both sides' frame sizes, in order): the
      replay's non-TCP miscompares, the same sizes in the same order.

    (TCP miscompares have no event of their own: the TCP memcmps, ``ip_info`` / ``tcp_info``,
    are walked by the replay itself, offline/trace_oracle.py.)"""
    out = {}
    req = ev[ev["kind"] == "checkpoint_request"]
    expired = sorted(req.loc[req["cause"] == "expired", "time_ns"].astype("int64").tolist())
    found = trace.scan_anchors()
    agree, first = 0, None
    for t in found:
        j = bisect_left(expired, t - tol)
        if j < len(expired) and expired[j] <= t + tol:
            agree += 1
        elif first is None:
            first = f"the scan at {_clock(t)} found an old frame, the replay none"
    scans = len({round(t / tol) for t in expired})
    out["old_packet_check_found"] = {"trace": len(found), "replay": scans, "agree": agree, "first": first}
    sizes = []
    pending = None
    for e in trace.compare_events():
        if e.kind in ("compare_udp_miscompare", "compare_icmp_miscompare"):
            if e.fields["what"].lower().startswith("primary"):
                pending = e.fields["size"]
            elif pending is not None:
                sizes.append((pending, e.fields["size"]))
                pending = None
    mis = req[(req["cause"] == "miscompare") & (req["tcp_seq"] < 0)]
    ours = list(zip(mis["size"].tolist(), mis["other_size"].tolist()))
    agree = 0
    first = None
    for k, (a, b) in enumerate(zip(sizes, ours)):
        if tuple(a) == tuple(b):
            agree += 1
        elif first is None:
            first = f"#{k + 1}: trace sizes {a[0]}/{a[1]}, replay {b[0]}/{b[1]}"
    if first is None and len(sizes) != len(ours):
        first = f"the trace has {len(sizes)}, the replay {len(ours)}"
    out["udp/icmp miscompares"] = {"trace": len(sizes), "replay": len(ours), "agree": agree, "first": first}
    return out


def _colo_thread(notes, cps, coalescing: bool, delay_ns: int, start_ns: int, end_ns: int, tol: int):
    """The COLO thread's requests given the notifications ``notes`` (time, cause, conn, P#, S#)
    and the real checkpoints ``cps`` (their request, flush and resume times), up to ``end_ns``
    (the trace's last event: the periodic timer fires no later)."""
    windows = [(c.request_ns, c.received_ns if coalescing else c.stop_ns, c.run_ns) for c in cps]
    wstart = [w[0] for w in windows]
    predicted: list[Predicted] = []
    absorbed = 0
    pending_after: dict[int, int] = {}       # checkpoint index -> requests owed when it ends
    arm = start_ns                           # the periodic timer: last notification
    i = 0

    def checkpoint_at(t: int):
        k = bisect_right(wstart, t) - 1
        if k >= 0:
            r, f, e = windows[k]
            if e is None or t < e:
                return k, f
        return None, None

    triggered = [False] * len(windows)     # a predicted request already stands for this checkpoint

    def claim(t: int) -> None:
        # the real checkpoint starting within tol after a predicted request is that request's
        k = bisect_left(wstart, t)
        if k < len(wstart) and wstart[k] - t <= tol:
            triggered[k] = True

    def notify(t: int, cause: str, conn=-1, pf=-1, sf=-1):
        nonlocal absorbed
        k, f = checkpoint_at(t)
        if k is not None:
            if not triggered[k] and t - windows[k][0] <= tol:
                # the notification that started this checkpoint, predicted a little late
                triggered[k] = True
                predicted.append(Predicted(t, cause, t, conn, pf, sf))
                return
            if coalescing and (f is None or t < f):
                absorbed += 1
                return
            owed = pending_after.get(k, 0)
            if coalescing and owed:
                absorbed += 1
                return
            pending_after[k] = owed + 1
            e = windows[k][2]
            predicted.append(Predicted(e, cause, t, conn, pf, sf))
            claim(e)
            return
        if predicted and t - predicted[-1].time_ns < tol and coalescing:
            absorbed += 1                    # the thread is already on its way to this request
            return
        predicted.append(Predicted(t, cause, t, conn, pf, sf))
        claim(t)

    while True:
        t_next = notes[i][0] if i < len(notes) else None
        fire = arm + delay_ns if delay_ns > 0 else None
        if fire is not None and fire <= end_ns and (t_next is None or fire <= t_next):
            notify(fire, PERIODIC)
            arm = fire
            continue
        if t_next is None:
            break
        t, cause, conn, pf, sf = notes[i]
        notify(t, cause, conn, pf, sf)
        arm = t
        i += 1
    predicted.sort(key=lambda p: p.time_ns)
    if not coalescing:
        predicted = _serialise(predicted, windows)
    return predicted, absorbed


def _serialise(predicted: list[Predicted], windows) -> list[Predicted]:
    """4.1-5.0: a semaphore, one checkpoint per notification, one after the other: a request
    owed while a checkpoint runs is sent when it ends, the next one when that one ends, ..."""
    ends = sorted(w[2] for w in windows if w[2] is not None)
    out = []
    busy_until = None
    for p in predicted:
        t = p.time_ns
        if busy_until is not None and t < busy_until:
            t = busy_until
        out.append(Predicted(t, p.cause, p.notify_ns, p.conn, p.primary_frame, p.secondary_frame))
        k = bisect_right(ends, t)
        busy_until = ends[k] if k < len(ends) else None
    return out
