"""Expiry scans and the checkpoint flush: colo_old_packet_check() on its timer, and
colo_flush_packets().

``ScanAndFlush`` is the first part of ``Engine`` (compare.py), which inherits these methods; the
state they use (the scan deadline, the VM-stopped bookkeeping of the VM-clock profiles 4.1-5.1,
the queues) is ``state.EngineState``'s.
"""

from __future__ import annotations

from .constants import MS, NEVER
from .events import _C_FLUSH, _CKPT, _RELEASE, _SDROP, Cause, Event, EventKind, _new_event
from .packet import IPPROTO_TCP, Packet
from .state import EngineState

try:
    import cython
except ImportError:                 # Cython absent: the @cython.locals below are no-ops
    from . import _cython_shim as cython

_I64_MAX = (1 << 63) - 1      # _tick_c's "never" (NEVER itself does not fit a C integer)
# settle_queues settles one connection's frames when its queues hold at most this many, else all
SETTLE_ONE_MAX = 16


@cython.cfunc
@cython.inline
@cython.locals(p=Packet)
def _own_bytes(p) -> None:
    """A frame queued lazily gets its own copy of its bytes (``data``) and lets its read buffer
    go; one that has them already, or was released or dropped on the fast path (``chunk`` None
    there too), is left as it is."""
    if p.chunk is not None:
        p.data = p.chunk[p.chunk_off:p.chunk_off + p.size]
        p.chunk = None


def _index(conn) -> int:
    return conn.index


