"""Scenarios for the differential tests (real QEMU 7.2 colo-compare vs ``colo_replay.Engine``).

A ``Scenario`` is a list of steps plus the colo-compare properties:

* ``("P", frame[, vnet_len])``  a frame written to primary_in
* ``("S", frame[, vnet_len])``  a frame written to secondary_in
* ``("FLUSH",)``                ``COLO_CHECKPOINT`` on notify_dev (flush every queue)
* ``("WAIT", ms)``              let time pass (timeout-driven scenarios)

``compare_timeout`` / ``expired_scan_cycle`` / ``max_queue_size`` are None for QEMU's default;
``vnet_hdr_support`` turns on the vnet length word (then ``vnet_len`` may be given per frame and
the frame bytes start with that many vnet header bytes).

Two families:

* ``HANDWRITTEN``: the worked examples of colo-compare-spec.md Appendix A that apply to 7.2
  (A, B, C, D, E, F, H, I, K, L1-L4, M, N, O, P, P2, Q, S, T), the timeout examples G / G2 with a
  short 200 / 100 ms timeout / scan cycle (WAITs are whole multiples of the scan cycle, so QEMU's
  unknown scan phase moves a count by at most one tick), and more behaviours from qemu-oracle.md
  and the spec's quirk list (header corner cases, 16-bit truncations, keys);
* ``randomized()``: scenarios drawn by seeded generators (``random.Random(seed)``, so every run
  draws the same scenarios): TCP byte streams segmented differently on each side, datagram
  flows with reorders, losses and differences, pass-through frames, queue overflow, vnet headers,
  padding, sequence wrap-around, flushes at random points.

Generated scenarios never contain zero-length frames (they abort QEMU) and are redrawn when the
engine reports undefined behaviour for them (a read past a frame's end: QEMU's result depends on
heap contents there, so there is nothing to compare).  No scenario uses the oracle's barrier
flow (10.99.99.0/24, port 9999).
"""

from __future__ import annotations

import random
import struct
from dataclasses import dataclass

from colo_replay.engine.framing import NET_BUFSIZE

from . import frames as F
from .steps import FLUSH, WAIT, P, S

MASTER_SEED = 0xC0107202


@dataclass
class Scenario:
    name: str
    steps: list
    compare_timeout: int | None = None
    expired_scan_cycle: int | None = None
    max_queue_size: int | None = None
    vnet_hdr_support: bool = False
    randomized: bool = False
    seed: int | None = None
    description: str = ""

    @property
    def timer_driven(self) -> bool:
        """Scenarios with WAIT steps: QEMU's scan phase is unknown, so the checkpoint counts are
        compared with a tolerance of one scan tick per WAIT step."""
        return any(s[0] == "WAIT" for s in self.steps)

    def config_args(self) -> dict:
        return dict(compare_timeout=self.compare_timeout, expired_scan_cycle=self.expired_scan_cycle,
                    max_queue_size=self.max_queue_size, vnet_hdr_support=self.vnet_hdr_support)


