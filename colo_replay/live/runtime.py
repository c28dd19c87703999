"""``LiveCompare``: the engine on real sockets (what QEMU's colo-compare object does at run time).

Per input read (``compare_pri_chr_in`` / ``compare_sec_chr_in`` / ``compare_notify_chr``):

1. one clock reading for the whole chunk (QEMU stamps ``creation_ms`` per frame; every frame of
   one read gets the same host ms there too, give or take a tick);
2. the chunk goes through the side's ``FrameDecoder`` (exact ``net_fill_rstate``); every frame
   is fed to the engine in stream order; an ``Oversized`` result disables that input for good
   with QEMU's log line (``colo-compare primary_in error``);
3. the engine's events are acted on: RELEASE -> outdev send queue with the frame's vnet length
   (``compare_chr_send``), CHECKPOINT_REQUEST -> ``DO_CHECKPOINT`` on notify_dev
   (``colo_compare_inconsistency_notify``) or, without notify_dev, counted, logged and
   optionally answered by a simulated checkpoint (``--flush-on-request``), QEMU_CRASH -> a
   flagged warning (QEMU would abort here; we carry on);
4. the releases of the chunk leave in one ``sendmsg`` (one per FLUSH_FRAMES frames of a long
   read).

Without a timeline (``-o``) or a recording (``--record``) nothing needs the events of a matched
pair, so the engine runs with ``compact_pairs`` and hands back such a pair as the released bytes
(the lean loop of ``_input``); otherwise every event is handled and collected.  Each input's
read size follows the frame size seen (about READ_FRAMES frames a read).  With compact pairs
and vnet_hdr_support off, each input's reader is its ``lean.FastInput`` (compiled): the steps
above for a read of whole ordinary frames with no Python of this module in between, and this
module's exact path (``_input``, ``_input_rest``, ``_after_step``) for anything else.

The expiry scan (``check_old_packet_regular``) runs from an asyncio timer at the engine's
``next_scan_ns()`` on the monotonic clock, only while something is queued (idle scans find
nothing; the engine skips them on the next call).

notify_dev input: ``COLO_CHECKPOINT`` flushes (``colo_flush_packets`` for every connection),
``COLO_USERSPACE_PROXY_INIT`` is answered with ``COLO_COMPARE_GET_XEN_INIT``, anything else is
logged as QEMU's "COLO compare got unsupported instruction" and ignored.  With
vnet_hdr_support=on the notify input carries the vnet word and the output never does (Q21).

Back-pressure: QEMU's send queue is unbounded (the guest's traffic is bounded by the
per-connection queues only).  We bound it: when more than ``max_send_buffer`` bytes wait for
outdev, primary_in and secondary_in are no longer read (their peers stall by TCP/unix-socket
back-pressure) until the backlog is down to half.  Nothing that QEMU would release is lost;
frames simply arrive later.  4.1-5.0 write synchronously (``send_synchronous``): the
seed's ``qemu_chr_fe_write_all`` blocks the compare thread, so there any backlog pauses the
inputs.
"""

from __future__ import annotations

import asyncio
import gc
from functools import partial
import signal
import time

from ..engine.compare import Engine
from ..engine.events import Cause, EventKind
from ..engine.framing import (
    COLO_CHECKPOINT, COLO_COMPARE_GET_XEN_INIT, COLO_USERSPACE_PROXY_INIT, DO_CHECKPOINT, NET_BUFSIZE,
    OVERSIZE_LOG, Frame, FrameDecoder,
)
from ..engine.profiles import CompareConfig, Profile, switches
from ..engine.releases import Release, get_profile, resolve_release
from .channel import READ_SIZE, Channel
from .checkpoint_sim import CheckpointSim
from .lean import FLUSH_FRAMES, MIN_READ_SIZE, READ_FRAMES, FastInput, LiveClock, feed_frames
from ..engine.fastframes import FastDecoder
from .stats import LiveStats

_RELEASE = EventKind.RELEASE
_CKPT = EventKind.CHECKPOINT_REQUEST
_SDROP = EventKind.SECONDARY_DROPPED
_FULL = EventKind.QUEUE_FULL_DROP
_CRASH = EventKind.QEMU_CRASH
_RESET = EventKind.TABLE_RESET
_LOST = EventKind.PRIMARY_LOST
_PASS = Cause.PASSTHROUGH
SIDE_NAMES = ("primary_in", "secondary_in")

