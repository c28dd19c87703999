"""A small deterministic pair of captures of two free-running VMs with planted differences.

What colo-compare sees is each VM's outbound traffic (guest 10.0.0.10).  The primary capture is
generated; the secondary is the same traffic as a second VM sends it, taken without COLO:

* 0-2 ms behind the primary (a per-frame lag, the capture kept in order);
* its own IPv4 identification counter and its own TCP timestamp clock (TSval), which
  colo-compare does not compare for TCP (header) and UDP/ICMP (from the L4 header on);
  frames of the "other" protocol are compared whole by colo-compare, so they carry the same
  IP ID (0, as Linux sends DF frames) on both sides;
* 1% of its bulk TCP data segmented differently (one primary segment sent as two);
* ``planted`` one-byte differences (XOR 0x5A) in TCP payload of long streams, UDP, ICMP and
  another IP protocol (253, RFC 3692 experimental), in turn.

Traffic: two continuous bulk TCP streams, three keep-alive TCP connections serving responses (bursts of 20-60 MSS segments,
0.2-0.6 ms apart, then 150-400 ms idle for the next request: long streams whose idle gaps
outlast a 100 ms checkpoint), eight syslog-style UDP flows, ICMP echo replies to four hosts
and two flows of protocol 253, each datagram flow every 200-500 ms (never two frames of one
flow within the secondary's lag: 7.2 compares the newest primary first).  A planted TCP
difference is in the last segment of a response, so that its connection is quiet while the
checkpoint it causes runs; the other connections go on, which is what makes a raw replay
cascade at each flush (their secondary copies arrive after it).
"""

from __future__ import annotations

import random
import struct
from dataclasses import dataclass

GUEST_MAC = bytes.fromhex("525400123456")
GW_MAC = bytes.fromhex("525400abcdef")
GUEST_IP = bytes((10, 0, 0, 10))
T0_NS = 1_700_000_000_000_000_000
MSS = 1448
ETH = GW_MAC + GUEST_MAC + b"\x08\x00"
OTHER_PROTO = 253


@dataclass(frozen=True)
class Planted:
    """One planted difference: where a person (and explain) should find it."""

    proto: str                  # tcp / udp / icmp / ip-253
    primary_frame: int          # Wireshark numbers (from 1)
    secondary_frame: int
    offset: int                 # byte offset in the frame
    payload_offset: int         # byte offset in the L4 payload (-1 for other protocols)


def _ipv4(proto: int, ident: int, payload: bytes, dst: bytes) -> bytes:
    hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), ident & 0xFFFF, 0x4000, 64, proto, 0,
                      GUEST_IP, dst)
    s = sum(struct.unpack("!10H", hdr))
    s = (s & 0xFFFF) + (s >> 16)
    s = (s & 0xFFFF) + (s >> 16)
    return ETH + hdr[:10] + (~s & 0xFFFF).to_bytes(2, "big") + hdr[12:] + payload


class _Side:
    """Per-VM state: IP ID counter, TSval clock offset."""

    def __init__(self, ip_id: int, ts_base: int):
        self.ip_id = ip_id
        self.ts_base = ts_base

    def next_id(self) -> int:
        self.ip_id = (self.ip_id + 1) & 0xFFFF
        return self.ip_id


