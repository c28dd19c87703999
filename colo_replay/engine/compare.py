"""The sans-I/O colo-compare engine.

``Engine`` is QEMU's colo-compare (net/colo-compare.c) without the I/O: it never opens a
file or socket and never reads a clock.  The caller

* feeds it frames with their arrival time: ``feed(side, data, time_ns, vnet_hdr_len, ident)``,
  or ``feed_at(side, buf, off, size, time_ns, ident)`` for a frame inside a larger buffer (a
  capture's read chunk: the frame is copied out only if it is queued),
* tells it that time advanced: ``advance(time_ns)`` (the expiry scans that fall due run),
* tells it that a checkpoint completed: ``checkpoint(time_ns)`` (every queue is flushed),
* for the profiles that scan on the VM clock (4.1-5.1, ``scan_on_vm_clock``), tells it when the
  VM stops and runs again: ``vm_stop`` / ``vm_resume`` (QEMU_CLOCK_VIRTUAL stands still while
  the VM is stopped),

and gets back a list of ``Event`` for every decision QEMU makes.  The same inputs always
give the same events.  With ``rows`` set (an ``EventLog``), a pair matched the moment its second
frame arrives, the common case, is written there as its two rows instead of two events.

Example::

    from colo_replay import Engine, PRIMARY, SECONDARY, EventKind
    eng = Engine("7.2")
    eng.feed(PRIMARY, frame_a, time_ns=1_000_000, ident=1)
    for ev in eng.feed(SECONDARY, frame_a_from_svm, time_ns=1_200_000, ident=1):
        print(ev.describe())          # RELEASE/COMPARED_EQUAL P#1 with S#1, ...

Queues are ``collections.deque`` objects kept in GLib order (index 0 = ``g_queue`` head), so
each profile pops and pushes at exactly the end QEMU does, and ``g_queue_insert_sorted`` /
``g_queue_find_custom`` walk them in QEMU's order.

``Engine`` is one class made of parts with one job each.  This module holds its public API and
the input path (``feed`` with its fast path, the general path, the connection table); the
comparators and the timer work are the parts it inherits, in one chain, with no fields of their
own (``__slots__ = ()``; the fields are ``state.EngineState``'s, declared once; a method found
through the chain costs the same as one defined on the class, thanks to the type attribute
cache; a single chain lets the compiled core make every part an extension type, state.py):

* ``tcp.TcpCompare``            colo_compare_tcp, colo_mark_tcp_pkt, the payload compare
* ``datagram.DatagramCompare``  colo_compare_packet (UDP, ICMP, other)
* ``scan.ScanAndFlush``         the expiry-scan timer, colo_old_packet_check, colo_flush_packets
* ``state.EngineState``         the fields
"""

from __future__ import annotations

from collections import deque
from struct import Struct

try:
    import cython
except ImportError:                 # Cython absent: the decorators below are no-ops
    from . import _cython_shim as cython

from .connection import Connection
from .eventlog import EventLog
from .constants import MS, NEVER, S32_SIGN, U32
from .events import _C_EQUAL, _C_ZERO, _FULL, _RELEASE, _SDROP, _UNDEF, Cause, Event, EventKind, _new_event
from .packet import (
    IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP, PRIMARY, SECONDARY, Packet, connection_key,
    fill_tcp_info, parse_packet_early,
)
if not cython.compiled:            # (compiled: a C function, cimported by compare.pxd)
    from .packet import _equal_at
from .profiles import (
    ACK_UMAX, GATE_SACK, OVERFLOW_CRASH, ZERO_REJECT, ZERO_SIGABRT, CompareConfig, Profile,
)
from .releases import get_profile
from .tcp import TcpCompare

HASHTABLE_MAX_SIZE = 16384   # net/colo.h

# The constants of the per-frame path as C values in the compiled core (``cython.declare`` at
# module level makes a C global; interpreted it is the plain int).  Imported names are Python
# objects there: each test or mask against one would box the C operand and go through the
# generic number protocol, several times a frame.
_U32 = cython.declare(cython.longlong, U32)
_S32 = cython.declare(cython.longlong, S32_SIGN)
_TCP = cython.declare(cython.longlong, IPPROTO_TCP)
_UDP = cython.declare(cython.longlong, IPPROTO_UDP)
_ICMP = cython.declare(cython.longlong, IPPROTO_ICMP)
_PRI = cython.declare(cython.longlong, PRIMARY)
# The queues' methods, looked up once: ``queue.append(pkt)`` in the compiled core looks the
# method up by name on every call (a deque is not a list Cython knows).
_append = deque.append
_appendleft = deque.appendleft
_pop = deque.pop
_popleft = deque.popleft
_CACHE_SLOTS = cython.declare(cython.Py_ssize_t, 1024)      # feed's connection cache: a power of two
_H0 = cython.declare(cython.ulonglong, 0x9E3779B1)           # its slot hash's multipliers
_H1 = cython.declare(cython.ulonglong, 0x85EBCA77)
_H2 = cython.declare(cython.ulonglong, 0xC2B2AE3D)

