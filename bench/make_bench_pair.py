"""Generate a realistic primary/secondary pcap pair for the whole-replay benchmark.

What colo-compare sees on primary_in / secondary_in is the *outgoing* traffic of the two VMs, so
both captures are a guest's output (guest 10.0.0.10), shaped like the pair of
shared/reference/performance-notes.md (1,000,000 frames, 63% TCP data, 26% pure ACKs, 6% DNS,
2% ICMP, ~886 B average, ~62 s):

* download connections (the guest serves responses of ~5 segments, 1448-byte MSS, keep-alive,
  ~40 responses per connection; SYN-ACK when a connection opens, FIN when it closes), with the
  client's requests advancing the guest's ACK number; sometimes a pure ACK for a request;
* upload connections (the guest receives data and sends delayed pure ACKs, ACK advancing by
  two segments at a time);
* DNS queries from a pool of 256 source ports to a resolver, ICMP echo replies to sixteen
  monitoring hosts, syslog over UDP from eight apps, ARP (refused by colo-compare: passed
  through); a datagram flow never has two frames within 2 ms (see ``Generator.frame``);
* frames come in bursts on one connection, exponential gaps, microsecond timestamps.

The secondary is the primary's frames, in the same order, each ``lag`` later (uniform -40..+200
µs: the secondary VM is sometimes ahead), except for deliberate divergences, per million frames
up to 154 missing frames (most of them ARP and pure ACKs, which change no verdict; a few TCP
segments, DNS queries and ICMP replies, which cause a miscompare or an expiry, then a
checkpoint) and up to 8 frames with one payload byte changed (a miscompare and a checkpoint
each); seed 1 gives 151 and 7.  Both captures pause around each checkpoint (``make_pair``).

Deterministic: the same ``--seed`` and ``--frames`` always give byte-identical files.

    python bench/make_bench_pair.py [--frames 1000000] [--dir /tmp/colo_replay_bench] [--seed 1]

prints the two paths and the mix.  The files are ~900 MB each: never commit them.
"""

from __future__ import annotations

import argparse
import os
import random
import struct
import sys
import time

GUEST_MAC = bytes.fromhex("525400123456")
GW_MAC = bytes.fromhex("525400abcdef")
GUEST_IP = bytes((10, 0, 0, 10))
RESOLVER_IP = bytes((10, 0, 0, 2))
SYSLOG_IP = bytes((10, 0, 0, 3))
MSS = 1448
T0_NS = 1_700_000_000_000_000_000        # 2023-11-14, a realistic epoch
MEAN_GAP_US = 61.9                       # 1,000,000 frames in ~61.9 s per side
GENERATOR_VERSION = 1                    # bump when the output changes (cached files are named by it)

_ip_hdr = struct.Struct("!BBHHHBBH4s4s")
_tcp_hdr = struct.Struct("!HHIIBBHHH")
_udp_hdr = struct.Struct("!HHHH")
_rec_hdr = struct.Struct("<IIII")
_ip_words = struct.Struct("!10H")
ETH_IP = GW_MAC + GUEST_MAC + b"\x08\x00"
ETH_ARP = b"\xff" * 6 + GUEST_MAC + b"\x08\x06"


def _ipv4(proto: int, ident: int, payload_len: int, dst: bytes) -> bytes:
    hdr = _ip_hdr.pack(0x45, 0, 20 + payload_len, ident & 0xFFFF, 0x4000, 64, proto, 0, GUEST_IP, dst)
    s = sum(_ip_words.unpack(hdr))
    s = (s & 0xFFFF) + (s >> 16)
    s = (s & 0xFFFF) + (s >> 16)
    return hdr[:10] + (~s & 0xFFFF).to_bytes(2, "big") + hdr[12:]


class _Conn:
    __slots__ = ("sport", "dport", "dst", "seq", "ack", "left", "responses", "upload", "pending_ack")

    def __init__(self, rnd: random.Random, upload: bool, serial: int):
        self.upload = upload
        self.sport = 443 if not upload else 22
        self.dport = 32768 + (serial * 7919) % 28000
        self.dst = bytes((10, 1 + (serial >> 16) % 200, (serial >> 8) & 0xFF, 1 + serial % 250))
        self.seq = rnd.getrandbits(32)           # the guest's ISN
        self.ack = rnd.getrandbits(32)           # the client's
        self.left = 0                            # payload bytes left in the current response
        self.responses = max(1, int(rnd.expovariate(1 / 40)))
        self.pending_ack = False