# ====================================================================== hand-written
def _handwritten() -> list[Scenario]:
    out: list[Scenario] = []

    def add(name, steps, desc="", **kw):
        out.append(Scenario(name, steps, description=desc, **kw))

    hello = F.tcp(1000, b"hello world", ack=1)
    add("A-tcp-identical", [P(hello), S(hello)],
        "TCP data P then identical S: P released")
    add("B-tcp-differs-flush", [P(hello), S(F.tcp(1000, b"HELLO WORLD", ack=1)), FLUSH],
        "same seq/len, different bytes: DO_CHECKPOINT, P released at the flush")

    u1, u2, u3 = F.udp(b"datagram-1"), F.udp(b"datagram-2"), F.udp(b"datagram-3")
    add("C-udp-primary-ahead", [P(u1), P(u2), S(u1), S(u2)],
        "UDP P1,P2; S1; S2: DO_CHECKPOINT at S1 (newest primary compared first); P2 then P1 at S2")
    add("D-udp-flush-lifo", [P(u1), P(u2), P(u3), FLUSH],
        "UDP P1,P2,P3 then flush: released P3,P2,P1")
    add("E-tcp-flush-seq-order",
        [P(F.tcp(1010, b"B" * 10)), P(F.tcp(1000, b"A" * 10)), P(F.tcp(1020, b"C" * 10)), FLUSH],
        "TCP seqs 1010,1000,1020 then flush: released 1000,1010,1020")

    arp = F.arp_reply()
    tagged = F.vlan(F.udp(b"tagged"))
    ip16 = F.runt(16)
    add("F-unsupported-passthrough", [P(arp), P(tagged), P(ip16), S(arp), S(tagged), S(ip16), FLUSH],
        "ARP, 802.1Q and a 16-byte IPv4 frame: primaries released at once, secondaries dropped")

    add("H-pure-ack-waits-for-secondary", [P(F.tcp(2000, ack=700)), S(F.tcp(2000, ack=700))],
        "P pure ACK waits; released when the S pure ACK arrives")

    icmp_b = F.icmp_echo(b"to-b", dst=F.B)
    icmp_c = F.icmp_echo(b"to-c", dst=F.C)
    add("I-icmp-per-host-pair", [P(icmp_b), P(icmp_c), S(icmp_c), FLUSH],
        "ICMP P->B, P->C; S->C: P->C released (per (src,dst) connections in 7.2); P->B at flush")

    ping_b = F.icmp_echo(b"ping", dst=F.B)
    ping_c = F.icmp_echo(b"ping", dst=F.C)
    add("I2-icmp-cross-host", [P(ping_b), P(ping_c), S(F.icmp_echo(b"ping", dst=F.B)), FLUSH],
        "identical ICMP to B and C; S->B releases P->B (a global ICMP connection would release P->C)")

    k = [F.udp(b"queued-%d" % i) for i in range(5)]
    add("K-queue-overflow", [P(f) for f in k] + [FLUSH],
        "max_queue_size=2: 3 frames fit, p4/p5 dropped; flush releases p3,p2,p1", max_queue_size=2)

    data20 = bytes(range(65, 85))
    add("L1-one-primary-two-secondaries",
        [P(F.tcp(3000, data20)), S(F.tcp(3000, data20[:10])), S(F.tcp(3010, data20[10:])), FLUSH],
        "P 20 B; S 10 B + 10 B identical: P released on the second S; leftover S dropped at flush")
    add("L2-two-primaries-one-secondary",
        [P(F.tcp(3000, data20[:10])), P(F.tcp(3010, data20[10:])), S(F.tcp(3000, data20)), FLUSH],
        "P 10 B + 10 B; S 20 B: P1, P2 released")
    add("L3-ack-gate",
        [P(F.tcp(3000, data20[:10], ack=600)), S(F.tcp(3000, data20, ack=500)), FLUSH],
        "P 10 B ack 600; S 20 B ack 500: DO_CHECKPOINT (ACK gate), P released at flush")
    add("L3b-ack-gate-min-pack-sack",
        [P(F.tcp(3000, data20[:10], ack=600)), P(F.tcp(3010, data20[10:], ack=500)),
         S(F.tcp(3000, data20, ack=700)), FLUSH],
        "pack=500 < sack=700: MIN(pack, sack) gates P1 (ack 600) in 7.2.15+; 7.2.0-.14 (min=sack) would release")
    add("L4-same-range-ack-ignored",
        [P(F.tcp(3000, data20, ack=600)), S(F.tcp(3000, data20, ack=500))],
        "same seq range, acks 600/500: P released (gate only on the partial path)")

    m1 = F.udp(b"mismatch-p")
    add("M-repeated-notifications",
        [P(m1), S(F.udp(b"mismatch-s")), S(F.udp(b"mismatch-t")), S(F.udp(b"mismatch-u")), FLUSH],
        "UDP mismatch then two more arrivals: one DO_CHECKPOINT per arrival")

    n1 = F.tcp(4000, b"0123456789", ack=9)
    add("N-retransmission",
        [P(n1), S(n1), P(n1), S(F.tcp(4010, b"abcdefghij", ack=9)), P(F.tcp(4010, b"abcdefghij", ack=9))],
        "TCP P+S, P retransmit (waits), new S data releases the retransmit, new P data matches")

    vu_p = F.with_vnet(F.udp(b"vnet-udp"), 10, 0x11)
    vu_s = F.with_vnet(F.udp(b"vnet-udp"), 10, 0x22)
    add("O-vnet-udp-and-arp", [P(vu_p, 10), P(arp, 0), S(vu_s, 10)],
        "vnet=on: ARP released at once (vnet 0), UDP (vnet 10) released, vnet bytes not compared",
        vnet_hdr_support=True)

    acks = [F.tcp(5000, ack=a) for a in (501, 502, 503)]
    add("P-pure-acks-fifo", [P(a) for a in acks] + [FLUSH],
        "3 same-seq pure ACKs then flush: 501,502,503 (ties FIFO in 7.0+)")
    add("P2-one-ack-per-secondary", [P(a) for a in acks] + [S(F.tcp(5000, ack=501)), FLUSH],
        "3 same-seq pure ACKs, 1 S pure ACK: only 501 released; the rest at flush")

    add("Q-seq-wraparound", [P(F.tcp(5, b"after-wrap")), P(F.tcp(0xFFFFFFFB, b"wrap")), FLUSH],
        "TCP seq 5 then 0xFFFFFFFB, flush: 0xFFFFFFFB first")

    add("S-vnet-too-long",
        [P(F.with_vnet(F.udp(b"long-vnet-p"), 24, 1), 24), S(F.with_vnet(F.udp(b"long-vnet-s"), 24, 2), 24),
         FLUSH],
        "vnet_hdr_len 24 > 20: P passed through at once, S dropped, no DO_CHECKPOINT",
        vnet_hdr_support=True)

    add("T-padded-pure-acks",
        [P(F.pad(F.tcp(6000, ack=77), 60, 0x00)), S(F.pad(F.tcp(6000, ack=77), 60, 0xEE)), FLUSH],
        "60-byte padded pure ACKs with different padding: padding is payload, DO_CHECKPOINT")

    # ---- timeouts (short compare_timeout / expired_scan_cycle; WAITs are multiples of the cycle)
    fast = dict(compare_timeout=200, expired_scan_cycle=100)
    add("G-timeout-lone-primary", [P(F.udp(b"lonely-primary")), WAIT(400), FLUSH],
        "lone primary UDP: DO_CHECKPOINT on every scan once older than 200 ms; released at flush",
        **fast)
    add("G2-timeout-lone-secondary", [S(F.udp(b"lonely-secondary")), WAIT(400), FLUSH],
        "lone secondary UDP: 7.2 scans secondary lists too", **fast)
    add("L1-timeout-leftover-secondary",
        [P(F.tcp(3000, data20)), S(F.tcp(3000, data20[:10])), S(F.tcp(3010, data20[10:])), WAIT(400), FLUSH],
        "a fully consumed secondary stays queued and expires into timeout requests", **fast)
    add("H-timeout-pure-ack", [P(F.tcp(2000, ack=700)), WAIT(300), P(F.tcp(2000, ack=701)), WAIT(300), FLUSH],
        "primary pure ACKs with no secondary traffic leave only by timeout request + flush", **fast)

    # ---- more behaviours from qemu-oracle.md
    add("udp-ip-header-ignored",
        [P(F.udp(b"same", ident=1, ttl=64)), S(F.udp(b"same", ident=999, ttl=3)),
         P(F.udp(b"size")), S(F.udp(b"size+")), FLUSH],
        "UDP IP ID/TTL/checksum differences ignored; a size difference requests a checkpoint")
    gre_p = F.ip_other(47, b"\x00\x00\x08\x00gre-payload")
    add("other-proto-whole-frame",
        [P(gre_p), S(gre_p), P(F.ip_other(47, b"\x00\x00\x08\x00gre-2")),
         S(F.ip_other(47, b"\x00\x00\x08\x00gre-2", ttl=63)), FLUSH],
        "other IP protocols compare the whole frame: a TTL difference is a mismatch")
    add("secondary-pure-ack-no-release",
        [P(F.tcp(7000, b"payload!", ack=5)), S(F.tcp(7000, ack=5)), S(F.tcp(7000, b"payload!", ack=5))],
        "a secondary pure ACK does not release primary data; the matching data does")
    add("tcp-mismatch-repeats",
        [P(F.tcp(8000, b"abcdef", ack=3)), S(F.tcp(8000, b"abcdeX", ack=3)), P(F.tcp(8006, b"ghij", ack=3)),
         S(F.tcp(8006, b"ghij", ack=3)), FLUSH, P(F.tcp(8010, b"klm", ack=3)), S(F.tcp(8010, b"klm", ack=3))],
        "TCP mismatch stays at the queue heads and re-notifies per arrival; compare_seq survives the flush")
    add("tcp-syn-fin-as-pure-acks",
        [P(F.tcp(100, flags=0x02, ack=0)), P(F.tcp(101, b"x", ack=0)), S(F.tcp(200, flags=0x12, ack=101)),
         S(F.tcp(101, b"x", ack=0)), P(F.tcp(102, flags=0x11, ack=0)), S(F.tcp(102, flags=0x11, ack=0))],
        "SYN and FIN without data take the pure-ACK path")
    add("qinq-accepted",
        [P(F.qinq(F.udp(b"qinq-1"))), S(F.qinq(F.udp(b"qinq-1"))),
         P(F.qinq(F.udp(b"qinq-2"), inner_vid=7)), S(F.qinq(F.udp(b"qinq-3"), inner_vid=7)), FLUSH],
        "802.1ad frames are not refused; compared with the 14-byte-L2 window")
    add("runt-and-truncated-ip",
        [P(F.runt(14)), P(F.runt(17)), P(F.runt(18)), P(F.runt(30)), S(F.runt(14)), S(F.runt(18)),
         P(F.ipv6_udp()), S(F.ipv6_udp())],
        "frames < 18 bytes and frames shorter than their IP header: primaries passed through")
    add("multi-conn-flush-order",
        [P(F.udp(b"u1", sport=1111)), P(F.tcp(9000, b"t1", sport=81)), P(F.icmp_echo(b"i1", dst=F.C)),
         P(F.udp(b"u2", sport=1111)), P(F.tcp(8998, b"t0", sport=81)), S(F.udp(b"zz", sport=2222)), FLUSH],
        "a flush walks connections in first-seen order: UDP newest-first, TCP by seq")
    add("G3-timeout-one-request-per-scan",
        [P(F.udp(b"old-a", sport=1001)), P(F.udp(b"old-b", sport=1002)), S(F.udp(b"old-c", sport=1003)),
         WAIT(400), FLUSH],
        "three connections with old frames: still one DO_CHECKPOINT per scan (stops at the first)", **fast)

    # ---- header corner cases (all deterministic: no read past a frame's end)
    add("ip-hl-zero",
        [P(_set_ihl(F.udp(b"hl0"), 0x40)), S(_set_ihl(F.udp(b"hl0"), 0x40)),
         P(_set_ihl(F.udp(b"hl0b", ttl=5), 0x40)), S(_set_ihl(F.udp(b"hl0b", ttl=6), 0x40)), FLUSH],
        "ip_hl = 0 is not refused: the IP header becomes the 'UDP' bytes, so a TTL difference mismatches")
    add("ip-hl-15",
        [P(F.eth(F.ipv4(17, struct.pack("!HHHH", 5, 6, 10, 0) + b"zz", options=b"\x01" * 40))),
         S(F.eth(F.ipv4(17, struct.pack("!HHHH", 5, 6, 10, 0) + b"zz", options=b"\x01" * 40, ttl=9)))],
        "60-byte IP header: compared from after the options")
    udp_l4 = struct.pack("!HHHH", 1, 2, 12, 0) + b"abcd"
    add("udp-ip-options-primary-offsets",
        [P(F.eth(F.ipv4(17, udp_l4, options=b"\x01\x01\x01\x00"))),
         S(F.eth(F.ipv4(17, struct.pack("!HH", 1, 2) + udp_l4))), FLUSH],
        "UDP compare uses the primary's ip_hl for both frames (spec Q9): misaligned but equal bytes")
    add("ah-spi-keys", [P(_ah(2)), P(_ah(1)), S(_ah(2)), FLUSH],
        "AH connections are keyed by SPI: S(spi 2) matches P(spi 2) although P(spi 1) is newer")
    add("igmp-other-proto",
        [P(F.ip_other(2, b"\x16\x00\xfa\x04\xe0\x00\x00\xfb")), S(F.ip_other(2, b"\x16\x00\xfa\x04\xe0\x00\x00\xfb")),
         P(F.ip_other(2, b"\x16\x00\xfa\x04\xe0\x00\x00\xfc", ident=1)),
         S(F.ip_other(2, b"\x16\x00\xfa\x04\xe0\x00\x00\xfc", ident=2)), FLUSH],
        "IGMP is an 'other' protocol: whole-frame compare, an IP ID difference mismatches")
    ts_a = bytes([1, 1, 8, 10]) + struct.pack("!II", 100, 0)
    ts_b = bytes([1, 1, 8, 10]) + struct.pack("!II", 999, 5)
    add("tcp-options-ignored",
        [P(_tcp_opts(10, b"0123456789", ts_a)), S(_tcp_opts(10, b"0123456789", ts_b)),
         P(_tcp_opts(20, b"abcdefghij", ts_a)), S(F.tcp(20, b"abcdefghij", sport=80, dport=40000))],
        "TCP options (timestamps, or none at all) are header, not payload")
    add("compare-seq-zero-is-unset",
        [P(F.tcp(0xFFFFFFF6, b"0123456789")), S(F.tcp(0xFFFFFFF6, b"0123456789")),
         P(F.tcp(0xFFFFFFF6, b"0123456789")), S(F.tcp(0xFFFFFFF6, b"XXXXXXXXXX")), FLUSH],
        "a segment ending at 2^32 sets compare_seq = 0 = unset: the retransmission is compared again")
    add("vnet-short-frame",
        [P(F.with_vnet(F.runt(20), 20, 3), 20), S(F.with_vnet(F.runt(20), 20, 3), 20),
         P(F.with_vnet(F.udp(b"v"), 20, 1), 20), S(F.with_vnet(F.udp(b"v"), 20, 2), 20)],
        "vnet 20 (the maximum) with a 20-byte frame: too short after the vnet header, passed through",
        vnet_hdr_support=True)

    # ---- 16-bit truncations (spec Q14): frames up to NET_BUFSIZE = 69632 bytes are accepted
    tail = random.Random(14).randbytes(NET_BUFSIZE)
    big_tcp = _grow(F.tcp(1000, b"head"), 66000, tail)          # payload_size = 65946 & 0xFFFF = 410
    add("big-tcp-u16-payload-size",
        [P(big_tcp), S(_flip_at(big_tcp, -1)),
         P(_grow(F.tcp(1410, b"next"), 500, tail)), S(_grow(F.tcp(1410, b"next"), 500, tail)),
         P(_grow(F.tcp(9000, b"more"), 66000, tail)), S(_flip_at(_grow(F.tcp(9000, b"more"), 66000, tail), 60)),
         FLUSH],
        "66000-byte TCP frames: payload_size wraps to 410, so only 410 payload bytes are compared")
    big_udp = _grow(F.udp(b"head"), NET_BUFSIZE, tail)          # compare length (69632-34) & 0xFFFF = 4062
    add("big-udp-u16-compare-length",
        [P(big_udp), S(_flip_at(big_udp, -1)), P(big_udp), S(_flip_at(big_udp, 200)), FLUSH],
        "69632-byte UDP frames (the maximum): the compare length wraps to 4062 bytes")
    return out