def _tcp(side: _Side, t_ns: int, sport: int, dport: int, dst: bytes, seq: int, ack: int, payload: bytes,
         flags: int) -> bytes:
    tsval = (side.ts_base + t_ns // 1_000_000) & 0xFFFFFFFF
    opts = b"\x01\x01\x08\x0a" + struct.pack("!II", tsval, 12345)
    hdr = struct.pack("!HHIIBBHHH", sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, (8 << 4), flags, 502, 0, 0)
    return _ipv4(6, side.next_id(), hdr + opts + payload, dst)


def make_planted_pair(directory, seed: int = 7, duration_s: float = 10.0, planted: int = 8,
                      mid_stream: bool = False) -> tuple[str, str, list[Planted]]:
    """Write ``planted_primary.pcap`` and ``planted_secondary.pcap`` (nanosecond pcap) into
    ``directory``; return their paths and the planted differences, in time order.
    ``mid_stream``: plant the TCP differences in the continuous bulk streams (whose segments
    keep coming while the checkpoint runs) instead of at the end of a response."""
    from .pcapwrite import write_pcap

    rnd = random.Random(seed)
    pool = rnd.randbytes(1 << 15) * 2
    P, S = _Side(rnd.getrandbits(16), rnd.getrandbits(32)), _Side(rnd.getrandbits(16), rnd.getrandbits(32))
    end_ns = int(duration_s * 1e9)
    # logical events: (t_ns, kind, key, args); generated per source, then sorted by time
    events = []
    for c in range(3):
        t = rnd.randrange(5, 50) * 1_000_000
        seq, ack = rnd.getrandbits(32), rnd.getrandbits(32)
        while t < end_ns:
            ack += rnd.randrange(200, 600)
            n = rnd.randrange(20, 61)
            for k in range(n):
                size = MSS if k < n - 1 else rnd.randrange(100, MSS)
                events.append((t, "tcp", c, (seq, ack, size, k == n - 1)))
                seq += size
                t += rnd.randrange(200_000, 600_001)
            t += rnd.randrange(150, 401) * 1_000_000
    for c in range(3, 5):
        # two continuous bulk streams (never idle): at any flush some of their secondary copies
        # are still in flight, which is what cascades in a raw replay
        t = rnd.randrange(1, 5) * 1_000_000
        seq, ack = rnd.getrandbits(32), rnd.getrandbits(32)
        while t < end_ns:
            events.append((t, "tcp", c, (seq, ack, MSS, False)))
            seq += MSS
            t += rnd.randrange(300_000, 1_700_001)
    for kind, flows in (("udp", 8), ("icmp", 4), ("other", 2)):
        for f in range(flows):
            t = rnd.randrange(10, 300) * 1_000_000
            n = 0
            while t < end_ns:
                n += 1
                events.append((t, kind, f, (n,)))
                t += rnd.randrange(200, 501) * 1_000_000
    events.sort(key=lambda e: (e[0], e[1], e[2]))
    # the planted differences: one of each kind in turn, from 1 s on, ~1 s apart; each on the
    # next frame of its kind that qualifies (TCP: the last segment of a response)
    kinds = ["tcp", "udp", "icmp", "other"]
    plan_times = [1_000_000_000 + i * (end_ns - 1_500_000_000) // planted for i in range(planted)]
    targets: dict[int, str] = {}
    j = 0
    for i, (t, kind, key, args) in enumerate(events):
        if j >= planted:
            break
        want = kinds[j % 4]
        if t >= plan_times[j] and kind == want and (kind != "tcp" or (key >= 3 if mid_stream else args[3])):
            targets[i] = want
            j += 1
    assert j == planted, "duration too short for the planted differences"

    prim, sec, found = [], [], []
    s_last = 0
    for i, (t, kind, key, args) in enumerate(events):
        lag = rnd.randrange(0, 2_000_001)
        ts = max(s_last, t + lag)
        s_last = ts
        if kind == "tcp":
            seq, ack, size, _last = args
            off = rnd.randrange(1 << 15)
            payload = pool[off:off + size]
            dst, dport = bytes((10, 0, 1, 1 + key)), 50000 + key
            pf = _tcp(P, t, 443, dport, dst, seq, ack, payload, 0x18 if _last else 0x10)
            split = size > 200 and i not in targets and rnd.random() < 0.01
            if split:
                cut = rnd.randrange(100, size - 50)
                s_frames = [_tcp(S, ts, 443, dport, dst, seq, ack, payload[:cut], 0x10),
                            _tcp(S, ts, 443, dport, dst, seq + cut, ack, payload[cut:], 0x18 if _last else 0x10)]
            else:
                s_frames = [_tcp(S, ts, 443, dport, dst, seq, ack, payload, 0x18 if _last else 0x10)]
            l4_payload = 14 + 20 + 32
        elif kind == "udp":
            n, = args
            msg = b"<30>colo-guest app%d[%d]: tick %d " % (key, 4000 + key, n) + pool[n * 97 % 30000:][:rnd.randrange(40, 300)]
            body = struct.pack("!HHHH", 514 + key, 514, 8 + len(msg), 0) + msg
            pf = _ipv4(17, P.next_id(), body, bytes((10, 0, 0, 3)))
            s_frames = [_ipv4(17, S.next_id(), body, bytes((10, 0, 0, 3)))]
            l4_payload = 14 + 20 + 8
        elif kind == "icmp":
            n, = args
            body = struct.pack("!BBHHH", 0, 0, 0, 0x4242 + key, n) + pool[n * 131 % 30000:][:56]
            pf = _ipv4(1, P.next_id(), body, bytes((10, 0, 9, 1 + key)))
            s_frames = [_ipv4(1, S.next_id(), body, bytes((10, 0, 9, 1 + key)))]
            l4_payload = 14 + 20 + 8
        else:
            n, = args
            body = b"colo-other flow %d msg %d " % (key, n) + pool[n * 71 % 30000:][:rnd.randrange(30, 200)]
            pf = _ipv4(OTHER_PROTO, 0, body, bytes((10, 0, 8, 1 + key)))
            s_frames = [pf]
            l4_payload = -1
        if i in targets:
            frame = s_frames[0]
            start = l4_payload if l4_payload > 0 else 14 + 20
            pos = rnd.randrange(start, len(frame))
            s_frames[0] = frame[:pos] + bytes((frame[pos] ^ 0x5A,)) + frame[pos + 1:]
            found.append(Planted("ip-253" if kind == "other" else kind, len(prim) + 1, len(sec) + 1, pos,
                                 pos - l4_payload if l4_payload > 0 else -1))
        prim.append((t + T0_NS, pf))
        for f in s_frames:
            sec.append((ts + T0_NS, f))
    import os
    ppath = os.path.join(str(directory), "planted_primary.pcap")
    spath = os.path.join(str(directory), "planted_secondary.pcap")
    write_pcap(ppath, prim, nanos=True)
    write_pcap(spath, sec, nanos=True)
    return ppath, spath, found
