"""Generate a primary/secondary pcap pair of two FREE-RUNNING guests, with a truth file.

Unlike ``make_bench_pair.py`` (the "easy" pair: the secondary a copy of the primary -40..+200 µs
later, both captures paused around every checkpoint), this pair looks like what users capture
with tcpdump on each VM's outbound side while both guests answer the same clients:

* **free-running**: no pause anywhere; the secondary is 0..``--lag-max-us`` (2 ms) behind the
  primary, a slow random walk plus per-frame jitter, so frames of different flows interleave
  differently on the two sides (each flow keeps its own order);
* **TCP servers** (guest 10.0.0.10, port 80): HTTP/1.1 keep-alive connections from 2,000
  clients, each a SYN-ACK, requests answered by a response (headers with a ``Date:`` line, a
  body), sometimes a pure ACK of the request first, then FIN-ACK and the ACK of the client's
  FIN.  Every connection is a new 5-tuple: ~800 a second, so a 1M-frame run opens well over
  colo-compare's 16,384-entry connection table.  **TSO**: a response's byte stream is cut into
  segments of 1-3 MSS (1448 B); on ``--tso`` of the responses the two sides cut it differently
  (one side sends a 2-3 MSS segment where the other sends 2-3 MSS-sized ones, either way).
  IP ids count per connection and advance by the MSS segments a frame carries (Linux GSO), so
  they are the same on both sides;
* **datagram flows**: an ICMP echo-reply flow at ``--icmp-hz`` (23 Hz, one pinger, id/seq and a
  timeval + pattern payload); a DNS server answering bursts (``--dns-bursts-hz`` bursts of
  ~``--dns-burst`` replies, each to its own client port); an RTP-like UDP stream at
  ``--udp-hz`` (250 Hz by default, up to 1 kHz: above ~500 Hz the stream's frames are closer
  than the secondary's lag, and QEMU 7.2+ compares a datagram flow's newest primary first);
* **planted divergences**, few and at known places (``--divergences-per-million``, 12, at least
  one of each kind): one byte of a TCP body (``tcp_byte``) and of an RTP payload
  (``udp_byte``), the HTTP ``Date:`` a second apart (``http_date``), the DNS id (``dns_id``),
  a longer DNS reply (``size``: one more answer), one ICMP data byte (``icmp_payload``), the
  window of a pure ACK (``tcp_ack_only``: colo-compare does not compare pure ACKs), an RTP
  datagram the secondary never sends (``missing_secondary``) and a DNS reply only the secondary
  sends, twice (``missing_primary``).  Everything else is byte-identical between the sides:
  same MACs, IPs, IP ids, all checksums correct.

``truth.json`` holds the parameters, the counts (frames per side, connections, flows, frames
per kind, responses segmented differently) and one entry per planted divergence: kind, flow,
the primary and secondary frame numbers (1-based, as Wireshark numbers them; null for the side
that has none), ``offset`` (the primary frame's first differing byte as colo-compare compares:
TCP from the payload, UDP/ICMP from the L4 header, checksum fields skipped, as
``colo-replay explain`` reports it), ``raw_offset`` (the first differing byte of the whole
frames), the primary time and what colo-compare is expected to do about it.

Deterministic: the same arguments give byte-identical files.  Pure-Python ``struct`` packing,
checksums from per-flow constant sums and prefix sums over the payload pool; frames stream to
the files (two small time-ordered heaps, the secondary's bounded by its lag), so memory stays
flat.  Run from the repository root:

    python bench/make_free_pair.py --frames 1000000 --seed 1 --out /tmp/free1m

Figures (time, memory) in bench/README.md, "Free-running pairs".  Never commit the files.
"""

from __future__ import annotations

import argparse
import heapq
import itertools
import json
import os
import random
import struct
import sys
import time

GENERATOR_VERSION = 1            # bump when the output for the same arguments changes

GUEST_MAC = bytes.fromhex("525400123456")
GW_MAC = bytes.fromhex("525400abcdef")
ETH_IP = GW_MAC + GUEST_MAC + b"\x08\x00"
GUEST_IP = bytes((10, 0, 0, 10))
MSS = 1448
T0_US = 1_700_000_000_000_000    # 2023-11-14 22:13:20 UTC
HTTP_PORT = 80
RTP_SPORT, RTP_DPORT = 5004, 40006
RTP_CLIENT = bytes((10, 3, 0, 7))
PINGER = bytes((10, 2, 0, 5))
PING_ID = 0x1C2B
CLIENTS = 2000