def _grow(frame: bytes, total: int, tail: bytes) -> bytes:
    """``frame`` followed by trailing bytes up to ``total`` (colo-compare goes by frame size)."""
    return frame + tail[:total - len(frame)]


def _flip_at(frame: bytes, i: int) -> bytes:
    b = bytearray(frame)
    b[i] ^= 0xFF
    return bytes(b)


def _set_ihl(frame: bytes, ver_ihl: int) -> bytes:
    b = bytearray(frame)
    b[14] = ver_ihl
    return bytes(b)


def _ah(spi: int, payload: bytes = b"ah-data") -> bytes:
    body = struct.pack("!BBHII", 17, 4, 0, spi, 1) + bytes(12) + payload
    return F.ip_other(51, body)


def _tcp_opts(seq: int, payload: bytes, options: bytes) -> bytes:
    return F.eth(F.ipv4(6, F.tcp_segment(80, 40000, seq, 1, payload, 0x18, options=options)))


HANDWRITTEN: list[Scenario] = _handwritten()


# ====================================================================== randomized helpers
def _interleave(rng: random.Random, p_steps: list, s_steps: list, flush_prob: float = 0.0,
                bias: float = 0.5) -> list:
    """Merge two step lists at random, keeping each side's order; maybe insert flushes."""
    i = j = 0
    out = []
    while i < len(p_steps) or j < len(s_steps):
        if j >= len(s_steps) or (i < len(p_steps) and rng.random() < bias):
            out.append(p_steps[i])
            i += 1
        else:
            out.append(s_steps[j])
            j += 1
        if flush_prob and rng.random() < flush_prob:
            out.append(FLUSH)
    if out and rng.random() < 0.5:
        out.append(FLUSH)
    return out


