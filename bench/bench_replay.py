"""Whole-replay benchmark: read both captures, run the engine, write the timeline to Parquet.

On a generated pair (``bench/make_bench_pair.py``: 1,000,000 + ~999,850 Ethernet frames, ~870 B
average, written to ``--dir`` once and reused), each measurement runs in a fresh Python process
so that its peak RSS (``ru_maxrss``) is its own:

* ``dpkt``: the yardstick, a bare ``dpkt.pcap.Reader`` loop over both files (``for ts, buf in
  reader: n += 1``);
* ``replay``: the replay's own calls in one process: ``open_capture`` both files,
  ``replay_partial`` with ``ReplayOptions()`` (QEMU 7.2, the checkpoint model, raw),
  ``Timeline.write(out.parquet)`` (from numpy columns, no pandas), ``Timeline.summary`` and
  ``format_summary()``; timed from before ``colo_replay`` is imported to after the summary text
  exists (an older ``--tree`` also builds its DataFrame, which its writer needs);
* with ``--cli``, the issue's figure: the CLI itself as a subprocess (``python -m
  colo_replay.cli replay P S -o out.parquet``: its defaults, ``--after-checkpoint resync`` and
  the warnings included), against the dpkt loop as a whole process too; wall time, CPU (user +
  system, ``os.wait4``) and peak RSS of each process, interpreter start-up included.
* ``--memory N,N,...``: only the CLI, on pairs of N primary frames each, for its peak RSS as
  the captures grow (and ``--tree``'s CLI alongside).

Frames/s counts the frames of both files.  The measurements alternate, ``--repeat`` rounds; the
median is reported.  Run from the repository root:

    python bench/bench_replay.py [--repeat 3] [--cli] [--dir /tmp/colo_replay_bench] [--tree OLD]
    python bench/bench_replay.py --pair DIR --cli     # a pair of your own (make_free_pair.py --out DIR)
    python bench/bench_replay.py --profile        # cProfile of one in-process replay, top 30
    python bench/bench_replay.py --memory 1000000,2000000,4000000 [--tree OLD]   # the CLI's peak RSS

``--tree OLD`` times the same replay with another version's ``colo_replay`` too, in the same
rounds, for before/after figures (``mkdir /tmp/old && git archive <commit> colo_replay | tar -x
-C /tmp/old``, then ``--tree /tmp/old``).

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


def _rss_mib() -> float:
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024     # Linux: KiB


def _cpu() -> float:
    import resource
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def child_dpkt(paths: list[str]) -> dict:
    t0 = time.perf_counter()
    c0 = _cpu()
    import dpkt
    n = 0
    for path in paths:
        with open(path, "rb") as f:
            for _ts, _buf in dpkt.pcap.Reader(f):
                n += 1
    return {"frames": n, "seconds": time.perf_counter() - t0, "cpu": _cpu() - c0, "rss_mib": _rss_mib()}


def child_replay(paths: list[str], out: str) -> dict:
    t0 = time.perf_counter()
    c0 = _cpu()
    tree = os.environ.get("COLO_REPLAY_TREE") or ROOT
    sys.path.insert(0, tree)
    try:
        from colo_replay.offline.outcome import Timeline
    except ImportError:         # a tree from before issue 19 (Timeline lived in api.py)
        from colo_replay.api import Timeline
    from colo_replay.captures import open_capture
    if os.path.exists(os.path.join(tree, "colo_replay", "offline")):
        from colo_replay.offline.driver import ReplayOptions, replay_partial
    else:       # a tree from before the package layout of issue 9 (flat colo_replay/driver.py)
        from colo_replay.driver import ReplayOptions, replay_partial

    prd = open_capture(paths[0])
    srd = open_capture(paths[1])
    result, error = replay_partial(prd, srd, ReplayOptions(), None)
    t1 = time.perf_counter()
    timeline = Timeline(result)
    if not hasattr(Timeline, "columns"):
        timeline.events                # noqa: B018 - an older tree: its writer needs the DataFrame
    t2 = time.perf_counter()
    timeline.write(out)
    t3 = time.perf_counter()
    summary = timeline.summary
    text = timeline.format_summary()
    t4 = time.perf_counter()
    assert error is None, error
    return {"frames": result.primary.frames + result.secondary.frames, "seconds": t4 - t0,
            "cpu": _cpu() - c0, "rss_mib": _rss_mib(), "events": len(timeline),
            "stages": {"replay": t1 - t0, "frame": t2 - t1, "parquet": t3 - t2, "summary": t4 - t3},
            "checkpoints": summary["checkpoints"], "requests": summary["checkpoint_requests"],
            "released": summary["released"], "summary_lines": len(text.splitlines())}


def run_child(kind: str, paths: list[str], out: str | None = None, tree: str | None = None) -> dict:
    cmd = [sys.executable, os.path.abspath(__file__), "--child", kind, *paths]
    if out:
        cmd.append(out)
    env = dict(os.environ, COLO_REPLAY_TREE=tree or "")
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{kind} child failed:\n{proc.stderr}")
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    res["process_seconds"] = wall
    return res


def _process(cmd: list[str], env: dict, cwd: str = ROOT) -> tuple[float, float, float, int, str]:
    """Run ``cmd``; (wall s, CPU s = user + system, peak RSS MiB, exit status, stderr) of the
    process itself (os.wait4: interpreter start-up and imports included)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=cwd, env=env)
    err = proc.stderr.read()
    _pid, status, ru = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    return wall, ru.ru_utime + ru.ru_stime, ru.ru_maxrss / 1024, proc.returncode, err