class Generator:
    """Yields the primary's frames as (time_us, frame, kind) with ``kind`` one of
    tcp_data, pure_ack, syn_ack, fin, dns, icmp, syslog, arp."""

    def __init__(self, seed: int):
        self.rnd = random.Random(seed)
        self.pool = self.rnd.randbytes(1 << 16) * 2          # payload bytes, sliced per segment
        self.ip_id = self.rnd.getrandbits(16)
        self.serial = 0
        self.downloads = [self._new_conn(False) for _ in range(48)]
        self.uploads = [self._new_conn(True) for _ in range(16)]
        self.current = self.downloads[0]
        self.dns_ports = [49152 + self.rnd.randrange(16000) for _ in range(256)]
        self.icmp_seq: dict[int, int] = {}
        self.last_was_upload = False
        self.backlog: list = []                              # SYN-ACK of a connection just opened
        self.recent: dict = {}                               # datagram flow -> last time (µs)

    def _new_conn(self, upload: bool) -> _Conn:
        self.serial += 1
        c = _Conn(self.rnd, upload, self.serial)
        c.pending_ack = True                                 # its SYN-ACK goes out first
        return c

    def _id(self) -> int:
        self.ip_id = (self.ip_id + 1) & 0xFFFF
        return self.ip_id

    def _tcp(self, c: _Conn, flags: int, payload: bytes) -> bytes:
        n = len(payload)
        tcp = _tcp_hdr.pack(c.sport, c.dport, c.seq & 0xFFFFFFFF, c.ack & 0xFFFFFFFF, 0x50, flags,
                            64240, 0, 0)    # TCP checksum left to offload (0), as on a tap
        return ETH_IP + _ipv4(6, self._id(), 20 + n, c.dst) + tcp + payload

    def _payload(self, n: int) -> bytes:
        off = self.rnd.randrange(1 << 16)
        return self.pool[off:off + n]

    def frame(self, t_us: int):
        """The next frame (sent at ``t_us``) and its kind."""
        rnd = self.rnd
        r = rnd.random()
        if r < 0.655:
            return self._download()
        if r < 0.875:
            return self._upload_ack()
        # Datagram flows get no second frame while the first one's copies may still be in
        # flight (2 ms): 7.2's colo_compare_packet compares the *newest* queued primary first,
        # so two frames of one UDP/ICMP flow overlapping the secondary's lag is a miscompare
        # (and a checkpoint) in QEMU 7.2.  Then a TCP segment goes instead.
        if r < 0.935:
            flow = rnd.choice(self.dns_ports)
            if self._spaced(("dns", flow), t_us):
                return self.dns(flow)
        elif r < 0.955:
            flow = rnd.randrange(16)
            if self._spaced(("icmp", flow), t_us):
                return self.icmp(flow)
        elif r < 0.970:
            flow = rnd.randrange(8)
            if self._spaced(("syslog", flow), t_us):
                msg = b"<30>colo-guest app%d[%d]: " % (flow, rnd.randrange(1 << 16)) \
                    + self._payload(rnd.randrange(40, 400))
                udp = _udp_hdr.pack(514 + flow, 514, 8 + len(msg), 0) + msg
                return ETH_IP + _ipv4(17, self._id(), len(udp), SYSLOG_IP) + udp, "syslog"
        elif r < 0.980:
            arp = struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 1, GUEST_MAC, GUEST_IP, bytes(6),
                              bytes((10, 0, rnd.randrange(256), rnd.randrange(1, 255))))
            return ETH_ARP + arp + bytes(18), "arp"        # padded to the 60-byte minimum
        return self._download()

    def _spaced(self, flow, t_us: int) -> bool:
        last = self.recent.get(flow)
        if last is not None and t_us - last < 2000:
            return False
        self.recent[flow] = t_us
        return True

    def dns(self, sport: int):
        """A DNS query from ``sport``."""
        rnd = self.rnd
        qname = b"".join(bytes((k,)) + bytes(rnd.choices(b"abcdefghijklmnopqrstuvwxyz", k=k))
                         for k in (rnd.randrange(3, 12), rnd.randrange(3, 10), 3)) + b"\0"
        body = rnd.getrandbits(16).to_bytes(2, "big") + b"\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00" \
            + qname + b"\x00\x01\x00\x01"
        udp = _udp_hdr.pack(sport, 53, 8 + len(body), 0) + body
        return ETH_IP + _ipv4(17, self._id(), len(udp), RESOLVER_IP) + udp, "dns"

    def icmp(self, host: int):
        """An echo reply to monitoring host 10.0.9.(1 + host)."""
        seq = self.icmp_seq[host] = self.icmp_seq.get(host, 0) + 1
        body = struct.pack("!BBHHH", 0, 0, 0, 0x4242 + host, seq) + self._payload(56)
        return ETH_IP + _ipv4(1, self._id(), len(body), bytes((10, 0, 9, 1 + host))) + body, "icmp"

    def more_data(self):
        """The current download connection's next data segment (a new response if need be)."""
        c = self.current
        if c.left == 0:
            c.ack += self.rnd.randrange(200, 600)
            c.left = 1 + int(self.rnd.expovariate(1 / (4.2 * MSS)))
        n = min(MSS, c.left)
        c.left -= n
        f = self._tcp(c, 0x18 if c.left == 0 else 0x10, self._payload(n))
        c.seq += n
        return f, "tcp_data"

    def _download(self):
        rnd = self.rnd
        self.last_was_upload = False
        if self.backlog:
            return self.backlog.pop()
        c = self.current
        if rnd.random() > 0.7:                              # bursts: mostly the same connection
            c = self.current = rnd.choice(self.downloads)
        if c.pending_ack:
            c.pending_ack = False
            f = self._tcp(c, 0x12, b"")                     # SYN-ACK (ack = client ISN + 1)
            c.seq += 1
            return f, "syn_ack"
        if c.left == 0:
            if c.responses == 0:                            # close, and open a replacement
                f = self._tcp(c, 0x11, b"")                 # FIN-ACK
                i = self.downloads.index(c)
                new = self.downloads[i] = self.current = self._new_conn(False)
                new.pending_ack = False
                syn = self._tcp(new, 0x12, b"")
                new.seq += 1
                self.backlog.append((syn, "syn_ack"))
                return f, "fin"
            c.responses -= 1
            c.ack += rnd.randrange(200, 600)                # the client's request
            c.left = 1 + int(rnd.expovariate(1 / (4.2 * MSS)))
            if rnd.random() < 0.3:
                return self._tcp(c, 0x10, b""), "pure_ack"  # ACK of the request, data follows
        n = min(MSS, c.left)
        c.left -= n
        f = self._tcp(c, 0x18 if c.left == 0 else 0x10, self._payload(n))
        c.seq += n
        return f, "tcp_data"

    def _upload_ack(self):
        c = self.rnd.choice(self.uploads)
        self.last_was_upload = True
        if c.pending_ack:
            c.pending_ack = False
            f = self._tcp(c, 0x12, b"")
            c.seq += 1
            return f, "syn_ack"
        c.ack += 2 * MSS                                    # delayed ACK: every second segment
        return self._tcp(c, 0x10, b""), "pure_ack"