def _cuts(rng: random.Random, n: int, max_seg: int) -> list[int]:
    """Random segment boundaries 0 = c0 < c1 < ... < ck = n."""
    cuts = [0]
    while cuts[-1] < n:
        cuts.append(min(n, cuts[-1] + rng.randint(1, max_seg)))
    return cuts


def _segments_for(rng: random.Random, mode: str, n: int) -> tuple[list[int], list[int]]:
    base = _cuts(rng, n, rng.choice((8, 20, 60)))
    if mode == "equal":
        return base, list(base)
    if mode == "split":
        extra = set(base)
        for a, b in zip(base, base[1:]):
            if b - a > 1 and rng.random() < 0.6:
                extra.add(rng.randint(a + 1, b - 1))
        return base, sorted(extra)
    if mode == "merged":
        merged = [0] + [c for c in base[1:-1] if rng.random() < 0.4] + [n]
        return base, merged
    other = _cuts(rng, n, rng.choice((8, 20, 60)))       # misaligned
    if rng.random() < 0.5:
        return base, other
    return other, base


def _flip(rng: random.Random, data: bytes) -> bytes:
    if not data:
        return data
    i = rng.randrange(len(data))
    b = bytearray(data)
    b[i] ^= rng.randint(1, 255)
    return bytes(b)