def run_cli(paths: list[str], out: str, tree: str | None = None) -> dict:
    """``python -m colo_replay.cli replay P S -o out --no-progress`` (of ``tree``, default this
    checkout) as a whole process."""
    root = tree or ROOT
    env = dict(os.environ, PYTHONPATH=root + os.pathsep + os.environ.get("PYTHONPATH", ""))
    cmd = [sys.executable, "-m", "colo_replay.cli", "replay", paths[0], paths[1], "-o", out, "--no-progress"]
    wall, cpu, rss, rc, err = _process(cmd, env, root)
    if rc not in (0, 1):          # 1 = checkpoint requests, expected here
        raise RuntimeError(f"CLI failed ({rc}):\n{err}")
    return {"process_seconds": wall, "cpu": cpu, "rss_mib": rss, "stderr": err}


def run_dpkt_process(paths: list[str]) -> dict:
    """The bare dpkt loop as a whole process too (start-up included, like the CLI's figures)."""
    code = ("import dpkt, sys\nfor p in sys.argv[1:]:\n    with open(p, 'rb') as f:\n"
            "        for _ts, _buf in dpkt.pcap.Reader(f):\n            pass\n")
    wall, cpu, rss, rc, err = _process([sys.executable, "-c", code, *paths], dict(os.environ))
    if rc:
        raise RuntimeError(f"dpkt process failed ({rc}):\n{err}")
    return {"process_seconds": wall, "cpu": cpu, "rss_mib": rss}


def memory(args) -> None:
    """``--memory N,N,...``: the CLI's peak RSS and CPU on pairs of N primary frames each (made
    in ``--dir`` by make_bench_pair), this checkout and ``--tree`` alternating, with the bare
    dpkt loop over each pair as the yardstick, ``--repeat`` rounds; medians (RSS: the largest)."""
    sys.path.insert(0, HERE)
    from make_bench_pair import make_pair
    sizes = [int(n) for n in args.memory.split(",")]
    pairs = {n: list(make_pair(args.dir, n, args.seed)) for n in sizes}
    print(f"pairs in {args.dir}: " + ", ".join(f"{n:,} frames ({sum(os.path.getsize(p) for p in pairs[n]) / 1e9:.1f} GB)"
                                               for n in sizes) + f"; {args.repeat} rounds", flush=True)
    runs: dict = {}
    for r in range(args.repeat):
        for n in sizes:
            paths = pairs[n]
            for label, tree in (("dpkt", None), ("cli", None), ("tree", args.tree)):
                if label == "tree" and not tree:
                    continue
                if label == "dpkt":
                    res = run_child("dpkt", paths)
                else:
                    res = run_cli(paths, os.path.join(args.dir, f"bench_mem_{label}.parquet"),
                                  os.path.abspath(tree) if tree else None)
                runs.setdefault((n, label), []).append(res)
                print(f"  round {r + 1}, {n:,} frames, {label}: CPU {res['cpu']:.2f} s, "
                      f"peak RSS {res['rss_mib']:.0f} MiB", flush=True)
    print("\n| pair (primary frames) | what | CPU s (median) | CPU / dpkt | peak RSS MiB (max) |")
    print("|---|---|---|---|---|")
    for n in sizes:
        dpkt = statistics.median(x["cpu"] for x in runs[(n, "dpkt")])
        for label in ("dpkt", "cli", "tree"):
            rows = runs.get((n, label))
            if not rows:
                continue
            cpu = statistics.median(x["cpu"] for x in rows)
            name = {"dpkt": "dpkt.pcap.Reader bare loop", "cli": "CLI, this checkout",
                    "tree": f"CLI, {args.tree}"}[label]
            print(f"| {n:,} | {name} | {cpu:.2f} | {cpu / dpkt:.2f}x | {max(x['rss_mib'] for x in rows):.0f} |")


