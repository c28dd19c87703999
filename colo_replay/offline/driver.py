"""Offline replay: two captures in, a timeline out.

The driver merges the primary's and the secondary's frames by arrival time (capture timestamp
+ per-side offset + per-side transport delay; at equal times the primary goes first), feeds
them to the ``Engine``, runs the expiry scans on their tick grid and the COLO checkpoint cycle
(``CheckpointModel``) in between, and collects every event in a ``TimelineCollector``.

It is a discrete-event loop over three clocks: the next frame, the engine's next scan and the
checkpoint model's next action; whichever comes first is handled first.  The per-frame path
(``_stretch``, C in the compiled core) is kept short: the merge of the two batches' int64 time
columns, one comparison against a precomputed wake-up time, one ``Engine._feed_at`` on the frame
where it lies in the reader's chunk (a matched pair's rows are written by the engine into the
collector, ``Engine.rows``).  Every other case (a snaplen cut, a filter, a vnet header, a frame
held during a checkpoint, a resync rule, events to act on) goes back to the Python loop.
"""

from __future__ import annotations

import gc
from array import array
from dataclasses import dataclass, field, asdict
from typing import Callable

from ..captures.base import DEFAULT_MAX_GAP_NS
from ..captures.errors import CaptureError
from .checkpoints import CheckpointModel, seconds_text
from .resync import SLOT_MUL, SLOT_SHIFT, SUPERSEDE, TRIM, Resync
from ..engine.compare import Engine
from ..engine.constants import MS, NEVER as _NEVER
from ..engine.events import Cause, EventKind
from ..engine.profiles import CompareConfig
from ..engine.releases import Release, resolve_release
from ..output.timeline import CHECKPOINT_CAUSE_CODES, TimelineCollector

try:
    import cython
except ImportError:                 # Cython absent: the decorators below are no-ops
    from ..engine import _cython_shim as cython

# The engine's events carry EventKind members, so a kind is tested by identity: "==" on an
# IntEnum goes through the generic comparison, several times slower, for every event.
_CKPT = EventKind.CHECKPOINT_REQUEST
_RELEASE = EventKind.RELEASE
_SDROP = EventKind.SECONDARY_DROPPED
_IDLE = EventKind.IDLE_CHECKPOINTS
_SUPERSEDED = EventKind.SUPERSEDED
_REQUEUED = EventKind.REQUEUED
_LOST = EventKind.PRIMARY_LOST
_C_AHEAD = Cause.AHEAD
_SUPERSEDE, _TRIM = SUPERSEDE, TRIM


@dataclass
class ReplayOptions:
    """Everything a replay can be told.  Times are integer nanoseconds unless named _ms."""

    qemu: str = "7.2"                      # the release string as given (engine.releases)
    release: Release | None = None         # ... resolved (Settings does; else resolved from qemu here)
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
    scan_anchors_ns: list[int] | None = None  # times a real run's scan timer fired (a QEMU trace's
                                           # colo_old_packet_check_found): the ticks are pinned there
    qemu_trace: object = None              # the real run's QemuTrace: its TCP memcmps are walked along
                                           # (offline/trace_oracle.py), undefined reads take its outcome
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
    first_ns: int | None = None  # first arrival read (with the side's offset, as last_ns)
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
    source: dict = field(default_factory=dict)     # how the input was had: guest selection, filter-rewriter,
                                                   # chardev streams (the summary's "source")
    connections: list = field(default_factory=list)   # (index, ip_proto, key) of the table's connections
    qemu: dict = field(default_factory=dict)       # the release replayed: Release.as_dict() (release, row, switches)
    trace_check: dict | None = None                # the TCP memcmps against a real run's trace (TraceOracle.as_dict)

    def as_dict(self) -> dict:
        d = asdict(self)
        d.pop("collector")
        return d


