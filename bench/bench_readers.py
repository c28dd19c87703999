"""Micro-benchmark: colo_replay's capture reader against a bare dpkt.pcap.Reader loop.

Writes a synthetic capture of 1,000,000 Ethernet frames (sizes cycling through a mix like
the one in reference/performance-notes.md: full TCP segments, pure ACKs, DNS, ICMP) to
/tmp, once, then times, best of ``--repeat`` runs each:

* ``dpkt.pcap.Reader``, bare loop over ``(ts, buf)`` records (the baseline);
* ``open_capture(...).batches()``: the batches and their columns, no frame asked for;
* the same, touching each frame's header where the replay reads it (the bytes at
  ``buf[start + 12]`` and ``buf[start + 23]``: EtherType and IPv4 protocol, through a C-level
  ``map``), no ``bytes`` object per frame: the case that chooses the read chunk size;
* the same, asking for ``batch.frames`` (one ``bytes`` per frame, as list consumers do);
* ``for row in open_capture(...)``, per-frame tuples;
* ``.frames`` and rows over a pcapng copy (Enhanced Packet Blocks) of the same frames;
* ``BpfFilter("udp").mask`` over every batch (libpcap through ctypes), reading included.

``--pcap P [P ...]`` reads those files instead (e.g. the 1M-frame pair of bench_replay.py), their
batches interleaved as the replay takes them, and skips the pcapng cases; ``--chunks 256K,1M``
runs the ``batches()`` cases once per read chunk size; ``--tree DIR`` imports ``colo_replay``
from DIR (an older tree: run it and this one one after the other, each against its own yardstick).

Run from the repository root:  python bench/bench_readers.py [--frames N] [--repeat R]

Figures: bench/README.md, "Capture readers".  dpkt ran at 235,000 records/s on the machine of
reference/performance-notes.md, ~500,000 on the project's: compare ratios, not absolute numbers,
across machines.
"""

from __future__ import annotations

import argparse
import os
import struct
import sys
import time
from itertools import repeat, zip_longest
from operator import add

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
if "--tree" in sys.argv:                           # before colo_replay is imported
    sys.path.insert(0, os.path.abspath(sys.argv[sys.argv.index("--tree") + 1]))

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


def run_dpkt(paths):
    import dpkt
    n = 0
    for path in paths:
        with open(path, "rb") as f:
            for _ts, _buf in dpkt.pcap.Reader(f):
                n += 1
    return n


def _batches(paths, chunk):
    """The files' batches, interleaved one by one (as the replay takes a pair's)."""
    kw = {} if chunk is None else {"chunk_size": chunk}
    its = [open_capture(p, **kw).batches() for p in paths]
    for group in zip_longest(*its):
        for batch in group:
            if batch is not None:
                yield batch


def run_batches(paths, chunk=None):
    """The batches, their columns' lengths: no frame asked for."""
    n = 0
    size = 0
    for batch in _batches(paths, chunk):
        n += len(batch)
        size += len(batch.timestamps) + len(batch.orig_lens)
    return n


def run_frames(paths, chunk=None):
    """The batches and their ``frames`` (one ``bytes`` per frame, as list consumers need)."""
    n = 0
    for batch in _batches(paths, chunk):
        n += len(batch.frames)
    return n


def run_touch(paths, chunk=None):
    """Every frame's EtherType and IPv4 protocol byte read where the batch keeps it."""
    n = 0
    seen = 0
    for batch in _batches(paths, chunk):
        buf = getattr(batch, "buf", None)
        if buf is None:             # a reader (or tree) without columnar batches: the frames
            frames = batch.frames
            seen += sum(f[12] + f[23] for f in frames)
        else:
            get = buf.__getitem__
            starts = batch.starts
            seen += sum(map(get, map(add, starts, repeat(12)))) + sum(map(get, map(add, starts, repeat(23))))
        n += len(batch)
    return n


def run_bpf(paths):
    from colo_replay.captures import BpfFilter
    f = BpfFilter("udp")
    n = 0
    for batch in _batches(paths, None):
        n += len(f.mask(batch.frames, batch.orig_lens))
    return n


def run_rows(paths):
    n = 0
    for path in paths:
        for _row in open_capture(path):
            n += 1
    return n


def _size(text: str) -> int:
    """``256K``, ``1M``, ``2097152``: bytes."""
    text = text.strip().upper()
    mult = {"K": 1 << 10, "M": 1 << 20}.get(text[-1:], 1)
    return int(text.rstrip("KM")) * mult


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--frames", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--dir", default="/tmp")
    ap.add_argument("--pcap", nargs="+", help="read these pcap files instead of the synthetic one")
    ap.add_argument("--chunks", help="read chunk sizes for the batches() cases, e.g. 256K,512K,1M,2M")
    ap.add_argument("--tree", help="import colo_replay from this directory (an older tree)")
    args = ap.parse_args()
    chunks = [None] if not args.chunks else [_size(c) for c in args.chunks.split(",")]
    if args.pcap:
        pcaps = args.pcap
        pcapng = None
        frames = run_dpkt(pcaps)
    else:
        pcap = os.path.join(args.dir, f"colo_replay_bench_{args.frames}.pcap")
        pcapng = pcap + "ng"
        if not os.path.exists(pcap):
            t0 = time.perf_counter()
            write_pcap(pcap, args.frames)
            print(f"wrote {pcap} in {time.perf_counter() - t0:.1f} s")
        if not os.path.exists(pcapng):
            write_pcapng(pcapng, pcap)
        pcaps = [pcap]
        frames = args.frames
    from colo_replay.engine import core_info
    import colo_replay
    print(f"{frames:,} frames, {sum(map(os.path.getsize, pcaps)) / 1e6:.0f} MB pcap, best of "
          f"{args.repeat}, Python {sys.version.split()[0]}, colo_replay from "
          f"{os.path.dirname(os.path.dirname(os.path.realpath(colo_replay.__file__)))}, "
          f"{core_info.describe()}")
    base = bench("dpkt.pcap.Reader, bare loop", lambda: run_dpkt(pcaps), frames, args.repeat)
    cases = []
    for chunk in chunks:
        tag = "" if chunk is None else f", {chunk >> 10} KiB"
        cases += [(f"open_capture(pcap).batches(){tag}", run_batches, pcaps, chunk),
                  (f"batches(), touch headers{tag}", run_touch, pcaps, chunk),
                  (f"batches(), .frames{tag}", run_frames, pcaps, chunk)]
    cases.append(("for row in open_capture(pcap)", run_rows, pcaps, None))
    if pcapng:
        cases += [("open_capture(pcapng).batches(), .frames", run_frames, [pcapng], None),
                  ("for row in open_capture(pcapng)", run_rows, [pcapng], None)]
    cases.append(("batches() + BpfFilter.mask (pcap)", run_bpf, pcaps, None))
    for label, fn, paths, chunk in cases:
        args_ = (paths,) if chunk is None else (paths, chunk)
        rate = bench(label, lambda: fn(*args_), frames, args.repeat)
        print(f"{'':<48} {rate / base:>11.2f}x dpkt")


if __name__ == "__main__":
    main()
