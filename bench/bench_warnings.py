"""Micro-benchmark: the replay's two warning heuristics, per-frame (before) against vectorised.

After a replay, ``offline.replay_warnings.replay_warnings`` re-reads the first ``WARNING_SAMPLE_FRAMES`` (50,000)
frames of each capture, at most ``WARNING_SAMPLE_BYTES`` (16 MiB) of it, for ``offline/rewriter.synack_table`` (TCP ISNs differ) and
``offline/align.estimate_alignment`` (clock skew), each reading both samples.  This times, in
the same run, rounds alternating:

* ``read``: the four sample reads alone, as ``replay_warnings`` makes them (``Head`` over
  ``open_capture``), nothing done with the batches: the yardstick both versions pay;
* ``synack before`` / ``synack after``: ``synack_table`` of both samples, the per-frame code as
  it was (tests/support/warn_reference.py) and the module's;
* ``align before`` / ``align after``: ``estimate_alignment`` of the pair, likewise;
* ``both, one read``: what ``replay_warnings`` runs now (``sample_heuristics``): each
  sample read once, in ``WARNING_SAMPLE_CHUNK`` (4 MiB) chunks, for both heuristics;

CPU (user + system of this process, ``getrusage``) per case, median of ``--repeat`` rounds, and
checks that before and after give the same tables and the same ``Alignment``.

Run from the repository root:  python bench/bench_warnings.py [--pcap P S] [--frames N] [--bytes B] [--repeat R]
(default pair: the 1M-frame pair of bench_replay.py in /tmp/colo_replay_bench).  Figures:
bench/README.md, "Compiled core (issue 12)", "The replay's warnings".
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, ROOT)

from colo_replay.offline.replay_warnings import (WARNING_SAMPLE_BYTES, WARNING_SAMPLE_CHUNK,  # noqa: E402
                                                 WARNING_SAMPLE_FRAMES, Head,
                                                 sample_heuristics)
from colo_replay.captures import open_capture  # noqa: E402
from colo_replay.offline import align, rewriter  # noqa: E402
from tests.support import warn_reference as ref  # noqa: E402

PAIR = ("/tmp/colo_replay_bench/bench_v1_1000000_s1_primary.pcap",
        "/tmp/colo_replay_bench/bench_v1_1000000_s1_secondary.pcap")


def cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pcap", nargs=2, default=PAIR, metavar=("PRIMARY", "SECONDARY"))
    ap.add_argument("--frames", type=int, default=WARNING_SAMPLE_FRAMES)
    ap.add_argument("--bytes", type=int, default=WARNING_SAMPLE_BYTES, help="0: no bound in bytes")
    ap.add_argument("--repeat", type=int, default=7)
    args = ap.parse_args()
    p, s = args.pcap

    def sample(path):
        return Head(open_capture(path), args.frames, args.bytes or None)

    def read():
        for path in (p, s, p, s):
            for _batch in sample(path).batches():
                pass

    cases = {
        "read (4 sample reads, yardstick)": read,
        "synack_table x2, before": lambda: (ref.synack_table(sample(p)), ref.synack_table(sample(s))),
        "synack_table x2, after": lambda: (rewriter.synack_table(sample(p)), rewriter.synack_table(sample(s))),
        "estimate_alignment, before": lambda: ref.estimate_alignment(sample(p), sample(s)),
        "estimate_alignment, after": lambda: align.estimate_alignment(sample(p), sample(s)),
        "both, one read (the replay's)": lambda: sample_heuristics(
            Head(open_capture(p, chunk_size=WARNING_SAMPLE_CHUNK), args.frames, args.bytes or None),
            Head(open_capture(s, chunk_size=WARNING_SAMPLE_CHUNK), args.frames, args.bytes or None), 0, True, True),
    }
    got = {name: f() for name, f in cases.items()}          # warm-up, and the results
    assert got["synack_table x2, before"] == got["synack_table x2, after"]
    assert got["estimate_alignment, before"] == got["estimate_alignment, after"]
    assert got["both, one read (the replay's)"] == (list(got["synack_table x2, after"]),
                                                     got["estimate_alignment, after"])
    times: dict = {name: [] for name in cases}
    for _ in range(args.repeat):
        for name, f in cases.items():
            t = cpu()
            f()
            times[name].append(cpu() - t)
    med = {name: statistics.median(v) for name, v in times.items()}
    base = med["read (4 sample reads, yardstick)"]
    print(f"{args.frames} frames of {p} and {s}; CPU s, median of {args.repeat} rounds")
    print(f"{'case':36} {'CPU ms':>8} {'over 2 reads':>13}")
    for name, v in med.items():
        extra = "" if name.startswith(("read", "both")) else f"{(v - base / 2) * 1e3:13.1f}"
        print(f"{name:36} {v * 1e3:8.1f} {extra}")
    before = med["synack_table x2, before"] + med["estimate_alignment, before"]
    after = med["synack_table x2, after"] + med["estimate_alignment, after"]
    print(f"both heuristics: before {before * 1e3:.1f} ms, after {after * 1e3:.1f} ms ({before / after:.2f}x); "
          f"beyond the reads: before {(before - base) * 1e3:.1f} ms, after {(after - base) * 1e3:.1f} ms "
          f"({(before - base) / max(after - base, 1e-9):.1f}x)")
    print(f"same results: yes ({sum(map(len, got['synack_table x2, after']))} SYN|ACK keys; "
          f"{got['estimate_alignment, after']})")


if __name__ == "__main__":
    main()