class _Side:
    """A cursor over one capture's batches, as columns the merge loop reads without making a
    Python object per frame.

    ``buf`` holds the batch's frames (``starts``/``caps``: each frame's offset in it and its
    length); a reader that gives a list of frames instead has them joined into one buffer (one
    copy per batch).  ``ts`` are the arrival times (capture time + the side's shift) as int64,
    ``origs`` the lengths on the wire.  ``vnets`` is the batch's per-frame vnet header lengths
    when the reader gives them (``Batch.vnet_lens``, e.g. a chardev capture with
    vnet_hdr_support), else None: every frame then has the side's constant ``vnet``.  ``simple``
    says that no frame of the batch needs more than a plain feed (none cut by a snaplen, no BPF
    filter, no vnet header at all).
    """

    __slots__ = ("reader", "stats", "shift", "vnet", "bpf", "it", "ts", "buf", "starts", "caps", "origs",
                 "vnets", "first", "i", "n", "simple", "tsv", "startsv", "capsv")

    def __init__(self, reader, stats: SideStats, shift: int, vnet: int, bpf):
        self.reader = reader
        self.stats = stats
        self.shift = shift
        self.vnet = vnet
        self.bpf = bpf
        self.it = reader.batches()
        self.ts = self.starts = self.caps = self.origs = _EMPTY
        # ts, starts and caps once more as typed views for _stretch (compiled core: made once a
        # batch, not at each of _stretch's calls, tens of thousands on a free-running pair)
        self.tsv = self.startsv = self.capsv = _NO_TIMES
        self.buf = b""
        self.vnets = None
        self.first = 1
        self.i = self.n = 0
        self.simple = True

    def refill(self) -> bool:
        """Load the next non-empty batch; False at the end of the capture."""
        while True:
            batch = next(self.it, None)
            if batch is None:
                self.n = self.i = 0
                return False
            n = len(batch)
            if not n:
                continue
            buf = getattr(batch, "buf", None)
            if buf is None:
                import numpy as np      # (here, not per batch: an import statement costs ~5 us)

                frames = batch.frames
                caps = np.fromiter(map(len, frames), dtype=np.int64, count=n)
                starts = np.zeros(n, dtype=np.int64)
                np.cumsum(caps[:-1], out=starts[1:])
                buf = b"".join(frames)
            else:
                starts = batch.starts          # array('q'): int64 already, the loop reads them as they are
                caps = batch.caps
                if not isinstance(buf, bytes):
                    buf = bytes(buf)
            ts = batch.timestamps
            if self.shift or type(ts) is not array or ts.typecode != "q":
                ts = _int64_times(batch, self.shift, self.stats.path)
            self.ts = ts
            self.origs = origs = batch.orig_lens
            self.buf, self.starts, self.caps = buf, starts, caps
            self.tsv, self.startsv, self.capsv = ts, starts, caps
            self.vnets = vnets = getattr(batch, "vnet_lens", None)
            if vnets is not None and len(vnets) != n:
                raise ValueError(f"{self.stats.path}: batch of {n} frames has {len(vnets)} vnet lengths")
            # Is any frame shorter than it was on the wire?  The capture readers count them;
            # else one vectorised test over the batch.
            cut = getattr(batch, "truncated", None)
            if cut is None:
                import numpy as np

                cut = bool((np.asarray(caps, dtype=np.int64) < np.asarray(origs, dtype=np.int64)).any())
            self.simple = vnets is None and self.bpf is None and not cut and not self.vnet
            self.first = batch.first_frame
            self.i = 0
            self.n = n
            st = self.stats
            if st.first_ns is None:
                st.first_ns = int(ts[0])
            st.frames += n
            st.last_ns = int(ts[-1])
            return True

    def frame(self, i: int) -> bytes:
        """Frame ``i`` of the batch as its own bytes (the slow path's)."""
        start = int(self.starts[i])
        return self.buf[start:start + int(self.caps[i])]

    def admit(self, i: int, t: int, side: int, add_row):
        """The checks of a frame in a batch that is not ``simple``: returns the vnet length to
        feed it with, or None when the frame is not fed (cut by a snaplen, or filtered out)."""
        cap = int(self.caps[i])
        orig = int(self.origs[i])
        if cap < orig:
            # Cut by a snaplen: QEMU saw the whole frame, we cannot compare it honestly.
            self.stats.truncated += 1
            add_row(t, EventKind.UNCOMPARABLE, Cause.TRUNCATED, side, self.first + i, orig)
            return None
        if self.bpf is not None and not self.bpf.matches(self.frame(i), orig):
            self.stats.filtered += 1
            return None
        return self.vnet if self.vnets is None else self.vnets[i]


_EMPTY = ()
_I64_MAX = (1 << 63) - 1