@cython.locals(pkt=Packet)      # compiled core: C field stores (untyped, each is a generic setattr)
def _fast_packet(data: bytes, size: int, side: int, ident, time_ns: int, proto: int, seq: int, ack: int,
                 header_size: int, payload_size: int, seq_end: int, flags: int) -> Packet:
    """The Packet of a frame on feed's fast path (Ethernet + 20-byte IPv4, no vnet header):
    what ``Packet(...)``, ``parse_packet_early`` and ``fill_tcp_info`` would give it."""
    pkt = Packet.__new__(Packet)    # (written out: the compiled core then calls tp_new directly)
    pkt.data = data
    pkt.chunk = None
    pkt.chunk_off = 0
    pkt.size = size
    pkt.vnet_hdr_len = 0
    pkt.side = side
    pkt.ident = ident
    pkt.time = time_ns
    pkt.net_off = 14
    pkt.l4_off = 34
    pkt.ip_proto = proto
    pkt.offset = 0
    pkt.undefined = False
    pkt.tcp_seq = seq
    pkt.tcp_ack = ack
    pkt.header_size = header_size
    pkt.payload_size = payload_size
    pkt.seq_end = seq_end
    pkt.flags = flags
    return pkt


# Everything the fast path reads, in one call, from byte 12 (interpreted core; the compiled one
# reads the same bytes through a pointer): ethertype, IPv4 version/ihl, ip_p, and for TCP
# th_seq, th_ack, th_off and th_flags.  (The key, bytes 26..38, is a slice of its own.)
_fast_header = Struct("!HB8xB14xIIBB").unpack_from


@cython.locals(pkt=Packet)
def _queued_packet(lazy: list | None, buf: bytes, off: int, size: int, side: int, ident, time_ns: int, proto: int,
                   seq: int, ack: int, header_size: int, payload_size: int, seq_end: int, flags: int) -> Packet:
    """The Packet of the frame ``buf[off:off + size]`` that the fast path queues: with its own
    copy of its bytes, or, given ``lazy`` (the engine's list of such frames: lazy_frames),
    pointing into ``buf`` until ``settle()`` copies it."""
    if lazy is None:
        return _fast_packet(_frame(buf, off, size), size, side, ident, time_ns, proto, seq, ack, header_size,
                            payload_size, seq_end, flags)
    pkt = _fast_packet(None, size, side, ident, time_ns, proto, seq, ack, header_size, payload_size, seq_end,
                       flags)
    pkt.chunk = buf
    pkt.chunk_off = off
    lazy.append(pkt)
    return pkt


def _bytes_of(pkt: Packet) -> bytes:
    """The bytes object holding a queued frame: its ``data``, or its read buffer (lazy_frames)."""
    return pkt.chunk if pkt.data is None else pkt.data


def _offset_of(pkt: Packet) -> int:
    """Where the frame starts in ``_bytes_of(pkt)``."""
    return pkt.chunk_off if pkt.data is None else 0


@cython.locals(p=cython.p_uchar)
def _frame(buf: bytes, off: int, size: int) -> bytes:
    """The frame ``buf[off:off + size]`` as its own ``bytes`` (``buf`` itself when it is the frame)."""
    if off == 0 and size == len(buf):
        return buf
    if cython.compiled:
        p = buf                     # one copy out of the pointer: slicing a bytes object goes
        return p[off:off + size]    # through a slice object and the sequence protocol
    return buf[off:off + size]


