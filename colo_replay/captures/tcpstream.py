"""TCP stream reassembly for captures of colo-compare's own chardev sockets.

A loopback capture (``tcpdump -i lo``) of the chardev sockets holds every byte colo-compare
read and wrote, cut into TCP segments, sometimes retransmitted or out of order.  This module
turns the segments of the selected ports back into byte streams, one per connection and
direction, each byte range labelled with the capture timestamp and Wireshark frame number of
the segment that made it *available in order*: the moment a receiver's ``read()`` could have
returned it.  A segment that arrives early (out of order) therefore delivers its bytes at the
time of the segment that fills the hole before it.

What is handled: IPv4 and IPv6 (no extension headers) over Ethernet (the readers synthesise
Ethernet for Linux cooked and raw-IP captures), the SYN's initial sequence number, 32-bit
sequence wrap-around, retransmissions and overlaps (the first copy wins, as a receiver keeps
the bytes it already acknowledged), reordering, FIN and RST, and a 4-tuple reused by a new
connection after a SYN.  What is an error (``StreamGap``): bytes that never arrived, a
connection whose start (SYN) is not in the capture, a segment cut by the snaplen.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

_u16 = struct.Struct("!H").unpack_from
_u32 = struct.Struct("!I").unpack_from

ETH_P_IP = 0x0800
ETH_P_IPV6 = 0x86DD
ETH_P_8021Q = 0x8100
IPPROTO_TCP = 6

TH_FIN, TH_SYN, TH_RST = 0x01, 0x02, 0x04
MOD32 = 1 << 32


class StreamGap(Exception):
    """Stream bytes are missing from the capture; the message names the stream and sequence."""


def _addr_text(raw: bytes) -> str:
    if len(raw) == 4:
        return ".".join(str(b) for b in raw)
    import ipaddress
    return f"[{ipaddress.IPv6Address(raw)}]"


@dataclass
class Chunk:
    """Bytes that became available in order with one captured segment."""

    time_ns: int
    frame_number: int
    data: bytes


@dataclass
class Stream:
    """One direction of one TCP connection, reassembled."""

    src: bytes
    sport: int
    dst: bytes
    dport: int
    index: int                         # connections on this 4-tuple so far (0 = first)
    syn_frame: int | None              # Wireshark frame number of the SYN (None: no SYN seen)
    isn: int | None                    # the SYN's sequence number
    first_time_ns: int                 # first segment of this direction (SYN included)
    chunks: list = field(default_factory=list)
    closed_by: str | None = None       # "FIN" / "RST" / None (still open at the end)
    close_time_ns: int | None = None
    retransmitted: int = 0             # payload bytes seen again (dropped, first copy wins)
    reordered: int = 0                 # segments that arrived before a hole was filled
    segments: int = 0                  # segments with payload
    # reassembly state
    _next: int = 0                     # relative sequence of the next byte expected (0 = first data byte)
    _base: int = 0                     # absolute sequence number of relative 0
    _pending: dict = field(default_factory=dict)   # rel -> (time, frame, bytes) early segments

    @property
    def name(self) -> str:
        return (f"{_addr_text(self.src)}:{self.sport} -> {_addr_text(self.dst)}:{self.dport}"
                + (f" (connection #{self.index + 1} on this 4-tuple)" if self.index else ""))

    @property
    def nbytes(self) -> int:
        return self._next

    def data(self) -> bytes:
        return b"".join(c.data for c in self.chunks)


class TcpReassembler:
    """Feed captured Ethernet frames with ``add``; ``finish`` checks for holes and returns the
    streams in the order their first segment was seen.

    ``ports``: only segments with either port in this set are kept (None: every TCP segment).
    ``path`` names the capture in error messages.
    """

    def __init__(self, ports=None, path: str = "capture"):
        self.ports = set(ports) if ports is not None else None
        self.path = path
        self.streams: list[Stream] = []
        self._live: dict = {}          # (src, sport, dst, dport) -> Stream (the current connection)
        self._counts: dict = {}        # 4-tuple -> connections seen

    # ----------------------------------------------------------------- parsing
    def add(self, frame_number: int, time_ns: int, frame: bytes, orig_len: int | None = None) -> None:
        """One captured frame (Ethernet).  Non-TCP frames and other ports are ignored."""
        n = len(frame)
        if n < 14:
            return
        off = 12
        ethertype = _u16(frame, off)[0]
        off += 2
        while ethertype == ETH_P_8021Q and n >= off + 4:
            ethertype = _u16(frame, off + 2)[0]
            off += 4
        if ethertype == ETH_P_IP:
            if n < off + 20:
                return
            ihl = (frame[off] & 0x0F) * 4
            if frame[off + 9] != IPPROTO_TCP or ihl < 20:
                return
            if _u16(frame, off + 6)[0] & 0x3FFF:       # a fragment: not on lo, not ours
                return
            total = _u16(frame, off + 2)[0]
            src = frame[off + 12:off + 16]
            dst = frame[off + 16:off + 20]
            l4 = off + ihl
            # total length 0: a TSO super-frame captured before segmentation; take the frame.
            end = off + total if total else n
        elif ethertype == ETH_P_IPV6:
            if n < off + 40 or frame[off + 6] != IPPROTO_TCP:
                return
            src = frame[off + 8:off + 24]
            dst = frame[off + 24:off + 40]
            l4 = off + 40
            end = l4 + _u16(frame, off + 4)[0]
        else:
            return
        if n < l4 + 20:
            if orig_len is not None and orig_len > n:
                raise StreamGap(f"{self.path}: frame {frame_number}: TCP header cut by the snaplen "
                                f"({n} of {orig_len} bytes captured)")
            return
        sport, dport = _u16(frame, l4)[0], _u16(frame, l4 + 2)[0]
        if self.ports is not None and sport not in self.ports and dport not in self.ports:
            return
        seq = _u32(frame, l4 + 4)[0]
        doff = (frame[l4 + 12] >> 4) * 4
        flags = frame[l4 + 13]
        start = l4 + doff
        if end > n:
            if orig_len is not None and orig_len > n:
                raise StreamGap(f"{self.path}: frame {frame_number}: segment {_addr_text(src)}:{sport} -> "
                                f"{_addr_text(dst)}:{dport} cut by the snaplen ({n} of {orig_len} bytes "
                                f"captured): its stream bytes are missing")
            end = n                                     # IP total length lies: take what is there
        payload = frame[start:end] if end > start else b""
        self._segment(frame_number, time_ns, src, sport, dst, dport, seq, flags, payload)

    # --------------------------------------------------------------- reassembly
    def _segment(self, fno, t, src, sport, dst, dport, seq, flags, payload) -> None:
        key = (src, sport, dst, dport)
        st = self._live.get(key)
        if flags & TH_SYN:
            if st is not None and st.isn is not None and ((seq - st.isn) % MOD32) == 0:
                return                                  # a retransmitted SYN
            if st is not None:
                self._close_out(st)
            index = self._counts.get(key, 0)
            self._counts[key] = index + 1
            st = Stream(src, sport, dst, dport, index, fno, seq, t)
            st._base = (seq + 1) % MOD32
            self._live[key] = st
            self.streams.append(st)
            return                                      # SYNs carry no data on Linux
        if st is None:
            if not payload and not flags & (TH_FIN | TH_RST):
                return                                  # a bare ACK of a connection we never saw start
            index = self._counts.get(key, 0)
            self._counts[key] = index + 1
            st = Stream(src, sport, dst, dport, index, None, None, t)
            st._base = seq
            self._live[key] = st
            self.streams.append(st)
        rel = st._next + _signed32((seq - st._base - st._next) % MOD32)
        if flags & TH_RST:
            if st.closed_by is None:
                st.closed_by, st.close_time_ns = "RST", t
            return
        if payload:
            st.segments += 1
            self._deliver(st, rel, payload, t, fno)
        if flags & TH_FIN and st.closed_by is None:
            st.closed_by, st.close_time_ns = "FIN", t

    def _deliver(self, st: Stream, rel: int, payload: bytes, t: int, fno: int) -> None:
        nxt = st._next
        end = rel + len(payload)
        if end <= nxt:
            st.retransmitted += len(payload)
            return
        if rel > nxt:
            st.reordered += 1
            old = st._pending.get(rel)
            if old is None or len(old[2]) < len(payload):
                st._pending[rel] = (t, fno, payload)
            return
        if rel < nxt:
            st.retransmitted += nxt - rel
            payload = payload[nxt - rel:]
        st.chunks.append(Chunk(t, fno, payload))
        st._next = end
        pending = st._pending
        while pending:
            # Early segments the new bytes reached: deliver them now, at this segment's time.
            ready = [r for r in pending if r <= st._next]
            if not ready:
                break
            for r in sorted(ready):
                _t, _f, data = pending.pop(r)
                e = r + len(data)
                if e > st._next:
                    st.chunks.append(Chunk(t, fno, data[st._next - r:]))
                    st._next = e
                else:
                    st.retransmitted += len(data)

    def _close_out(self, st: Stream) -> None:
        if st._pending:
            self._raise_gap(st)
        self._live.pop((st.src, st.sport, st.dst, st.dport), None)

    def _raise_gap(self, st: Stream) -> None:
        first = min(st._pending)
        t, fno, data = st._pending[first]
        missing = first - st._next
        abs_seq = (st._base + st._next) % MOD32
        raise StreamGap(f"{self.path}: TCP stream {st.name}: {missing} bytes missing at seq {abs_seq} "
                        f"(relative {st._next + (1 if st.isn is not None else 0)}); the next bytes "
                        f"captured are in frame {fno}")

    def finish(self, require_syn: bool = True, truncated: bool = False) -> list[Stream]:
        """Check every stream for holes; with ``require_syn``, a stream whose SYN is not in the
        capture (bytes before the capture started are lost) is an error too.  ``truncated``: the
        capture ended early (a read error); bytes still waiting behind a hole are dropped, since
        the segment that fills it may simply be in the unreadable part."""
        for st in self.streams:
            if st._pending and truncated:
                st._pending.clear()
            if st._pending:
                self._raise_gap(st)
            if require_syn and st.isn is None and st.chunks:
                raise StreamGap(f"{self.path}: TCP stream {st.name}: the capture starts in the middle of "
                                f"the connection (no SYN; first bytes at seq {st._base} in frame "
                                f"{st.chunks[0].frame_number}): what was sent before is missing")
        return self.streams


def _signed32(v: int) -> int:
    return v - MOD32 if v >= 0x80000000 else v