def _int64_times(batch, shift: int, path: str):
    """The batch's arrival times (timestamp + shift) as an int64 array; a time beyond int64 ns
    (after the year 2262: only a corrupt timestamp gets there) is a CaptureError naming the frame."""
    import numpy as np

    ts = batch.timestamps
    try:
        arr = np.asarray(ts, dtype=np.int64)
        if shift:
            if int(arr.min()) + shift < -_I64_MAX or int(arr.max()) + shift > _I64_MAX:
                raise OverflowError
            arr = arr + shift
        return arr
    except OverflowError:
        for i, t in enumerate(ts):
            if not -_I64_MAX <= int(t) + shift <= _I64_MAX:
                raise CaptureError(path, f"timestamp {int(t) / 1e9:.9f} s (plus offsets) is beyond what "
                                         f"the replay clock holds (int64 ns: the year 2262)",
                                   frame_number=batch.first_frame + i) from None
        raise


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
    release = opts.release if opts.release is not None else resolve_release(opts.qemu)
    profile = release.profile
    config = opts.compare_config()
    resolved = config.resolve(profile, release.given)       # raises ValueError on knobs QEMU lacks
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
    firsts = [int(s.ts[0]) for s, h in zip(sides, have) if h]     # (a Python int: the engine's clock)
    if opts.first_arrival_ns is not None:
        firsts = [opts.first_arrival_ns]
    start = (min(firsts) if firsts else 0) + opts.scan_phase_ns
    engine = Engine(profile, config, start_ns=start)
    engine.rows = rec          # matched pairs are written there by the engine itself
    if opts.scan_anchors_ns and not profile.scan_on_vm_clock:
        _pin_scan_ticks(engine, opts, start)
    oracle = None
    if opts.qemu_trace is not None:
        from .trace_oracle import TraceOracle
        oracle = engine._oracle = TraceOracle(opts.qemu_trace, inverted=profile.tcp_compare_inverted)
    # Frames queued on the fast path keep their bytes in the batch buffer until settle(), which
    # the loop calls before a side loads its next batch (and at the end): a pair matched on its
    # second frame's arrival then costs no copy of the first.
    engine.lazy_frames = True
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
    # The replay allocates a Packet (GC-tracked) for every queued frame and no reference cycle:
    # the cyclic collector's generation-0 passes would only cost time (~1-2% of the CPU).
    gc_was_on = gc.isenabled()
    gc.disable()
    try:
        end = _loop(engine, model, sides, have, rec, progress, limit, failed, end, opts, resync)
    except KeyboardInterrupt:
        # SIGINT: keep what was collected; the caller reports it as interrupted (exit 130).
        interrupted = True
    finally:
        engine.settle()         # what is still queued holds its own bytes from here on
        if gc_was_on:
            gc.enable()
    error = failed[0] if failed else None
    reader_warnings = []
    for side, st in zip(sides, (pstats, sstats)):
        rd = side.reader
        st.format = getattr(rd, "format", "")
        st.linktypes = sorted(getattr(rd, "linktypes", ()))
        st.synthesised_ethernet = bool(getattr(rd, "synthesised_ethernet", False))
        # what the capture reader found odd but read on (an impossible original length ...)
        reader_warnings += getattr(rd, "warnings", None) or ()
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
                                            "scan_anchors": len(opts.scan_anchors_ns or ()) if not
                                            profile.scan_on_vm_clock else 0,
                                            "filter": opts.bpf_filter,
                                            "alignment": opts.alignment,
                                            "after_checkpoint": opts.after_checkpoint,
                                            "allow_gaps": opts.max_gap_ns is None},
        primary=pstats, secondary=sstats,
        checkpoints=model.count,
        checkpoint_requests=model.requests,
        partial=error is not None or interrupted, error=str(error) if error else None,
        still_queued=engine.queue_lengths(), interrupted=interrupted,
        resync=resync.stats.as_dict() if resync is not None else None, warnings=reader_warnings,
        qemu=release.as_dict(),
        # (index, ip_proto, key) of the connections in the table at the end, for reports naming
        # them by 5-tuple without reading the captures again (the key holds the addresses and ports)
        connections=[(c.index, c.ip_proto, c.key) for c in engine.conn_list],
        trace_check=None if oracle is None else oracle.as_dict())
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
        elif ev[0] is _LOST and resync is not None:
            resync.primary_lost(ev[3])

    def requeue(evs, t):
        """--after-checkpoint resync: feed again, at the flush, the secondaries it dropped that
        were ahead of the primary (offline/resync.py)."""
        for r in resync.after_flush(evs, t):
            add_row(t, _REQUEUED, _C_AHEAD, 1, r.ident, len(r.data), r.trimmed)
            for ev in feed(1, r.data, t, r.vnet_hdr_len, r.ident):
                handle(ev)

    def release_held(t):
        """--after-checkpoint resync: the VMs resume at ``t``.  The frames captured while they
        were stopped (before ``t``, still unread: the replay waited at the first of them, see
        ``slow``) are sent now: fed at ``t``, in arrival order, the secondaries through the
        resync rules.  A request among them may start the next checkpoint: the rest waits for
        its end.  Nothing is copied aside, so memory does not grow with a run of checkpoints."""
        nonlocal rs_on
        resync.holding = False
        rs_on = resync.active               # this flush may have set rules (the loop's copy is older)
        while not resync.holding:
            # the frames captured before t, in arrival order, fed at t: the plain ones by
            # _stretch itself (as in the main loop), the others by feed_next
            code, k, _tc = _stretch(engine, p, s, have[0], have[1], t, _int64(limit), p.simple,
                                    s.simple and not rs_on,
                                    (resync.marks, resync.owed, resync.rule_slots) if rs_on and s.simple else None, t,
                                    rec)
            if code == _REFILL:
                if not refill():
                    return
            elif code == _SLOW:
                feed_next(k, s if k else p, t, True)
            elif code == _EVENTS:
                events(engine._out, t)      # (a request may start the next checkpoint: holding)
                rs_on = resync.active
            else:
                return              # captured at or after t (_WAKE), or past a failed capture's end

    def modes(t) -> tuple:
        """(rs_on, hold): a resync rule is pending (secondaries are checked); a modelled
        checkpoint has the VMs stopped (frames are held)."""
        if resync is None:
            return False, False
        resync.sweep(t)             # rules whose window ended stop costing a check per frame
        return resync.active, resync.holding

    check = resync.check_secondary if resync is not None else None

    def resynced(data: bytes, vnet: int, ident, t: int):
        """--after-checkpoint resync, a secondary frame while a rule is pending: the frame as the
        resynchronised SVM would send it (trimmed, with its row), or None when it would not send
        it at all (superseded: its row written)."""
        v = check(data, vnet, t)
        if v.action == _SUPERSEDE:
            sstats.superseded += 1
            add_row(t, _SUPERSEDED, v.cause, 1, ident, len(data))
            return None
        if v.action == _TRIM:
            add_row(t, _SUPERSEDED, v.cause, 1, ident, len(data), v.trimmed)
            return v.data
        return data

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
                if not engine.queued and not waiting:
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
        if vm_on_clock:
            # 4.1: stepping resumes and stops the VM at the same instant between checkpoints, so
            # the scan timer's clock stands still from the first start to the last end
            for ev in engine.vm_stop(end.time):
                handle(ev)
            for ev in engine.vm_resume(last):
                handle(ev)
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
    waiting = False         # resync: the replay waits at a frame for the running checkpoint's end
    pstats, sstats = p.stats, s.stats
    done = 0
    next_progress = 65536
    feed_at = engine.feed_at

    def slow(k: int, cur: _Side, t: int) -> None:
        """The next frame of side ``k`` needs more than the fast stretch does: a checkpoint has
        the VMs stopped (resync), or see ``feed_next``."""
        nonlocal rs_on, hold, wake, waiting
        if hold:
            # resync: the VMs are stopped, so this frame (and the ones after it) waits for them
            # to resume: the replay stops here and runs the checkpoint to its end, where
            # release_held feeds what was captured meanwhile (this frame among them)
            end = model.running_until
            if end is None:
                resync.holding = False
            else:
                waiting = True          # frames wait: the VMs are not idle (no folding)
                catch_up(end)
                waiting = False
            wake = wake_time()
            rs_on, hold = modes(end if end is not None else t)
            return
        feed_next(k, cur, t)

    def feed_next(k: int, cur: _Side, t: int, held: bool = False) -> None:
        """Feed the next frame of side ``k`` at ``t`` with every check the fast stretch leaves
        out: a snaplen cut or a filter (``admit``), a vnet header, a resync rule; then handle
        its events.  ``held``: it was sent while a checkpoint had the VMs stopped (counted once
        it is known to be fed, as every count of fed frames)."""
        nonlocal rs_on
        i = cur.i
        cur.i = i + 1
        ident = cur.first + i
        st = cur.stats
        if cur.simple:
            vnet = cur.vnet
        else:
            vnet = cur.admit(i, t, k, add_row)
            if vnet is None:
                return
        if held:
            st.held += 1
        frame = cur.frame(i)
        if k == 1 and rs_on:
            frame = resynced(frame, vnet, ident, t)
            rs_on = resync.active
            if frame is None:
                return
        st.fed += 1
        if vnet:
            events(feed(k, frame, t, vnet, ident), t)
        else:
            events(feed_at(k, frame, 0, len(frame), t, ident), t)

    def events(evs, t: int) -> None:
        """A feed's events (a matched pair already went to the timeline: engine.rows)."""
        nonlocal wake, rs_on, hold
        for ev in evs:
            add(ev)
            if ev[0] is _CKPT:
                apply(model.request(ev[2]))
                wake = wake_time()  # a checkpoint may have started: the model's clock moved
                rs_on, hold = modes(t)
            elif ev[0] is _LOST and resync is not None:
                resync.primary_lost(ev[3])  # a table reset discarded it: the PVM sent it all the same

    def refill() -> bool:
        """Load the next batch of each side whose batch ran out; False when both have ended."""
        nonlocal limit
        for k, cur in ((0, p), (1, s)):
            if have[k] and cur.i >= cur.n:
                engine.settle()     # (a frame queued lazily would keep the old buffer alive)
                try:
                    have[k] = cur.refill()
                except CaptureError as exc:
                    have[k] = False
                    failed.append(exc)
                    last = cur.stats.last_ns
                    limit = min(limit, -_NEVER if last is None else last)
        return have[0] or have[1]

    while True:
        if not refill():
            break
        fed_before = pstats.fed + sstats.fed
        code, k, t = _stretch(engine, p, s, have[0], have[1], min(wake, _I64_MAX),
                              _int64(limit), p.simple and not hold,
                              s.simple and not hold and not rs_on,
                              (resync.marks, resync.owed, resync.rule_slots) if rs_on and s.simple and not hold else None,
                              -1, rec)
        if code == _STOP:
            break
        cur = s if k else p
        if code == _WAKE:
            catch_up(t)
            wake = wake_time()
            rs_on, hold = modes(t)
            slow(k, cur, t)
        elif code == _SLOW:
            slow(k, cur, t)
        elif code == _EVENTS:
            events(engine._out, t)
        done += pstats.fed + sstats.fed - fed_before
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
        failed.append(UntilError(f"--until {seconds_text(end_ns)} is {(last - end_ns) / 1e9:.9g} s before the last "
                                 f"frame (at {seconds_text(last)}): give a later time, or +DURATION after the end"))
        return None
    if opts.max_gap_ns is not None and end_ns - last > opts.max_gap_ns:
        failed.append(UntilError(f"--until {seconds_text(end_ns)} is {(end_ns - last) / 1e9:.9g} s after the last frame, "
                                 f"more than the {opts.max_gap_ns / 1e9:g} s gap threshold (seconds since the "
                                 f"epoch, or nanoseconds with 'ns'; --allow-gaps accepts it)"))
        return None
    return end_ns


