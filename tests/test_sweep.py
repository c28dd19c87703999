"""``colo-replay sweep``: each row equals a separate ``colo-replay replay`` of that setting (the
whole summary, and the roots of its timeline's episodes); the grid syntax and its one-line
errors; the Pareto front and the recommendation's rule; parallel, spawned and Dask runs equal
to the in-process one; pair manifests; the JSON, CSV, Parquet and plot outputs; exit codes."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from colo_replay import api
from colo_replay.analysis import sweep as sw
from colo_replay.analysis import sweep_result
from colo_replay.offline.pair import open_pair
from colo_replay.offline.settings import Settings
from colo_replay.analysis.episodes import episodes
from colo_replay.captures import open_capture
from tests.support.pcapwrite import write_pcap

ROOT = Path(__file__).resolve().parent.parent
PRIMARY = str(ROOT / "sample_pcaps" / "primary.pcap")
SECONDARY = str(ROOT / "sample_pcaps" / "secondary.pcap")


def cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "colo_replay.cli", *map(str, args)], capture_output=True,
                          text=True, cwd=cwd)


def _frames(path):
    return [(t, f, o) for _, t, f, o, _ in open_capture(path)]


def _replay_cli(tmp_path, primary, secondary, replay_args, tag):
    """A separate ``colo-replay replay``: its summary JSON and its timeline."""
    summary = tmp_path / f"{tag}.json"
    timeline = tmp_path / f"{tag}.parquet"
    proc = cli("replay", primary, secondary, *replay_args, "-o", timeline, "--summary-json", summary,
               "--no-progress")
    assert proc.returncode in (0, 1, 2), proc.stderr
    return json.loads(summary.read_text()), pd.read_parquet(timeline), proc.returncode


def _setting_args(row) -> list[str]:
    return ["--compare-timeout", str(row["compare_timeout"]), "--expired-scan-cycle", str(row["expired_scan_cycle"]),
            "--max-queue-size", str(row["max_queue_size"]), "--checkpoint-duration",
            f"{row['checkpoint_duration_ms']:g}ms", "--checkpoint-delay", f"{row['checkpoint_delay_ms']:g}ms"]


def _check_rows_equal_replays(tmp_path, primary, secondary, rows, summaries, replay_args):
    assert rows
    for n, (row, summary) in enumerate(zip(rows, summaries)):
        theirs, df, code = _replay_cli(tmp_path, primary, secondary, replay_args + _setting_args(row), f"r{n}")
        # the whole summary: JSON round trip on both sides (tuples, sets -> lists); all but the
        # warnings, which are about the input pair (replay re-reads the captures for them) and
        # are not per setting
        ours = json.loads(json.dumps(summary, default=str))
        ours.pop("warnings", None)
        theirs.pop("warnings", None)
        assert ours == theirs, f"row {n}: {row}"
        # the row is made from that summary: the numbers people read
        assert row["checkpoints"] == theirs["checkpoints"]
        assert row["requests"] == theirs["checkpoint_requests"]
        for cause in sw.REQUEST_CAUSES:
            assert row[f"requests_{cause}"] == theirs["checkpoint_requests_by_cause"].get(cause, 0)
        assert row["roots"] == len(episodes(df).roots)
        assert row["held_p99_ms"] == theirs["held_ms"]["p99"]
        assert row["released_by_flush"] == theirs["released_by_cause"].get("flush", 0)
        assert row["queue_drops"] == theirs["queue_drops"]
        assert (row["still_queued_primary"], row["still_queued_secondary"]) == (
            theirs["still_queued"]["primary"], theirs["still_queued"]["secondary"])
        assert row["partial"] == theirs["partial"]
        assert row["checkpoints_per_min"] == pytest.approx(theirs["checkpoints"] / row["minutes"])


GRID = {"compare_timeout": "100,1000", "expired_scan_cycle": "100,1000", "checkpoint_duration": "20,300"}


def test_each_row_equals_a_separate_replay(tmp_path):
    result = api.sweep(PRIMARY, SECONDARY, grid=GRID, filter_rewriter=True, with_summary=True, jobs=2)
    assert len(result.rows) == 8
    # the settings really differ in what they give, so equality is not trivially met
    assert len({(r["checkpoints"], r["held_p99_ms"], r["requests_expired"]) for r in result.rows}) > 2
    _check_rows_equal_replays(tmp_path, PRIMARY, SECONDARY, result.rows, result.summaries, ["--filter-rewriter"])


def test_filter_and_snaplen_cut_frames_equal_replay(tmp_path):
    """The BPF filter is applied once, when the pair is prepared; frames cut by a snaplen stay
    (the driver reports them as uncomparable before its filter would): counts as replay's."""
    recs = _frames(PRIMARY)
    cut = [(t, f[:40], o) if i % 7 == 3 else (t, f, o) for i, (t, f, o) in enumerate(recs)]
    primary = write_pcap(tmp_path / "cut.pcap", cut, nanos=True)
    result = api.sweep(str(primary), SECONDARY, grid={"compare_timeout": "200,2000"}, filter_rewriter=True,
                       bpf_filter="tcp", with_summary=True, jobs=1)
    s = result.summaries[0]
    assert s["never_compared"]["filtered"] > 0 and s["never_compared"]["truncated"] > 0
    from colo_replay.offline.prepared import PreparedPair, prepare
    opened = open_pair(str(primary), SECONDARY, Settings(filter_rewriter=True, bpf_filter="tcp"))
    pair = PreparedPair("x", prepare(opened.primary), prepare(opened.secondary), opened.options, opened.source)
    assert pair.prefiltered and pair.primary.filtered + pair.secondary.filtered == s["never_compared"]["filtered"]
    _check_rows_equal_replays(tmp_path, str(primary), SECONDARY, result.rows, result.summaries,
                              ["--filter-rewriter", "--filter", "tcp"])


