"""Micro-benchmark: colo_replay's capture reader against a bare dpkt.pcap.Reader loop.

Writes a synthetic capture of 1,000,000 Ethernet frames (sizes cycling through a mix like
the one in reference/performance-notes.md: full TCP segments, pure ACKs, DNS, ICMP) to
/tmp, once, then times, best of ``--repeat`` runs each:

* ``dpkt.pcap.Reader``, bare loop over ``(ts, buf)`` records (the baseline);
* ``open_capture(...).batches()``, touching every column (the fast API);
* ``for row in open_capture(...)``, per-frame tuples;
* the same two over a pcapng copy (Enhanced Packet Blocks) of the same frames;
* ``BpfFilter("udp").mask`` over every batch (libpcap through ctypes), reading included.

Run from the repository root:  python bench/bench_readers.py [--frames N] [--repeat R]

Results (1,000,000 frames, 1012 MB, page cache warm, best of 5, Python 3.11.7, the
project's 2-vCPU machine; run-to-run noise here is about 10%), 2026-11-26 with 256 KiB read
chunks (the earlier 8 MiB chunks gave 1,342,000 / 1,146,000 / 880,000 / 783,000 / 799,000):

    dpkt.pcap.Reader, bare loop              495,000 records/s   2.02 us/record
    open_capture(pcap).batches()           2,228,000 records/s   0.45 us/record   4.5x dpkt
    for row in open_capture(pcap)          1,899,000 records/s   0.53 us/record   3.8x dpkt
    open_capture(pcapng).batches()         1,133,000 records/s   0.88 us/record   2.3x dpkt
    for row in open_capture(pcapng)        1,117,000 records/s   0.90 us/record   2.3x dpkt
    batches() + BpfFilter.mask (pcap)      1,225,000 records/s   0.82 us/record   2.5x dpkt

(dpkt ran at 235,000 records/s on the machine of reference/performance-notes.md; compare
ratios, not absolute numbers, across machines.)
"""

from __future__ import annotations

import argparse
import os
import struct
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from colo_replay.captures import open_capture  # noqa: E402

SIZES = [1514] * 63 + [66] * 26 + [90] * 6 + [98] * 2 + [590] * 3   # ~1000 B average


def write_pcap(path: str, frames: int) -> None:
    rec = struct.Struct("<IIII").pack
    payloads = {n: bytes(12) + b"\x08\x00" + bytes(range(256)) * (n // 256) + bytes(n % 256)
                for n in set(SIZES)}
    payloads = {n: p[:n] for n, p in payloads.items()}
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1))
        parts = []
        t = 1_700_000_000_000_000
        for i in range(frames):
            n = SIZES[i % len(SIZES)]
            t += 61
            parts.append(rec(t // 1_000_000, t % 1_000_000, n, n))
            parts.append(payloads[n])
            if len(parts) > 20000:
                f.write(b"".join(parts))
                parts.clear()
        f.write(b"".join(parts))


def write_pcapng(path: str, pcap_path: str) -> None:
    """Same frames as Enhanced Packet Blocks (microsecond resolution, the pcapng default)."""
    with open(pcap_path, "rb") as src, open(path, "wb") as f:
        data = src.read()
        f.write(struct.pack("<IIIHHqI", 0x0A0D0D0A, 28, 0x1A2B3C4D, 1, 0, -1, 28))
        f.write(struct.pack("<IIHHII", 1, 20, 1, 0, 262144, 20))
        pos, end, parts = 24, len(data), []
        unpack = struct.Struct("<IIII").unpack_from
        epb = struct.Struct("<IIIIIII").pack
        while pos < end:
            sec, usec, caplen, orig = unpack(data, pos)
            frame = data[pos + 16:pos + 16 + caplen]
            pad = -caplen & 3
            blen = 32 + caplen + pad
            t = sec * 1_000_000 + usec
            parts.append(epb(6, blen, 0, t >> 32, t & 0xFFFFFFFF, caplen, orig))
            parts.append(frame + bytes(pad) + struct.pack("<I", blen))
            pos += 16 + caplen
            if len(parts) > 20000:
                f.write(b"".join(parts))
                parts.clear()
        f.write(b"".join(parts))


def bench(label: str, fn, frames: int, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        n = fn()
        dt = time.perf_counter() - t0
        assert n == frames, (label, n, frames)
        best = min(best, dt)
    rate = frames / best
    print(f"{label:<48} {rate:>12,.0f} records/s  ({best * 1e6 / frames:.2f} µs/record)")
    return rate


def run_dpkt(path):
    import dpkt
    n = 0
    with open(path, "rb") as f:
        for _ts, _buf in dpkt.pcap.Reader(f):
            n += 1
    return n


def run_batches(path):
    n = 0
    size = 0
    for batch in open_capture(path).batches():
        n += len(batch.frames)
        size += len(batch.timestamps) + len(batch.orig_lens)
    return n


def run_bpf(path):
    from colo_replay.captures import BpfFilter
    f = BpfFilter("udp")
    n = 0
    for batch in open_capture(path).batches():
        n += len(f.mask(batch.frames, batch.orig_lens))
    return n


def run_rows(path):
    n = 0
    for _row in open_capture(path):
        n += 1
    return n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--frames", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--dir", default="/tmp")
    args = ap.parse_args()
    pcap = os.path.join(args.dir, f"colo_replay_bench_{args.frames}.pcap")
    pcapng = pcap + "ng"
    if not os.path.exists(pcap):
        t0 = time.perf_counter()
        write_pcap(pcap, args.frames)
        print(f"wrote {pcap} in {time.perf_counter() - t0:.1f} s")
    if not os.path.exists(pcapng):
        write_pcapng(pcapng, pcap)
    print(f"{args.frames:,} frames, {os.path.getsize(pcap) / 1e6:.0f} MB pcap, "
          f"best of {args.repeat}, Python {sys.version.split()[0]}")
    base = bench("dpkt.pcap.Reader, bare loop", lambda: run_dpkt(pcap), args.frames, args.repeat)
    for label, fn, path in [("open_capture(pcap).batches()", run_batches, pcap),
                            ("for row in open_capture(pcap)", run_rows, pcap),
                            ("open_capture(pcapng).batches()", run_batches, pcapng),
                            ("for row in open_capture(pcapng)", run_rows, pcapng),
                            ("batches() + BpfFilter.mask (pcap)", run_bpf, pcap)]:
        rate = bench(label, lambda: fn(path), args.frames, args.repeat)
        print(f"{'':<48} {rate / base:>11.2f}x dpkt")


if __name__ == "__main__":
    main()