class ScanAndFlush(EngineState):
    """Expiry scan and flush of ``Engine`` (a part of it; the state is ``EngineState``'s)."""

    __slots__ = ()

    def settle(self) -> None:
        """Give every frame queued without its own copy (``lazy_frames``) its ``data``: the
        engine does this before any path but the fast one touches a queue, and the offline
        driver before a read buffer is let go (a frame then holds 1 frame, not 1 chunk)."""
        lazy = self._lazy
        for p in lazy:
            _own_bytes(p)
        lazy.clear()

    def settle_queues(self, conn) -> None:
        """``settle()`` as far as a comparator of ``conn`` needs it (_compare_tcp,
        _compare_packet): they read and name the frames of that connection only, so the frames
        of the others may stay in their read buffer until the next settle().  (On a free-running
        pair a primary waits queued for its secondary nearly always: settling every connection
        at each general compare copied ~18% of all frames.)  Long queues are settled with all the
        rest instead (which empties the list of lazy frames): a call looks at a bounded number
        of frames, however long a queue grows."""
        pl = conn.primary
        sl = conn.secondary
        if len(pl) + len(sl) > SETTLE_ONE_MAX:
            self.settle()
            return
        for p in pl:
            _own_bytes(p)
        for p in sl:
            _own_bytes(p)

    def _holding(self) -> list:
        """The connections that hold frames, in conn_list order (QEMU walks the whole conn_list;
        a connection with empty queues does nothing there).  ``_occupied`` has every connection
        a frame was queued to since it was last found empty, in the order they were first
        occupied; conn_list is in creation order, which is ``index`` order, so sorting by index
        gives QEMU's order.  The ones found empty leave the list.  Should the frames counted
        there ever differ from ``queued`` (an enqueue that did not mark its connection), the
        whole conn_list is walked instead, as QEMU does: never a frame missed."""
        occupied = self._occupied
        keep = []
        held = 0
        for conn in occupied:
            n = len(conn.primary) + len(conn.secondary)
            if n:
                keep.append(conn)
                held += n
            else:
                conn.occupied = False
        if held != self.queued:
            for conn in occupied:
                conn.occupied = False
            keep = [c for c in self.conn_list if c.primary or c.secondary]
            for conn in keep:
                conn.occupied = True
        elif len(keep) > 1:
            keep.sort(key=_index)
        self._occupied = keep
        return keep

    def _flush(self, t: int) -> None:
        """colo_flush_packets() for every connection in conn_list order (2.9).  compare_seq,
        pack, sack, the table and the scan phase survive a flush."""
        if self._lazy:
            self.settle()
        out = self._out
        out.append(_new_event(Event, (EventKind.FLUSH, Cause.CHECKPOINT, t, None, None, -1, 0)))
        for conn in self._holding():
            tail = self._tcp_tail if conn.ip_proto == IPPROTO_TCP else self._other_tail
            pl = conn.primary
            sl = conn.secondary
            ci = conn.index
            if pl:
                order = reversed(pl) if tail else pl
                for p in order:
                    out.append(_new_event(Event, (_RELEASE, _C_FLUSH, t, p, None, ci, 0)))
                pl.clear()
            if sl:
                order = reversed(sl) if tail else sl
                for s in order:
                    out.append(_new_event(Event, (_SDROP, _C_FLUSH, t, s, None, ci, 0)))
                sl.clear()
            conn.occupied = False
        self._occupied = []
        self.queued = 0

    def _retick(self) -> None:
        """Recompute the cached ``_tick_ns`` after the deadline or the VM-stopped state changed
        (and ``_tick_c``, the same clamped to int64, which the per-frame path compares in C)."""
        t = self._tick_ns = self._next_tick_host_ns()
        self._tick_c = t if t < _I64_MAX else _I64_MAX

    def _next_tick_host_ns(self) -> int:
        if not self.profile.scan_on_vm_clock:
            return self._deadline
        if self._stopped_at is not None:
            return NEVER
        return self._deadline + self._start_ns + self._paused_ns

    def _run_due_scans(self, until_ns: int) -> None:
        """Run check_old_packet_regular for every tick due by ``until_ns``, re-arming the timer at
        tick + expired_scan_cycle as QEMU does (the tick fires exactly at its deadline here)."""
        cycle = self._cycle_ns
        while True:
            tick = self._next_tick_host_ns()
            if tick > until_ns:
                return
            if not self.queued and not self.emit_scans:
                # Nothing queued: every scan up to until_ns finds nothing.  Skip them at once.
                if self._ticks is not None:
                    self._skip_scheduled(until_ns)
                else:
                    n = (until_ns - tick) // cycle + 1
                    self._deadline += n * cycle
                self._retick()
                continue
            self._scan(tick)
            if self._ticks is not None:
                self._next_scheduled()
            else:
                self._deadline += cycle
            self._retick()

    def _next_scheduled(self) -> None:
        """The deadline after the current one of a measured schedule (``set_scan_ticks``)."""
        ticks = self._ticks
        self._tick_i += 1
        if self._tick_i < len(ticks):
            self._deadline = ticks[self._tick_i]
        else:
            self._deadline += self._cycle_ns

    def _skip_scheduled(self, until_ns: int) -> None:
        """Pass every scheduled tick up to ``until_ns`` (none of them finds anything)."""
        from bisect import bisect_right

        ticks = self._ticks
        i = bisect_right(ticks, until_ns, self._tick_i)
        if i < len(ticks):
            self._tick_i = i
            self._deadline = ticks[i]
        else:
            self._tick_i = len(ticks)
            last = max(ticks[-1], self._deadline)
            cycle = self._cycle_ns
            self._deadline = last + ((until_ns - last) // cycle + 1) * cycle

    def _scan(self, tick_ns: int) -> None:
        """colo_old_packet_check(): stop at the first connection holding a frame older than
        compare_timeout (strictly), primary list first, then (5.2+) the secondary list."""
        if self._lazy:
            self.settle()
        out = self._out
        now_ms = tick_ns // MS          # qemu_clock_get_ms(QEMU_CLOCK_HOST)
        timeout = self._timeout_ms
        scan_sec = self.profile.scan_secondary
        if self.emit_scans:
            out.append(_new_event(Event, (EventKind.SCAN, Cause.TICK, tick_ns, None, None, -1, 0)))
        if not self.queued:
            return
        for conn in self._holding():
            for p in conn.primary:
                if now_ms - p.creation_ms > timeout:
                    out.append(_new_event(Event, (_CKPT, Cause.EXPIRED, tick_ns, p, None, conn.index,
                                                  now_ms - p.creation_ms)))
                    return
            if scan_sec:
                for s in conn.secondary:
                    if now_ms - s.creation_ms > timeout:
                        out.append(_new_event(Event, (_CKPT, Cause.EXPIRED, tick_ns, s, None, conn.index,
                                                      now_ms - s.creation_ms)))
                        return