def pair_paths(directory: str, frames: int, seed: int) -> tuple[str, str]:
    stem = f"bench_v{GENERATOR_VERSION}_{frames}_s{seed}"
    return (os.path.join(directory, stem + "_primary.pcap"),
            os.path.join(directory, stem + "_secondary.pcap"))


# Deliberate differences between the two captures, per 1,000,000 frames.  Missing ARP and
# pure ACKs change no verdict (ARP is passed through; a zero-payload primary is released by any
# secondary of its connection); the others each cause exactly one checkpoint request.
MISSING = {"arp": 80, "pure_ack": 62, "tcp_data": 6, "dns": 3, "icmp": 3}
DIFFER = {"tcp_data": 5, "dns": 3}
SHARE = {"arp": 0.01, "pure_ack": 0.22, "tcp_data": 0.63, "dns": 0.06, "icmp": 0.02}

# The replay's defaults (QEMU 7.2, the CLI's checkpoint model), which the pauses follow
COMPARE_TIMEOUT_MS = 3000
SCAN_CYCLE_MS = 1000
CHECKPOINT_DELAY_US = 20_000_000         # x-checkpoint-delay
CHECKPOINT_PAUSE_US = 101_000            # the modelled 100 ms checkpoint, and 1 ms to spare


def make_pair(directory: str, frames: int = 1_000_000, seed: int = 1, quiet: bool = False) -> tuple[str, str]:
    """Write the pair into ``directory`` (unless it is already there) and return the two paths.

    Checkpoints pause the traffic, as they stop both VMs in COLO: after every checkpoint request
    the pair causes (and at every periodic checkpoint of the default model, x-checkpoint-delay
    after the last request or checkpoint) no frame comes for 101 ms, so the flush finds no frame
    whose copy is still in flight.  Without the pauses every flush would orphan the in-flight
    copies and set off the next miscompare: a checkpoint every 100 ms, which is not what a COLO
    pair looks like.  The expiry requests (a DNS query or an ICMP reply whose secondary copy is
    missing, on a flow of its own) fall on the default 1000 ms scan grid of a replay with no
    offsets, which is computed here.
    """
    ppath, spath = pair_paths(directory, frames, seed)
    if os.path.exists(ppath) and os.path.exists(spath):
        return ppath, spath
    os.makedirs(directory, exist_ok=True)
    t_start = time.perf_counter()
    gen = Generator(seed)
    rnd = random.Random(seed + 1000)                        # timing and divergences
    scale = frames / 1_000_000
    missing_quota = {k: round(v * scale) for k, v in MISSING.items()}
    differ_quota = {k: round(v * scale) for k, v in DIFFER.items()}
    # chance per frame of that kind, so that each quota fills over ~3/4 of the capture
    rate = {k: 1.3 * (missing_quota[k] + differ_quota.get(k, 0)) / (frames * SHARE[k]) for k in SHARE}
    counts: dict[str, int] = {}
    missing = differ = 0
    checkpoints = {"requested": 0, "periodic": 0}
    header = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1)
    tmp_p, tmp_s = ppath + ".part", spath + ".part"
    expo = rnd.expovariate
    with open(tmp_p, "wb") as fp, open(tmp_s, "wb") as fs:
        fp.write(header)
        fs.write(header)
        pparts: list = []
        sparts: list = []
        start_us = t_us = T0_NS // 1000
        start_ms = start_us // 1000
        s_last = 0                  # the secondary capture stays in time order
        next_periodic = start_us + CHECKPOINT_DELAY_US
        expiry_at = None            # scan tick (µs) of a pending expiry request
        total_bytes = 0
        burst = 0
        sframes = 0
        unique = 0                  # flows of their own for the expiry divergences

        def emit(frame: bytes, kind: str, s_frame: bytes | None, lag_min: int = -40) -> int:
            """Write one primary frame at t_us and its secondary copy (unless None); returns the
            time (µs) by which both have arrived."""
            nonlocal s_last, total_bytes, sframes
            n = len(frame)
            counts[kind] = counts.get(kind, 0) + 1
            total_bytes += n
            pparts.append(_rec_hdr.pack(t_us // 1_000_000, t_us % 1_000_000, n, n))
            pparts.append(frame)
            if s_frame is None:
                return t_us
            s_us = max(s_last, t_us + rnd.randrange(lag_min, 201))
            s_last = s_us
            sparts.append(_rec_hdr.pack(s_us // 1_000_000, s_us % 1_000_000, n, n))
            sparts.append(s_frame)
            sframes += 1
            return max(s_us, t_us)

        i = 0
        while i < frames:
            # exponential gaps, shorter inside bursts
            if burst:
                burst -= 1
                t_us += 1 + int(expo(1 / 12))
            else:
                t_us += 1 + int(expo(1 / 172))
                if rnd.random() < 0.35:
                    burst = rnd.randrange(2, 12)
            # checkpoints due by now: the VMs stop, traffic resumes after the pause
            while True:
                due = min(next_periodic, expiry_at or next_periodic)
                if t_us < due:
                    break
                checkpoints["periodic" if due == next_periodic and due != expiry_at else "requested"] += 1
                if due == expiry_at:
                    expiry_at = None
                next_periodic = due + CHECKPOINT_DELAY_US
                t_us = max(t_us, due + CHECKPOINT_PAUSE_US)
            frame, kind = gen.frame(t_us)
            i += 1
            # One divergence at a time, none near a periodic checkpoint or the start
            calm = (expiry_at is None and next_periodic - t_us > 5_000_000 and i > 1000 and i < frames - 1000)
            if calm and kind in rate and rnd.random() < rate[kind]:
                if missing_quota.get(kind, 0):
                    missing_quota[kind] -= 1
                    missing += 1
                    if kind in ("arp", "pure_ack"):
                        if kind == "pure_ack" and not gen.last_was_upload:
                            emit(frame, kind, frame)      # only upload ACKs go missing
                            missing_quota[kind] += 1
                            missing -= 1
                        else:
                            emit(frame, kind, None)
                    elif kind == "tcp_data":
                        # the connection's next segment miscompares with this one
                        emit(frame, kind, None, 0)
                        frame, kind = gen.more_data()
                        i += 1
                        t_us += 1 + int(expo(1 / 12))
                        request = emit(frame, kind, frame, 0)
                        checkpoints["requested"] += 1
                        next_periodic = request + CHECKPOINT_DELAY_US
                        t_us = request + CHECKPOINT_PAUSE_US
                    else:
                        # on a flow of its own: waits for the first scan that finds it too old
                        unique += 1
                        frame, kind = gen.dns(40000 + unique) if kind == "dns" else gen.icmp(200 + unique)
                        emit(frame, kind, None)
                        age_ms = t_us // 1000 + COMPARE_TIMEOUT_MS + 1 - start_ms
                        expiry_at = (start_ms + -(-age_ms // SCAN_CYCLE_MS) * SCAN_CYCLE_MS) * 1000
                    continue
                if differ_quota.get(kind, 0):
                    differ_quota[kind] -= 1
                    differ += 1
                    pos = len(frame) - 1 - rnd.randrange(8)
                    other = frame[:pos] + bytes((frame[pos] ^ 0x5A,)) + frame[pos + 1:]
                    request = emit(frame, kind, other, 0)
                    checkpoints["requested"] += 1
                    next_periodic = request + CHECKPOINT_DELAY_US
                    t_us = request + CHECKPOINT_PAUSE_US
                    continue
            emit(frame, kind, frame)
            if len(pparts) >= 16384:
                fp.write(b"".join(pparts))
                fs.write(b"".join(sparts))
                pparts.clear()
                sparts.clear()
        fp.write(b"".join(pparts))
        fs.write(b"".join(sparts))
    os.replace(tmp_p, ppath)
    os.replace(tmp_s, spath)
    if not quiet:
        dur = (t_us - start_us) / 1e6
        mix = ", ".join(f"{k} {100 * v / frames:.1f}%" for k, v in sorted(counts.items(), key=lambda kv: -kv[1]))
        print(f"wrote {ppath} ({frames:,} frames) and {spath} ({sframes:,} frames) "
              f"in {time.perf_counter() - t_start:.1f} s", file=sys.stderr)
        print(f"  {dur:.1f} s of traffic, {total_bytes / frames:.0f} B average frame, "
              f"{gen.serial} TCP connections; mix: {mix}", file=sys.stderr)
        print(f"  secondary: {missing} frames missing, {differ} frames with one byte changed; "
              f"checkpoints expected with the default model: {checkpoints['requested']} requested, "
              f"{checkpoints['periodic']} periodic (and one more if a periodic one falls due at the end)",
              file=sys.stderr)
    return ppath, spath


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--frames", type=int, default=1_000_000, help="primary frames (default 1,000,000)")
    ap.add_argument("--dir", default="/tmp/colo_replay_bench", help="where to write (default %(default)s)")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    p, s = make_pair(args.dir, args.frames, args.seed)
    print(p)
    print(s)


if __name__ == "__main__":
    main()