def profile(paths: list[str], out: str, top: int) -> None:
    import cProfile
    import pstats
    prof = cProfile.Profile()
    prof.enable()
    res = child_replay(paths, out)
    prof.disable()
    print(json.dumps(res))
    pstats.Stats(prof).sort_stats("tottime").print_stats(top)


def line(label: str, frames: int, seconds: float, rss: float | None, extra: str = "",
         cpu: float | None = None) -> str:
    rss_s = f"peak RSS {rss:5.0f} MiB" if rss is not None else ""
    cpu_s = f"CPU {cpu:5.2f} s  " if cpu is not None else ""
    return (f"{label:<34} {frames / seconds:>10,.0f} frames/s  {seconds * 1e6 / frames:5.2f} µs/frame  "
            f"{seconds:5.2f} s  {cpu_s}{rss_s}{extra}")


def _compile_bytecode(*trees) -> None:
    """Write the ``.pyc`` files of each tree's colo_replay, as ``pip install`` does for a package
    (dpkt's came with its install): an editable checkout run with PYTHONDONTWRITEBYTECODE set
    would compile ~40 modules from source in every timed process (~0.04 s)."""
    import compileall
    for tree in trees:
        if tree:
            compileall.compile_dir(os.path.join(tree, "colo_replay"), quiet=1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dir", default=os.path.join(tempfile.gettempdir(), "colo_replay_bench"),
                    help="where the generated pair lives (default %(default)s)")
    ap.add_argument("--frames", type=int, default=1_000_000, help="primary frames of the pair")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--pair", metavar="DIR", help="replay DIR/primary.pcap and DIR/secondary.pcap instead (e.g. "
                                                  "bench/make_free_pair.py --out DIR); outputs still go to --dir")
    ap.add_argument("--repeat", type=int, default=3, help="rounds (median reported)")
    ap.add_argument("--cli", action="store_true", help="also time the CLI as a subprocess")
    ap.add_argument("--tree", help="also time the whole replay with the colo_replay package of another "
                                   "checkout (a directory holding colo_replay/), e.g. an older version")
    ap.add_argument("--profile", action="store_true", help="cProfile one replay in this process")
    ap.add_argument("--memory", metavar="N,N,...",
                    help="only the CLI's peak RSS and CPU on pairs of these primary frame counts (with --tree: "
                         "that checkout's CLI too), against the dpkt loop over each pair")
    ap.add_argument("--top", type=int, default=30)
    ap.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.child:
        kind, rest = args.child[0], args.child[1:]
        res = child_dpkt(rest) if kind == "dpkt" else child_replay(rest[:2], rest[2])
        print(json.dumps(res))
        return

    _compile_bytecode(ROOT, args.tree)
    if args.memory:
        memory(args)
        return
    sys.path.insert(0, HERE)
    from make_bench_pair import make_pair
    if args.pair:
        paths = [os.path.join(args.pair, f"{side}.pcap") for side in ("primary", "secondary")]
        os.makedirs(args.dir, exist_ok=True)
    else:
        paths = list(make_pair(args.dir, args.frames, args.seed))
    out = os.path.join(args.dir, "bench_timeline.parquet")
    if args.profile:
        profile(paths, out, args.top)
        return
    size = sum(os.path.getsize(p) for p in paths)
    print(f"pair: {paths[0]}\n      {paths[1]}\n      {size / 1e6:,.0f} MB; Python {sys.version.split()[0]}, "
          f"{os.cpu_count()} CPUs; {args.repeat} rounds, median", flush=True)
    # Read both files once before the rounds: the first row of round 1 (the dpkt loop) would
    # otherwise pay the disk for files another pair pushed out of the page cache (at 4M: 33.8 s
    # against 14.4 s warm, 2026-12-07), and its ratio would flatter the replay.
    t0 = time.perf_counter()
    for path in paths:
        with open(path, "rb") as f:
            while f.read(1 << 24):
                pass
    print(f"  page cache warmed: both files read once in {time.perf_counter() - t0:.2f} s", flush=True)
    results: dict[str, list] = {"dpkt": [], "replay": [], "cli": [], "tree": [], "dpkt_process": []}
    for r in range(args.repeat):
        results["dpkt"].append(run_child("dpkt", paths))
        results["replay"].append(run_child("replay", paths, out))
        if args.cli:
            results["dpkt_process"].append(run_dpkt_process(paths))
            results["cli"].append(run_cli(paths, os.path.join(args.dir, "bench_cli.parquet")))
        if args.tree:
            results["tree"].append(run_child("replay", paths, os.path.join(args.dir, "bench_tree.parquet"),
                                             tree=os.path.abspath(args.tree)))
        d, rp = results["dpkt"][-1], results["replay"][-1]
        print(f"  round {r + 1}: dpkt {d['seconds']:.2f} s (CPU {d['cpu']:.2f}), replay {rp['seconds']:.2f} s "
              f"(CPU {rp['cpu']:.2f}) "
              f"({', '.join(f'{k} {v:.2f}' for k, v in rp['stages'].items())})"
              + (f", dpkt process {results['dpkt_process'][-1]['process_seconds']:.2f} s (CPU "
                 f"{results['dpkt_process'][-1]['cpu']:.2f}), CLI {results['cli'][-1]['process_seconds']:.2f} s "
                 f"(CPU {results['cli'][-1]['cpu']:.2f})" if args.cli else "")
              + (f", --tree {results['tree'][-1]['seconds']:.2f} s" if args.tree else ""), flush=True)

    def med(rows, key):
        return statistics.median(row[key] for row in rows)

    d, rp = results["dpkt"], results["replay"]
    frames = d[0]["frames"]
    assert rp[0]["frames"] == frames, (rp[0]["frames"], frames)
    print()
    print(line("dpkt.pcap.Reader bare loop", frames, med(d, "seconds"), max(x["rss_mib"] for x in d),
               cpu=med(d, "cpu")))
    print(line("whole replay (open..summary)", frames, med(rp, "seconds"), max(x["rss_mib"] for x in rp),
               f"  = {med(d, 'seconds') / med(rp, 'seconds'):.2f}x dpkt", cpu=med(rp, "cpu")))
    stages = {k: statistics.median(x["stages"][k] for x in rp) for k in rp[0]["stages"]}
    print("    stages (median s): " + ", ".join(f"{k} {v:.2f}" for k, v in stages.items()))
    print(f"    {rp[0]['events']:,} timeline rows, {rp[0]['released']:,} released, "
          f"{rp[0]['requests']} checkpoint requests, {rp[0]['checkpoints']} checkpoints")
    if args.cli:
        dp, cl = results["dpkt_process"], results["cli"]
        print(line("dpkt loop, whole process", frames, med(dp, "process_seconds"), max(x["rss_mib"] for x in dp),
                   cpu=med(dp, "cpu")))
        print(line("CLI process (python -m colo_replay.cli)", frames, med(cl, "process_seconds"),
                   max(x["rss_mib"] for x in cl),
                   f"  = {med(dp, 'process_seconds') / med(cl, 'process_seconds'):.2f}x dpkt (wall), "
                   f"{med(dp, 'cpu') / med(cl, 'cpu'):.2f}x (CPU)", cpu=med(cl, "cpu")))
        ratios = [a["cpu"] / b["cpu"] for a, b in zip(dp, cl)]
        print("    CLI vs dpkt process by round (CPU): " + ", ".join(f"{x:.2f}x" for x in ratios))
    if args.tree:
        tr = results["tree"]
        print(line(f"--tree {args.tree}", frames, med(tr, "seconds"), max(x["rss_mib"] for x in tr),
                   f"  = {med(d, 'seconds') / med(tr, 'seconds'):.2f}x dpkt", cpu=med(tr, "cpu")))


if __name__ == "__main__":
    main()