# _stretch's outcomes
_REFILL = 0     # a batch ran out (the caller refills it)
_WAKE = 1       # the next frame arrives at or after the next scan or checkpoint action
_SLOW = 2       # the next frame needs the slow path (not a plain feed)
_EVENTS = 3     # the last frame fed gave events other than a matched pair (engine._out)
_STOP = 4       # the next frame is after ``limit`` (a capture failed): the replay stops here

# The columns of a side without a batch (empty), and the same as a typed view (_stretch)
_NO_TIMES = array("q")
_NO_VIEW = cython.declare(cython.longlong[::1], _NO_TIMES)


@cython.boundscheck(False)
@cython.wraparound(False)
@cython.locals(engine=Engine, p=_Side, s=_Side, pts=cython.longlong[::1], sts=cython.longlong[::1], pst=cython.longlong[::1],
               sst=cython.longlong[::1], pcp=cython.longlong[::1], scp=cython.longlong[::1],
               pi=cython.Py_ssize_t, pn=cython.Py_ssize_t, si=cython.Py_ssize_t, sn=cython.Py_ssize_t,
               pi0=cython.Py_ssize_t, si0=cython.Py_ssize_t, t=cython.longlong, wake=cython.longlong,
               limit=cython.longlong, pfirst=cython.longlong, sfirst=cython.longlong, k=cython.int, at=cython.longlong,
               i=cython.Py_ssize_t, php=cython.bint, shs=cython.bint, pfast=cython.bint, sfast=cython.bint,
               pbuf=bytes, sbuf=bytes, code=cython.int)