def _tcp_side(rng, stream: bytes, cuts: list[int], isn: int, ack: int, conn: dict, *,
              diff_prob: float, pure_ack_prob: float, retrans_prob: float, reorder_prob: float,
              ack_jitter_prob: float, pad_prob: float = 0.0) -> list:
    """TCP segments of ``stream`` cut at ``cuts``, with optional noise, as a list of frames."""
    frames = []
    cur_ack = ack
    for a, b in zip(cuts, cuts[1:]):
        payload = stream[a:b]
        if rng.random() < diff_prob:
            payload = _flip(rng, payload)
        if rng.random() < ack_jitter_prob:
            cur_ack = (cur_ack + rng.choice((-50, -1, 1, 50))) & 0xFFFFFFFF
        frames.append(F.tcp((isn + a) & 0xFFFFFFFF, payload, ack=cur_ack, **conn))
        if rng.random() < pure_ack_prob:
            frames.append(F.tcp((isn + b) & 0xFFFFFFFF, ack=cur_ack, window=rng.randint(1000, 65535), **conn))
        if rng.random() < retrans_prob and frames:
            frames.append(rng.choice(frames))
    for k in range(len(frames) - 1):
        if rng.random() < reorder_prob:
            frames[k], frames[k + 1] = frames[k + 1], frames[k]
    if pad_prob:
        frames = [F.pad(f, 60, rng.randint(0, 255)) if len(f) < 60 and rng.random() < pad_prob else f
                  for f in frames]
    return frames


def _near_wrap(rng: random.Random) -> int:
    return (1 << 32) - rng.randint(1, 400)


# ====================================================================== generators
def gen_tcp_stream(rng: random.Random) -> dict:
    """One or two TCP connections; segmented equal / split / merged / misaligned; noise."""
    mode = rng.choice(("equal", "split", "merged", "misaligned"))
    noisy = rng.random() < 0.7
    n_conns = rng.choice((1, 1, 2))
    p_all, s_all = [], []
    for c in range(n_conns):
        n = rng.randint(20, 200)
        stream = rng.randbytes(n)
        isn = _near_wrap(rng) if rng.random() < 0.3 else rng.randrange(1 << 32)
        ack = rng.randrange(1 << 32)
        conn = dict(sport=rng.randint(1024, 9000), dport=80 + c, src=F.A, dst=F.B if c == 0 else F.C)
        pc, sc = _segments_for(rng, mode, n)
        kw = dict(diff_prob=0.08 if noisy else 0.0, pure_ack_prob=0.15 if noisy else 0.0,
                  retrans_prob=0.08 if noisy else 0.0, reorder_prob=0.1 if noisy else 0.0,
                  ack_jitter_prob=0.1 if noisy else 0.0)
        p_all.append(_tcp_side(rng, stream, pc, isn, ack, conn, **kw))
        s_all.append(_tcp_side(rng, stream, sc, isn, ack, conn, **kw))
    p_steps = [P(f) for f in _merge_lists(rng, p_all)]
    s_steps = [S(f) for f in _merge_lists(rng, s_all)]
    steps = _interleave(rng, p_steps, s_steps, flush_prob=0.06 if noisy else 0.0)
    return dict(steps=steps, description=f"TCP {mode}, {n_conns} connection(s), noisy={noisy}")


def _merge_lists(rng: random.Random, lists: list[list]) -> list:
    lists = [list(x) for x in lists]
    out = []
    while any(lists):
        choices = [x for x in lists if x]
        out.append(rng.choice(choices).pop(0))
    return out


