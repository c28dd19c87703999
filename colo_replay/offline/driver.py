"""Offline replay: two captures in, a timeline out.

The driver merges the primary's and the secondary's frames by arrival time (capture timestamp
+ per-side offset + per-side transport delay; at equal times the primary goes first), feeds
them to the ``Engine``, runs the expiry scans on their tick grid and the COLO checkpoint cycle
(``CheckpointModel``) in between, and collects every event in a ``TimelineCollector``.

It is a discrete-event loop over three clocks: the next frame, the engine's next scan and the
checkpoint model's next action; whichever comes first is handled first.  The per-frame path is
kept short (one comparison against a precomputed wake-up time, one ``Engine.feed``).
"""

from __future__ import annotations

from bisect import bisect_right
from itertools import islice
from operator import le, lt
from dataclasses import dataclass, field, asdict
from typing import Callable

from ..captures.base import DEFAULT_MAX_GAP_NS
from ..captures.errors import CaptureError
from .checkpoints import CheckpointModel
from .resync import SUPERSEDE, TRIM, Resync
from ..engine.compare import Engine
from ..engine.constants import MS, NEVER as _NEVER
from ..engine.events import Cause, EventKind
from ..engine.profiles import CompareConfig, get_profile
from ..output.timeline import CHECKPOINT_CAUSE_CODES, TimelineCollector

# The engine's events carry EventKind members, so a kind is tested by identity: "==" on an
# IntEnum goes through the generic comparison, several times slower, for every event.
_CKPT = EventKind.CHECKPOINT_REQUEST
_RELEASE = EventKind.RELEASE
_SDROP = EventKind.SECONDARY_DROPPED
_IDLE = EventKind.IDLE_CHECKPOINTS
_SUPERSEDED = EventKind.SUPERSEDED
_REQUEUED = EventKind.REQUEUED
_C_AHEAD = Cause.AHEAD
_SUPERSEDE, _TRIM = SUPERSEDE, TRIM


@dataclass
class ReplayOptions:
    """Everything a replay can be told.  Times are integer nanoseconds unless named _ms."""

    qemu: str = "7.2"
    compare_timeout: int | None = None
    expired_scan_cycle: int | None = None
    max_queue_size: int | None = None
    vnet_hdr_support: bool = False
    vnet_hdr_len: int = 0                  # bytes of vnet header at the start of every captured frame
    primary_offset_ns: int = 0
    secondary_offset_ns: int = 0
    primary_delay_ns: int = 0
    secondary_delay_ns: int = 0
    scan_phase_ns: int = 0                 # scan grid start, relative to the first arrival
    checkpoint_duration_ns: int = 100 * MS
    checkpoint_delay_ns: int | None = None  # x-checkpoint-delay; None = profile default (20000 ms)
    checkpoints_at: list[int] | None = None  # measured flush times (replay clock, ns)
    end_ns: int | None = None              # keep the clock running to here after the last frame
    end_after_ns: int | None = None        # ... or this long after the last frame (--until +5s)
    max_gap_ns: int | None = DEFAULT_MAX_GAP_NS   # larger timestamp jumps are errors; None = accepted
    bpf_filter: str | None = None
    alignment: str | None = None           # how secondary_offset_ns was obtained (--align auto)
    after_checkpoint: str = "raw"          # "resync": model what a checkpoint does to the SVM (offline/resync.py)
    first_arrival_ns: int | None = None    # the first frame's arrival when the readers start after it
                                           # (sweep: frames filtered out when the pair was prepared)

    def compare_config(self) -> CompareConfig:
        return CompareConfig(self.compare_timeout, self.expired_scan_cycle, self.max_queue_size,
                             self.vnet_hdr_support or self.vnet_hdr_len > 0)


@dataclass
class SideStats:
    path: str = ""
    frames: int = 0              # records read from the capture
    fed: int = 0                 # frames given to the engine
    truncated: int = 0           # cut by a snaplen: not compared
    filtered: int = 0            # removed by --filter
    format: str = ""
    linktypes: list = field(default_factory=list)
    synthesised_ethernet: bool = False
    last_ns: int | None = None   # last arrival read (bounds the other side after a read error)
    superseded: int = 0          # not fed: a resynchronised SVM would not send it (--after-checkpoint resync)
    held: int = 0                # resync: arrived while a modelled checkpoint had the VMs stopped, fed at its end