def _stretch(engine, p: _Side, s: _Side, php: bool, shs: bool, wake: int, limit: int, pfast: bool,
             sfast: bool, rules=None, at: int = -1, rec=None):
    """Feed frames of the two loaded batches in arrival order (the primary first at equal
    times) for as long as nothing but a plain feed is needed: returns ``(code, side, time)``
    for the frame it stopped before (``_WAKE``, ``_SLOW``, ``_STOP``) or after (``_EVENTS``),
    or when a batch ran out (``_REFILL``).  ``php``/``shs``: the side has a batch loaded (not
    at its end for good); ``pfast``/``sfast``: its frames need only ``Engine.feed_at``.
    ``rules``: with ``--after-checkpoint resync`` while a rule is pending (``sfast`` is then
    False), the rules' connection keys ``(marks, owed)``: a secondary on a connection with none
    is fed at once (``Resync.check_secondary`` would say "feed" without a side effect), only the
    others take the slow path.  ``at`` (``release_held``): the frames are fed at that time, not
    at their capture times (the VMs resumed then), and counted as held.  ``rec`` (the timeline's
    ``TimelineCollector``): events that only need writing there (no checkpoint request, no
    primary a table reset discarded: what ``_loop``'s ``events`` would do with them is
    ``rec.add_event``) are written here and the stretch goes on; others end it (``_EVENTS``).
    On a free-running pair the general compares' releases and drops were ~60,000 returns a
    million frames, each a round trip through the merge loop's Python.

    The per-frame work of the replay: no Python object is made here for a frame (in the
    compiled core) but its number and time when the engine keeps or names it.  It calls the
    engine's ``_feed_at`` (``feed_at`` without its argument checks: the reader's offsets lie
    inside the batch's buffer), a C call in the compiled core."""
    # (_NO_VIEW, not the _NO_TIMES array: a conditional expression mixing a view and an array
    # made a memoryview object of each view, at every call)
    pts = p.tsv if php else _NO_VIEW
    sts = s.tsv if shs else _NO_VIEW
    pst = p.startsv if php else _NO_VIEW
    sst = s.startsv if shs else _NO_VIEW
    pcp = p.capsv if php else _NO_VIEW
    scp = s.capsv if shs else _NO_VIEW
    pbuf = p.buf
    sbuf = s.buf
    pi = pi0 = p.i
    si = si0 = s.i
    pn = p.n if php else 0
    sn = s.n if shs else 0
    pfirst = p.first
    sfirst = s.first
    code = _REFILL
    k = 0
    t = 0
    while True:
        if pi < pn:
            if si < sn:
                k = 1 if sts[si] < pts[pi] else 0
            elif shs:
                break                   # the secondary's batch ran out: refill it first
            else:
                k = 0                   # the secondary capture has ended
        elif si < sn and not php:
            k = 1                       # the primary capture has ended
        else:
            break                       # the primary's batch ran out (or both)
        if k == 0:
            t = pts[pi]
        else:
            t = sts[si]
        if t > limit:
            code = _STOP
            break
        if t >= wake:
            code = _WAKE
            break
        if k == 0:
            if not pfast:
                code = _SLOW
                break
            i = pi
            pi += 1
            if engine._out:
                engine._out = []
            engine._feed_at(0, pbuf, pst[i], pcp[i], t if at < 0 else at, pfirst + i)
        else:
            if not sfast and (rules is None or not _ruleless(sbuf, sst[si], scp[si], rules)):
                code = _SLOW
                break
            i = si
            si += 1
            if engine._out:
                engine._out = []
            engine._feed_at(1, sbuf, sst[i], scp[i], t if at < 0 else at, sfirst + i)
        if engine._out:
            if rec is not None and _rows_only(engine._out):
                for ev in engine._out:
                    rec.add_event(ev)
                continue
            code = _EVENTS
            break
    p.i = pi
    s.i = si
    p.stats.fed += pi - pi0
    s.stats.fed += si - si0
    if at >= 0:
        p.stats.held += pi - pi0
        s.stats.held += si - si0
    return code, k, t