def gen_datagrams(rng: random.Random) -> dict:
    """UDP and ICMP flows: the secondary reorders, loses, alters and adds datagrams."""
    flows = []
    for _ in range(rng.randint(1, 3)):
        kind = rng.choice(("udp", "udp", "icmp"))
        dst = rng.choice((F.B, F.C))
        sport = rng.randint(1024, 9000)
        flows.append((kind, dst, sport))
    p_frames, s_frames = [], []
    for i in range(rng.randint(3, 10)):
        kind, dst, sport = rng.choice(flows)
        body = rng.randbytes(rng.randint(1, 40))
        if kind == "udp":
            mk = lambda b, ident=0, ttl=64: F.udp(b, sport=sport, dport=53, dst=dst, ident=ident, ttl=ttl)
        else:
            mk = lambda b, ident=0, ttl=64: F.icmp_echo(b, ident_=sport, seq=i, dst=dst, ip_id=ident, ttl=ttl)
        p_frames.append(mk(body))
        r = rng.random()
        if r < 0.12:
            continue                                        # lost on the secondary
        if r < 0.22:
            s_frames.append(mk(_flip(rng, body)))           # payload differs
        elif r < 0.30:
            s_frames.append(mk(body + b"!"))                # size differs
        elif r < 0.45:
            s_frames.append(mk(body, ident=rng.randint(1, 65535), ttl=rng.randint(1, 255)))  # IP hdr only
        else:
            s_frames.append(mk(body))
        if rng.random() < 0.08:
            s_frames.append(mk(rng.randbytes(5)))           # extra secondary datagram
    for k in range(len(s_frames) - 1):                      # reorders
        if rng.random() < 0.25:
            s_frames[k], s_frames[k + 1] = s_frames[k + 1], s_frames[k]
    steps = _interleave(rng, [P(f) for f in p_frames], [S(f) for f in s_frames], flush_prob=0.08,
                        bias=rng.choice((0.3, 0.5, 0.7)))
    return dict(steps=steps, description=f"{len(flows)} datagram flow(s)")


def gen_mixed_passthrough(rng: random.Random) -> dict:
    """TCP + UDP traffic with ARP, IPv6, 802.1Q and runt frames mixed in on both sides."""
    stream = rng.randbytes(rng.randint(10, 80))
    isn = rng.randrange(1 << 32)
    conn = dict(sport=rng.randint(1024, 9000), dport=443)
    cuts = _cuts(rng, len(stream), 25)
    p_frames = [F.tcp((isn + a) & 0xFFFFFFFF, stream[a:b], ack=42, **conn) for a, b in zip(cuts, cuts[1:])]
    s_frames = list(p_frames)
    for _ in range(rng.randint(1, 4)):
        u = F.udp(rng.randbytes(rng.randint(1, 20)), sport=rng.randint(1024, 9000))
        p_frames.insert(rng.randint(0, len(p_frames)), u)
        s_frames.insert(rng.randint(0, len(s_frames)), u)
    odd = [F.arp_reply(), F.arp_reply(F.A, F.C), F.ipv6_udp(rng.randbytes(4)),
           F.vlan(F.udp(b"vlan", sport=rng.randint(1024, 9000)), rng.randint(1, 4000)),
           F.runt(rng.randint(14, 17)), F.vlan(F.arp_reply())]
    for _ in range(rng.randint(2, 6)):
        f = rng.choice(odd)
        if rng.random() < 0.7:
            p_frames.insert(rng.randint(0, len(p_frames)), f)
        if rng.random() < 0.5:
            s_frames.insert(rng.randint(0, len(s_frames)), f)
    steps = _interleave(rng, [P(f) for f in p_frames], [S(f) for f in s_frames], flush_prob=0.05)
    return dict(steps=steps, description="TCP/UDP with pass-through frames")


def gen_queue_overflow(rng: random.Random) -> dict:
    """max_queue_size 1..4 and bursts longer than the queue on either side."""
    mq = rng.randint(1, 4)
    proto = rng.choice(("udp", "tcp"))
    n = rng.randint(mq + 2, mq + 6)
    if proto == "udp":
        frames = [F.udp(b"burst-%d-" % i + rng.randbytes(3), sport=4242) for i in range(n)]
    else:
        isn = rng.randrange(1 << 32)
        frames = [F.tcp((isn + 10 * i) & 0xFFFFFFFF, rng.randbytes(10), ack=5, sport=4243) for i in range(n)]
    p_steps = [P(f) for f in frames]
    s_frames = list(frames)
    if rng.random() < 0.5:
        rng.shuffle(s_frames)
    s_steps = [S(f) for f in s_frames[:rng.randint(0, n)]]
    if rng.random() < 0.5:
        steps = p_steps + s_steps + [FLUSH]                 # primaries overflow first
    elif rng.random() < 0.5:
        steps = s_steps + p_steps + [FLUSH]                 # secondaries overflow first
    else:
        steps = _interleave(rng, p_steps, s_steps, flush_prob=0.1, bias=0.7) + [FLUSH]
    return dict(steps=steps, max_queue_size=mq, description=f"{proto} burst of {n}, max_queue_size={mq}")