def test_read_error_rows_are_partial_like_replay(tmp_path):
    data = Path(SECONDARY).read_bytes()
    broken = tmp_path / "broken.pcap"
    broken.write_bytes(data[:30000] + b"\xff" * 20)       # a record header with an absurd length
    for extra in ([], ["--filter", "tcp or udp"]):
        grid = {"compare_timeout": "300,3000"}
        result = api.sweep(PRIMARY, str(broken), grid=grid, with_summary=True, jobs=1,
                           bpf_filter=extra[1] if extra else None)
        assert all(r["partial"] and r["error"] for r in result.rows)
        assert result.exit_status == 2
        _check_rows_equal_replays(tmp_path, PRIMARY, str(broken), result.rows, result.summaries, extra)
    proc = cli("sweep", PRIMARY, broken, "--compare-timeout", "300", "-j", "1", "-o", tmp_path / "s.csv")
    assert proc.returncode == 2
    assert "error:" in proc.stderr and "partial" in proc.stderr


def test_fork_spawn_and_in_process_give_the_same_rows():
    grid = {"compare_timeout": "100:1600:x4", "expired_scan_cycle": "100,1000"}
    one = api.sweep(PRIMARY, SECONDARY, grid=grid, filter_rewriter=True, jobs=1).rows
    fork = api.sweep(PRIMARY, SECONDARY, grid=grid, filter_rewriter=True, jobs=2, start_method="fork").rows
    spawn = api.sweep(PRIMARY, SECONDARY, grid=grid, filter_rewriter=True, jobs=2, start_method="spawn").rows
    assert len(one) == 6
    assert _nan_safe(one) == _nan_safe(fork) == _nan_safe(spawn)


