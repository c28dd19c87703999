"""TCP compare: colo_compare_tcp(), colo_mark_tcp_pkt() and the payload compare.

``TcpCompare`` is a part of ``Engine`` (compare.py), which inherits these methods; they work on the
engine's state (``_out``, ``queued``, the profile switches).  It also holds
``_payload_equal`` (colo_compare_packet_payload), which the UDP/ICMP/other compare uses too, and
``_insert_sorted`` (g_queue_insert_sorted with seq_sorter), which the input path uses.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .constants import S32_SIGN, U32
from .events import (
    _C_ALREADY, _C_CONSUMED, _C_EQUAL, _C_ZERO, _CKPT, _RELEASE, _SDROP, _UNDEF, Cause, Event, _new_event,
)
from .packet import Packet, padded

try:
    import cython
except ImportError:                 # Cython absent: the @cython.locals below are no-ops
    from . import _cython_shim as cython

from .connection import Connection
from .datagram import DatagramCompare

if not cython.compiled:            # (compiled: a C function, cimported by tcp.pxd)
    from .packet import _equal_at

if TYPE_CHECKING:
    from collections import deque

# colo_mark_tcp_pkt outcomes (C values in the compiled core: compared there with a C int)
_FREE_PRIMARY = cython.declare(cython.int, 1)
_FREE_SECONDARY = cython.declare(cython.int, 2)
_FREE_BOTH = cython.declare(cython.int, 3)
_FAIL_MISCOMPARE = cython.declare(cython.int, -1)
_FAIL_ACK_GATE = cython.declare(cython.int, -2)
# The sequence-number arithmetic's masks as C values (compare.py's reason: an imported name is a
# Python int there, and each test against one would go through Python numbers)
_U32 = cython.declare(cython.longlong, U32)
_S32 = cython.declare(cython.longlong, S32_SIGN)


def payloads_equal_inside(pdata: bytes, phs: int, sdata: bytes, shs: int, length: int) -> bool:
    """The first test of colo_mark_tcp_pkt (same segment: payloads equal, i.e. FREE_BOTH) when
    it reads nothing past either frame: ``length`` bytes (the primary's payload_size) from each
    frame's header_size lie inside both frames and are equal.  False means "not decided here"
    (the bytes differ, or a read would go past an end): ``_mark_tcp`` then decides, exactly.
    Byte-identical frames (the usual COLO case) need no payload slices."""
    pe = phs + length
    se = shs + length
    return pe <= len(pdata) and se <= len(sdata) and (
        phs == shs and pdata == sdata or pdata[phs:pe] == sdata[shs:se])


class TcpCompare(DatagramCompare):
    """The TCP comparator of ``Engine`` (a part of it; the state is ``EngineState``'s)."""

    __slots__ = ()

    @cython.locals(pkt=Packet, e=Packet, seq=cython.longlong, i=cython.Py_ssize_t)    # compiled core: C reads
    def _insert_sorted(self, queue: deque, pkt: Packet) -> None:
        """g_queue_insert_sorted(queue, pkt, seq_sorter): before the first element e with
        seq_sorter(e, pkt) >= 0.  Seed sorter: s32(e.seq - pkt.seq) (ascending, ties LIFO);
        7.0+: s32(pkt.seq - e.seq) (descending, popped at the tail, ties FIFO).  The scan is
        done exactly as GLib does it, since s32 ordering is not transitive (Q3)."""
        if not queue:
            queue.append(pkt)
            return
        seq = pkt.tcp_seq
        i = 0
        if self._tcp_tail:
            for e in queue:
                if (seq - e.tcp_seq) & _U32 < _S32:   # seq_not_before(new, e), inlined (per element)
                    break
                i += 1
        else:
            for e in queue:
                if (e.tcp_seq - seq) & _U32 < _S32:   # seq_not_before(e, new), inlined (per element)
                    break
                i += 1
        if i == 0:
            queue.appendleft(pkt)
        elif i == len(queue):
            queue.append(pkt)
        else:
            queue.insert(i, pkt)

    @cython.locals(ppkt=Packet, spkt=Packet, conn=Connection, cseq=cython.longlong, mark=cython.int)
    def _compare_tcp(self, conn: Connection, t: int) -> None:
        """colo_compare_tcp(), gotos and all."""
        if self._lazy:
            self.settle_queues(conn)        # (it reads and names this connection's frames only)
        out = self._out
        pl = conn.primary
        sl = conn.secondary
        tail = self._tcp_tail          # 7.0+: pop and push back at the tail; seed: at the head
        # QEMU computes min_ack once per call, before any packet is popped; pack and sack do
        # not change during the call, so it is computed when first needed (by _mark_tcp).
        min_ack = None
        fast_equal = not self._inverted and self._oracle is None     # (the oracle sees every memcmp)
        ci = conn.index
        ppkt = None
        need_pri = True
        while True:
            if need_pri:                                    # pri:
                if not pl:
                    return
                ppkt = pl.pop() if tail else pl.popleft()
            if not sl:                                      # sec:
                if tail:
                    pl.append(ppkt)
                else:
                    pl.appendleft(ppkt)
                return
            spkt = sl.pop() if tail else sl.popleft()
            if ppkt.tcp_seq == ppkt.seq_end:
                self.queued -= 1
                out.append(_new_event(Event, (_RELEASE, _C_ZERO, t, ppkt, spkt, ci, 0)))
                ppkt = None
            cseq = conn.compare_seq
            # "pri/sec: this packet has compared": not after(seq_end, compare_seq); seq_after()
            # inlined here and below (twice per segment on the compare loop)
            if ppkt is not None and cseq and not 0 < (ppkt.seq_end - cseq) & _U32 < _S32:
                self.queued -= 1
                out.append(_new_event(Event, (_RELEASE, _C_ALREADY, t, ppkt, None, ci, 0)))
                ppkt = None
            if spkt.tcp_seq == spkt.seq_end:
                self.queued -= 1
                out.append(_new_event(Event, (_SDROP, _C_ZERO, t, spkt, None, ci, 0)))
                need_pri = ppkt is None
                continue
            if cseq and not 0 < (spkt.seq_end - cseq) & _U32 < _S32:
                self.queued -= 1
                out.append(_new_event(Event, (_SDROP, _C_ALREADY, t, spkt, None, ci, 0)))
                need_pri = ppkt is None
                continue
            if ppkt is None:
                if tail:
                    sl.append(spkt)
                else:
                    sl.appendleft(spkt)
                need_pri = True
                continue
            # The common outcome first: same segment on both sides, payloads equal and inside
            # both frames (the first test of colo_mark_tcp_pkt, without a read past the end).
            # Anything else goes through _mark_tcp, which starts over from its first test.
            if (fast_equal and ppkt.tcp_seq == spkt.tcp_seq and ppkt.seq_end == spkt.seq_end
                    and payloads_equal_inside(ppkt.data, ppkt.header_size, spkt.data, spkt.header_size,
                                              ppkt.payload_size)):
                mark = _FREE_BOTH
            else:
                if min_ack is None:
                    pack, sack = conn.pack, conn.sack
                    if self._gate_sack:
                        min_ack = sack                      # (u32)(pack - sack) > 0 ? sack : pack
                    else:
                        min_ack = pack if pack < sack else sack     # unsigned MIN
                mark = self._mark_tcp(ppkt, spkt, min_ack, t)
            if mark == _FREE_BOTH:
                conn.compare_seq = ppkt.seq_end
                self.queued -= 2
                out.append(_new_event(Event, (_RELEASE, _C_EQUAL, t, ppkt, spkt, ci, 0)))
                out.append(_new_event(Event, (_SDROP, _C_EQUAL, t, spkt, ppkt, ci, 0)))
                need_pri = True
            elif mark == _FREE_PRIMARY:
                conn.compare_seq = ppkt.seq_end
                self.queued -= 1
                out.append(_new_event(Event, (_RELEASE, _C_EQUAL, t, ppkt, spkt, ci, 0)))
                if tail:
                    sl.append(spkt)
                else:
                    sl.appendleft(spkt)
                need_pri = True
            elif mark == _FREE_SECONDARY:
                conn.compare_seq = spkt.seq_end
                self.queued -= 1
                out.append(_new_event(Event, (_SDROP, _C_CONSUMED, t, spkt, ppkt, ci, 0)))
                need_pri = False
            else:
                if tail:
                    pl.append(ppkt)
                    sl.append(spkt)
                else:
                    pl.appendleft(ppkt)
                    sl.appendleft(spkt)
                cause = Cause.ACK_GATE if mark == _FAIL_ACK_GATE else Cause.MISCOMPARE
                out.append(_new_event(Event, (_CKPT, cause, t, ppkt, spkt, ci, 0)))
                return

    @cython.locals(p=Packet, s=Packet, poff=cython.longlong, soff=cython.longlong, length=cython.longlong,
                   pe=cython.longlong, se=cython.longlong)
    def _payload_equal(self, p: Packet, poff: int, s: Packet, soff: int, length: int, t: int,
                       tcp_gate: int = 1) -> bool:
        """memcmp(p.data + poff, s.data + soff, len) == 0, all three uint16_t as in
        colo_compare_packet_payload(); reads past either frame see zero bytes and are flagged,
        unless a real run's trace says what QEMU found there (``_oracle``, offline/trace_oracle.py).
        ``tcp_gate``: 1 a TCP memcmp an equal payload would make a successful mark, 0 one whose
        ACK gate would fail anyway, -1 not TCP (the oracle walks TCP memcmps only)."""
        poff &= 0xFFFF
        soff &= 0xFFFF
        length &= 0xFFFF
        pe = poff + length
        se = soff + length
        oracle = self._oracle if tcp_gate >= 0 else None
        if pe <= p.size and se <= s.size:
            # (the frames' own bytes: settle_queues gave every queued frame of the connection its copy)
            equal = _equal_at(p.data, poff, s.data, soff, length)
            if oracle is not None:
                oracle.compared(p, s, equal)
            return equal
        out = self._out
        if pe > p.size:
            p.undefined = True
            out.append(_new_event(Event, (_UNDEF, Cause.OOB_READ, t, p, s, -1, length)))
        if se > s.size:
            s.undefined = True
            out.append(_new_event(Event, (_UNDEF, Cause.OOB_READ, t, s, p, -1, length)))
        equal = padded(p.data, pe)[poff:pe] == padded(s.data, se)[soff:se]
        if oracle is not None:
            qemu = oracle.undefined(p, s, equal, tcp_gate == 1)
            if qemu is not None:
                return qemu
        return equal

    @cython.locals(p=Packet, s=Packet, max_ack=cython.longlong, inv=cython.bint, acked=cython.bint)
    def _mark_tcp(self, p: Packet, s: Packet, max_ack: int, t: int) -> int:
        """colo_mark_tcp_pkt(); the seed's payload test is inverted (Q1)."""
        inv = self._inverted
        if p.tcp_seq == s.tcp_seq and p.seq_end == s.seq_end:
            if self._payload_equal(p, p.header_size, s, s.header_size, p.payload_size, t) != inv:
                return _FREE_BOTH
        # (seq_after inlined, with C masks: after(a, b) is 0 < (a - b) & U32 < S32_SIGN)
        if not 0 < (p.seq_end - s.seq_end) & _U32 < _S32:
            # one part of the secondary payload still needs to be compared
            acked = not 0 < (p.tcp_ack - max_ack) & _U32 < _S32
            if self._payload_equal(p, p.header_size + p.offset, s, s.header_size + s.offset,
                                   p.payload_size - p.offset, t, 1 if acked else 0) != inv:
                if acked:
                    s.offset = (s.offset + p.payload_size - p.offset) & 0xFFFF
                    return _FREE_PRIMARY
                return _FAIL_ACK_GATE      # "secondary guest hasn't ack the data"
        else:
            # primary longer than secondary: compare the common part, advance the primary offset
            if self._payload_equal(p, p.header_size + p.offset, s, s.header_size + s.offset,
                                   s.payload_size - s.offset, t) != inv:
                p.offset = (p.offset + s.payload_size - s.offset) & 0xFFFF
                return _FREE_SECONDARY
        return _FAIL_MISCOMPARE
