"""Live mode against QEMU 7.2's colo-compare, same driver, same run.

    python bench/bench_live.py [--pairs 200000] [--size 100,1000] [--rate 10000] [--latency-pairs 20000]
                               [--repeat 3] [--latency-repeat 3] [--proto tcp] [--loops uvloop,asyncio]

For each program (real QEMU 7.2 colo-compare, then ``colo-replay live``), the driver of the
differential tests (``tests/support``: unix sockets in a temp folder, the program connects to
them as QEMU's client chardevs do, notify_dev connected) measures:

* **throughput**: ``--pairs`` matching UDP pairs of ``--size`` bytes, written as fast as the
  sockets take them, in batches of 256 pairs (primary batch, then secondary batch), over 4096
  flows round-robin.  Per-flow queues therefore never hold more than a frame or two, so no
  queue overflows and no checkpoint requests with the default max_queue_size=1024 (writers are
  *not* paced and max_queue_size is *not* raised).  Figure = pairs released / (last outdev
  frame read - first write); every frame must come out and notify_dev must stay silent.
* **latency**: ``--latency-pairs`` pairs paced at ``--rate`` pairs/s (primary written, then the
  secondary right after); each primary frame carries its write time (stamped into the frame,
  built beforehand, just before the write); added latency = outdev read time - primary write
  time, p50 / p99.

The writer runs in a forked child process and the outdev reader in the parent (CLOCK_MONOTONIC
is shared), so neither waits for the other's GIL.

Run on an idle machine; each program gets a fresh process for every run, and the runs of the two
programs alternate; the figures are medians over the runs (p50 and p99: the median of the runs'
p50s and p99s).
"""

from __future__ import annotations

import argparse
from functools import partial
import os
import statistics
import struct
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from colo_replay.engine.framing import encode_frame  # noqa: E402
from colo_replay.engine.fastframes import FastDecoder  # noqa: E402
from tests.support import frames as F  # noqa: E402
from tests.support.live_harness import LiveHarness  # noqa: E402
from tests.support.qemu_oracle import QemuOracle  # noqa: E402

FLOWS = 4096
BATCH = 256
_ts = struct.Struct("!Q")


PROTO = "udp"                 # --proto
STAMP_AT = {"udp": 42, "tcp": 54}     # where the payload (and the write time) starts in a frame


def make_frame(i: int, size: int, stamp: int = 0) -> bytes:
    """Frame i: UDP datagrams, or TCP segments carrying each flow's stream in order (the
    ``i // FLOWS``-th segment of flow ``i % FLOWS``; every segment of one size has the same
    payload length), ``size`` bytes in all, the write time first in the payload."""
    flow, k = i % FLOWS, i // FLOWS
    payload = _ts.pack(stamp) + struct.pack("!I", i)
    payload += b"." * max(0, size - STAMP_AT[PROTO] - len(payload))
    if PROTO == "tcp":
        return F.tcp(1000 + k * len(payload), payload, ack=1, sport=20000 + flow, dport=80)
    return F.udp(payload, sport=20000 + flow, dport=53)


class Reader:
    """Reads outdev (and counts notify messages) until ``expect`` frames arrived."""

    def __init__(self, h, expect: int, latency: bool):
        self.h, self.expect, self.latency = h, expect, latency
        self.count = 0
        self.last_ns = 0
        self.lat = []
        self.notify = 0

    def run(self):
        out = self.h.conns["out"]
        dec = FastDecoder(self.h.vnet)
        while self.count < self.expect:
            chunk = out.recv(1 << 20)
            if not chunk:
                break
            now = time.monotonic_ns()
            frames, _ = dec.feed(chunk)
            self.count += len(frames)
            if self.latency:
                for data, _v in frames:
                    (t,) = _ts.unpack_from(data, STAMP_AT[PROTO])
                    self.lat.append(now - t)
            self.last_ns = now


def notify_count(h) -> int:
    s = h.conns["notify"]
    s.setblocking(False)
    n = 0
    try:
        while True:
            d = s.recv(65536)
            if not d:
                break
            n += d.count(b"DO_CHECKPOINT")
    except BlockingIOError:
        pass
    s.setblocking(True)
    return n


def _in_child(fn) -> int:
    """Run the writer in a forked child (its own GIL: the reader's timestamps stay honest)."""
    pid = os.fork()
    if pid == 0:
        try:
            fn()
        finally:
            os._exit(0)
    return pid


def throughput(cls, pairs: int, size: int) -> dict:
    batches = []
    for k in range(0, pairs, BATCH):
        blob = b"".join(encode_frame(make_frame(i, size)) for i in range(k, min(pairs, k + BATCH)))
        batches.append(blob)
    with cls() as h:
        rd = Reader(h, pairs, latency=False)
        pri, sec = h.conns["pri"], h.conns["sec"]

        def write():
            for blob in batches:
                pri.sendall(blob)
                sec.sendall(blob)

        t0 = time.monotonic_ns()
        pid = _in_child(write)
        rd.run()
        os.waitpid(pid, 0)
        ckpt = notify_count(h)
        h.close()
    dt = (rd.last_ns - t0) / 1e9
    return {"pairs": pairs, "released": rd.count, "seconds": dt, "pairs_per_s": rd.count / dt if dt else 0,
            "checkpoints": ckpt}