class Engine(TcpCompare):
    """An exact, deterministic colo-compare for one QEMU profile.

    ``profile`` is a profile name ("4.1", "7.2"), a release string ("6.2.0", "row:G";
    ``releases.get_profile``) or a ``Profile``; ``config`` a ``CompareConfig``
    (QEMU's property names) or ``None`` for the profile's defaults.  ``start_ns`` is when
    the colo-compare object was created: the expiry-scan grid starts there (first scan one
    ``expired_scan_cycle`` later).  With ``emit_scans=True`` every scan is an event too.

    ``compact_pairs=True`` is for callers that only act on releases (live mode without a
    timeline or recording): a pair that ``feed`` matches the moment its second frame arrives
    (the fast path's usual case) comes back as one item, the released primary's ``bytes``,
    instead of its RELEASE and SECONDARY_DROPPED events; the frames' identities are not
    reported and the second frame never becomes a Packet.  Every decision, and the order of
    releases, is the same as without it; other outcomes are Events as usual.

    ``lazy_frames = True`` is for a caller feeding frames in place (``feed_at``) from read
    buffers it keeps until it calls ``settle()`` (the offline driver: before it loads a side's
    next batch, and at the end): a frame the fast path queues then keeps its bytes in the buffer
    (``Packet.chunk``) instead of a copy of its own.  The engine settles (gives every such frame
    its ``data``) before any other path touches a queue and before an event names a frame, so
    nothing outside the fast path ever sees one without its bytes.  Decisions are the same.
    """

    __slots__ = ()       # the fields are EngineState's (state.py)

    def __init__(self, profile: str | Profile = "7.2", config: CompareConfig | None = None,
                 start_ns: int = 0, emit_scans: bool = False, compact_pairs: bool = False):
        self.profile = prof = get_profile(profile)
        self.compact_pairs = compact_pairs
        # lazy_frames (the offline driver sets it, and calls settle() before it lets a read
        # buffer go): a frame queued on the fast path keeps its bytes in the caller's buffer
        # (Packet.chunk) instead of a copy of its own, while only the fast path can see it.  A
        # pair matched on the second frame's arrival, the usual case, then costs no copy, no
        # malloc and no free (~8% of a replay's CPU, bench/README.md).
        self.lazy_frames = False
        self._lazy: list = []           # the frames queued lazily since the last settle()
        self.config = (config or CompareConfig()).resolve(prof)
        self.emit_scans = emit_scans
        self._timeout_ms = self.config.compare_timeout
        if prof.old_packet_timeout_broken:
            # 5.0.x-5.1.x: the scan compares the age with *(int64_t *)&s->compare_timeout, i.e.
            # compare_timeout + 2**32 * expired_scan_cycle on a little-endian host (the two uint32
            # fields are adjacent): the scan runs, no old-packet request ever comes in practice.
            self._timeout_ms = self.config.compare_timeout + (self.config.expired_scan_cycle << 32)
        self._cycle_ns = self.config.expired_scan_cycle * MS
        self._max_queue = self.config.max_queue_size
        self._vnet = self.config.vnet_hdr_support
        self._inverted = prof.tcp_compare_inverted
        self._subtract_vnet = prof.header_size_subtracts_vnet
        self._ack_umax = prof.ack_tracking == ACK_UMAX
        self._gate_sack = prof.ack_gate == GATE_SACK
        self._tcp_tail = prof.tcp_pop_tail
        self._other_tail = prof.nontcp_pop_tail
        self._key_ips = prof.portless_key_has_ips
        self.table: dict[bytes, Connection] = {}
        self._ckeys: list = [None] * _CACHE_SLOTS    # feed's connection cache (compiled core): keys ...
        self._cconns: list = [None] * _CACHE_SLOTS   # ... and their connections, by slot
        self.conn_list: list[Connection] = []   # QEMU conn_list: first-seen order
        # The connections a frame was queued to since the last flush (``Connection.occupied``
        # says which): a flush or a scan walks these, in conn_list order, not the whole list
        # (16,384 connections walked at every flush made a checkpoint per frame quadratic).
        self._occupied: list[Connection] = []
        self._next_conn_index = 0
        self.queued = 0                          # frames in all queues (lets idle scans be skipped)
        self.now = start_ns
        # Scan timer.  It is an ms-scale timer: timer_mod(now_ms + cycle).  On the host clock
        # (5.2+) its deadline is host ns; on the seed's virtual clock it is "VM-running ns since
        # start", and host = virtual + start + time spent stopped.
        self._start_ns = start_ns
        self._paused_ns = 0              # total VM-stopped time so far (virtual-clock profiles)
        self._stopped_at: int | None = None
        if prof.scan_on_vm_clock:
            self._deadline = self._cycle_ns          # virtual ns; virtual clock is 0 at start
        else:
            self._deadline = (start_ns // MS) * MS + self._cycle_ns
        self._tick_ns = 0                # host time of the next scan (_next_tick_host_ns), cached
        self._ticks = None               # a measured tick schedule (set_scan_ticks), else the grid
        self._tick_i = 0
        self._oracle = None              # a real run's record of each TCP memcmp (offline/trace_oracle.py)
        self._retick()
        self._out: list = []
        self.rows: EventLog | None = None      # matched pairs' rows go here (feed_at), if set

    # ------------------------------------------------------------------ public API
    def set_scan_ticks(self, ticks: list[int]) -> None:
        """Fire the expiry scan at these host times (ns, ascending) instead of on the
        ``expired_scan_cycle`` grid, and after the last one every cycle again.  A real run's
        timer drifts (check_old_packet_regular re-arms it at now_ms + cycle from when it ran);
        the offline driver gives the ticks a QEMU trace pins (offline/qemutrace.py).  Host-clock
        profiles only (5.2+): the seed's scan timer runs on the VM clock."""
        if self.profile.scan_on_vm_clock:
            raise ValueError("a measured scan schedule needs a host-clock scan timer (QEMU 5.2+)")
        ticks = sorted(int(t) for t in ticks)
        if not ticks:
            return
        self._ticks = ticks
        self._tick_i = 0
        self._deadline = ticks[0]
        self._retick()

    def feed(self, side: int, data: bytes, time_ns: int, vnet_hdr_len: int = 0,
             ident=None) -> list[Event]:
        """A frame fully read from primary_in (side 0) or secondary_in (side 1) at ``time_ns``.

        Scans that fall due up to ``time_ns`` run first.  ``vnet_hdr_len`` is the framing's vnet
        length word and must be 0 unless the config has ``vnet_hdr_support``.  ``ident`` is kept
        on the frame and comes back in every event about it.
        """
        out = self._out = []
        if vnet_hdr_len:
            if time_ns >= self._tick_ns:
                self._run_due_scans(time_ns)
            if time_ns > self.now:
                self.now = time_ns
            self._feed_general(side, data, time_ns, vnet_hdr_len, ident)
            return out
        self._feed_at(side, data, 0, len(data), time_ns, ident)
        return out

    def feed_at(self, side: int, buf: bytes, off: int, size: int, time_ns: int, ident=None) -> list[Event]:
        """``feed(side, buf[off:off + size], time_ns, 0, ident)`` without making that slice unless
        the frame is queued: the replay driver's way of feeding frames that lie in a capture's
        read buffer (``buf`` must be ``bytes``).  The list returned is valid until the next call
        (an empty one is reused).  With ``rows`` set (an ``EventLog``), a pair matched the moment
        its second frame arrives is written there as its two rows instead of two events."""
        if off < 0 or size < 0 or off + size > len(buf):
            raise ValueError(f"frame at {off}+{size} lies outside its {len(buf)}-byte buffer")
        out = self._out
        if out:
            out = self._out = []
        self._feed_at(side, buf, off, size, time_ns, ident)
        return out

    # (compiled core only: C types for the per-frame locals; no effect when interpreted)
    @cython.locals(pkt=Packet, o=Packet, conn=Connection, rows=EventLog,
                   seq=cython.longlong, ack=cython.longlong, hs=cython.longlong, ps=cython.longlong,
                   end=cython.longlong, th_off=cython.longlong, flags=cython.longlong, proto=cython.longlong,
                   ethertype=cython.longlong, ver_ihl=cython.longlong, pseq=cython.longlong,
                   pend=cython.longlong, sseq=cython.longlong, send=cython.longlong, phs=cython.longlong,
                   pps=cython.longlong, shs=cython.longlong, cseq=cython.longlong, pe=cython.longlong,
                   se=cython.longlong, hp=cython.p_uchar, pdata=bytes, sdata=bytes, ck=bytes, ckp=cython.p_uchar,
                   w0=cython.ulonglong, w1=cython.ulonglong, w2=cython.ulonglong, slot=cython.Py_ssize_t,
                   pdo=cython.Py_ssize_t, sdo=cython.Py_ssize_t, i=cython.Py_ssize_t, poff=cython.Py_ssize_t,
                   od=bytes, odo=cython.Py_ssize_t)
    def _feed_at(self, side: int, buf: bytes, off: int, size: int, time_ns: int, ident) -> None:
        """feed()'s work for the frame ``buf[off:off + size]`` (no vnet header), into ``_out``."""
        out = self._out
        if time_ns >= self._tick_c:         # (_tick_ns clamped to int64: a C comparison)
            self._run_due_scans(time_ns)
        if time_ns > self.now:
            self.now = time_ns
        if size < 48:
            self._feed_general(side, _frame(buf, off, size), time_ns, 0, ident)
            return
        if cython.compiled:
            # The same fields as _fast_header below, read through a pointer: no tuple, no ints.
            hp = buf
            hp += off
            ethertype = hp[12] << 8 | hp[13]
            ver_ihl = hp[14]
            proto = hp[23]
            seq = hp[38]
            seq = seq << 24 | hp[39] << 16 | hp[40] << 8 | hp[41]
            ack = hp[42]
            ack = ack << 24 | hp[43] << 16 | hp[44] << 8 | hp[45]
            th_off = hp[46]
            flags = hp[47]
        else:
            ethertype, ver_ihl, proto, seq, ack, th_off, flags = _fast_header(buf, off + 12)
        if ethertype != 0x0800 or ver_ihl != 0x45:
            self._feed_general(side, _frame(buf, off, size), time_ns, 0, ident)
            return
        # The fast path: no vnet header, ethertype IPv4 and a 20-byte IPv4 header (0x45; QEMU
        # only looks at the low nibble, so other first bytes just take the general path), and
        # at least 48 bytes, so that every read lies inside the frame (TCP reads up to
        # l4 + 14 = 48).  For such a frame parse_packet_early accepts with net_off 14 / l4 34
        # under every profile (both minimum lengths are <= 18), reads no byte past the end,
        # and everything below is _enqueue_and_compare / fill_tcp_info / connection_key with
        # those offsets filled in.  (seq, ack, th_off and flags mean something for TCP only.)
        # The frame's bytes stay in ``buf``: a Packet gets its own copy (``data``) only when it
        # is queued or named in an event.
        if proto == _TCP:
            # fill_pkt_tcp_info (vnet_hdr_len is 0, so the seed's subtraction changes nothing);
            # the key is bytes 26..38 as they are (TCP keys carry no protocol byte)
            hs = 34 + ((th_off >> 2) & 0x3C)            # l4 + th_off * 4 (< 256: no uint8_t wrap)
            ps = (size - hs) & 0xFFFF                        # uint16_t payload_size (Q8)
            end = (seq + ps) & _U32
        else:
            seq = ack = hs = ps = end = flags = 0
        conn = None
        slot = -1
        if proto != _TCP and proto != _UDP:
            pkt = _fast_packet(_frame(buf, off, size), size, side, ident, time_ns, proto, 0, 0, 0, 0, 0, 0)
            key = connection_key(pkt, self._key_ips)
        else:
            pkt = None
            if cython.compiled:
                # The connection of the last key seen in this slot of a small direct-mapped
                # cache (compiled core only): a hit spares the key's bytes object and the table's
                # hashing.  The table stays the truth (a miss looks there); a table reset empties
                # the cache (_connection_get).
                w0 = hp[26] << 24 | hp[27] << 16 | hp[28] << 8 | hp[29]
                w1 = hp[30] << 24 | hp[31] << 16 | hp[32] << 8 | hp[33]
                w2 = hp[34] << 24 | hp[35] << 16 | hp[36] << 8 | hp[37]
                slot = ((w0 * _H0 + w1 * _H1 + w2 * _H2 + proto) >> 16) & (_CACHE_SLOTS - 1)
                ck = self._ckeys[slot]
                if ck is not None:
                    ckp = ck
                    if len(ck) == (12 if proto == _TCP else 13) and memcmp(ckp, hp + 26, 12) == 0:
                        conn = self._cconns[slot]
            if conn is None:
                if cython.compiled:
                    key = hp[26:38]         # (a bytes slice of a bytes object is a generic slice)
                else:
                    key = buf[off + 26:off + 38]
                if proto == _UDP:
                    key += b"\x11"
        if conn is None:
            # (get, not [] with KeyError: a new connection's KeyError, traceback and all, cost
            # ~1.6% of a free-running pair's replay, which makes a connection every 12 frames)
            conn = self.table.get(key)
            if conn is None:
                conn = self._connection_get(key, proto, time_ns)
            if slot >= 0:
                self._ckeys[slot] = key
                self._cconns[slot] = conn
        if side == _PRI:
            queue = conn.primary
            other = conn.secondary
        else:
            queue = conn.secondary
            other = conn.primary
        # colo_insert_packet: "<=" admits max_queue_size + 1 frames (Q5)
        if len(queue) > self._max_queue:
            # Dropped: lost for good, no checkpoint, pack/sack untouched; the compare still runs.
            # (The dropped frame's TCP fields stay 0: fill_pkt_tcp_info runs only on insertion.)
            if pkt is None:
                pkt = _fast_packet(_frame(buf, off, size), size, side, ident, time_ns, proto, 0, 0, 0, 0, 0, 0)
            else:
                pkt.tcp_seq = pkt.tcp_ack = pkt.seq_end = pkt.header_size = pkt.payload_size = pkt.flags = 0
            out.append(_new_event(Event, (_FULL, Cause.NONE, time_ns, pkt, None, conn.index, len(queue))))
        elif proto != _TCP:
            if not queue and other and (proto == _UDP or proto == _ICMP) and size <= 0xFFFF:
                # The usual case again, for datagrams: the frame is alone on its side and the
                # other side has frames waiting.  colo_compare_packet's first round pops the
                # primary (this frame, or the other side's head) and looks for the first
                # secondary of its size with the same bytes from the primary's ip_hl + 14 (Q9).
                # On a match both go and the loop stops (one side is empty again); this does that
                # without queueing.  Anything else (no match, a read past a frame) is
                # _compare_packet's, from the start.
                rows = self.rows
                if side == _PRI:
                    # off = 20 + 14: this primary is on the fast path (ver_ihl 0x45, no vnet)
                    i = 0
                    for o in other:                 # g_queue_find_custom: from the head
                        od = _bytes_of(o)           # (the queued frame: its own bytes, or its
                        odo = _offset_of(o)         # read buffer's: lazy_frames)
                        if o.size == size and _equal_at(buf, off + 34, od, odo + 34, size - 34):
                            del other[i]
                            self.queued -= 1
                            if self.compact_pairs:
                                o.chunk = None          # (gone: settle() passes it by)
                                out.append(_frame(buf, off, size))
                            elif rows is not None and not out:
                                o.chunk = None
                                rows.pair(time_ns, _C_EQUAL, conn.index, ident, o.ident, time_ns, o.time,
                                          size, o.size, -1, -1, -1, -1, True)
                            else:
                                if self._lazy:          # the events name o: it needs its bytes
                                    self.settle()
                                if pkt is None:
                                    pkt = _fast_packet(_frame(buf, off, size), size, side, ident, time_ns, proto,
                                                       0, 0, 0, 0, 0, 0)
                                ci = conn.index
                                out.append(_new_event(Event, (_RELEASE, _C_EQUAL, time_ns, pkt, o, ci, 0)))
                                out.append(_new_event(Event, (_SDROP, _C_EQUAL, time_ns, o, pkt, ci, 0)))
                            return
                        i += 1
                else:
                    o = other[-1] if self._other_tail else other[0]
                    od = _bytes_of(o)
                    odo = _offset_of(o)
                    poff = (((od[odo + o.net_off] & 0x0F) << 2) + 14 + o.vnet_hdr_len) & 0xFFFF
                    # (size <= 0xFFFF: the uint16_t length cannot wrap; poff <= size: no read past)
                    if o.size == size and poff <= size and _equal_at(od, odo + poff, buf, off + poff, size - poff):
                        if self._other_tail:
                            _pop(other)
                        else:
                            _popleft(other)
                        self.queued -= 1
                        if self.compact_pairs:
                            o.chunk = None
                            out.append(_frame(od, odo, o.size))
                        elif rows is not None and not out:
                            o.chunk = None
                            rows.pair(time_ns, _C_EQUAL, conn.index, o.ident, ident, o.time, time_ns,
                                      o.size, size, -1, -1, -1, -1, True)
                        else:
                            if self._lazy:
                                self.settle()
                            if pkt is None:
                                pkt = _fast_packet(_frame(buf, off, size), size, side, ident, time_ns, proto,
                                                   0, 0, 0, 0, 0, 0)
                            ci = conn.index
                            out.append(_new_event(Event, (_RELEASE, _C_EQUAL, time_ns, o, pkt, ci, 0)))
                            out.append(_new_event(Event, (_SDROP, _C_EQUAL, time_ns, pkt, o, ci, 0)))
                        return
            if pkt is None:
                # (with the other side empty nothing is compared now: it may stay without a copy)
                pkt = _queued_packet(self._lazy if self.lazy_frames and not other else None, buf, off, size,
                                     side, ident, time_ns, proto, 0, 0, 0, 0, 0, 0)
            self.queued += 1
            if not conn.occupied:
                conn.occupied = True
                self._occupied.append(conn)
            _append(queue, pkt)
        else:
            if self._ack_umax:                               # seed: unsigned max
                if side == _PRI:
                    if ack > conn.pack:
                        conn.pack = ack
                elif ack > conn.sack:
                    conn.sack = ack
            elif side == _PRI:                            # 6.2+: the last ACK enqueued
                conn.pack = ack
            else:
                conn.sack = ack
            if queue:
                # g_queue_insert_sorted: on the 7.0+ queues (descending, popped at the tail) a
                # segment at or after the head's seq goes first, which is the common case; the
                # general scan gives the same answer, only slower.
                # (With the other side empty nothing is compared now, so, as for a first segment
                # below, the frame may stay in its read buffer until settle(): a burst of one side
                # that the other side matches before the next batch is never copied.  The sorted
                # insertion reads sequence numbers only; _compare_tcp settles first.)
                pkt = _queued_packet(self._lazy if self.lazy_frames and not other else None, buf, off, size,
                                     side, ident, time_ns, proto, seq, ack, hs, ps, end, flags)
                self.queued += 1            # (the queue holds frames: conn is occupied already)
                # (seq_not_before(seq, head seq), inlined: this is the per-segment path)
                o = queue[0]
                if self._tcp_tail and (seq - o.tcp_seq) & _U32 < _S32:
                    _appendleft(queue, pkt)
                else:
                    self._insert_sorted(queue, pkt)
                if other:
                    self._compare_tcp(conn, time_ns)
                return
            if other:
                # The usual case: the segment is alone on its side, the other side has segments
                # waiting.  colo_compare_tcp's first round then compares this segment with the
                # other side's next one; its two common outcomes are done here: both zero-payload
                # (pure ACKs: released / dropped) or the same segment with equal payloads
                # (FREE_BOTH).  Either way this side's queue is empty again and QEMU's loop stops
                # ("pri:" finds no primary, or "sec:" no secondary and pushes the primary back),
                # so the segment is never queued.  Any other outcome is _compare_tcp's, from the
                # start.
                # (p = the primary, s = the secondary of the two; this frame's fields are locals,
                # its bytes at ``off`` in ``buf``, the queued one's at 0 in its ``data``, or at
                # ``chunk_off`` in its read buffer while it has no copy: lazy_frames)
                o = other[-1] if self._tcp_tail else other[0]
                od = _bytes_of(o)
                odo = _offset_of(o)
                if side == _PRI:
                    pseq = seq
                    pend = end
                    pdata = buf
                    pdo = off
                    sseq = o.tcp_seq
                    send = o.seq_end
                    sdata = od
                    sdo = odo
                else:
                    pseq = o.tcp_seq
                    pend = o.seq_end
                    pdata = od
                    pdo = odo
                    sseq = seq
                    send = end
                    sdata = buf
                    sdo = off
                if pseq == pend:
                    matched = sseq == send                  # both zero-payload
                    cause = _C_ZERO
                elif pseq != sseq or pend != send or self._inverted or self._oracle is not None:
                    matched = False     # (a trace oracle walks every memcmp: the general path makes them)
                else:
                    if side == _PRI:
                        phs = hs
                        pps = ps
                        shs = o.header_size
                    else:
                        phs = o.header_size
                        pps = o.payload_size
                        shs = hs
                    cseq = conn.compare_seq
                    pe = phs + pps
                    se = shs + pps
                    # Not "already compared" (cseq and not seq_after(pend, cseq)), then
                    # tcp.payloads_equal_inside(...) on the two frames, both written out: this
                    # runs for every TCP data pair, and calling them cost 1.5-2% of a pair
                    # (measured: 2540 -> 2570 ns a pair, compact_pairs 1910 -> 1960 ns, 7.2).
                    # (Both frames are ``size`` bytes here: o.size == size when the byte-identical
                    # test is taken; the payload test reads only inside each frame.)
                    matched = not (cseq and not 0 < (pend - cseq) & _U32 < _S32
                                   or pe > (size if side == _PRI else o.size)
                                   or se > (o.size if side == _PRI else size)
                                   or not (phs == shs and o.size == size and _equal_at(pdata, pdo, sdata, sdo, size)
                                           or _equal_at(pdata, pdo + phs, sdata, sdo + shs, pps)))
                    cause = _C_EQUAL
                if matched:
                    if cause is _C_EQUAL:
                        conn.compare_seq = pend
                    self.queued -= 1
                    if self._tcp_tail:
                        _pop(other)
                    else:
                        _popleft(other)
                    if self.compact_pairs:
                        o.chunk = None              # (gone: settle() passes it by)
                        out.append(_frame(buf, off, size) if side == _PRI else _frame(od, odo, o.size))
                        return
                    rows = self.rows
                    if rows is not None and not out:
                        o.chunk = None
                        # the two rows of _RELEASE/_SDROP below, without the events (TCP: the
                        # header_size of a fast-path segment is never 0, so seq columns are set)
                        if side == _PRI:
                            rows.pair(time_ns, cause, conn.index, ident, o.ident, time_ns, o.time, size, o.size,
                                      seq, end, o.tcp_seq, o.seq_end, cause is _C_EQUAL)
                        else:
                            rows.pair(time_ns, cause, conn.index, o.ident, ident, o.time, time_ns, o.size, size,
                                      o.tcp_seq, o.seq_end, seq, end, cause is _C_EQUAL)
                        return
                    if self._lazy:                  # the events name o: it needs its bytes
                        self.settle()
                    pkt = _fast_packet(_frame(buf, off, size), size, side, ident, time_ns, proto, seq, ack, hs, ps,
                                       end, flags)
                    p, s = (pkt, o) if side == _PRI else (o, pkt)
                    ci = conn.index
                    out.append(_new_event(Event, (_RELEASE, cause, time_ns, p, s, ci, 0)))
                    out.append(_new_event(Event, (_SDROP, cause, time_ns, s, p if cause is _C_EQUAL else None,
                                                  ci, 0)))
                    return
            # (with the other side empty nothing is compared now: it may stay without a copy)
            pkt = _queued_packet(self._lazy if self.lazy_frames and not other else None, buf, off, size, side,
                                 ident, time_ns, proto, seq, ack, hs, ps, end, flags)
            self.queued += 1
            if not conn.occupied:
                conn.occupied = True
                self._occupied.append(conn)
            _append(queue, pkt)
            if other:
                self._compare_tcp(conn, time_ns)
            return
        # colo_compare_connection.  With the other queue empty both comparators stop before
        # changing anything (colo_compare_tcp pops a primary and pushes it back at the same end),
        # so they are not called.
        if other:
            if proto == _TCP:
                self._compare_tcp(conn, time_ns)
            else:
                self._compare_packet(conn, time_ns, proto)

    def _feed_general(self, side: int, data: bytes, time_ns: int, vnet_hdr_len: int, ident) -> None:
        """feed() for the frames the fast path does not take: packet.py's parse, step by step."""
        if vnet_hdr_len and not self._vnet:
            raise ValueError("vnet_hdr_len given but vnet_hdr_support is off")
        self._enqueue_and_compare(Packet(data, side, time_ns, vnet_hdr_len, ident), time_ns)

    def advance(self, time_ns: int) -> list[Event]:
        """Time has advanced to ``time_ns``: run every expiry scan due by then."""
        out = self._out = []
        if time_ns >= self._tick_ns:
            self._run_due_scans(time_ns)
        if time_ns > self.now:
            self.now = time_ns
        return out

    def checkpoint(self, time_ns: int) -> list[Event]:
        """A checkpoint completed at ``time_ns`` (COLO_EVENT_CHECKPOINT or COLO_CHECKPOINT on
        notify_dev): release every queued primary and drop every queued secondary."""
        out = self._out = []
        if time_ns >= self._tick_ns:
            self._run_due_scans(time_ns)
        if time_ns > self.now:
            self.now = time_ns
        self._flush(time_ns)
        return out

    def vm_stop(self, time_ns: int) -> list[Event]:
        """The primary VM stopped (a checkpoint began).  On the profiles that scan on the VM
        clock (4.1-5.1) the scan timer's clock (QEMU_CLOCK_VIRTUAL) stands still from here until
        ``vm_resume``."""
        out = self.advance(time_ns)
        if self._stopped_at is None:
            self._stopped_at = time_ns
            self._retick()
        return out

    def vm_resume(self, time_ns: int) -> list[Event]:
        """The primary VM runs again; see ``vm_stop``."""
        if self._stopped_at is not None:
            self._paused_ns += max(0, time_ns - self._stopped_at)
            self._stopped_at = None
            self._retick()
        return self.advance(time_ns)

    def next_scan_ns(self) -> int | None:
        """Host time (ns) of the next expiry scan, or None while the VM of a VM-clock profile
        (4.1-5.1) is stopped."""
        t = self._tick_ns
        return None if t == NEVER else t

    def queue_lengths(self) -> tuple[int, int]:
        """(primary, secondary) frames queued over all connections."""
        p = sum(len(c.primary) for c in self.conn_list)
        s = sum(len(c.secondary) for c in self.conn_list)
        return p, s

    # ------------------------------------------------------------------ input path
    def _enqueue_and_compare(self, pkt: Packet, t: int) -> None:
        """compare_pri_rs_finalize / compare_sec_rs_finalize."""
        out = self._out
        side = pkt.side
        prof = self.profile
        if pkt.size == 0:
            # A zero-length frame: NULL deref (4.1-7.0) / assert(data) (7.2+) kill QEMU.  7.1
            # (ZERO_REJECT) finds data == NULL + vnet_hdr_len: NULL (no vnet header) is an
            # unsupported frame, anything else is dereferenced as before.
            zero = prof.zero_length
            if zero != ZERO_REJECT or pkt.vnet_hdr_len:
                crash = Cause.SIGABRT_ASSERT_DATA if zero == ZERO_SIGABRT else Cause.SIGSEGV_NULL_FRAME
                out.append(_new_event(Event, (EventKind.QEMU_CRASH, crash, t, pkt, None, -1, 0)))
            out.append(_new_event(Event, (EventKind.UNSUPPORTED, Cause.ZERO_LENGTH, t, pkt, None, -1, 0)))
            if side == SECONDARY:
                out.append(_new_event(Event, (_SDROP, Cause.UNSUPPORTED_FRAME, t, pkt, None, -1, 0)))
            # A primary of size 0 is written nowhere: compare_chr_send returns on !size (7.1: -1,
            # since 0656fbc7dd), so it is neither released nor queued.
            return
        why = parse_packet_early(pkt, prof)
        if why:
            if pkt.undefined:
                out.append(_new_event(Event, (_UNDEF, Cause.OOB_READ, t, pkt, None, -1, 0)))
            out.append(_new_event(Event, (EventKind.UNSUPPORTED, why, t, pkt, None, -1, 0)))
            if side == PRIMARY:
                # "primary: unsupported packet in": written to outdev at once, uncompared (Q22).
                out.append(_new_event(Event, (_RELEASE, Cause.PASSTHROUGH, t, pkt, None, -1, 0)))
            else:
                out.append(_new_event(Event, (_SDROP, Cause.UNSUPPORTED_FRAME, t, pkt, None, -1, 0)))
            return
        if pkt.undefined:
            out.append(_new_event(Event, (_UNDEF, Cause.OOB_READ, t, pkt, None, -1, 0)))
        key = connection_key(pkt, self._key_ips)
        conn = self.table.get(key)
        if conn is None:
            conn = self._connection_get(key, pkt.ip_proto, t)
        # colo_insert_packet: "<=" admits max_queue_size + 1 frames (Q5)
        queue = conn.primary if side == PRIMARY else conn.secondary
        proto = conn.ip_proto
        if len(queue) <= self._max_queue:
            self.queued += 1
            if not conn.occupied:
                conn.occupied = True
                self._occupied.append(conn)
            if proto == IPPROTO_TCP:
                fill_tcp_info(pkt, self._subtract_vnet)
                ack = pkt.tcp_ack
                if side == PRIMARY:
                    conn.pack = ack if not self._ack_umax or ack > conn.pack else conn.pack
                else:
                    conn.sack = ack if not self._ack_umax or ack > conn.sack else conn.sack
                self._insert_sorted(queue, pkt)
            else:
                queue.append(pkt)
        else:
            # Dropped: lost for good, no checkpoint, pack/sack untouched; the compare still runs.
            out.append(_new_event(Event, (_FULL, Cause.NONE, t, pkt, None, conn.index, len(queue))))
        # colo_compare_connection
        if proto == IPPROTO_TCP:
            self._compare_tcp(conn, t)
        else:
            self._compare_packet(conn, t, proto)

    def _connection_get(self, key: bytes, ip_proto: int, t: int) -> Connection:
        """connection_get(): create the connection, resetting the table when it is full (1.7)."""
        out = self._out
        if len(self.table) > HASHTABLE_MAX_SIZE:
            if self._lazy:
                self.settle()
            lost = len(self.conn_list)
            if self.profile.table_overflow == OVERFLOW_CRASH:
                out.append(_new_event(Event, (EventKind.QEMU_CRASH, Cause.DOUBLE_FREE, t, None, None, -1, lost)))
            out.append(_new_event(Event, (EventKind.TABLE_RESET, Cause.NONE, t, None, None, -1, lost)))
            for old in self.conn_list:
                for p in old.primary:
                    out.append(_new_event(Event, (EventKind.PRIMARY_LOST, Cause.TABLE_RESET, t, p, None, old.index, 0)))
                for s in old.secondary:
                    out.append(_new_event(Event, (_SDROP, Cause.TABLE_RESET, t, s, None, old.index, 0)))
                self.queued -= len(old.primary) + len(old.secondary)
            self.table.clear()
            self.conn_list.clear()
            self._occupied = []
            self._ckeys = [None] * _CACHE_SLOTS
            self._cconns = [None] * _CACHE_SLOTS
        conn = Connection(self._next_conn_index, ip_proto, key)
        self._next_conn_index += 1
        self.table[key] = conn
        self.conn_list.append(conn)   # !conn->processing: pushed once, in first-seen order
        if self.profile.compare_seq_uninitialised:
            out.append(_new_event(Event, (_UNDEF, Cause.COMPARE_SEQ_UNINIT, t, None, None, conn.index, 0)))
        return conn