def gen_vnet(rng: random.Random) -> dict:
    """vnet_hdr_support=on: vnet headers of 10 or 12 bytes (different contents on each side),
    now and then one of 24 bytes (> 20, refused by 7.2), over TCP, UDP and ARP."""
    p_steps, s_steps = [], []
    isn = rng.randrange(1 << 32)
    stream = rng.randbytes(rng.randint(10, 60))
    pc, sc = _segments_for(rng, rng.choice(("equal", "split", "merged")), len(stream))

    def vnet_len():
        return 24 if rng.random() < 0.1 else rng.choice((10, 12))

    for side_steps, cuts, mk in ((p_steps, pc, P), (s_steps, sc, S)):
        for a, b in zip(cuts, cuts[1:]):
            v = vnet_len()
            f = F.tcp((isn + a) & 0xFFFFFFFF, stream[a:b], ack=9, sport=5555)
            side_steps.append(mk(F.with_vnet(f, v, rng.randint(0, 255)), v))
    for _ in range(rng.randint(1, 4)):
        u = F.udp(rng.randbytes(rng.randint(1, 16)), sport=6666)
        vp, vs = vnet_len(), vnet_len()
        p_steps.insert(rng.randint(0, len(p_steps)), P(F.with_vnet(u, vp, rng.randint(0, 255)), vp))
        if rng.random() < 0.85:
            s_steps.insert(rng.randint(0, len(s_steps)), S(F.with_vnet(u, vs, rng.randint(0, 255)), vs))
    if rng.random() < 0.6:
        v = rng.choice((0, 10, 12))
        p_steps.insert(rng.randint(0, len(p_steps)), P(F.with_vnet(F.arp_reply(), v, 0x5A), v))
    steps = _interleave(rng, p_steps, s_steps, flush_prob=0.05)
    return dict(steps=steps, vnet_hdr_support=True, description="vnet headers 10/12 (and 24)")


def gen_padded(rng: random.Random) -> dict:
    """60-byte minimum frames whose padding may differ: TCP pure ACKs and short segments, UDP."""
    isn = rng.randrange(1 << 32)
    stream = rng.randbytes(rng.randint(4, 30))
    cuts = _cuts(rng, len(stream), 6)
    conn = dict(sport=rng.randint(1024, 9000), dport=22)
    same_pad = rng.random() < 0.5
    p_frames, s_frames = [], []
    for a, b in zip(cuts, cuts[1:]):
        f = F.tcp((isn + a) & 0xFFFFFFFF, stream[a:b], ack=1, **conn)
        pp = rng.randint(0, 255)
        sp = pp if same_pad or rng.random() < 0.6 else rng.randint(0, 255)
        p_frames.append(F.pad(f, 60, pp))
        s_frames.append(F.pad(f, 60, sp))
        if rng.random() < 0.3:
            ackf = F.tcp((isn + b) & 0xFFFFFFFF, ack=1, **conn)
            p_frames.append(F.pad(ackf, 60, pp))
            s_frames.append(F.pad(ackf, 60, sp if rng.random() < 0.5 else pp))
    for _ in range(rng.randint(1, 3)):
        body = rng.randbytes(rng.randint(1, 10))
        pp = rng.randint(0, 255)
        sp = pp if same_pad or rng.random() < 0.5 else rng.randint(0, 255)
        p_frames.append(F.udp_padded(body, 60, pp, sport=7777))
        s_frames.append(F.udp_padded(body, 60, sp, sport=7777))
    steps = _interleave(rng, [P(f) for f in p_frames], [S(f) for f in s_frames], flush_prob=0.08)
    return dict(steps=steps, description=f"padded frames, same_pad={same_pad}")


def gen_tcp_wrap(rng: random.Random) -> dict:
    """A TCP stream whose sequence numbers cross 2^32 (seq_end == 0 included sometimes)."""
    n = rng.randint(30, 120)
    stream = rng.randbytes(n)
    # Make some segment end exactly at 2^32 now and then (compare_seq == 0 means "unset").
    isn = (1 << 32) - rng.randint(1, n - 1)
    mode = rng.choice(("equal", "split", "merged", "misaligned"))
    pc, sc = _segments_for(rng, mode, n)
    if rng.random() < 0.5:
        wrap_at = (1 << 32) - isn
        pc = sorted(set(pc) | {wrap_at})
        sc = sorted(set(sc) | {wrap_at})
    conn = dict(sport=rng.randint(1024, 9000), dport=8080)
    kw = dict(diff_prob=0.05, pure_ack_prob=0.1, retrans_prob=0.05, reorder_prob=0.1, ack_jitter_prob=0.0)
    p_frames = _tcp_side(rng, stream, pc, isn, 1000, conn, **kw)
    s_frames = _tcp_side(rng, stream, sc, isn, 1000, conn, **kw)
    steps = _interleave(rng, [P(f) for f in p_frames], [S(f) for f in s_frames], flush_prob=0.05)
    return dict(steps=steps, description=f"TCP across 2^32, {mode}")