@dataclass
class ReplayResult:
    collector: TimelineCollector
    options: ReplayOptions
    knobs: dict
    primary: SideStats
    secondary: SideStats
    checkpoints: int
    checkpoint_requests: int
    partial: bool = False
    error: str | None = None
    still_queued: tuple = (0, 0)       # (primary, secondary) frames left in the queues at the end
    interrupted: bool = False          # stopped by KeyboardInterrupt (SIGINT): results up to it
    warnings: list = field(default_factory=list)   # surprising situations, one line each
    resync: dict | None = None         # --after-checkpoint resync: superseded / trimmed / requeued counts

    def as_dict(self) -> dict:
        d = asdict(self)
        d.pop("collector")
        return d


class _Side:
    """A cursor over one capture's batches, with arrival times computed per batch.

    ``vnets`` is the batch's per-frame vnet header lengths when the reader gives them
    (``Batch.vnet_lens``, e.g. a chardev capture with vnet_hdr_support), else None: every frame
    then has the side's constant ``vnet``.  ``simple`` says that no frame of the batch needs
    more than a plain ``Engine.feed`` (none cut by a snaplen, no BPF filter, no per-frame vnet).
    """

    __slots__ = ("reader", "stats", "shift", "vnet", "bpf", "it", "ts", "frames", "origs", "vnets",
                 "first", "i", "n", "simple", "keys", "ordered")

    def __init__(self, reader, stats: SideStats, shift: int, vnet: int, bpf):
        self.reader = reader
        self.stats = stats
        self.shift = shift
        self.vnet = vnet
        self.bpf = bpf
        self.it = reader.batches()
        self.ts = self.frames = self.origs = ()
        self.vnets = None
        self.first = 1
        self.i = self.n = 0
        self.simple = True
        self.keys = None         # merge keys of the batch (see _loop), made when first needed
        self.ordered = True      # the batch's timestamps never decrease

    def refill(self) -> bool:
        """Load the next non-empty batch; False at the end of the capture."""
        while True:
            batch = next(self.it, None)
            if batch is None:
                self.n = self.i = 0
                return False
            n = len(batch.frames)
            if not n:
                continue
            shift = self.shift
            ts = batch.timestamps
            self.ts = [t + shift for t in ts] if shift else ts
            self.frames = frames = batch.frames
            self.origs = origs = batch.orig_lens
            self.vnets = vnets = getattr(batch, "vnet_lens", None)
            if vnets is not None and len(vnets) != n:
                raise ValueError(f"{self.stats.path}: batch of {n} frames has {len(vnets)} vnet lengths")
            # Is any frame shorter than it was on the wire?  The capture readers count them;
            # else one pass in C over the batch.
            cut = getattr(batch, "truncated", None)
            if cut is None:
                cut = any(map(lt, map(len, frames), origs))
            self.simple = vnets is None and self.bpf is None and not cut
            self.first = batch.first_frame
            self.i = 0
            self.n = n
            self.keys = None
            st = self.stats
            st.frames += n
            st.last_ns = self.ts[-1]
            return True

    def admit(self, i: int, t: int, side: int, add_row):
        """The checks of a frame in a batch that is not ``simple``: returns the vnet length to
        feed it with, or None when the frame is not fed (cut by a snaplen, or filtered out)."""
        frame = self.frames[i]
        orig = self.origs[i]
        if len(frame) < orig:
            # Cut by a snaplen: QEMU saw the whole frame, we cannot compare it honestly.
            self.stats.truncated += 1
            add_row(t, EventKind.UNCOMPARABLE, Cause.TRUNCATED, side, self.first + i, orig)
            return None
        if self.bpf is not None and not self.bpf.matches(frame, orig):
            self.stats.filtered += 1
            return None
        return self.vnet if self.vnets is None else self.vnets[i]