def latency(cls, pairs: int, size: int, rate: float) -> dict:
    with cls() as h:
        rd = Reader(h, pairs, latency=True)
        pri, sec = h.conns["pri"], h.conns["sec"]
        period = 1e9 / rate

        # Frames built beforehand; the write time goes into a copy just before the write, so
        # the figure is write -> outdev read and nothing of the driver's own frame building.
        # (The UDP checksum then no longer covers the stamp: colo-compare never checks it.)
        wires = [bytearray(encode_frame(make_frame(i, size))) for i in range(pairs)]
        stamp_at = len(wires[0]) - len(make_frame(0, size)) + STAMP_AT[PROTO]

        def write():
            t_start = time.monotonic_ns() + 50_000_000
            for i in range(pairs):
                due = t_start + int(i * period)
                left = due - time.monotonic_ns()
                if left > 0:
                    time.sleep(left / 1e9)      # sleep, not spin: the 2 cores go to the programs
                w = wires[i]
                _ts.pack_into(w, stamp_at, time.monotonic_ns())
                pri.sendall(w)
                sec.sendall(w)

        pid = _in_child(write)
        rd.run()
        os.waitpid(pid, 0)
        ckpt = notify_count(h)
        h.close()
    lat = sorted(rd.lat)
    q = statistics.quantiles(lat, n=100) if len(lat) > 100 else [0] * 99
    return {"pairs": pairs, "released": rd.count, "p50_us": q[49] / 1000, "p99_us": q[98] / 1000,
            "max_us": (lat[-1] if lat else 0) / 1000, "checkpoints": ckpt}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pairs", type=int, default=200_000)
    ap.add_argument("--size", default="100,1000", help="frame sizes in bytes, comma-separated")
    ap.add_argument("--rate", type=float, default=10_000)
    ap.add_argument("--latency-pairs", type=int, default=20_000)
    ap.add_argument("--repeat", type=int, default=3, help="throughput runs per program and size (median)")
    ap.add_argument("--proto", choices=("udp", "tcp"), default="udp",
                    help="UDP datagrams, or TCP segments in order on each flow")
    ap.add_argument("--latency-repeat", type=int, default=3, help="latency runs per program and size (median)")
    ap.add_argument("--only", choices=("throughput", "latency"), help="measure only this")
    ap.add_argument("--loops", default="auto",
                    help="live's --event-loop values to measure, comma-separated (e.g. uvloop,asyncio: both "
                         "in the same rounds)")
    a = ap.parse_args()
    global PROTO
    PROTO = a.proto
    progs = [("QEMU 7.2.22 colo-compare", QemuOracle)]
    for loop in a.loops.split(","):
        name = "colo-replay live" + ("" if loop == "auto" else f" ({loop})")
        progs.append((name, partial(LiveHarness, extra_args=("--event-loop", loop))))
    print(f"# {time.strftime('%Y-%m-%d')}  proto={PROTO} pairs={a.pairs} flows={FLOWS} batch={BATCH} rate={a.rate:g}/s "
          f"latency_pairs={a.latency_pairs}")
    # Rounds alternate between the programs (QEMU, live, QEMU, live, ...): this machine's speed
    # drifts by tens of % within minutes, and back-to-back runs of one program would catch
    # different phases of that drift.
    for size in [int(s) for s in a.size.split(",")] if a.only != "latency" else []:
        runs = {name: [] for name, _ in progs}
        for _ in range(a.repeat):
            for name, cls in progs:
                runs[name].append(throughput(cls, a.pairs, size))
        for name, _ in progs:
            rs = runs[name]
            med = statistics.median(r["pairs_per_s"] for r in rs)
            ok = all(r["released"] == a.pairs and r["checkpoints"] == 0 for r in rs)
            print(f"throughput size={size:5d} {name:26s} {med:>10,.0f} pairs/s (median of {a.repeat}; runs "
                  + ", ".join(f"{r['pairs_per_s']:,.0f}" for r in rs)
                  + f"; all released, no checkpoints: {ok})", flush=True)
    for size in [int(s) for s in a.size.split(",")] if a.only != "throughput" else []:
        runs = {name: [] for name, _ in progs}
        for _ in range(a.latency_repeat):
            for name, cls in progs:
                runs[name].append(latency(cls, a.latency_pairs, size, a.rate))
        for name, _ in progs:
            rs = runs[name]
            p50 = statistics.median(r["p50_us"] for r in rs)
            p99 = statistics.median(r["p99_us"] for r in rs)
            mx = max(r["max_us"] for r in rs)
            ok = all(r["released"] == r["pairs"] and r["checkpoints"] == 0 for r in rs)
            print(f"latency    size={size:5d} {name:26s} p50 {p50:7.1f} us  p99 {p99:7.1f} us (median of "
                  f"{a.latency_repeat}; max {mx:,.0f} us; runs p50/p99/max "
                  + ", ".join(f"{r['p50_us']:.0f}/{r['p99_us']:.0f}/{r['max_us']:.0f}" for r in rs)
                  + f"; all released, no checkpoints: {ok})", flush=True)

if __name__ == "__main__":
    main()