@cython.cfunc
@cython.inline
def _rows_only(evs: list) -> cython.bint:
    """No event of ``evs`` needs more than its timeline row (``_loop.events``: a checkpoint
    request goes to the checkpoint model, a discarded primary to the resync model)."""
    for ev in evs:
        k = ev[0]
        if k is _CKPT or k is _LOST:
            return False
    return True


def _pin_scan_ticks(engine, opts, start: int) -> None:
    """The expiry-scan ticks of a real run, pinned where its trace shows the timer firing
    (offline/qemutrace.py, ``scan_schedule``: the timer drifts, a fixed grid does not)."""
    from .qemutrace import scan_schedule

    cycle = engine._cycle_ns
    horizon = max(max(opts.scan_anchors_ns), max(opts.checkpoints_at or [0]), opts.end_ns or 0) + 10 * cycle
    ticks, _drift = scan_schedule(opts.scan_anchors_ns, cycle, start, horizon)
    engine.set_scan_ticks([t for t in ticks if t >= start])


_SLOT_MUL = cython.declare(cython.uint, SLOT_MUL)       # resync.rule_slot's multiplier and shift, as C values
_SLOT_SHIFT = cython.declare(cython.int, SLOT_SHIFT)


def _int64(t: int) -> int:
    """``t`` clamped into int64, as _stretch's C arguments need (a limit may be +-_NEVER)."""
    return max(min(t, _I64_MAX), -_I64_MAX - 1)