# Frame layout (Ethernet + 20-byte IPv4): offsets named once
ETH_HLEN = 14
IP_CSUM_OFF = ETH_HLEN + 10
L4_OFF = ETH_HLEN + 20
TCP_WIN_OFF = L4_OFF + 14
TCP_CSUM_OFF = L4_OFF + 16
UDP_CSUM_OFF = L4_OFF + 6
ICMP_CSUM_OFF = L4_OFF + 2

_ip_tcp = struct.Struct("!BBHHHBBH4s4sHHIIBBHHH")
_ip_udp = struct.Struct("!BBHHHBBH4s4sHHHH")
_ip_icmp = struct.Struct("!BBHHHBBH4s4sBBHHH")
_rec = struct.Struct("<IIII")
PCAP_HEADER = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1)

KINDS = ("tcp_byte", "http_date", "tcp_ack_only", "udp_byte", "dns_id", "size", "icmp_payload",
         "missing_secondary", "missing_primary")
EXPECTED = {
    "tcp_byte": "miscompare", "http_date": "miscompare", "udp_byte": "miscompare",
    "dns_id": "miscompare", "size": "miscompare (sizes differ)", "icmp_payload": "miscompare",
    "tcp_ack_only": "none: colo-compare releases pure ACKs without comparing them",
    "missing_secondary": "expiry after compare_timeout, unless a checkpoint flushes it first",
    "missing_primary": "secondary expiry after compare_timeout, unless a checkpoint flushes it first",
}
NAMES = [b"www.example.com", b"api.example.net", b"cdn.example.org", b"mail.example.com",
         b"db1.internal.lan", b"auth.example.net", b"static.example.org", b"ntp.example.com"]
WDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def fold(s: int) -> int:
    """One's-complement sum of a non-negative integer sum of 16-bit words, in 1..0xFFFF."""
    return (s - 1) % 0xFFFF + 1 if s else 0


def sum16(data: bytes) -> int:
    """Plain sum of ``data``'s big-endian 16-bit words (odd length: zero-padded)."""
    n = len(data)
    s = sum(struct.unpack_from(f"!{n >> 1}H", data))
    return s + (data[-1] << 8) if n & 1 else s


def ip_words(addr: bytes) -> int:
    return (addr[0] << 8 | addr[1]) + (addr[2] << 8 | addr[3])