import struct as _struct
_pack1 = _struct.Struct("!I").pack
_pack2 = _struct.Struct("!II").pack


# What the real QEMU does at a QEMU_CRASH event, by its cause (the profile decides which cause)
_CRASH_WHY = {
    Cause.SIGABRT_ASSERT_DATA: "aborts here (net/colo.c parse_packet_early: Assertion 'data' failed)",
    Cause.SIGSEGV_NULL_FRAME: "crashes here (SIGSEGV: eth_get_l2_hdr_length reads a zero-length frame)",
    Cause.DOUBLE_FREE: "aborts here (the connection table reset frees every connection twice)",
}


class LiveCompare:
    """One live colo-compare.  ``endpoints``: dict with primary_in, secondary_in, outdev and
    optionally notify_dev (``Endpoint`` objects)."""

    def __init__(self, endpoints: dict, qemu: str = "7.2", config: CompareConfig | None = None,
                 log=None, flush_on_request_ns: int | None = None, stats_interval: float | None = None,
                 recorder=None, timeline=None, max_send_buffer: int = 64 << 20, release: Release | None = None):
        self.endpoints = endpoints
        # ``release`` (Settings.release) wins over ``qemu`` (a release string or a Profile)
        if release is None and not isinstance(qemu, Profile):
            release = resolve_release(qemu)
        self.release = release
        self.profile = release.profile if release is not None else get_profile(qemu)
        self.config = config or CompareConfig()
        # raises ValueError like QEMU's setters
        self.resolved = self.config.resolve(self.profile, release.given if release is not None else None)
        self.vnet = self.resolved.vnet_hdr_support
        self.log = log
        self.stats = LiveStats()
        self.flush_on_request_ns = flush_on_request_ns
        self.stats_interval = stats_interval
        self.recorder = recorder
        self.timeline = timeline              # a TimelineCollector or None
        self.max_send_buffer = max_send_buffer
        self.clock = LiveClock()
        self.engine: Engine | None = None
        self.decoders = [FastDecoder(self.vnet), FastDecoder(self.vnet)]
        self.notify_decoder = FrameDecoder(self.vnet)        # Q21: inbound notify has the vnet word
        self.idents = [0, 0]
        self.channels: dict[str, Channel] = {}
        self._out: list = []                  # releases of the current step: (hdr, data); one list
        self._ckpt_msgs = 0                   # DO_CHECKPOINT to write after this step
        self._timer = None
        self._timer_ns = None
        self._fast = None                     # the inputs' FastInput (lean.py) when they apply
        self._sim = (CheckpointSim(flush_on_request_ns, self.profile.checkpoint_requests_coalesce)
                     if flush_on_request_ns is not None else None)
        self._sim_handle = None
        self._inputs_paused = False
        self._stop = None
        self.start_ns = 0
        self.stop_ns = None
        self._t0 = 0.0
        self.stop_reason = ""

    # ------------------------------------------------------------------ set-up
    async def open(self) -> None:
        """Create the channels (listen / connect), then the compare object (start of the scan
        grid, as colo_compare_complete arms the timer once the chardevs exist)."""
        loop = asyncio.get_running_loop()
        self.loop = loop
        lifo = self.profile.send_queue_lifo
        eps = self.endpoints
        self.channels["primary_in"] = Channel("primary_in", eps["primary_in"], loop, self.log,
                                              on_data=partial(self._input, 0), on_state=self._on_state)
        self.channels["secondary_in"] = Channel("secondary_in", eps["secondary_in"], loop, self.log,
                                                on_data=partial(self._input, 1), on_state=self._on_state)
        self.channels["outdev"] = Channel("outdev", eps["outdev"], loop, self.log, on_state=self._on_state,
                                          lifo=lifo, on_drained=self._on_out_drained)
        if eps.get("notify_dev") is not None:
            self.channels["notify_dev"] = Channel("notify_dev", eps["notify_dev"], loop, self.log,
                                                  on_data=self._on_notify, on_state=self._on_state, lifo=lifo)
        # QEMU sets colo-compare's read handlers only in colo_compare_complete, once the
        # chardevs exist: what a peer writes before that waits in the socket.  Do the same, or a
        # fast peer's first frames would reach a compare object that does not exist yet.
        inputs = [ch for name, ch in self.channels.items() if name != "outdev"]
        for ch in inputs:
            ch.pause_reading()
        try:
            for name, ch in self.channels.items():
                try:
                    await ch.start()
                except OSError as exc:
                    exc.endpoint_name = name        # the start-up error names the endpoint
                    raise
            # server=on,wait=on: QEMU blocks start-up until the client connects.
            for ch in self.channels.values():
                if ch.ep.server and ch.ep.wait and not ch.connected:
                    self.log.info("waiting_for_client", channel=ch.name, endpoint=ch.ep.describe())
                    await ch.connected_once.wait()
        except BaseException:
            self.close_channels()
            raise
        # Start-up objects (imports, click, the endpoints) never die: move them out of the
        # collector's way.  The thresholds stay at their defaults: young collections are then
        # tiny (tens of µs); raising them was measured to turn into multi-ms pauses (p99).
        gc.freeze()
        self.start_ns = self.clock.now()
        self._t0 = time.monotonic()
        self._start_engine(self.start_ns)
        if self._fast is not None:
            for fast in self._fast:
                fast.ch.reader = fast.readable      # receive and feed with no Python between
        for ch in inputs:
            ch.resume_reading()
        self.log.info("started", qemu=self.profile.name, **self.resolved.as_dict(),
                      notify_dev="yes" if "notify_dev" in self.channels else "no",
                      flush_on_request_ms=(None if self.flush_on_request_ns is None
                                           else self.flush_on_request_ns / 1e6))

    def _start_engine(self, start_ns: int) -> None:
        """The compare object (colo_compare_complete): its scan grid starts at ``start_ns``."""
        # Without a timeline or a recording only the releases matter: matched pairs come back
        # as the released bytes (Engine compact_pairs), not as two events about two Packets.
        self.engine = Engine(self.profile, self.config, start_ns=start_ns,
                             compact_pairs=self.timeline is None and self.recorder is None)
        self._feed = self.engine.feed
        # Only releases matter and no frame has a vnet word: the inputs' compiled read path.
        self._fast = ([FastInput(self, 0), FastInput(self, 1)]
                      if self.engine.compact_pairs and not self.vnet else None)

    def close_channels(self) -> None:
        for ch in self.channels.values():
            ch.close()

    # ------------------------------------------------------------------ running
    async def run(self, duration_s: float | None = None) -> str:
        """Run until SIGINT/SIGTERM (or ``duration_s``); returns why it stopped."""
        loop = self.loop
        self._stop = loop.create_future()
        installed = []
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, self.request_stop, signal.Signals(sig).name)
                installed.append(sig)
            except (NotImplementedError, RuntimeError, ValueError):
                pass
        loop.set_exception_handler(self._on_loop_error)
        stats_task = None
        if self.stats_interval:
            stats_task = loop.create_task(self._stats_loop())
        if duration_s is not None:
            loop.call_later(duration_s, self.request_stop, "duration")
        try:
            self.stop_reason = await self._stop
            # Scans that fell due before the stop run now (their timer may be up to a tick late),
            # so the recording's end marker (recorder.close) replays to exactly this state.
            t = self.clock.now()
            self._handle_step(self.engine.advance(t), t)
            self._after_step()
            self.stop_ns = t
        finally:
            for sig in installed:
                loop.remove_signal_handler(sig)
            if stats_task is not None:
                stats_task.cancel()
            await self._drain_outdev(1.0)
            self._cancel_timers()
            self.close_channels()
        return self.stop_reason

    def _on_loop_error(self, loop, context) -> None:
        """A bug of ours in a socket or timer callback: one log line (the traceback only at
        debug level) and a clean stop with the summary, never a half-dead process."""
        exc = context.get("exception")
        what = f"{type(exc).__name__}: {exc}" if exc is not None else context.get("message", "?")
        self.log.error("internal_error", f"colo-replay live: internal error, stopping: {what}", error=what)
        if exc is not None and self.log.enabled("debug"):
            import traceback
            self.log.debug("traceback", "".join(traceback.format_exception(exc)).replace("\n", " | "))
        self.request_stop("internal error")

    def request_stop(self, why: str = "stop") -> None:
        if self._stop is not None and not self._stop.done():
            self._stop.set_result(why)

    async def _drain_outdev(self, timeout: float) -> None:
        """Give frames already released a moment to leave (QEMU's finalize would drop them)."""
        out = self.channels.get("outdev")
        end = time.monotonic() + timeout
        while out is not None and out.connected and out.blocked and time.monotonic() < end:
            await asyncio.sleep(0.01)

    def _cancel_timers(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._sim_handle is not None:
            self._sim_handle.cancel()
            self._sim_handle = None

    async def _stats_loop(self) -> None:
        while True:
            await asyncio.sleep(self.stats_interval)
            self.emit_stats()

    def _sync(self) -> None:
        """The counters FastInput keeps in C fields, into ``stats`` (and outdev's sent_bytes)."""
        if self._fast is not None:
            for fast in self._fast:
                fast.sync()

    def emit_stats(self) -> None:
        self._sync()
        el = time.monotonic() - self._t0
        self.stats.bytes_out = self.channels["outdev"].sent_bytes
        q = self.engine.queue_lengths()
        sq = self.channels["outdev"].queued_bytes
        if self.log.fmt == "json":
            self.log.info("stats", **self.stats.fields(el, q, sq))
        else:
            self.log.stream.write("colo-replay live: " + self.stats.line(el, q, sq) + "\n")
            self.log.stream.flush()

    # ------------------------------------------------------------------ inputs
    def _input(self, side: int, chunk: bytes) -> None:
        """compare_pri_chr_in (side 0) / compare_sec_chr_in (side 1): one read of that input.
        (Called through functools.partial: no Python frame in between on the per-read path;
        with FastInput the channel's reader is its ``readable``, which comes here only for a
        read its fast path does not take.)"""
        fast = self._fast
        if fast is not None:
            fast = fast[side]
            fast.sync()                     # its counters, and the ident to go on from
            self._input_exact(side, chunk)
            fast.reload()
        else:
            self._input_exact(side, chunk)

    def _input_exact(self, side: int, chunk: bytes) -> None:
        t = self.clock.now()
        st = self.stats
        st.bytes_in[side] += len(chunk)
        n = self.idents[side]
        dec = self.decoders[side]
        if self.engine.compact_pairs:
            # The lean loop: a bytes item is a pair matched on arrival (its primary released,
            # its secondary dropped); the frame had no vnet header, so its vnet word is 0.
            # Releases leave every FLUSH_FRAMES frames of a long read (QEMU writes each release
            # at once): outdev's reader gets to work sooner, and the frames of one group are
            # still in the CPU cache when they are compared and sent.
            used = count = pairs = 0
            ex = dec.exact
            fast = self._fast
            if fast is not None and ex.state == 0 and not ex._hdr and not ex.disabled:
                # the whole frames where they lie in the read (lean.FastInput.feed)
                fast = fast[side]
                used = fast.feed(chunk, t, n)
                n, count, pairs = fast.n, fast.count, fast.pairs
                ex.consumed += used
            self._input_rest(side, chunk, t, n, used, count, pairs)
            return
        frames, err = dec.feed(chunk)
        count = len(frames)
        if count:
            self._size_reads(side, len(chunk), count)
        feed = self._feed
        rec = self.recorder
        tl = self.timeline
        for data, vnet in frames:
            n += 1
            if rec is not None:
                rec.frame_in(side, t, data, vnet)
            evs = feed(side, data, t, vnet, n)
            if evs:
                if tl is not None:
                    if len(evs) == 2 and evs[1][0] is _SDROP and evs[0][0] is _RELEASE:
                        tl.add_pair(evs[0], evs[1])      # a matched pair: one call
                    else:
                        for ev in evs:
                            tl.add_event(ev)
                self._handle(evs, t)
        st.frames_in[side] += n - self.idents[side]
        self.idents[side] = n
        if err is not None:
            self._oversized(side, err)
        self._after_step()

    def _input_rest(self, side: int, chunk: bytes, t: int, n: int, used: int, count: int, pairs: int) -> None:
        """``_input`` with compact pairs, once the whole frames at the head of the read went
        through the lean loop (``used`` bytes, ``count`` frames, ``pairs`` released, last ident
        ``n``): the rest of the read through the exact decoder, then the counters, the next
        read's size, the error if any and the releases' write (``lean.FastInput`` comes here
        for a read that does not end with a whole ordinary frame)."""
        st = self.stats
        err = None
        if used < len(chunk):
            frames, err = self.decoders[side].feed(chunk[used:] if used else chunk)
            pairs, count, n = self._feed_lean(side, frames, t, n, pairs, count)
        st.released += pairs
        st.secondary_dropped += pairs
        if count:
            self._size_reads(side, len(chunk), count)
        st.frames_in[side] += n - self.idents[side]
        self.idents[side] = n
        if err is not None:
            self._oversized(side, err)
        self._after_step()

    def _size_reads(self, side: int, size: int, count: int) -> None:
        """About READ_FRAMES frames of the size seen a read (``lean.FastInput.input`` inline)."""
        want = size // count * READ_FRAMES
        self.channels[SIDE_NAMES[side]].read_size = (
            MIN_READ_SIZE if want < MIN_READ_SIZE else READ_SIZE if want > READ_SIZE else want)

    def _feed_lean(self, side: int, frames: list, t: int, n: int, pairs: int, count: int):
        """The lean loop over decoded frames (vnet words, or what ``feed_chunk`` left to the
        exact decoder), FLUSH_FRAMES at a time; returns (pairs, count, n) counted on."""
        engine = self.engine
        total = len(frames)
        for first in range(0, total, FLUSH_FRAMES):
            if first or count:
                self._after_step()
            hi = total if total - first <= FLUSH_FRAMES else first + FLUSH_FRAMES
            n, got = feed_frames(engine, side, frames, first, hi, t, n, self.vnet, self._out, self._handle)
            pairs += got
        return pairs, count + total, n

    def _oversized(self, side: int, ov) -> None:
        """net_fill_rstate returned -1: QEMU removes the read handler for good."""
        name = SIDE_NAMES[side]
        self.stats.oversized += 1
        self.channels[name].disable_reading()
        self.log.error("input_disabled", f"colo-compare {name} error: {OVERSIZE_LOG}",
                       channel=name, declared_len=ov.declared_len, limit=NET_BUFSIZE,
                       stream_offset=ov.offset, discarded=ov.discarded,
                       effect="this input is never read again (as QEMU); its peer will stall")

    def _handle(self, evs, t: int) -> None:
        st = self.stats
        out = self._out
        vnet = self.vnet
        for ev in evs:
            k = ev[0]
            if k is _RELEASE:
                p = ev[3]
                d = p.data
                if not d:
                    continue          # compare_chr_send(size 0) writes nothing
                out.append((_pack2(len(d), p.vnet_hdr_len) if vnet else _pack1(len(d)), d))
                st.released += 1
                if ev[1] is _PASS:
                    st.passthrough += 1
                if self.recorder is not None:
                    self.recorder.frame_out(t if ev[2] < t else ev[2], d, p.vnet_hdr_len, p.ident,
                                            Cause(ev[1]).name.lower())
            elif k is _SDROP:
                st.secondary_dropped += 1
            elif k is _CKPT:
                self._checkpoint_request(ev)
            elif k is _FULL:
                st.queue_full_drops += 1
                self.log.debug("queue_full_drop", side=SIDE_NAMES[ev[3].side], frame=ev[3].ident,
                               queue_len=ev[6])
            elif k is _CRASH:
                st.qemu_crash_events += 1
                f = ev[3]
                self.log.warning("qemu_would_crash", cause=Cause(ev[1]).name,
                                 side=SIDE_NAMES[f.side] if f is not None else "",
                                 frame=f.ident if f is not None else "",
                                 msg=f"real QEMU {self.profile.name} {_CRASH_WHY.get(ev[1], 'crashes here')}; "
                                     f"colo-replay flags it and carries on")
            elif k is _RESET:
                st.table_resets += 1
                self.log.warning("connection_table_reset", connections=ev[6])
            elif k is _LOST:
                pass

    def _checkpoint_request(self, ev) -> None:
        st = self.stats
        st.checkpoint_requests += 1
        cause = Cause(ev[1]).name.lower()
        if self.recorder is not None:
            self.recorder.request(ev[2], cause)
        if "notify_dev" in self.channels:
            self._ckpt_msgs += 1
            return
        self.log.debug("checkpoint_request", cause=cause,
                       frame=ev[3].ident if ev[3] is not None else "", conn=ev[5])
        if self._sim is not None:
            end = self._sim.request(ev[2])
            if end is not None:
                self._start_sim_checkpoint(ev[2], end)

    def _start_sim_checkpoint(self, t: int, end: int) -> None:
        if self.timeline is not None:
            self.timeline.add_row(t, EventKind.CHECKPOINT_START, Cause.REQUESTED)
        if self.profile.scan_on_vm_clock:
            self._handle_step(self.engine.vm_stop(max(t, self.engine.now)), t)
        self._sim_handle = self.loop.call_at(self.clock.to_loop_time(end), self._sim_end)

    def _sim_end(self) -> None:
        self._sim_handle = None
        t = self.clock.now()
        self._flush(t, "flush-on-request")
        if self.profile.scan_on_vm_clock:
            self._handle_step(self.engine.vm_resume(t), t)
        nxt = self._sim.finish(t)
        if nxt is not None:
            self._start_sim_checkpoint(t, nxt)
        self._after_step()

    def _handle_step(self, evs, t):
        if evs:
            if self.timeline is not None:
                for ev in evs:
                    self.timeline.add_event(ev)
            self._handle(evs, t)

    def _flush(self, t: int, why: str) -> None:
        """A completed checkpoint: colo_flush_packets for every connection."""
        self.stats.checkpoints += 1
        if self.recorder is not None:
            self.recorder.checkpoint(t, why)
        self._handle_step(self.engine.checkpoint(t), t)
        if self.timeline is not None:
            self.timeline.add_row(t, EventKind.CHECKPOINT_END,
                                  Cause.REQUESTED if why == "flush-on-request" else Cause.MEASURED,
                                  detail=self.stats.checkpoints)

    # ------------------------------------------------------------------ notify_dev
    def _on_notify(self, chunk: bytes) -> None:
        t = self.clock.now()
        for fr in self.notify_decoder.feed(chunk):
            if fr.__class__ is not Frame:
                # compare_notify_chr: -1 -> handlers removed, "colo-compare notify_dev error"
                self.stats.oversized += 1
                self.channels["notify_dev"].disable_reading()
                self.log.error("input_disabled", f"colo-compare notify_dev error: {OVERSIZE_LOG}",
                               channel="notify_dev", declared_len=fr.declared_len, limit=NET_BUFSIZE)
                break
            msg = fr.data
            if msg == COLO_USERSPACE_PROXY_INIT:
                self._after_step()           # anything released before goes out first
                self._notify_send(COLO_COMPARE_GET_XEN_INIT)
            elif msg == COLO_CHECKPOINT:
                self._flush(t, "COLO_CHECKPOINT")
            else:
                self.stats.unsupported_instructions += 1
                self.log.warning("unsupported_instruction", "COLO compare got unsupported instruction",
                                 length=len(msg), head=msg[:32].hex())
        self._after_step()

    def _notify_send(self, msg: bytes) -> None:
        ch = self.channels["notify_dev"]
        lost = ch.send([(_pack1(len(msg)), msg)])       # never a vnet word (Q21)
        if lost:
            if msg == DO_CHECKPOINT:
                self.stats.notify_lost += lost
            self.log.warning("notify_failed", "Notify Xen COLO-frame failed", message=msg.decode())

    # ------------------------------------------------------------------ output and timers
    def _after_step(self) -> None:
        out = self._out
        if out:
            entries = out[:]                  # (the list stays: FastInput holds it)
            out.clear()
            ch = self.channels["outdev"]
            self._sent(ch, ch.send(entries))
        if self._ckpt_msgs:
            n = self._ckpt_msgs
            self._ckpt_msgs = 0
            ch = self.channels["notify_dev"]
            lost = ch.send([(_pack1(13), DO_CHECKPOINT)] * n)
            if lost:
                self.stats.notify_lost += lost
                self.log.warning("notify_failed", "Notify Xen COLO-frame failed", requests=lost)
        eng = self.engine
        if eng.queued:
            ns = eng.next_scan_ns()
            if ns is not None and ns != self._timer_ns:
                self._set_timer(ns)

    def _sent(self, ch: Channel, lost: int) -> None:
        """outdev took a step's releases (``lost``: how many were lost at once)."""
        st = self.stats
        if lost:
            st.outdev_lost = ch.lost_entries
            self.log.warning("outdev_lost", "colo send primary packet failed", frames=lost,
                             msg_detail="outdev is not connected: QEMU 7.2 loses these frames too (-EIO)")
        else:
            if ch.blocked:
                if ch.queued_bytes > st.max_send_queue_bytes:
                    st.max_send_queue_bytes = ch.queued_bytes
                self._check_backpressure(ch)

    def _set_timer(self, ns: int) -> None:
        """The expiry scan's timer, at engine time ``ns`` (moved if it was set for another)."""
        if self._timer is not None:
            self._timer.cancel()
        self._timer_ns = ns
        self._timer = self.loop.call_at(self.clock.to_loop_time(ns), self._scan_due)

    def _scan_due(self) -> None:
        self._timer = None
        self._timer_ns = None
        t = self.clock.now()
        self._handle_step(self.engine.advance(t), t)
        self._after_step()

    def _check_backpressure(self, ch: Channel) -> None:
        limit = 0 if self.profile.send_synchronous else self.max_send_buffer
        if not self._inputs_paused and ch.queued_bytes > limit:
            self._inputs_paused = True
            self.stats.input_pauses += 1
            for name in SIDE_NAMES:
                self.channels[name].pause_reading()
            self.log.info("inputs_paused", queued_bytes=ch.queued_bytes, limit=limit,
                          msg="outdev is not keeping up: primary_in/secondary_in are not read until it drains")

    def _on_out_drained(self, ch: Channel) -> None:
        if self._inputs_paused:
            limit = 0 if self.profile.send_synchronous else self.max_send_buffer // 2
            if ch.queued_bytes <= limit or not ch.connected:
                self._inputs_paused = False
                for name in SIDE_NAMES:
                    self.channels[name].resume_reading()
                self.log.info("inputs_resumed", queued_bytes=ch.queued_bytes)

    def _on_state(self, ch: Channel, connected: bool) -> None:
        if ch.name == "outdev":
            self.stats.outdev_lost = ch.lost_entries
        if ch.name in SIDE_NAMES:
            dec = self.decoders[SIDE_NAMES.index(ch.name)]
        elif ch.name == "notify_dev":
            dec = self.notify_decoder
        else:
            dec = None
        if connected:
            if ch.connections > 1:
                self.stats.reconnects[ch.name] = self.stats.reconnects.get(ch.name, 0) + 1
            if dec is not None and dec.mid_frame:
                self.log.warning("reconnect_mid_frame", channel=ch.name,
                                 partial_bytes=dec.index, declared_len=dec.packet_len,
                                 msg="the peer left in the middle of a frame; as in QEMU (its "
                                     "SocketReadState is never reset) the new connection's bytes "
                                     "continue that frame, so the stream may be desynchronised")
        elif dec is not None and dec.mid_frame:
            self.log.warning("disconnect_mid_frame", channel=ch.name, partial_bytes=dec.index,
                             declared_len=dec.packet_len)

    # ------------------------------------------------------------------ results
    def summary(self) -> dict:
        self._sync()
        if "outdev" in self.channels:
            self.stats.bytes_out = self.channels["outdev"].sent_bytes
        s = self.stats.as_dict()
        p = self.profile
        s["qemu"] = (self.release.as_dict() if self.release is not None else
                     {"release": p.name, "row": p.row, "switches": switches(p)})
        s["profile"] = p.name
        s.update(self.resolved.as_dict())
        s["still_queued"] = list(self.engine.queue_lengths()) if self.engine else [0, 0]
        if "outdev" in self.channels:
            s["outdev_lost"] = self.channels["outdev"].lost_entries
        s["send_queue_bytes"] = self.channels["outdev"].queued_bytes if "outdev" in self.channels else 0
        s["runtime_s"] = round(time.monotonic() - self._t0, 3) if self._t0 else 0
        s["stop_reason"] = self.stop_reason
        return s