def run_replay(primary_reader, secondary_reader, options: ReplayOptions | None = None,
               progress: Callable[[int], None] | None = None) -> ReplayResult:
    """Replay two open capture readers (see ``colo_replay.captures.open_capture``).

    ``progress`` is called now and then with the number of frames processed so far.  A
    ``CaptureError`` raised by a reader propagates after the events so far are kept in
    ``ReplayResult``: callers that want partial results use ``replay_partial``.
    """
    result, exc = replay_partial(primary_reader, secondary_reader, options, progress)
    if exc is not None:
        raise exc
    return result


def replay_partial(primary_reader, secondary_reader, options: ReplayOptions | None = None,
                   progress: Callable[[int], None] | None = None):
    """Like ``run_replay`` but returns ``(result, exception_or_None)``; on a read error the result
    holds everything up to the bad frame and is marked ``partial``."""
    opts = options or ReplayOptions()
    profile = get_profile(opts.qemu)
    config = opts.compare_config()
    resolved = config.resolve(profile)       # raises ValueError on knobs QEMU lacks
    vnet = opts.vnet_hdr_len
    if vnet and not resolved.vnet_hdr_support:
        raise ValueError("--vnet-hdr-len needs vnet_hdr_support")
    bpf = None
    if opts.bpf_filter:
        from ..captures.bpf import BpfFilter
        bpf = BpfFilter(opts.bpf_filter)
    for rd in (primary_reader, secondary_reader):
        if hasattr(rd, "max_gap_ns"):
            rd.max_gap_ns = opts.max_gap_ns
    pstats = SideStats(path=str(primary_reader.path))
    sstats = SideStats(path=str(secondary_reader.path))
    sides = (
        _Side(primary_reader, pstats, opts.primary_offset_ns + opts.primary_delay_ns, vnet, bpf),
        _Side(secondary_reader, sstats, opts.secondary_offset_ns + opts.secondary_delay_ns, vnet, bpf),
    )
    rec = TimelineCollector()
    have = [False, False]
    failed: list = []
    for i, side in enumerate(sides):
        try:
            have[i] = side.refill()
        except CaptureError as exc:
            failed.append(exc)
    firsts = [s.ts[0] for s, h in zip(sides, have) if h]
    if opts.first_arrival_ns is not None:
        firsts = [opts.first_arrival_ns]
    start = (min(firsts) if firsts else 0) + opts.scan_phase_ns
    engine = Engine(profile, config, start_ns=start)
    delay = opts.checkpoint_delay_ns
    if delay is None:
        delay = profile.default_checkpoint_delay * MS
    model = CheckpointModel(start - opts.scan_phase_ns, opts.checkpoint_duration_ns, delay,
                            profile.checkpoint_requests_coalesce, opts.checkpoints_at)
    limit = _NEVER if not failed else -_NEVER
    end = opts.end_ns
    if end is None and opts.checkpoints_at:
        end = max(opts.checkpoints_at)      # every measured flush happened: replay them all
    resync = None
    if opts.after_checkpoint == "resync":
        resync = Resync(engine, resolved.compare_timeout)
    elif opts.after_checkpoint != "raw":
        raise ValueError(f"after_checkpoint must be 'resync' or 'raw', not {opts.after_checkpoint!r}")
    interrupted = False
    try:
        end = _loop(engine, model, sides, have, rec, progress, limit, failed, end, opts, resync)
    except KeyboardInterrupt:
        # SIGINT: keep what was collected; the caller reports it as interrupted (exit 130).
        interrupted = True
    error = failed[0] if failed else None
    for side, st in zip(sides, (pstats, sstats)):
        rd = side.reader
        st.format = getattr(rd, "format", "")
        st.linktypes = sorted(getattr(rd, "linktypes", ()))
        st.synthesised_ethernet = bool(getattr(rd, "synthesised_ethernet", False))
    result = ReplayResult(
        collector=rec, options=opts, knobs={"qemu": profile.name, **resolved.as_dict(),
                                            "checkpoint_duration_ms": opts.checkpoint_duration_ns / MS,
                                            "checkpoint_delay_ms": model.delay_ns / MS,
                                            "checkpoints": "measured" if opts.checkpoints_at is not None else "model",
                                            "until_ns": end,
                                            "vnet_hdr_len": vnet,
                                            "primary_offset_ms": opts.primary_offset_ns / MS,
                                            "secondary_offset_ms": opts.secondary_offset_ns / MS,
                                            "scan_phase_ms": opts.scan_phase_ns / MS,
                                            "filter": opts.bpf_filter,
                                            "alignment": opts.alignment,
                                            "after_checkpoint": opts.after_checkpoint},
        primary=pstats, secondary=sstats,
        checkpoints=model.count,
        checkpoint_requests=model.requests,
        partial=error is not None or interrupted, error=str(error) if error else None,
        still_queued=engine.queue_lengths(), interrupted=interrupted,
        resync=resync.stats.as_dict() if resync is not None else None)
    # (index, ip_proto, key) of the connections in the table at the end, for reports naming
    # them by 5-tuple without reading the captures again (the key holds the addresses and ports)
    result.connections = [(c.index, c.ip_proto, c.key) for c in engine.conn_list]
    return result, error


