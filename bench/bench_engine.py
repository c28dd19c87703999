"""Engine-only throughput: frames/s through Engine.feed on a generated matched stream.

Run by hand:  python bench/bench_engine.py [frames_per_side]
Not a test: numbers go into bench/README.md.  ``colo_replay`` is imported from PYTHONPATH when
it is there (to measure another checkout: PYTHONPATH=/path/to/it), else from this repository.
"""

import os
import random
import struct
import sys
import time

try:
    from colo_replay import PRIMARY, SECONDARY, Engine, EventKind
except ImportError:
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    from colo_replay import PRIMARY, SECONDARY, Engine, EventKind

CHECKPOINT_REQUEST = EventKind.CHECKPOINT_REQUEST

MAC = bytes.fromhex("525400abcdef525400123456")


def tcp_frame(conn: int, seq: int, payload_len: int) -> bytes:
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 40 + payload_len, 0, 0x4000, 64, 6, 0,
                     bytes((10, 0, 0, 1)), bytes((10, 0, 1, conn & 0xFF)))
    tcp = struct.pack("!HHIIBBHHH", 80, 1024 + conn, seq & 0xFFFFFFFF, 1, 0x50, 0x18, 65535, 0, 0)
    return MAC + b"\x08\x00" + ip + tcp + bytes(payload_len)


def udp_frame(conn: int, n: int) -> bytes:
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 28 + 60, 0, 0x4000, 64, 17, 0,
                     bytes((10, 0, 0, 1)), bytes((10, 0, 2, conn & 0xFF)))
    return MAC + b"\x08\x00" + ip + struct.pack("!HHHH", 53, 2000 + conn, 68, 0) + n.to_bytes(4, "big") * 15


def make_stream(n: int, seed: int = 1):
    """63% TCP data, 27% pure ACKs, 10% UDP over 64 connections (like performance-notes.md)."""
    rnd = random.Random(seed)
    seqs = [1000] * 64
    out = []
    for i in range(n):
        c = rnd.randrange(64)
        r = rnd.random()
        if r < 0.63:
            out.append(tcp_frame(c, seqs[c], 1448))
            seqs[c] += 1448
        elif r < 0.90:
            out.append(tcp_frame(c, seqs[c], 0))
        else:
            out.append(udp_frame(c, i))
    return out


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 500_000
    frames = make_stream(n)
    for profile in ("7.2", "4.1"):
        eng = Engine(profile)
        feed = eng.feed
        t = 0
        events = 0
        t0 = time.perf_counter()
        requests = 0
        for i, f in enumerate(frames):
            t += 50_000
            events += len(feed(PRIMARY, f, t, 0, i))
            evs = feed(SECONDARY, f, t + 20_000, 0, i)
            events += len(evs)
            if evs and any(e.kind == CHECKPOINT_REQUEST for e in evs):
                # an instantaneous checkpoint, as a COLO frame would eventually do
                requests += 1
                events += len(eng.checkpoint(t + 30_000))
        dt = time.perf_counter() - t0
        print(f"profile {profile}: {2 * n} frames in {dt:.2f} s = {2 * n / dt:,.0f} frames/s "
              f"({dt / 2 / n * 1e6:.2f} us/frame), {events} events, {requests} checkpoints")


if __name__ == "__main__":
    main()
