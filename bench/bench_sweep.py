"""Sweep benchmark: a 12-setting ``colo-replay sweep`` of the 1M-frame bench pair against 12
separate ``colo-replay replay`` runs of the same settings, in the same run.

The settings: ``--compare-timeout 100,300,1000,3000`` x ``--expired-scan-cycle 100,1000,3000``.

* **12 replays**: ``python -m colo_replay.cli replay P S --compare-timeout C --expired-scan-cycle E
  -o out.parquet --summary-json s.json --no-progress``, one after the other (what a user does
  today to compare settings: each run reads and parses both captures again);
* **sweep**: ``python -m colo_replay.cli sweep P S --compare-timeout 100,300,1000,3000
  --expired-scan-cycle 100,1000,3000 -o sweep.csv`` (``-j`` default: every core; fork workers);
* with ``--spawn``: the same sweep through ``api.sweep(..., start_method="spawn")`` (each worker
  unpickles the prepared pair once instead of sharing it copy-on-write).

Each is timed from outside (wall time of the processes, interpreter start-up included).  Memory:
``CPU`` is user + system time of the processes and the children they waited for (``os.wait4``;
the sweep's workers included): what parsing once saves shows there whatever the load, while the
wall time shows the parallelism only when the cores are free.  ``peak RSS`` is the largest ``ru_maxrss`` of one process (``os.wait4``: the process and the
children it waited for); ``peak tree PSS`` is the largest sum over the process and its children
of their proportional set size (``/proc/PID/smaps_rollup``, sampled every 0.5 s): memory shared
copy-on-write between the sweep's workers counts once there, split between them.  The load of the
machine (``os.getloadavg``) is printed before and after each measurement: the machine is shared.

    python bench/bench_sweep.py [--repeat 1] [--dir /tmp/colo_replay_bench] [--spawn] [-j N]

Not a test: the figures go into bench/README.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
TIMEOUTS = (100, 300, 1000, 3000)
CYCLES = (100, 1000, 3000)


def _children(pid: int) -> list[int]:
    out = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as fh:
                out.extend(int(c) for c in fh.read().split())
    except OSError:
        pass
    return out


def _pss_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as fh:
            for line in fh:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _tree_pss(pid: int) -> int:
    total = 0
    stack = [pid]
    while stack:
        p = stack.pop()
        total += _pss_kib(p)
        stack.extend(_children(p))
    return total


def measure(cmd: list[str], ok=(0, 1)) -> dict:
    """Run ``cmd``; wall seconds, peak RSS of one process (MiB), peak tree PSS (MiB)."""
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    load = os.getloadavg()[0]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak = [0]
    done = threading.Event()

    def sample():
        while not done.wait(0.5):
            peak[0] = max(peak[0], _tree_pss(proc.pid))

    th = threading.Thread(target=sample, daemon=True)
    th.start()
    stderr = proc.stderr.read()
    _, status, ru = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    done.set()
    th.join()
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode not in ok:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{stderr.decode(errors='replace')}")
    return {"seconds": wall, "cpu": ru.ru_utime + ru.ru_stime, "rss_mib": ru.ru_maxrss / 1024, "pss_mib": peak[0] / 1024,
            "load": (load, os.getloadavg()[0]), "stderr": stderr.decode(errors="replace")}


def replays(paths, tmp) -> dict:
    total = cpu = 0.0
    rss = pss = 0.0
    loads = []
    for c in TIMEOUTS:
        for e in CYCLES:
            r = measure([sys.executable, "-m", "colo_replay.cli", "replay", *paths, "--compare-timeout", str(c),
                         "--expired-scan-cycle", str(e), "-o", os.path.join(tmp, "out.parquet"),
                         "--summary-json", os.path.join(tmp, f"s_{c}_{e}.json"), "--no-progress"])
            total += r["seconds"]
            cpu += r["cpu"]
            rss, pss = max(rss, r["rss_mib"]), max(pss, r["pss_mib"])
            loads.extend(r["load"])
    return {"seconds": total, "cpu": cpu, "rss_mib": rss, "pss_mib": pss, "load": (loads[0], max(loads))}


def sweep_cli(paths, tmp, jobs) -> dict:
    cmd = [sys.executable, "-m", "colo_replay.cli", "sweep", *paths,
           "--compare-timeout", ",".join(map(str, TIMEOUTS)), "--expired-scan-cycle", ",".join(map(str, CYCLES)),
           "-o", os.path.join(tmp, "sweep.csv")]
    if jobs:
        cmd += ["-j", str(jobs)]
    return measure(cmd)


def sweep_spawn(paths, tmp, jobs) -> dict:
    code = (f"from colo_replay import api\n"
            f"s = api.sweep({paths[0]!r}, {paths[1]!r}, grid={{'compare_timeout': {list(TIMEOUTS)!r}, "
            f"'expired_scan_cycle': {list(CYCLES)!r}}}, jobs={jobs!r}, start_method='spawn')\n"
            f"s.write({os.path.join(tmp, 'sweep_spawn.csv')!r})\n")
    return measure([sys.executable, "-c", code])


def check_rows(tmp) -> str:
    """The sweep's rows against the 12 replays' summaries (a sanity check of the run)."""
    import csv
    import json
    with open(os.path.join(tmp, "sweep.csv")) as fh:
        rows = list(csv.DictReader(fh))
    bad = 0
    for r in rows:
        with open(os.path.join(tmp, f"s_{r['compare_timeout']}_{r['expired_scan_cycle']}.json")) as fh:
            s = json.load(fh)
        if (int(r["checkpoints"]), int(r["requests"]), float(r["held_p99_ms"])) != (
                s["checkpoints"], s["checkpoint_requests"], s["held_ms"]["p99"]):
            bad += 1
    return f"{len(rows)} rows, {bad} differing from their replay's summary"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dir", default=os.path.join(tempfile.gettempdir(), "colo_replay_bench"))
    ap.add_argument("--frames", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=1, help="rounds (median reported)")
    ap.add_argument("-j", "--jobs", type=int, help="sweep workers (default: every core)")
    ap.add_argument("--spawn", action="store_true", help="also time the sweep with spawned workers")
    ap.add_argument("--pair", metavar="DIR", help="an existing pair's DIR/primary.pcap and DIR/secondary.pcap (e.g. "
                                                  "bench/make_free_pair.py's) instead of make_bench_pair's")
    args = ap.parse_args()

    sys.path.insert(0, HERE)
    if args.pair:
        paths = [os.path.join(args.pair, "primary.pcap"), os.path.join(args.pair, "secondary.pcap")]
    else:
        from make_bench_pair import make_pair
        paths = [str(p) for p in make_pair(args.dir, args.frames, args.seed)]
    print(f"pair: {paths[0]}\n      {paths[1]}\n      {sum(map(os.path.getsize, paths)) / 1e6:,.0f} MB; "
          f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs; 12 settings; {args.repeat} round(s)", flush=True)
    res: dict[str, list] = {"replays": [], "sweep": [], "spawn": []}
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        for n in range(args.repeat):
            res["replays"].append(replays(paths, tmp))
            res["sweep"].append(sweep_cli(paths, tmp, args.jobs))
            if args.spawn:
                res["spawn"].append(sweep_spawn(paths, tmp, args.jobs))
            line = ", ".join(f"{k} {v[-1]['seconds']:.1f} s, CPU {v[-1]['cpu']:.1f} s (load {v[-1]['load'][0]:.1f}->{v[-1]['load'][1]:.1f})"
                             for k, v in res.items() if v)
            print(f"  round {n + 1}: {line}", flush=True)
        print("  check: " + check_rows(tmp))
    base = statistics.median(x["seconds"] for x in res["replays"])
    cpu_base = statistics.median(x["cpu"] for x in res["replays"])
    print()
    for k, label in (("replays", "12 separate replays (CLI)"), ("sweep", "sweep, fork workers (CLI)"),
                     ("spawn", "sweep, spawned workers (API)")):
        if not res[k]:
            continue
        sec = statistics.median(x["seconds"] for x in res[k])
        cpu = statistics.median(x["cpu"] for x in res[k])
        print(f"{label:<30} {sec:7.1f} s  {sec / base:5.2f}x  CPU {cpu:6.1f} s ({cpu / cpu_base:4.2f}x)  peak RSS {max(x['rss_mib'] for x in res[k]):6.0f} MiB  "
              f"peak tree PSS {max(x['pss_mib'] for x in res[k]):6.0f} MiB")


if __name__ == "__main__":
    main()
