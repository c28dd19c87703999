"""Live mode's CPU cost per pair, without sockets: ``LiveCompare._input`` fed whole reads.

    python bench/bench_live_cpu.py [--pairs 204800] [--read-frames 256] [--size 100] [--timeline] [--fast]

Reads of ``--read-frames`` matched UDP frames over 4096 flows (a primary read, then the same
frames as a secondary read), outdev and notify_dev replaced by stubs that keep nothing, no event
loop: what is left is framing, the engine and event handling, i.e. live mode's CPU ceiling.
``--timeline`` collects the timeline as ``-o`` does (every event of every frame).  ``--fast``
feeds the reads to the inputs' ``lean.FastInput.input`` (what the channels' reader calls after
its recv) instead of ``_input``; outdev is still the stub, so the releases leave through
``_after_step``.  Best of ``--repeat`` runs.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from colo_replay.engine.framing import encode_frame  # noqa: E402
from colo_replay.output.timeline import TimelineCollector  # noqa: E402
from tests.support import frames as F  # noqa: E402
from tests.support.live_stubs import stub_live_compare  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pairs", type=int, default=204_800)
    ap.add_argument("--read-frames", type=int, default=256)
    ap.add_argument("--size", type=int, default=100, help="frame size in bytes")
    ap.add_argument("--timeline", action="store_true")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--fast", action="store_true", help="feed FastInput.input (no timeline)")
    a = ap.parse_args()
    pad = max(0, a.size - 42)
    frames = [F.udp(b"x" * pad, sport=1000 + i % 4096) for i in range(a.pairs)]
    reads = [b"".join(encode_frame(f) for f in frames[i:i + a.read_frames])
             for i in range(0, len(frames), a.read_frames)]
    runs = []
    for _ in range(a.repeat):
        lc = stub_live_compare(TimelineCollector() if a.timeline else None, keep_writes=False)
        if a.fast:
            pri, sec = lc._fast[0].input, lc._fast[1].input
        else:
            pri, sec = (lambda r: lc._input(0, r)), (lambda r: lc._input(1, r))
        t0 = time.perf_counter()
        for r in reads:
            pri(r)
            sec(r)
        runs.append(time.perf_counter() - t0)
        assert lc.summary()["released"] == a.pairs, lc.summary()["released"]
    best = min(runs)
    print(f"{a.pairs} pairs of {a.size} B, {a.read_frames} frames a read, timeline={a.timeline}, fast={a.fast}: "
          f"{a.pairs / best:,.0f} pairs/s, {best / a.pairs * 1e6:.2f} us a pair (best of {a.repeat}; runs "
          + ", ".join(f"{a.pairs / r:,.0f}" for r in runs) + ")")


if __name__ == "__main__":
    main()