def http_date(t_us: int) -> bytes:
    tm = time.gmtime(t_us // 1_000_000)
    return b"%s, %02d %s %d %02d:%02d:%02d GMT" % (
        WDAYS[tm.tm_wday].encode(), tm.tm_mday, MONTHS[tm.tm_mon - 1].encode(), tm.tm_year,
        tm.tm_hour, tm.tm_min, tm.tm_sec)


def first_difference(p: bytes, s: bytes, start: int = 0, skip: tuple = ()) -> int | None:
    """First offset >= ``start`` where ``p`` and ``s`` differ, ignoring the byte offsets in
    ``skip``; where the shorter one ends if one is a prefix of the other; None if equal."""
    n = min(len(p), len(s))
    for i in range(start, n):
        if p[i] != s[i] and i not in skip:
            return i
    return n if len(p) != len(s) else None


def compare_offset(p: bytes, s: bytes) -> int | None:
    """The first differing byte as colo-compare compares (and explain reports): TCP from the
    payload (same header sizes on both sides here), UDP / ICMP from the L4 header, checksum
    fields skipped."""
    proto = p[ETH_HLEN + 9]
    if proto == 6:
        return first_difference(p, s, L4_OFF + (p[L4_OFF + 12] >> 4) * 4)
    csum = UDP_CSUM_OFF if proto == 17 else ICMP_CSUM_OFF
    return first_difference(p, s, L4_OFF, (csum, csum + 1))


class Flow:
    """What a frame of a flow needs: addresses, constant checksum parts, its IP id counter and
    the time of its last secondary frame (a flow keeps its order on the secondary side)."""

    __slots__ = ("proto", "dst", "sport", "dport", "ip_sum", "l4_sum", "ipid", "last_s", "name")

    def __init__(self, proto: int, dst: bytes, sport: int, dport: int, ipid: int):
        self.proto = proto
        self.dst = dst
        self.sport = sport
        self.dport = dport
        # IPv4: version/IHL/TOS, flags/fragment (DF), TTL/proto, addresses; length and id per frame
        self.ip_sum = 0x4500 + 0x4000 + (64 << 8 | proto) + ip_words(GUEST_IP) + ip_words(dst)
        # pseudo header (addresses, proto) and the ports; the L4 length per frame
        self.l4_sum = ip_words(GUEST_IP) + ip_words(dst) + proto + sport + dport
        self.ipid = ipid
        self.last_s = 0
        self.name = None

    def label(self) -> str:
        if self.name is None:
            d = ".".join(map(str, self.dst))
            proto = {6: "tcp", 17: "udp", 1: "icmp"}[self.proto]
            self.name = (f"icmp 10.0.0.10 > {d}" if self.proto == 1 else
                         f"{proto} 10.0.0.10:{self.sport} > {d}:{self.dport}")
        return self.name


class Conn(Flow):
    """A TCP connection served by the guest (the client's side is not captured)."""

    __slots__ = ("seq", "ack", "win", "requests", "state")


class Side:
    """One capture: a heap of frames not yet written (time-ordered), the file, the numbering."""

    def __init__(self, path: str):
        self.f = open(path, "wb")
        self.f.write(PCAP_HEADER)
        self.heap: list = []
        self.parts: list = []
        self.count = 0
        self.bytes = 0

    def flush(self, until: int, key: str) -> None:
        heap, parts, pack, pop = self.heap, self.parts, _rec.pack, heapq.heappop
        n = self.count
        while heap and heap[0][0] <= until:
            t, _, frame, tag = pop(heap)
            size = len(frame)
            parts.append(pack(t // 1_000_000, t % 1_000_000, size, size))
            parts.append(frame)
            self.bytes += size
            n += 1
            if tag is not None:
                tag[key] = n
        self.count = n
        if len(parts) >= 16384:
            self.f.write(b"".join(parts))
            parts.clear()

    def close(self) -> None:
        self.f.write(b"".join(self.parts))
        self.parts.clear()
        self.f.close()


class Generator:
    """The two guests' outbound traffic, as a discrete-event simulation in primary time."""

    def __init__(self, frames: int, seed: int, out: str, conn_rate: float = 800.0, requests_mean: float = 3.0,
                 body_mean: int = 4000, tso: float = 0.2, merge: float = 0.3, icmp_hz: float = 23.0,
                 dns_bursts_hz: float = 20.0, dns_burst: float = 5.0, udp_hz: float = 250.0,
                 lag_max_us: int = 2000, divergences_per_million: float = 12.0, divergences: int | None = None):
        if frames < 1000:
            raise ValueError("--frames: at least 1000")
        if not 0 < udp_hz <= 1000 or not 0 < icmp_hz <= 1000:
            raise ValueError("--udp-hz / --icmp-hz: more than 0, at most 1000")
        if not 0 <= tso <= 1 or not 0 <= merge <= 1:
            raise ValueError("--tso / --merge: a probability")
        if lag_max_us < 300:
            raise ValueError("--lag-max-us: at least 300")
        self.params = dict(frames=frames, seed=seed, conn_rate=conn_rate, requests_mean=requests_mean,
                           body_mean=body_mean, tso=tso, merge=merge, icmp_hz=icmp_hz, dns_bursts_hz=dns_bursts_hz,
                           dns_burst=dns_burst, udp_hz=udp_hz, lag_max_us=lag_max_us,
                           divergences_per_million=divergences_per_million, divergences=divergences,
                           generator_version=GENERATOR_VERSION, mss=MSS)
        self.frames = frames
        self.out = out
        self.rnd = rnd = random.Random(seed)
        self.pool = pool = rnd.randbytes(1 << 17) * 2           # payload bytes, sliced at even offsets
        words = struct.unpack(f"!{len(pool) // 2}H", pool)
        self.prefix = list(itertools.accumulate(words, initial=0))   # prefix[k] = sum of words [0, k)
        self.conn_rate, self.requests_mean, self.body_mean = conn_rate, requests_mean, body_mean
        self.tso, self.merge = tso, merge
        self.icmp_hz, self.dns_bursts_hz, self.dns_burst_mean, self.udp_hz = icmp_hz, dns_bursts_hz, dns_burst, udp_hz
        self.lag_max = lag_max_us
        self.lag_walk = lag_max_us * 0.85                        # the slow part; jitter adds up to 15%
        self.lag = self.lag_walk / 2
        self.serial = itertools.count()
        self.sched: list = []                                    # (time, serial, handler, flow)
        self.pushed = 0                                          # primary frames handed to the heap
        self.kinds: dict[str, int] = {}
        self.connections = 0
        self.dns_flows: set = set()
        self.responses = 0
        self.resegmented = 0
        self.merged_frames = [0, 0]
        self.client_port = [32768 + rnd.randrange(28000) for _ in range(CLIENTS)]
        # planted divergences: evenly spread over 5%..95% of the primary frames, kinds in a seeded order
        n = divergences if divergences is not None else max(len(KINDS), round(divergences_per_million * frames / 1e6))
        order = list(KINDS)
        rnd.shuffle(order)
        self.targets = [(int(frames * (0.05 + 0.9 * (i + 0.5) / n)), order[i % len(order)]) for i in range(n)]
        self.targets.reverse()                                   # popped from the end
        self.armed: dict[str, int] = dict.fromkeys(KINDS, 0)
        self.planted: list[dict] = []

    # -- the two captures -------------------------------------------------------------------------

    def _lag(self) -> float:
        """Move the slow random walk one step (per unit of traffic); reflect into its range."""
        lag = self.lag + self.rnd.uniform(-15.0, 15.0)
        if lag < 0:
            lag = -lag
        elif lag > self.lag_walk:
            lag = 2 * self.lag_walk - lag
        self.lag = lag
        return lag

    def push_p(self, t: int, frame: bytes, tag=None) -> None:
        heapq.heappush(self.p.heap, (t, next(self.serial), frame, tag))
        self.pushed += 1

    def push_s(self, t: int, flow: Flow, frame: bytes, tag=None) -> None:
        """The secondary's copy of a frame the primary sent at ``t``: lag + jitter later, after
        the flow's previous secondary frame."""
        ts = t + int(self.lag + self.rnd.random() * (self.lag_max - self.lag_walk))
        if ts <= flow.last_s:
            ts = flow.last_s + 1
        flow.last_s = ts
        heapq.heappush(self.s.heap, (ts, next(self.serial), frame, tag))

    def plant(self, kind: str, flow: Flow, t: int, p: bytes | None, s: bytes | None) -> dict:
        self.armed[kind] -= 1
        entry = {"kind": kind, "flow": flow.label(), "primary_frame": None, "secondary_frame": None,
                 "offset": None, "raw_offset": None, "primary_time_us": t, "expected": EXPECTED[kind]}
        if p is not None and s is not None:
            entry["offset"] = compare_offset(p, s)
            entry["raw_offset"] = first_difference(p, s)
        self.planted.append(entry)
        return entry

    # -- frames -------------------------------------------------------------------------------------

    def tcp(self, c: Conn, seq: int, flags: int, ipid: int, payload: bytes = b"", psum: int = 0,
            win: int | None = None, opts: bytes = b"") -> bytes:
        """An Ethernet/IPv4/TCP frame of ``c``; ``psum`` is ``sum16(payload)``."""
        tl = 20 + len(opts) + len(payload)
        ipid &= 0xFFFF
        seq &= 0xFFFFFFFF
        ack = c.ack & 0xFFFFFFFF
        win = c.win if win is None else win
        off = (5 + len(opts) // 4) << 4
        s = (c.l4_sum + tl + (seq >> 16) + (seq & 0xFFFF) + (ack >> 16) + (ack & 0xFFFF) + (off << 8 | flags)
             + win + psum + (sum16(opts) if opts else 0))
        return ETH_IP + _ip_tcp.pack(0x45, 0, 20 + tl, ipid, 0x4000, 64, 6, 0xFFFF - fold(c.ip_sum + 20 + tl + ipid),
                                     GUEST_IP, c.dst, c.sport, c.dport, seq, ack, off, flags, win,
                                     0xFFFF - fold(s), 0) + opts + payload

    def udp(self, f: Flow, ipid: int, payload: bytes) -> bytes:
        ul = 8 + len(payload)
        csum = 0xFFFF - fold(f.l4_sum + ul + ul + sum16(payload)) or 0xFFFF
        return ETH_IP + _ip_udp.pack(0x45, 0, 20 + ul, ipid, 0x4000, 64, 17, 0xFFFF - fold(f.ip_sum + 20 + ul + ipid),
                                     GUEST_IP, f.dst, f.sport, f.dport, ul, csum) + payload

    def icmp(self, f: Flow, ipid: int, seq: int, data: bytes) -> bytes:
        csum = 0xFFFF - fold(PING_ID + seq + sum16(data))           # type 0 code 0
        return ETH_IP + _ip_icmp.pack(0x45, 0, 28 + len(data), ipid, 0x4000, 64, 1,
                                      0xFFFF - fold(f.ip_sum + 28 + len(data) + ipid),
                                      GUEST_IP, f.dst, 0, 0, csum, PING_ID, seq) + data

    def pool_sum(self, x: int, y: int) -> int:
        """sum16 of pool[x:y], x even."""
        s = self.prefix[y >> 1] - self.prefix[x >> 1]
        return s + (self.pool[y - 1] << 8) if y & 1 else s

    # -- sources: each handles an event at time t and schedules its next ---------------------------

    def at(self, t: float, handler, flow=None) -> None:
        heapq.heappush(self.sched, (int(t), next(self.serial), handler, flow))

    def count(self, kind: str, n: int = 1) -> None:
        """Primary frames by kind, for truth.json."""
        self.kinds[kind] = self.kinds.get(kind, 0) + n

    def fits(self, n: int) -> bool:
        return self.pushed + n <= self.frames

    def new_connection(self, t: int, _):
        rnd = self.rnd
        client = rnd.randrange(CLIENTS)
        port = self.client_port[client]
        self.client_port[client] = 32768 + (port - 32768 + 1 + rnd.randrange(8)) % 28000
        c = Conn(6, bytes((10, 1 + client // 250, client % 250 + 1 if client % 250 < 254 else 7, 1 + client % 199)),
                 HTTP_PORT, port, rnd.getrandbits(16))
        c.seq = rnd.getrandbits(32)
        c.ack = rnd.getrandbits(32) + 1                          # the client's ISN + 1
        c.win = 502 + rnd.randrange(8)                           # scaled window, as Linux's
        c.requests = max(1, round(rnd.expovariate(1 / self.requests_mean)))
        self.connections += 1
        self.at(t + rnd.randrange(50, 400), self.syn_ack, c)     # the SYN came in; the guest answers
        self.at(t + 1 + rnd.expovariate(self.conn_rate / 1e6), self.new_connection)

    def syn_ack(self, t: int, c: Conn):
        if not self.fits(1):
            return
        f = self.tcp(c, c.seq, 0x12, c.ipid, opts=struct.pack("!BBH", 2, 4, MSS))
        self.count("tcp_syn_ack")
        c.seq += 1
        c.ipid += 1
        self.push_p(t, f)
        self.push_s(t, c, f)
        self.at(t + self.rnd.randrange(200, 3000), self.request, c)   # RTT, then the first request

    def request(self, t: int, c: Conn):
        """A request arrived: sometimes a pure ACK of it first, then the response."""
        rnd = self.rnd
        c.ack += rnd.randrange(120, 600)
        c.requests -= 1
        if rnd.random() < 0.4 or self.armed["tcp_ack_only"]:
            if not self.fits(1):
                return
            f = self.tcp(c, c.seq, 0x10, c.ipid)
            self.count("tcp_ack")
            if self.armed["tcp_ack_only"]:
                s = self.tcp(c, c.seq, 0x10, c.ipid, win=c.win + 1 + rnd.randrange(64))
                tag = self.plant("tcp_ack_only", c, t, f, s)
                self.push_p(t, f, tag)
                self.push_s(t, c, s, tag)
            else:
                self.push_p(t, f)
                self.push_s(t, c, f)
            c.ipid += 1
            t += rnd.randrange(100, 5000)                       # the server thinks
        else:
            t += rnd.randrange(20, 2000)
        self.at(t, self.response, c)

    def grouping(self, n: int) -> list[int]:
        """Sizes (in MSS chunks) of the segments that carry ``n`` chunks: mostly 1, some 2-3."""
        rnd, merge = self.rnd, self.merge
        out = []
        while n:
            k = 1 if n == 1 or rnd.random() >= merge else min(n, rnd.choice((2, 3)))
            out.append(k)
            n -= k
        return out

    def response(self, t: int, c: Conn):
        rnd = self.rnd
        r = rnd.random()
        mean = self.body_mean
        body_len = (1 + int(rnd.expovariate(3 / mean)) if r < 0.65 else        # small objects
                    1 + int(rnd.expovariate(1 / (2 * mean))) if r < 0.985 else rnd.randrange(20000, 65000))
        body_len = min(body_len, 120_000)
        date = http_date(t)
        head = b"HTTP/1.1 200 OK\r\nDate: %s\r\nServer: nginx/1.22.1\r\nContent-Type: application/octet-stream\r\n" \
               b"Content-Length: %d\r\nCache-Control: max-age=%s\r\nConnection: keep-alive\r\n\r\n" % (
                   date, body_len, b"60")
        if len(head) & 1:
            head = head.replace(b"max-age=60", b"max-age=600")
        h = len(head)
        o = rnd.randrange(0, 1 << 17) & ~1                       # even pool offset
        data = head + self.pool[o:o + body_len]
        total = len(data)
        chunks = -(-total // MSS)
        if not self.fits(chunks):                                 # the capture ends: no more from c
            return
        gp = self.grouping(chunks)
        gs = gp
        kind = None
        if self.armed["http_date"]:
            kind = "http_date"
        elif self.armed["tcp_byte"] and total - h >= 64:
            kind = "tcp_byte"
        elif chunks >= 2 and rnd.random() < self.tso:
            i = rnd.randrange(chunks - 1)
            k = min(chunks - i, rnd.choice((2, 3)))
            before, after = self.grouping(i), self.grouping(chunks - i - k)
            gp, gs = before + [k] + after, before + [1] * k + after
            if rnd.random() < 0.5:
                gp, gs = gs, gp
            self.resegmented += 1
        self.responses += 1
        self.count("tcp_data", len(gp))
        head_sum = sum16(head)
        seq0, ipid0 = c.seq, c.ipid
        self._lag()
        gap = rnd.randrange(8, 30)                               # µs per MSS on the wire
        sides = ((gp, True), (gs, False)) if gs is not gp else ((gp, None),)
        plant_at = None
        if kind == "tcp_byte":
            pos = h + rnd.randrange(total - h)                   # a body byte of the stream
        elif kind == "http_date":
            pos = head.index(b"Date: ") + 6
        for groups, primary in sides:
            i = 0
            for k in groups:
                a, b = i * MSS, min((i + k) * MSS, total)
                payload = data[a:b]
                psum = (head_sum if a == 0 else 0) + (self.pool_sum(o + max(a, h) - h, o + b - h) if b > h else 0)
                if a == 0 and b < h:                             # cannot happen: MSS > any header
                    raise AssertionError("header longer than a segment")
                flags = 0x18 if b == total else 0x10
                f = self.tcp(c, seq0 + a, flags, ipid0 + i, payload, psum)
                ti = t + i * gap
                if kind is not None and a <= pos < b:
                    if kind == "http_date":
                        sdate = http_date(t + 1_000_000)
                        spayload = payload.replace(b"Date: " + date, b"Date: " + sdate, 1)
                    else:
                        j = pos - a
                        spayload = payload[:j] + bytes((payload[j] ^ (1 << rnd.randrange(8)),)) + payload[j + 1:]
                    s = self.tcp(c, seq0 + a, flags, ipid0 + i, spayload, sum16(spayload))
                    plant_at = self.plant(kind, c, ti, f, s)
                    self.push_p(ti, f, plant_at)
                    self.push_s(ti, c, s, plant_at)
                else:
                    if primary is not False:
                        self.push_p(ti, f)
                    if primary is not True:
                        self.push_s(ti, c, f)
                if k > 1:
                    self.merged_frames[0 if primary is not False else 1] += 1
                    if primary is None:
                        self.merged_frames[1] += 1
                i += k
        c.seq = seq0 + total
        c.ipid = ipid0 + chunks
        end = t + chunks * gap
        if c.requests > 0:
            self.at(end + rnd.randrange(300, 3000) + rnd.expovariate(1 / 20000), self.request, c)
        else:
            self.at(end + rnd.randrange(1000, 5000) + rnd.expovariate(1 / 30000), self.close, c)

    def close(self, t: int, c: Conn):
        if not self.fits(1):
            return
        f = self.tcp(c, c.seq, 0x11, c.ipid)                    # FIN-ACK
        self.count("tcp_fin")
        c.seq += 1
        c.ipid += 1
        self._lag()
        self.push_p(t, f)
        self.push_s(t, c, f)
        self.at(t + self.rnd.randrange(200, 3000), self.last_ack, c)

    def last_ack(self, t: int, c: Conn):
        if not self.fits(1):
            return
        c.ack += 1                                              # the client's FIN
        f = self.tcp(c, c.seq, 0x10, c.ipid)
        self.count("tcp_ack")
        c.ipid += 1
        self.push_p(t, f)
        self.push_s(t, c, f)

    def ping(self, t: int, f: Flow):
        """An echo reply to the pinger: id/seq and the request's 56 data bytes (a timeval, then
        Linux ping's pattern), the same on both sides."""
        if not self.fits(1):
            return
        seq = f.sport = (f.sport + 1) & 0xFFFF                  # sport holds the echo seq
        sent = t - 150
        data = struct.pack("<QQ", sent // 1_000_000, sent % 1_000_000) + bytes(range(0x10, 0x38))
        p = self.icmp(f, f.ipid, seq, data)
        self.count("icmp")
        self._lag()
        if self.armed["icmp_payload"]:
            j = 16 + self.rnd.randrange(40)
            sdata = data[:j] + bytes((data[j] ^ 0x40,)) + data[j + 1:]
            self.emit(t, f, p, self.icmp(f, f.ipid, seq, sdata), "icmp_payload")
        else:
            self.emit(t, f, p)
        f.ipid = (f.ipid + 1) & 0xFFFF
        self.at(t + 1e6 / self.icmp_hz + self.rnd.randrange(-300, 300), self.ping, f)

    def emit(self, t: int, f: Flow, p: bytes, s: bytes | None = None, kind: str | None = None) -> None:
        """Push primary frame ``p`` and its secondary twin: ``p`` itself, or with a plant of
        ``kind`` the changed frame ``s`` (``None``: the secondary sends none)."""
        if kind is None:
            self.push_p(t, p)
            self.push_s(t, f, p)
            return
        tag = self.plant(kind, f, t, p if s is not None else None, s)
        self.push_p(t, p, tag)
        if s is not None:
            self.push_s(t, f, s, tag)

    def rtp(self, t: int, f: Flow):
        """An RTP-like datagram (PCMU, 160 bytes) of the stream."""
        if not self.fits(1):
            return
        rnd = self.rnd
        self.rtp_seq = (self.rtp_seq + 1) & 0xFFFF
        self.rtp_ts = (self.rtp_ts + 160) & 0xFFFFFFFF
        o = rnd.randrange(0, 1 << 17)
        payload = struct.pack("!BBHII", 0x80, 0, self.rtp_seq, self.rtp_ts, 0x5EED0001) + self.pool[o:o + 160]
        p = self.udp(f, f.ipid, payload)
        self.count("rtp")
        self._lag()
        if self.armed["missing_secondary"]:
            self.emit(t, f, p, None, "missing_secondary")
        elif self.armed["udp_byte"]:
            j = 12 + rnd.randrange(160)
            sp = payload[:j] + bytes((payload[j] ^ 0x01,)) + payload[j + 1:]
            self.emit(t, f, p, self.udp(f, f.ipid, sp), "udp_byte")
        else:
            self.emit(t, f, p)
        f.ipid = (f.ipid + 1) & 0xFFFF
        self.at(t + 1e6 / self.udp_hz + rnd.randrange(-40, 40), self.rtp, f)

    def dns_burst(self, t: int, _):
        """A client's burst of queries: replies a few hundred µs apart, each to its own port."""
        rnd = self.rnd
        client = bytes((10, 9, rnd.randrange(4), 1 + rnd.randrange(60)))
        for _ in range(max(1, round(rnd.expovariate(1 / self.dns_burst_mean)))):
            t += rnd.randrange(60, 600)
            self.at(t, self.dns_reply, client)
        self.at(t + rnd.expovariate(self.dns_bursts_hz / 1e6), self.dns_burst)

    def dns_reply(self, t: int, client: bytes):
        if not self.fits(1):
            return
        rnd = self.rnd
        f = Flow(17, client, 53, 1024 + rnd.randrange(64000), rnd.getrandbits(16))
        self.dns_flows.add((client, f.dport))
        qid = rnd.getrandbits(16)
        name = rnd.choice(NAMES)
        qname = b"".join(bytes((len(x),)) + x for x in name.split(b".")) + b"\0"
        addr = bytes((93, 184, rnd.randrange(256), 1 + rnd.randrange(254)))

        def reply(ident: int, answers: int) -> bytes:
            body = struct.pack("!HHHHHH", ident, 0x8180, 1, answers, 0, 0) + qname + b"\x00\x01\x00\x01"
            for k in range(answers):
                body += b"\xc0\x0c\x00\x01\x00\x01" + struct.pack("!IH", 300, 4) + addr[:3] + bytes(((addr[3] + k) & 0xFF,))
            return body

        p = self.udp(f, f.ipid, reply(qid, 1))
        self.count("dns")
        self._lag()
        kind = next((k for k in ("dns_id", "size", "missing_primary") if self.armed[k]), None)
        if kind == "dns_id":
            s = self.udp(f, f.ipid, reply(qid ^ (1 + rnd.randrange(0xFFFF)), 1))
        elif kind == "size":
            s = self.udp(f, f.ipid, reply(qid, 2))
        else:
            s = p
        if kind in ("dns_id", "size"):
            self.emit(t, f, p, s, kind)
        else:
            self.emit(t, f, p)
            if kind == "missing_primary":                        # the secondary answers twice
                dup = self.udp(f, (f.ipid + 1) & 0xFFFF, reply(qid, 1))
                tag = self.plant(kind, f, t, None, None)
                self.push_s(t + rnd.randrange(300, 900), f, dup, tag)

    # -- the run ------------------------------------------------------------------------------------

    def run(self) -> dict:
        os.makedirs(self.out, exist_ok=True)
        paths = [os.path.join(self.out, n) for n in ("primary.pcap", "secondary.pcap")]
        self.p, self.s = Side(paths[0] + ".part"), Side(paths[1] + ".part")
        rnd = self.rnd
        t0 = T0_US + rnd.randrange(1_000_000)
        self.rtp_seq, self.rtp_ts = rnd.getrandbits(16), rnd.getrandbits(32)
        self.at(t0, self.new_connection)
        self.at(t0 + rnd.randrange(40000), self.ping, Flow(1, PINGER, rnd.getrandbits(8), 0, rnd.getrandbits(16)))
        self.at(t0 + rnd.randrange(4000), self.rtp, Flow(17, RTP_CLIENT, RTP_SPORT, RTP_DPORT, rnd.getrandbits(16)))
        self.at(t0 + rnd.randrange(50000), self.dns_burst)
        sched, pop, p, s = self.sched, heapq.heappop, self.p, self.s
        targets, armed = self.targets, self.armed
        t = t0
        tick = 0
        while sched and self.pushed < self.frames:
            t, _, handler, flow = pop(sched)
            while targets and self.pushed >= targets[-1][0]:
                armed[targets.pop()[1]] += 1
            handler(t, flow)
            tick += 1
            if tick & 63 == 0:
                p.flush(t, "primary_frame")
                s.flush(t, "secondary_frame")
        p.flush(1 << 62, "primary_frame")
        s.flush(1 << 62, "secondary_frame")
        p.close()
        s.close()
        for part, path in zip((p, s), paths):
            os.replace(part.f.name, path)
        self.planted.sort(key=lambda e: e["primary_time_us"])
        truth = {
            "generator": "bench/make_free_pair.py", "schema": "colo-replay/free-pair-truth/1",
            "parameters": self.params,
            "counts": {
                "primary_frames": p.count, "secondary_frames": s.count,
                "primary_bytes": p.bytes, "secondary_bytes": s.bytes,
                "duration_s": round((t - t0) / 1e6, 3),
                "tcp_connections": self.connections, "http_responses": self.responses,
                "responses_segmented_differently": self.resegmented,
                "merged_segments": {"primary": self.merged_frames[0], "secondary": self.merged_frames[1]},
                "dns_reply_flows": len(self.dns_flows),
                "primary_frames_by_kind": dict(sorted(self.kinds.items())),
                "flows": self.connections + len(self.dns_flows) + 2,
                "planted": len(self.planted), "planted_requested": len(self.targets) + len(self.planted) + sum(armed.values()),
                "planted_not_placed": sum(armed.values()) + len(targets),
            },
            "planted": self.planted,
        }
        with open(os.path.join(self.out, "truth.json"), "w") as fh:
            json.dump(truth, fh, indent=1)
            fh.write("\n")
        return truth


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--frames", type=int, default=1_000_000, help="primary frames (default %(default)s)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", required=True, help="directory for primary.pcap, secondary.pcap, truth.json")
    g = ap.add_argument_group("flow mix")
    g.add_argument("--conn-rate", type=float, default=800.0, help="new TCP connections a second (%(default)s)")
    g.add_argument("--requests-mean", type=float, default=3.0, help="mean requests per connection (%(default)s)")
    g.add_argument("--body-mean", type=int, default=4000, help="mean response body, bytes (%(default)s)")
    g.add_argument("--tso", type=float, default=0.2,
                   help="share of multi-segment responses the two sides segment differently (%(default)s)")
    g.add_argument("--merge", type=float, default=0.3, help="chance a segment carries 2-3 MSS (%(default)s)")
    g.add_argument("--icmp-hz", type=float, default=23.0, help="echo replies a second (%(default)s)")
    g.add_argument("--dns-bursts-hz", type=float, default=20.0, help="DNS reply bursts a second (%(default)s)")
    g.add_argument("--dns-burst", type=float, default=5.0, help="mean replies per burst (%(default)s)")
    g.add_argument("--udp-hz", type=float, default=250.0, help="RTP-like datagrams a second, at most 1000 (%(default)s)")
    g.add_argument("--lag-max-us", type=int, default=2000, help="the secondary's largest lag, µs (%(default)s)")
    d = ap.add_argument_group("divergences")
    d.add_argument("--divergences-per-million", type=float, default=12.0,
                   help="planted divergences per 1M primary frames, at least one of each kind (%(default)s)")
    d.add_argument("--divergences", type=int, help="exactly this many planted divergences (overrides the rate)")
    a = ap.parse_args(argv)
    t_start = time.perf_counter()
    try:
        gen = Generator(a.frames, a.seed, a.out, a.conn_rate, a.requests_mean, a.body_mean, a.tso, a.merge,
                        a.icmp_hz, a.dns_bursts_hz, a.dns_burst, a.udp_hz, a.lag_max_us,
                        a.divergences_per_million, a.divergences)
    except ValueError as e:
        ap.error(str(e))
    truth = gen.run()
    c = truth["counts"]
    print(f"wrote {a.out}/primary.pcap ({c['primary_frames']:,} frames), secondary.pcap "
          f"({c['secondary_frames']:,}), truth.json in {time.perf_counter() - t_start:.1f} s: "
          f"{c['duration_s']} s of traffic, {c['tcp_connections']:,} TCP connections, "
          f"{c['responses_segmented_differently']:,} responses segmented differently, "
          f"{c['planted']} planted divergences", file=sys.stderr)


if __name__ == "__main__":
    main()