def gen_tcp_ack_gate(rng: random.Random) -> dict:
    """Differently segmented TCP streams whose ACK numbers differ between the two sides (the
    secondary lags or leads), so the partial-segment ACK gate decides."""
    n = rng.randint(20, 120)
    stream = rng.randbytes(n)
    isn = rng.randrange(1 << 32)
    ack0 = _near_wrap(rng) if rng.random() < 0.25 else rng.randrange(1 << 32)
    mode = rng.choice(("split", "merged", "misaligned"))
    pc, sc = _segments_for(rng, mode, n)
    if rng.random() < 0.6:
        pc, sc = sc, pc          # the shorter primary segments take the ACK-gated path
    conn = dict(sport=rng.randint(1024, 9000), dport=25)
    lag_choices = rng.choice(((0, 5), (30, 100), (-10, 0, 10), (1, 2, 3)))

    def side(cuts, lagging):
        frames = []
        for a, b in zip(cuts, cuts[1:]):
            ack = ack0
            if lagging:
                ack -= rng.choice(lag_choices)
            elif rng.random() < 0.3:
                ack += rng.choice((-20, -1, 1, 20))
            frames.append(F.tcp((isn + a) & 0xFFFFFFFF, stream[a:b], ack=ack & 0xFFFFFFFF, **conn))
            if rng.random() < 0.1:
                frames.append(F.tcp((isn + b) & 0xFFFFFFFF, ack=(ack + 1) & 0xFFFFFFFF, **conn))
        return frames

    p_frames = side(pc, lagging=False)
    s_frames = side(sc, lagging=True)
    if rng.random() < 0.3:
        p_frames, s_frames = side(pc, lagging=True), side(sc, lagging=False)
    steps = _interleave(rng, [P(f) for f in p_frames], [S(f) for f in s_frames], flush_prob=0.1,
                        bias=rng.choice((0.3, 0.5, 0.7)))
    return dict(steps=steps, description=f"TCP {mode} with differing ACK numbers {lag_choices}")


def gen_tcp_acks_retrans(rng: random.Random) -> dict:
    """Identical TCP data, but pure ACKs / window updates (bursts of the same seq), SYN/FIN,
    retransmissions and out-of-order segments on both sides."""
    n = rng.randint(20, 100)
    stream = rng.randbytes(n)
    isn = _near_wrap(rng) if rng.random() < 0.3 else rng.randrange(1 << 32)
    conn = dict(sport=rng.randint(1024, 9000), dport=993)
    cuts = _cuts(rng, n, rng.choice((10, 30)))

    def side():
        frames = []
        if rng.random() < 0.3:
            frames.append(F.tcp((isn - 1) & 0xFFFFFFFF, flags=0x12, ack=77, **conn))     # SYN+ACK
        for a, b in zip(cuts, cuts[1:]):
            frames.append(F.tcp((isn + a) & 0xFFFFFFFF, stream[a:b], ack=77, **conn))
            for _ in range(rng.choice((0, 0, 1, 3))):
                frames.append(F.tcp((isn + b) & 0xFFFFFFFF, ack=77 + rng.randint(0, 3),
                                    window=rng.randint(100, 65535), **conn))
            if rng.random() < 0.15:
                frames.append(rng.choice(frames))                                       # retransmission
        if rng.random() < 0.4:
            frames.append(F.tcp((isn + n) & 0xFFFFFFFF, flags=0x11, ack=77, **conn))    # FIN
        for k in range(len(frames) - 1):
            if rng.random() < 0.15:
                frames[k], frames[k + 1] = frames[k + 1], frames[k]
        return frames

    steps = _interleave(rng, [P(f) for f in side()], [S(f) for f in side()], flush_prob=0.04,
                        bias=rng.choice((0.3, 0.5, 0.7)))
    return dict(steps=steps, description="TCP pure ACKs, SYN/FIN, retransmissions, reorders")


GENERATORS = {
    "tcp-stream": (gen_tcp_stream, 12),
    "tcp-ackgate": (gen_tcp_ack_gate, 5),
    "tcp-acks": (gen_tcp_acks_retrans, 5),
    "datagrams": (gen_datagrams, 7),
    "passthrough": (gen_mixed_passthrough, 3),
    "overflow": (gen_queue_overflow, 4),
    "vnet": (gen_vnet, 3),
    "padded": (gen_padded, 4),
    "tcp-wrap": (gen_tcp_wrap, 3),
}


def _acceptable(sc: Scenario) -> bool:
    from .engine_runner import undefined_events
    return not undefined_events(sc)


def randomized(master_seed: int = MASTER_SEED) -> list[Scenario]:
    """The seeded random scenarios: the same list on every run for a given master seed."""
    out = []
    for g_index, (gname, (gen, count)) in enumerate(GENERATORS.items()):
        for k in range(count):
            seed = (master_seed * 1000 + g_index * 100 + k) & 0xFFFFFFFF
            rng = random.Random(seed)
            for attempt in range(50):
                kw = gen(rng)
                sc = Scenario(f"rand-{gname}-{k:02d}", randomized=True, seed=seed, **kw)
                if _acceptable(sc):
                    break
            else:
                raise RuntimeError(f"generator {gname} seed {seed}: no UB-free scenario in 50 draws")
            if attempt:
                sc.description += f" (draw {attempt + 1})"
            out.append(sc)
    return out


def all_scenarios() -> list[Scenario]:
    scs = HANDWRITTEN + randomized()
    names = [s.name for s in scs]
    assert len(names) == len(set(names)), "scenario names must be unique"
    return scs


def no_barrier_flow(sc: Scenario) -> bool:
    """True if no IPv4 frame of the scenario comes from or goes to the oracle's barrier subnet."""
    net = F.ip4("10.99.99.0")[:3]
    for st in sc.steps:
        if st[0] in ("P", "S"):
            d = (st[2] if len(st) > 2 else 0) + 14
            frame = st[1]
            if frame[d - 2:d] == b"\x08\x00" and net in (frame[d + 12:d + 15], frame[d + 16:d + 19]):
                return False
    return True


__all__ = ["Scenario", "HANDWRITTEN", "randomized", "all_scenarios", "GENERATORS", "MASTER_SEED",
           "no_barrier_flow", "P", "S", "FLUSH", "WAIT"]
