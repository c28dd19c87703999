"""UDP / ICMP / other compare: colo_compare_packet() with colo_packet_compare_udp/icmp/other.

``DatagramCompare`` is a part of ``Engine`` (compare.py), which inherits the method; the state is
``state.EngineState``'s; the payload compare itself is ``TcpCompare._payload_equal`` (QEMU's
comparators share colo_compare_packet_payload too).
"""

from __future__ import annotations

from .events import _C_EQUAL, _CKPT, _RELEASE, _SDROP, Cause, Event, _new_event
from .connection import Connection
from .packet import IPPROTO_ICMP, IPPROTO_UDP, Packet
from .scan import ScanAndFlush

try:
    import cython
except ImportError:                 # Cython absent: the @cython.locals below are no-ops
    from . import _cython_shim as cython



class DatagramCompare(ScanAndFlush):
    """The UDP / ICMP / other comparator of ``Engine`` (a part of it; the state is ``EngineState``'s)."""

    __slots__ = ()

    @cython.locals(p=Packet, s=Packet, conn=Connection)   # compiled core: C field reads; no-op interpreted
    def _compare_packet(self, conn: Connection, t: int, proto: int) -> None:
        """colo_compare_packet() with colo_packet_compare_udp/icmp/other."""
        if self._lazy:
            self.settle_queues(conn)        # (it reads and names this connection's frames only)
        out = self._out
        pl = conn.primary
        sl = conn.secondary
        tail = self._other_tail
        ci = conn.index
        while pl and sl:
            p = pl.pop() if tail else pl.popleft()
            psize = p.size
            if proto == IPPROTO_UDP or proto == IPPROTO_ICMP:
                # primary's ip_hl and vnet length for both frames, L2 assumed 14 bytes (Q9)
                off = (((p.data[p.net_off] & 0x0F) << 2) + 14 + p.vnet_hdr_len) & 0xFFFF
            else:
                off = p.vnet_hdr_len   # "other": Ethernet and IP headers compared too (Q10)
            length = (psize - off) & 0xFFFF
            match = -1
            same_size = -1
            for i, s in enumerate(sl):          # g_queue_find_custom: from the head (oldest)
                if s.size != psize:
                    continue
                if same_size < 0:
                    same_size = i
                if self._payload_equal(p, off, s, off, length, t, -1):
                    match = i
                    break
            if match >= 0:
                s = sl[match]
                del sl[match]
                self.queued -= 2
                out.append(_new_event(Event, (_RELEASE, _C_EQUAL, t, p, s, ci, 0)))
                out.append(_new_event(Event, (_SDROP, _C_EQUAL, t, s, p, ci, 0)))
            else:
                if tail:
                    pl.append(p)
                else:
                    pl.appendleft(p)
                if same_size >= 0:
                    out.append(_new_event(Event, (_CKPT, Cause.MISCOMPARE, t, p, sl[same_size], ci, 0)))
                else:
                    out.append(_new_event(Event, (_CKPT, Cause.SIZE_MISMATCH, t, p, sl[0], ci, 0)))
                return
