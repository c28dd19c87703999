"""Report benchmark: ``colo-replay report`` against the replay alone, on the 1M-frame bench pair.

Each measurement is a fresh Python process, timed from before ``colo_replay`` is imported:

* ``replay``: the replay alone, as the yardstick: ``api.replay(P, S)``, the events DataFrame,
  ``summary`` and ``format_summary()`` (no timeline file written: the smallest honest yardstick);
* ``report``: what ``colo-replay report P S -o r.html --markdown r.md --json r.json`` does:
  ``api.report(P, S)`` (the same replay, then the report: connections, 5-tuples, inputs'
  SHA-256 in a thread, the three plots) and the three files written.

The two alternate, ``--repeat`` rounds; medians and the ratio report / replay are printed, and
the ratio of each round too (the machine is shared: a ratio within a round is what counts), and
the CPU time (user + sys of the process, the hashing thread included: steadier under load).
Target (issue 13): report <= 1.5x replay.  Run from the repository root:

    python bench/bench_report.py [--repeat 5] [--dir /tmp/colo_replay_bench]

Not a test: the figures go into bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def child(kind: str, primary: str, secondary: str, out_dir: str) -> dict:
    t0 = time.perf_counter()
    from colo_replay import api
    if kind == "replay":
        tl = api.replay(primary, secondary)
        _ = tl.events
        text = tl.format_summary()
        requests = tl.summary["checkpoint_requests"]
    else:
        rep = api.report(primary, secondary)
        for name, content in (("r.html", rep.html()), ("r.md", rep.markdown()), ("r.json", rep.json())):
            with open(os.path.join(out_dir, name), "w", encoding="utf-8") as fh:
                fh.write(content)
        text = rep.data["verdict"]["text"]
        requests = rep.data["numbers"]["checkpoint_requests"]
    import resource
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return {"seconds": time.perf_counter() - t0, "cpu": ru.ru_utime + ru.ru_stime, "requests": requests,
            "text": text[:80], "rss_mib": ru.ru_maxrss / 1024}


def run_child(kind: str, paths: list[str], out_dir: str) -> dict:
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, os.path.abspath(__file__), "--child", kind, *paths, out_dir],
                          capture_output=True, text=True, env=env)
    if proc.returncode:
        raise RuntimeError(f"{kind} child failed:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dir", default=os.path.join(tempfile.gettempdir(), "colo_replay_bench"))
    ap.add_argument("--frames", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(*args.child)))
        return
    sys.path.insert(0, HERE)
    from make_bench_pair import make_pair
    paths = list(make_pair(args.dir, args.frames, args.seed))
    out_dir = tempfile.mkdtemp(prefix="colo_report_bench_")
    print(f"pair: {paths[0]}\n      {paths[1]}\n      {sum(map(os.path.getsize, paths)) / 1e6:,.0f} MB; "
          f"{os.cpu_count()} CPUs; load {os.getloadavg()[0]:.2f}; {args.repeat} rounds", flush=True)
    rows = []
    for r in range(args.repeat):
        a = run_child("replay", paths, out_dir)
        b = run_child("report", paths, out_dir)
        assert a["requests"] == b["requests"], (a, b)
        rows.append((a, b))
        print(f"round {r + 1}: replay {a['seconds']:.2f} s, report {b['seconds']:.2f} s, "
              f"ratio {b['seconds'] / a['seconds']:.2f}; CPU {a['cpu']:.2f} / {b['cpu']:.2f} s, "
              f"ratio {b['cpu'] / a['cpu']:.2f} (RSS {a['rss_mib']:.0f} / {b['rss_mib']:.0f} MiB; "
              f"load {os.getloadavg()[0]:.2f})", flush=True)
    rep_s = statistics.median(b["seconds"] for _, b in rows)
    rp_s = statistics.median(a["seconds"] for a, _ in rows)
    ratios = sorted(b["seconds"] / a["seconds"] for a, b in rows)
    cpu_a = statistics.median(a["cpu"] for a, _ in rows)
    cpu_b = statistics.median(b["cpu"] for _, b in rows)
    print(f"median CPU (user + sys, both threads): replay {cpu_a:.2f} s, report {cpu_b:.2f} s, "
          f"ratio {cpu_b / cpu_a:.2f}")
    print(f"median: replay {rp_s:.2f} s, report {rep_s:.2f} s, ratio of medians {rep_s / rp_s:.2f}; "
          f"per-round ratios {', '.join(f'{x:.2f}' for x in ratios)} (median {statistics.median(ratios):.2f}); "
          f"html {os.path.getsize(os.path.join(out_dir, 'r.html')) / 1e3:.0f} kB")


if __name__ == "__main__":
    main()
