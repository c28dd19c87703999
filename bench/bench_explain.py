"""explain against the replay on the same pair, in the same run (issue 22 item 8, issue 23 item 6).

Each round runs, one after another, each as a fresh CLI process:

* ``replay P S -o out.parquet``: the yardstick (the replay's own time);
* ``explain P S --json``: the default, with the other QEMU profile's replay beside it;
* ``explain P S --json --no-other-profile``.

For each: wall seconds, CPU, the peak RSS of its largest process and the peak proportional set
size of its whole process tree (``bench_sweep.measure``: /proc/PID/smaps_rollup every 0.5 s;
explain forks the other profile's replay).  The ratio explain / replay is taken within a round;
medians over ``--repeat`` rounds.  Run from the repository root:

    python bench/bench_explain.py --pair DIR [--repeat 3]

where DIR holds primary.pcap and secondary.pcap (``bench/make_free_pair.py --out DIR``).
Not a test: the figures go into bench/README.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from bench_sweep import measure  # noqa: E402  (the same sampler as the sweep's figures)

RUNS = {
    "replay": lambda p, s, out: ["replay", p, s, "-o", out],
    "explain": lambda p, s, out: ["explain", p, s, "--json"],
    "explain --no-other-profile": lambda p, s, out: ["explain", p, s, "--json", "--no-other-profile"],
}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pair", required=True, help="directory with primary.pcap and secondary.pcap")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args(argv)
    p, s = (os.path.join(args.pair, f"{side}.pcap") for side in ("primary", "secondary"))
    rows: dict[str, list[dict]] = {k: [] for k in RUNS}
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "t.parquet")
        for rnd in range(args.repeat):
            for name, argv_of in RUNS.items():
                r = measure([sys.executable, "-m", "colo_replay.cli", *argv_of(p, s, out)])
                rows[name].append(r)
                print(f"round {rnd + 1} {name:28s} {r['seconds']:7.2f} s  cpu {r['cpu']:6.2f} s  "
                      f"rss {r['rss_mib']:6.0f} MiB  tree pss {r['pss_mib']:6.0f} MiB  load {r['load'][0]:.1f}",
                      flush=True)
    base = rows["replay"]
    print(f"\nmedians of {args.repeat} rounds ({args.pair}):")
    for name, rs in rows.items():
        ratio = statistics.median(r["seconds"] / b["seconds"] for r, b in zip(rs, base))
        print(f"  {name:28s} {statistics.median(r['seconds'] for r in rs):7.2f} s  {ratio:4.2f}x the replay  "
              f"rss {max(r['rss_mib'] for r in rs):6.0f} MiB  tree pss {max(r['pss_mib'] for r in rs):6.0f} MiB")


if __name__ == "__main__":
    main()