def _nan_safe(rows):
    return [{k: ("nan" if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()} for r in rows]


def test_dask_cluster_on_loopback_gives_the_local_rows():
    from distributed import LocalCluster

    grid = {"compare_timeout": "100,1000", "checkpoint_duration": "20,100"}
    local = api.sweep(PRIMARY, SECONDARY, grid=grid, filter_rewriter=True, jobs=1).rows
    with LocalCluster(host="127.0.0.1", n_workers=1, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster:
        assert cluster.scheduler_address.startswith("tcp://127.0.0.1:")
        remote = api.sweep(PRIMARY, SECONDARY, grid=grid, filter_rewriter=True,
                           dask=cluster.scheduler_address).rows
        proc = cli("sweep", PRIMARY, SECONDARY, "--filter-rewriter", "--compare-timeout", "100,1000",
                   "--checkpoint-duration", "20,100", "--dask", cluster.scheduler_address)
    assert _nan_safe(remote) == _nan_safe(local)
    assert proc.returncode == 1, proc.stderr
    assert len(proc.stdout.strip().splitlines()) == 5          # header + 4 rows


def test_unreachable_dask_scheduler_is_one_line_exit_2():
    proc = cli("sweep", PRIMARY, SECONDARY, "--compare-timeout", "100", "--dask", "tcp://127.0.0.1:9")
    assert proc.returncode == 2
    assert proc.stderr.startswith("colo-replay: error: --dask tcp://127.0.0.1:9")
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("spec, values", [
    ("100,300,1000", [100, 300, 1000]),
    ("100:3000:x2", [100, 200, 400, 800, 1600]),
    ("100:1000:+300", [100, 400, 700, 1000]),
    ("100:1000:+300,50,100", [100, 400, 700, 1000, 50]),
    ("1:10:x1.5", [1, 2, 3, 5, 8]),
])
def test_grid_values(spec, values):
    assert sw.parse_values("compare_timeout", spec) == values


def test_duration_values_take_units():
    assert sw.parse_values("checkpoint_duration", "50ms,1.5s,200") == [50_000_000, 1_500_000_000, 200_000_000]
    assert sw.parse_values("checkpoint_delay", "0,10s:30s:+10s") == [0, 10 ** 10, 2 * 10 ** 10, 3 * 10 ** 10]


def test_grid_is_the_cartesian_product_in_knob_order():
    swept, settings = sw.grid({"expired_scan_cycle": "100,1000", "compare_timeout": [300, 3000]})
    assert list(swept) == ["compare_timeout", "expired_scan_cycle"]
    assert settings == [{"compare_timeout": 300, "expired_scan_cycle": 100},
                        {"compare_timeout": 300, "expired_scan_cycle": 1000},
                        {"compare_timeout": 3000, "expired_scan_cycle": 100},
                        {"compare_timeout": 3000, "expired_scan_cycle": 1000}]


@pytest.mark.parametrize("args, message", [
    (["--compare-timeout", "100:3000:y2"], "--compare-timeout '100:3000:y2': range step 'y2' is xFACTOR"),
    (["--compare-timeout", "100,,200"], "--compare-timeout '100,,200': empty value"),
    (["--compare-timeout", "3000:100:x2"], "ends before it starts"),
    (["--compare-timeout", "100:3000:x1"], "needs a factor above 1"),
    (["--compare-timeout", "0,100"], "values must be at least 1"),
    (["--compare-timeout", "10ms"], "'10ms' is not a whole number"),
    (["--checkpoint-duration", "fast"], "'fast' is not a duration"),
    (["--compare-timeout", "1:9:+2:4"], "a range is START:STOP"),
    (["--compare-timeout", "100", "--qemu", "4.1"], "QEMU 4.1 (row A) colo-compare has no compare_timeout"),
    (["--compare-timeout", "100", "-o", "x.txt"], "x.txt: the sweep table is written as .csv, .parquet or .json"),
    (["--compare-timeout", "100", "--plot", "x.pdf"], "x.pdf: the plot is written as .svg or .png"),
])
def test_bad_grid_is_one_line_exit_2(tmp_path, args, message):
    proc = cli("sweep", PRIMARY, SECONDARY, *args, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1 and message in proc.stderr, proc.stderr
    assert proc.stderr.startswith("colo-replay: error: ")


def _row(pair, cpm, p99, **kw):
    return {"pair": pair, "checkpoints_per_min": cpm, "held_p99_ms": p99, "partial": False,
            "compare_timeout": kw.get("ct", 0), **{k: 0 for k in sw.KNOB_COLUMNS[1:]}}


def test_pareto_front_and_recommendation_rules():
    rows = [_row("a", 10, 50, ct=1), _row("a", 5, 80, ct=2), _row("a", 12, 60, ct=3), _row("a", 5, 80, ct=4),
            _row("a", 2, 200, ct=5), _row("a", 8, float("nan"), ct=6), _row("b", 100, 1, ct=7)]
    assert sw.pareto(rows) == [True, True, False, True, True, False, True]
    free = sw.recommend(rows)
    assert [r.row for r in free] == [4, 6]
    assert "fewest checkpoints per minute" in free[0].rule and "no --max-held-p99" in free[0].rule
    bounded = sw.recommend(rows, max_held_p99=100)
    assert [r.row for r in bounded] == [1, 6]           # 5/min at 80 ms; the tie (row 3) loses on grid order
    assert "held p99 <= 100 ms" in bounded[0].rule
    none = sw.recommend(rows, max_held_p99=0.5)
    assert [r.row for r in none] == [None, None]
    assert "no setting recommended for a" in sw.describe(none[0])
    sw.mark(rows, bounded)
    assert [r["recommended"] for r in rows] == [False, True, False, False, False, False, True]


def test_cli_outputs_and_exit_codes(tmp_path):
    base = ["sweep", PRIMARY, SECONDARY, "--filter-rewriter", "--compare-timeout", "100:3000:x3",
            "--checkpoint-duration", "20,300", "-j", "2"]
    proc = cli(*base, "-o", tmp_path / "s.json", "--plot", tmp_path / "s.svg", "--max-held-p99", "50")
    assert proc.returncode == 1, proc.stderr            # the sample pair diverges: requests in every setting
    doc = json.loads((tmp_path / "s.json").read_text())
    assert doc["schema"] == "colo-replay-sweep" and doc["schema_version"] == sw.SCHEMA_VERSION
    assert doc["swept"] == {"compare_timeout": [100, 300, 900, 2700], "checkpoint_duration": [20_000_000, 300_000_000]}
    assert doc["settings"] == 8 and len(doc["rows"]) == 8
    rec = doc["recommendations"][0]
    assert rec["row"] is not None and doc["rows"][rec["row"]]["recommended"]
    assert doc["rows"][rec["row"]]["held_p99_ms"] <= 50
    assert set(rec["setting"]) == {"compare_timeout", "checkpoint_duration_ms"}
    assert f"recommended for primary: compare_timeout={rec['setting']['compare_timeout']}" in proc.stderr
    assert "rule: fewest checkpoints per minute among settings with held p99 <= 50 ms" in proc.stderr
    assert (tmp_path / "s.svg").read_text().lstrip().startswith("<?xml")
    assert any(r["pareto"] for r in doc["rows"])

    proc = cli(*base, "-o", tmp_path / "s.parquet", "--plot", tmp_path / "s.png")
    df = pd.read_parquet(tmp_path / "s.parquet")
    assert list(df.columns) == list(sw.ROW_COLUMNS) and len(df) == 8
    assert (tmp_path / "s.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    proc = cli(*base)                                    # CSV on stdout, diagnostics on stderr
    csv_rows = proc.stdout.strip().splitlines()
    assert csv_rows[0].startswith("pair,compare_timeout,") and len(csv_rows) == 9
    assert "recommended for primary" in proc.stderr and "recommended" not in proc.stdout.split("\n", 1)[1]

    # no setting meets an impossible bound: exit 1, said so
    proc = cli(*base, "--max-held-p99", "0.0001", "-o", tmp_path / "t.csv")
    assert proc.returncode == 1 and "no setting recommended for primary" in proc.stderr


def test_clean_pair_exits_0(tmp_path):
    recs = _frames(PRIMARY)
    same = write_pcap(tmp_path / "same.pcap", recs, nanos=True)
    proc = cli("sweep", PRIMARY, same, "--compare-timeout", "100,3000", "-o", tmp_path / "s.csv")
    assert proc.returncode == 0, proc.stderr
    rows = pd.read_csv(tmp_path / "s.csv")
    assert (rows["requests"] == 0).all() and (rows["checkpoints"] == 0).all()


def test_pairs_manifest_csv_and_toml(tmp_path):
    import shutil
    for f in (PRIMARY, SECONDARY):
        shutil.copy(f, tmp_path)
    (tmp_path / "pairs.csv").write_text(
        "name,primary,secondary,filter_rewriter,compare_timeout\n"
        "rewritten,primary.pcap,secondary.pcap,true,\n"
        "raw,primary.pcap,secondary.pcap,,\n")
    (tmp_path / "pairs.toml").write_text(
        '[[pair]]\nname = "rewritten"\nprimary = "primary.pcap"\nsecondary = "secondary.pcap"\n'
        'filter_rewriter = true\n\n'
        '[[pair]]\nname = "raw"\nprimary = "primary.pcap"\nsecondary = "secondary.pcap"\n')
    grid = {"expired_scan_cycle": "100,1000"}
    alone = (api.sweep(PRIMARY, SECONDARY, grid=grid, filter_rewriter=True, name="rewritten", jobs=1).rows
             + api.sweep(PRIMARY, SECONDARY, grid=grid, name="raw", jobs=1).rows)
    for manifest in ("pairs.csv", "pairs.toml"):
        pairs = sw.read_manifest(tmp_path / manifest)
        rows = api.sweep(grid=grid, pairs=pairs, jobs=2).rows
        assert [r["pair"] for r in rows] == ["rewritten", "rewritten", "raw", "raw"]
        for mine, theirs in zip(rows, alone):
            theirs = dict(theirs, pareto=mine["pareto"], recommended=mine["recommended"])
            assert _nan_safe([mine]) == _nan_safe([theirs])
        assert rows[0]["requests"] < rows[2]["requests"]       # the rewriter matters: per-pair options applied
    proc = cli("sweep", "--pairs", tmp_path / "pairs.toml", "--expired-scan-cycle", "100,1000", "-o",
               tmp_path / "m.json")
    assert proc.returncode == 1, proc.stderr
    doc = json.loads((tmp_path / "m.json").read_text())
    assert [p["name"] for p in doc["pairs"]] == ["rewritten", "raw"] and len(doc["recommendations"]) == 2
    assert proc.stderr.count("recommended for ") == 2


@pytest.mark.parametrize("text, message", [
    ("name,primary\nx,primary.pcap\n", "row 2: missing secondary"),
    ("name,primary,secondary,colour\nx,a.pcap,b.pcap,red\n", "row 2: unknown field 'colour'"),
    ("name,primary,secondary,filter_rewriter\nx,a.pcap,b.pcap,maybe\n", "row 2: filter_rewriter: 'maybe' is not"),
    ("name,primary,secondary\n", "no pairs"),
])
def test_bad_manifest_is_one_line_exit_2(tmp_path, text, message):
    (tmp_path / "m.csv").write_text(text)
    proc = cli("sweep", "--pairs", tmp_path / "m.csv", "--compare-timeout", "100")
    assert proc.returncode == 2 and message in proc.stderr and proc.stderr.count("\n") == 1, proc.stderr


def test_swept_knob_given_twice_in_a_manifest_is_refused(tmp_path):
    (tmp_path / "m.toml").write_text('[[pair]]\nname = "x"\nprimary = "a"\nsecondary = "b"\ncompare_timeout = 300\n')
    with pytest.raises(ValueError, match="compare_timeout is swept"):
        api.sweep(grid={"compare_timeout": "100"}, pairs=sw.read_manifest(tmp_path / "m.toml"))


def test_readme_sweep_examples(tmp_path):
    """Every ``colo-replay sweep`` of README.md runs (``-o`` and ``--plot`` into tmp_path; a
    ``--dask`` address replaced by a loopback cluster's); the first one's table is the one in
    reports/, its stderr as shown in the README."""
    import re
    import shlex

    from distributed import LocalCluster

    text = (ROOT / "README.md").read_text(encoding="utf-8")
    commands = []
    for block in re.findall(r"^```sh\n(.*?)^```", text, flags=re.S | re.M):
        for line in re.sub(r"\\\n\s*", " ", block).splitlines():
            line = line.split(" #", 1)[0]
            if line.startswith("colo-replay sweep"):
                commands.append(shlex.split(line))
    assert len(commands) >= 3 and any("--dask" in c for c in commands) and any("--pairs" in c for c in commands)
    with LocalCluster(host="127.0.0.1", n_workers=1, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster:
        for n, argv in enumerate(commands):
            args = list(argv[1:])
            for flag, name in (("-o", f"out{n}" + Path(args[args.index("-o") + 1]).suffix),
                               ("--plot", f"plot{n}.svg"), ("--dask", None)):
                if flag in args:
                    args[args.index(flag) + 1] = cluster.scheduler_address if name is None else str(tmp_path / name)
            proc = cli(*args, cwd=ROOT)
            assert proc.returncode == 1, proc.stderr        # the sample pair diverges under every setting
            assert "Traceback" not in proc.stderr and "recommended for " in proc.stderr
            if n == 0:
                mine = json.loads((tmp_path / "out0.json").read_text())
                stored = json.loads((ROOT / "reports" / "sweep-sample.json").read_text())
                assert mine == stored
                assert (tmp_path / "plot0.svg").read_bytes() == (ROOT / "reports" / "sweep-sample.svg").read_bytes()
                shown = re.search(r"```\n(colo-replay: [^`]*?sweep of .*?)```", text, flags=re.S).group(1)
                assert " ".join(shown.split()) == " ".join(proc.stderr.split())


def test_pairs_beyond_the_memory_budget_are_swept_a_group_at_a_time(monkeypatch):
    """Pairs given as readers are prepared (read into memory once); with a budget smaller than
    one pair, each is prepared, swept and dropped in turn: the rows are the same, in the same
    order.  Pairs given as paths hold nothing (each setting reads the files, streamed): they go
    together whatever the budget, with the same rows."""
    from colo_replay.captures import open_capture

    def pairs(readers: bool):
        def cap(path):
            return open_capture(path) if readers else path
        return [{"name": "a", "primary": cap(PRIMARY), "secondary": cap(SECONDARY)},
                {"name": "b", "primary": cap(PRIMARY), "secondary": cap(SECONDARY)}]
    grid = {"compare_timeout": "300"}
    together = api.sweep(grid=grid, pairs=pairs(True), jobs=2).rows
    calls = []
    real_run = sw.run
    monkeypatch.setattr(sw, "run", lambda group, *a, **k: calls.append([type(g).__name__ for g in group])
                        or real_run(group, *a, **k))
    monkeypatch.setattr(sweep_result, "PREPARED_BUDGET", 1)
    apart = api.sweep(grid=grid, pairs=pairs(True), jobs=2).rows
    assert calls == [["PreparedPair"], ["PreparedPair"]]
    assert _nan_safe(apart) == _nan_safe(together)
    calls.clear()
    streamed = api.sweep(grid=grid, pairs=pairs(False), jobs=2).rows
    assert calls == [["StreamedPair", "StreamedPair"]]
    assert _nan_safe(streamed) == _nan_safe(together)


def test_backward_timestamps_with_a_filter_equal_replay(tmp_path):
    """A capture whose timestamps go backwards is not filtered when prepared (the driver filters
    it, as in a replay): rows still equal replay's."""
    from colo_replay.offline.prepared import PreparedPair, prepare

    recs = _frames(SECONDARY)
    i = next(i for i in range(40, len(recs) - 1) if recs[i][0] < recs[i + 1][0])
    recs[i], recs[i + 1] = (recs[i + 1][0], recs[i][1], recs[i][2]), (recs[i][0], recs[i + 1][1], recs[i + 1][2])
    assert recs[i][0] > recs[i + 1][0]
    secondary = str(write_pcap(tmp_path / "back.pcap", recs, nanos=True))
    opened = open_pair(PRIMARY, secondary, Settings(bpf_filter="tcp"))
    assert not PreparedPair("x", prepare(opened.primary), prepare(opened.secondary), opened.options,
                            opened.source).prefiltered
    result = api.sweep(PRIMARY, secondary, grid={"compare_timeout": "150,1500"}, bpf_filter="tcp",
                       with_summary=True, jobs=1)
    _check_rows_equal_replays(tmp_path, PRIMARY, secondary, result.rows, result.summaries, ["--filter", "tcp"])