@cython.cfunc
@cython.inline
@cython.locals(off=cython.Py_ssize_t, size=cython.Py_ssize_t, proto=cython.int, w=cython.uint, slot=cython.uint,
               slots=bytearray, hp=cython.p_uchar, at=cython.Py_ssize_t)
def _ruleless(buf: bytes, off: int, size: int, rules) -> cython.bint:
    """The secondary frame ``buf[off:off + size]`` is a TCP or UDP segment of the engine's fast
    path (Ethernet, IPv4 with a 20-byte header, 48 bytes or more: its connection key is bytes
    26..38, plus the protocol byte for UDP) on a connection without a resync rule (``rules`` =
    ``(marks, owed, rule_slots)``: the first two keyed by connection key, the last the count of
    their keys per ``resync.rule_slot``).  False for anything else: checked the slow way."""
    if cython.compiled:
        hp = buf                # (unsigned bytes through a pointer, as Engine._feed_at reads them)
        hp += off
        at = 0
    else:
        hp = buf
        at = off
    if size < 48 or hp[at + 12] != 0x08 or hp[at + 13] != 0x00 or hp[at + 14] != 0x45:
        return False
    proto = hp[at + 23]
    if proto != 6 and proto != 17:
        return False
    # resync.rule_slot of the key (32-bit unsigned): no key with a rule falls in a slot at 0, so
    # then the frame's connection has none, the usual answer, found without the key's bytes
    w = ((hp[at + 26] << 24 | hp[at + 27] << 16 | hp[at + 28] << 8 | hp[at + 29])
         ^ (hp[at + 30] << 24 | hp[at + 31] << 16 | hp[at + 32] << 8 | hp[at + 33])
         ^ (hp[at + 34] << 24 | hp[at + 35] << 16 | hp[at + 36] << 8 | hp[at + 37]))
    if cython.compiled:
        # a C uint product wraps at 32 bits by itself; a mask written as 0xFFFFFFFF would be a
        # Python int, and Cython would then do the whole hash in Python objects (measured: 5%
        # of a free-running pair's replay in long_bitwise / PyLong_FromLong)
        w = w * _SLOT_MUL
        slot = w >> _SLOT_SHIFT
    else:
        slot = ((w * _SLOT_MUL) & 0xFFFFFFFF) >> _SLOT_SHIFT
    slots = rules[2]
    if slots[slot] == 0:
        return True
    key = buf[off + 26:off + 38]
    if proto == 17:
        key += b"\x11"
    return key not in rules[0] and key not in rules[1]


def ruleless(buf: bytes, off: int, size: int, rules) -> bool:
    """``_ruleless`` callable from Python (it is a C function in the compiled core): for tests
    that hold the C slot arithmetic to ``resync.rule_slot``."""
    if not 0 <= off <= off + size <= len(buf):
        raise ValueError(f"frame at {off}+{size} lies outside its {len(buf)}-byte buffer")
    return bool(_ruleless(buf, off, size, rules))