def _loop(engine: Engine, model: CheckpointModel, sides, have, rec: TimelineCollector, progress,
          limit: int, failed: list, end_ns: int | None = None, opts: ReplayOptions | None = None,
          resync=None) -> int | None:
    """The merge loop.  When a capture fails to read, the other one is replayed up to the last
    good timestamp of the failed one (``limit``): beyond it the picture would be one-sided.
    After the last frame the clock runs on to ``end_ns`` (when the recording really ended:
    scans and flushes up to then still happen), unless a capture failed.

    Frames are taken in arrival-time order, the primary first at equal times.  For the frames
    of the two batches loaded at a time that order is found at once: each arrival becomes the
    key ``time << 1 | side`` and the keys are sorted (two sorted runs: a linear merge in C);
    the keys are valid up to the end of whichever batch ends first, where that side is refilled
    and the rest merged again.

    ``resync`` (a ``Resync``, ``--after-checkpoint resync``) sees every flush's events and gives
    back the dropped secondaries to feed again at once (``requeued`` rows); while it has a rule
    pending, each secondary frame is checked before it is fed (``superseded`` rows); while a
    checkpoint runs, frames of both sides are held and fed when it ends (``release_held``).
    The per-frame cost when it is off (or idle) is nil: the tests of ``p_fast`` / ``s_fast``
    (the batch is simple, nothing held, no rule pending) replace those of ``p_simple`` /
    ``s_simple``.
    """
    feed = engine.feed
    add = rec.add_event
    add_pair = rec.add_pair
    add_row = rec.add_row
    vm_on_clock = engine.profile.scan_on_vm_clock

    def apply(actions):
        for a in actions:
            code = CHECKPOINT_CAUSE_CODES[a.cause]
            if a.kind == "start":
                add_row(a.time, EventKind.CHECKPOINT_START, code, detail=a.index)
                if resync is not None:
                    resync.holding = True       # the VMs are stopped: what they send waits
                if vm_on_clock:
                    for ev in engine.vm_stop(a.time):
                        handle(ev)
            else:
                evs = engine.checkpoint(a.time)
                for ev in evs:
                    add(ev)
                if vm_on_clock:
                    for ev in engine.vm_resume(a.time):
                        handle(ev)
                add_row(a.time, EventKind.CHECKPOINT_END, code, detail=a.index)
                if resync is not None:
                    requeue(evs, a.time)
                    release_held(a.time)

    def handle(ev):
        add(ev)
        if ev[0] is _CKPT:
            apply(model.request(ev[2]))

    def requeue(evs, t):
        """--after-checkpoint resync: feed again, at the flush, the secondaries it dropped that
        were ahead of the primary (offline/resync.py)."""
        for r in resync.after_flush(evs, t):
            add_row(t, _REQUEUED, _C_AHEAD, 1, r.ident, len(r.data), r.trimmed)
            for ev in feed(1, r.data, t, r.vnet_hdr_len, r.ident):
                handle(ev)

    def release_held(t):
        """--after-checkpoint resync: the frames that arrived while the checkpoint had the VMs
        stopped are sent when they resume: fed now, in arrival order (secondaries through the
        resync rules).  A request among them may start the next checkpoint: the rest waits for it."""
        resync.holding = False
        items, resync.held = resync.held, []
        for k, (side, data, vnet, ident) in enumerate(items):
            if resync.holding:
                resync.held.extend(items[k:])
                return
            if side == 1 and resync.active:
                v = check(data, vnet, t)
                if v.action == _SUPERSEDE:
                    sstats.superseded += 1
                    add_row(t, _SUPERSEDED, v.cause, 1, ident, len(data))
                    continue
                if v.action == _TRIM:
                    add_row(t, _SUPERSEDED, v.cause, 1, ident, len(data), v.trimmed)
                    data = v.data
            (pstats, sstats)[side].fed += 1
            for ev in feed(side, data, t, vnet, ident):
                handle(ev)

    def modes(t) -> tuple:
        """(rs_on, hold): a resync rule is pending (secondaries are checked); a modelled
        checkpoint has the VMs stopped (frames are held)."""
        if resync is None:
            return False, False
        resync.sweep(t)             # rules whose window ended stop costing a check per frame
        return resync.active, resync.holding

    check = resync.check_secondary if resync is not None else None

    def catch_up(t):
        """Run every scan and checkpoint action due at or before ``t``, in time order."""
        while True:
            te = engine.next_scan_ns()
            if te is None:
                te = _NEVER
            tm = model.next_time()
            if te > t and tm > t:
                return
            if te <= tm:
                if not engine.queued:
                    engine.advance(tm if tm <= t else t)   # idle scans find nothing: skip them
                    continue
                for ev in engine.advance(te):
                    handle(ev)
            else:
                # (resync: frames held while a checkpoint runs are fed at its end, so the VMs
                # are not idle until they are)
                if not engine.queued and (resync is None or not resync.held):
                    if model.running_until == tm:
                        if busy_run(t):
                            continue
                        # its end alone first (as advance would): an idle run may begin then
                        apply(model.finish(tm))
                    idle_run(t)
                    if model.next_time() != tm:
                        continue
                apply(model.advance(tm))

    def idle_run(t):
        """Nothing queued: periodic checkpoints up to ``t`` flush nothing and meet no frame, so a
        run of them is skipped in O(1) and becomes one ``idle_checkpoints`` row (its detail: how
        many), however long the stretch: cost bounded by frames, not replayed time."""
        first, n, last = model.idle_run(t)
        if not n:
            return
        add_row(first, _IDLE, Cause.PERIODIC, detail=n)
        if vm_on_clock:
            # 4.1: the scan timer's clock stood still n * duration in all.  One stop/resume
            # pair adds exactly that pause; the scans it moves find nothing (nothing queued,
            # and no frame arrives before ``t``), so only the grid's final phase matters, and it
            # is the same as after n separate pauses.
            for ev in engine.vm_stop(first):
                handle(ev)
            for ev in engine.vm_resume(first + n * model.duration_ns):
                handle(ev)
        for ev in engine.checkpoint(last):
            add(ev)

    def busy_run(t) -> bool:
        """Nothing queued, checkpoints back to back (x-checkpoint-delay <= duration): the same
        O(1) skip as ``idle_run``, one ``idle_checkpoints`` row between the running one's end
        and the start of the one running at the end of the skip."""
        run = model.busy_run(t)
        if run is None:
            return False
        end, n, last, start = run
        apply([end])
        add_row(end.time, _IDLE, Cause.PERIODIC, detail=n)
        for ev in engine.checkpoint(last):
            add(ev)
        apply([start])
        return True

    def wake_time():
        te = engine.next_scan_ns()
        tm = model.next_time()
        return tm if te is None or tm < te else te

    p, s = sides
    wake = wake_time()
    rs_on = False           # resync has a rule pending: secondaries are checked before feeding
    hold = False            # resync: a modelled checkpoint runs, frames wait for its end
    pstats, sstats = p.stats, s.stats
    done = 0
    next_progress = 65536
    stop = False
    while not stop:
        for k, cur in ((0, p), (1, s)):
            if have[k] and cur.i >= cur.n:
                try:
                    have[k] = cur.refill()
                except CaptureError as exc:
                    have[k] = False
                    failed.append(exc)
                    last = cur.stats.last_ns
                    limit = min(limit, -_NEVER if last is None else last)
        if not have[0] and not have[1]:
            break
        for k, cur in ((0, p), (1, s)):
            if have[k] and cur.keys is None:
                # time << 1 | side: sorting these puts the primary first at equal times
                cur.keys = keys = [t << 1 | k for t in cur.ts]
                cur.ordered = all(map(le, keys, islice(keys, 1, None)))
        keys, ordered = _merge_keys(p, s, have)
        if limit < _NEVER:
            # A side failed: stop at the first frame after its last good timestamp.
            lim = limit << 1 | 1            # the largest key of a frame at time ``limit``
            if ordered:
                cut = bisect_right(keys, lim)
            else:
                cut = next((j for j, k in enumerate(keys) if k > lim), len(keys))
            if cut < len(keys):
                del keys[cut:]
                stop = True
        pi, si = p.i, s.i
        p_frames, p_first, p_vnet, p_simple = p.frames, p.first, p.vnet, p.simple
        s_frames, s_first, s_vnet, s_simple = s.frames, s.first, s.vnet, s.simple
        s_fast = s_simple and not rs_on and not hold
        p_fast = p_simple and not hold
        p_skipped = p.stats.truncated + p.stats.filtered + p.stats.held     # frames not fed (yet), so far
        s_skipped = s.stats.truncated + s.stats.filtered + s.stats.held
        sup = 0                                                 # secondaries superseded in this stretch
        fed_before = p.stats.fed + s.stats.fed
        try:
            for key in keys:
                t = key >> 1
                if key & 1:
                    i = si
                    si += 1
                    if t >= wake:
                        catch_up(t)
                        wake = wake_time()
                        rs_on, hold = modes(t)
                        s_fast = s_simple and not rs_on and not hold
                        p_fast = p_simple and not hold
                    if s_fast:
                        evs = feed(1, s_frames[i], t, s_vnet, s_first + i)
                    else:
                        if s_simple:
                            vnet = s_vnet
                        else:
                            vnet = s.admit(i, t, 1, add_row)
                            if vnet is None:
                                continue
                        frame = s_frames[i]
                        if hold:
                            s.stats.held += 1
                            resync.held.append((1, frame, vnet, s_first + i))
                            continue
                        if rs_on:
                            v = check(frame, vnet, t)
                            rs_on = resync.active
                            s_fast = s_simple and not rs_on
                            if v.action == _SUPERSEDE:
                                s.stats.superseded += 1
                                sup += 1
                                add_row(t, _SUPERSEDED, v.cause, 1, s_first + i, len(frame))
                                continue
                            if v.action == _TRIM:
                                add_row(t, _SUPERSEDED, v.cause, 1, s_first + i, len(frame), v.trimmed)
                                frame = v.data
                        evs = feed(1, frame, t, vnet, s_first + i)
                else:
                    i = pi
                    pi += 1
                    if t >= wake:
                        catch_up(t)
                        wake = wake_time()
                        rs_on, hold = modes(t)
                        s_fast = s_simple and not rs_on and not hold
                        p_fast = p_simple and not hold
                    if p_fast:
                        evs = feed(0, p_frames[i], t, p_vnet, p_first + i)
                    else:
                        if p_simple:
                            vnet = p_vnet
                        else:
                            vnet = p.admit(i, t, 0, add_row)
                            if vnet is None:
                                continue
                        if hold:
                            p.stats.held += 1
                            resync.held.append((0, p_frames[i], vnet, p_first + i))
                            continue
                        evs = feed(0, p_frames[i], t, vnet, p_first + i)
                if len(evs) == 2 and evs[1][0] is _SDROP and evs[0][0] is _RELEASE:
                    add_pair(evs[0], evs[1])        # a matched pair, the common case: one call
                    continue
                for ev in evs:
                    add(ev)
                    if ev[0] is _CKPT:
                        apply(model.request(ev[2]))
                        wake = wake_time()  # a checkpoint may have started: the model's clock moved
                        rs_on, hold = modes(t)
                        s_fast = s_simple and not rs_on and not hold
                        p_fast = p_simple and not hold
        finally:
            p.stats.fed += pi - p.i - (p.stats.truncated + p.stats.filtered + p.stats.held - p_skipped)
            s.stats.fed += si - s.i - (s.stats.truncated + s.stats.filtered + s.stats.held + sup - s_skipped)
            p.i, s.i = pi, si
        done += p.stats.fed + s.stats.fed - fed_before
        rec.compact(8192)             # keeps the collector's row buffer small (and cache-warm)
        if progress is not None and done >= next_progress:
            progress(done)
            next_progress = (done // 65536 + 1) * 65536
    # The end of the captures.  The clock runs on to ``end_ns`` if given (and no capture failed);
    # a checkpoint still under way then completes (and flushes); after that the clock stops: what
    # is still queued is reported as such, as QEMU's finalize drops it.
    if opts is not None and not failed:
        end_ns = _check_end(end_ns, opts, [st.stats.last_ns for st in sides if st.stats.last_ns is not None],
                            failed)
    if end_ns is not None and not failed:
        catch_up(end_ns)
    if model.running_until is not None:
        catch_up(model.running_until)
    if progress is not None:
        progress(done)
    return end_ns           # where the clock was run to (--until, resolved), or None


class UntilError(ValueError):
    """``--until`` before the last frame, or absurdly far after it."""


def _check_end(end_ns, opts: ReplayOptions, lasts: list, failed: list):
    """The time the clock runs on to after the last frame (``--until``): absolute, or relative
    to the last frame (``end_after_ns``).  Before the last frame, or further after it than the
    gap threshold (unless gaps are accepted), it is an error (in ``failed``), and None."""
    if not lasts or (end_ns is None and opts.end_after_ns is None):
        return end_ns
    last = max(lasts)
    if opts.end_after_ns is not None:
        return last + opts.end_after_ns
    if opts.end_ns is None:
        return end_ns                   # the last measured flush time: no --until given
    if end_ns < last:
        failed.append(UntilError(f"--until {end_ns / 1e9:.9f} is {(last - end_ns) / 1e9:.9g} s before the last "
                                 f"frame (at {last / 1e9:.9f}): give a later time, or +DURATION after the end"))
        return None
    if opts.max_gap_ns is not None and end_ns - last > opts.max_gap_ns:
        failed.append(UntilError(f"--until {end_ns / 1e9:.9f} is {(end_ns - last) / 1e9:.9g} s after the last frame, "
                                 f"more than the {opts.max_gap_ns / 1e9:g} s gap threshold (seconds since the "
                                 f"epoch, or nanoseconds with 'ns'; --allow-gaps accepts it)"))
        return None
    return end_ns


def _merge_keys(p: _Side, s: _Side, have) -> tuple[list, bool]:
    """The order in which the loop takes the frames loaded now, the rest of each side's batch:
    their keys (``time << 1 | side``), up to the end of whichever batch ends first.  Returns
    ``(keys, ordered)``; ``ordered`` says the keys are sorted.

    The order is that of comparing the two sides' next frames (the primary first at equal
    times).  When both batches' timestamps never decrease, that is the sorted order of the
    keys, which ``list.sort`` finds in C (two sorted runs: one merge).  A capture whose
    timestamps go backwards is merged the same way frame by frame."""
    pk = p.keys[p.i:] if have[0] else []
    sk = s.keys[s.i:] if have[1] else []
    if not pk or not sk:
        keys = pk or sk
        return keys, (p.ordered if pk else s.ordered)
    if p.ordered and s.ordered:
        end = min(pk[-1], sk[-1])          # the last key before one of the batches runs out
        keys = pk + sk
        keys.sort()
        del keys[bisect_right(keys, end):]
        return keys, True
    keys = []
    append = keys.append
    a = b = 0
    na, nb = len(pk), len(sk)
    while a < na and b < nb:
        if sk[b] >> 1 < pk[a] >> 1:
            append(sk[b])
            b += 1
        else:
            append(pk[a])
            a += 1
    return keys, False
