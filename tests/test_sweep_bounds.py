"""``colo-replay sweep`` within the machine (issue 24, items 5 and 6): the grid product and ``-j``
capped, a manifest's captures opened a pair at a time, Dask reached with a timeout, Ctrl-C keeping
the rows finished so far (written, marked partial, exit 130), ranges parsed without overflow,
and every bad input one line naming what and where, exit 2, no traceback.

Runaways are bounded by the subprocess timeout and, where memory could run away, RLIMIT_AS."""

from __future__ import annotations

import json
import os
import resource
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

from colo_replay import api
from colo_replay.analysis import sweep as sw
from colo_replay.analysis import sweep_result
from colo_replay.captures import open_capture
from colo_replay.offline.settings import Settings
from tests.support.pcapwrite import write_pcap

REPO = Path(__file__).resolve().parent.parent
PRIMARY = str(REPO / "sample_pcaps" / "primary.pcap")
SECONDARY = str(REPO / "sample_pcaps" / "secondary.pcap")
GiB = 1 << 30


def _limits(memory: int | None = None, files: int | None = None):
    def apply():
        if memory is not None:
            resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
        if files is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (files, files))
    return apply


def _env():
    return dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))


def cli(*args, timeout=60, memory=None, files=None, cwd=None):
    return subprocess.run([sys.executable, "-m", "colo_replay.cli", *map(str, args)], capture_output=True,
                          text=True, timeout=timeout, env=_env(), cwd=cwd or REPO,
                          preexec_fn=_limits(memory, files))


def one_line_error(proc, *parts):
    """Exit 2, exactly one line on stderr (the error), naming each of ``parts``, no traceback."""
    assert "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("colo-replay: error: "), proc.stderr[-2000:]
    for part in parts:
        assert part in proc.stderr, proc.stderr
    return proc.stderr


# -- 1. the grid product is capped before anything is built ---------------------------------------

@pytest.mark.parametrize("grid, product", [
    (["--compare-timeout", "1:100:+1", "--expired-scan-cycle", "1:100:+1", "--max-queue-size", "1:100:+1"],
     "1000000"),
    (["--compare-timeout", "1:10000:+1", "--expired-scan-cycle", "1:10000:+1", "--max-queue-size", "1:10000:+1",
      "--checkpoint-duration", "1:10000:+1", "--checkpoint-delay", "1:10000:+1"], str(10_000 ** 5)),
])
def test_grid_product_over_the_cap_is_one_line_before_any_work(grid, product):
    proc = cli("sweep", PRIMARY, SECONDARY, *grid, "-j", "1", timeout=60, memory=1 * GiB)
    one_line_error(proc, product, str(sweep_result.MAX_SETTINGS), "--max-settings")


def test_max_settings_overrides_the_cap_and_counts_pairs(tmp_path):
    proc = cli("sweep", PRIMARY, SECONDARY, "--compare-timeout", "100,200,300", "--max-settings", "2",
               "-o", tmp_path / "s.csv")
    one_line_error(proc, "3 settings x 1 pair", "cap of 2", "--max-settings")
    assert not (tmp_path / "s.csv").exists()
    proc = cli("sweep", PRIMARY, SECONDARY, "--compare-timeout", "100,200,300", "--max-settings", "3",
               "-j", "1", "-o", tmp_path / "s.csv")
    assert proc.returncode == 1, proc.stderr
    assert len(pd.read_csv(tmp_path / "s.csv")) == 3
    # the API's keyword (run_sweep's; api.sweep passes it on): settings x pairs
    pairs = [{"name": n, "primary": PRIMARY, "secondary": SECONDARY} for n in "abc"]
    with pytest.raises(ValueError, match=r"2 settings x 3 pairs is 6 replays, more than the cap of 5"):
        sweep_result.run_sweep(None, None, {"compare_timeout": "100,200"}, Settings(), pairs=pairs, max_settings=5)
    with pytest.raises(ValueError, match="max_settings"):
        sweep_result.run_sweep(PRIMARY, SECONDARY, {"compare_timeout": "100"}, Settings(), max_settings=0)


def test_grid_size_is_counted_without_building_the_product():
    swept = sw.grid_values({k: "1:10000:+1" for k in sw.KNOBS})
    assert sw.grid_size(swept) == 10_000 ** 5
    with pytest.raises(ValueError, match="more than the cap"):
        sw.grid({k: "1:10000:+1" for k in sw.KNOBS}, max_settings=10 ** 6)


# -- 2. -j is capped at the cores, never more processes than tasks ---------------------------------

def test_jobs_beyond_the_cores_are_reduced_with_a_warning(tmp_path):
    proc = cli("sweep", PRIMARY, SECONDARY, "--compare-timeout", "100:1000:+100", "-j", "1000",
               "-o", tmp_path / "s.csv")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    warning = [line for line in proc.stderr.splitlines() if line.startswith("colo-replay: warning: -j 1000")]
    assert len(warning) == 1 and f"{sw.max_jobs()} " in warning[0], proc.stderr
    assert len(pd.read_csv(tmp_path / "s.csv")) == 10


def test_never_more_worker_processes_than_cores_or_tasks(monkeypatch):
    import concurrent.futures

    started = []
    real = concurrent.futures.ProcessPoolExecutor

    def pool(n, *a, **k):
        started.append(n)
        return real(n, *a, **k)

    monkeypatch.setattr(concurrent.futures, "ProcessPoolExecutor", pool)
    many = api.sweep(PRIMARY, SECONDARY, grid={"compare_timeout": "100:1000:+100"}, jobs=1000).rows
    assert started and max(started) <= sw.max_jobs()
    started.clear()
    api.sweep(PRIMARY, SECONDARY, grid={"compare_timeout": "100"}, jobs=1000)
    assert started == []                       # one task: in this process
    assert len(many) == 10


# -- 3. a manifest's captures are opened a pair at a time ------------------------------------------

def _tiny_pair(tmp_path):
    recs = [(t, f) for _, t, f, _, _ in open_capture(PRIMARY)][:30]
    sec = [(t, f) for _, t, f, _, _ in open_capture(SECONDARY)][:30]
    write_pcap(tmp_path / "p.pcap", recs, nanos=True)
    write_pcap(tmp_path / "s.pcap", sec, nanos=True)


def test_a_manifest_of_many_pairs_opens_them_a_few_at_a_time(tmp_path):
    _tiny_pair(tmp_path)
    n = 150
    (tmp_path / "m.csv").write_text("name,primary,secondary\n"
                                    + "".join(f"pair{i},p.pcap,s.pcap\n" for i in range(n)))
    # 150 pairs opened at once would be 300 descriptors: far beyond a limit of 64
    proc = cli("sweep", "--pairs", tmp_path / "m.csv", "--compare-timeout", "300", "-j", "1",
               "-o", tmp_path / "out.csv", files=64, timeout=120)
    assert proc.returncode in (0, 1) and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert len(pd.read_csv(tmp_path / "out.csv")) == n


def test_every_pair_is_checked_before_any_is_read(tmp_path, monkeypatch):
    from colo_replay.offline import prepared

    _tiny_pair(tmp_path)
    rows = ["good,p.pcap,s.pcap,", "alsogood,p.pcap,s.pcap,", "late,p.pcap,missing.pcap,"]
    (tmp_path / "m.csv").write_text("name,primary,secondary,peer_isn\n" + "\n".join(rows) + "\n")
    proc = cli("sweep", "--pairs", tmp_path / "m.csv", "--compare-timeout", "300", "-j", "1")
    one_line_error(proc, "m.csv: row 4", "missing.pcap", "No such file or directory")
    # a setting refused for the last pair: refused before the first pair is read
    (tmp_path / "m.csv").write_text("name,primary,secondary,peer_isn\n" + "\n".join(rows[:2])
                                    + "\nlate,p.pcap,s.pcap,true\n")
    prepared_calls = []
    real = prepared.prepare
    monkeypatch.setattr(prepared, "prepare", lambda r: prepared_calls.append(r) or real(r))
    with pytest.raises(ValueError, match=r"m.csv: row 4 \(pair 'late'\): .*peer"):
        api.sweep(grid={"compare_timeout": "300"}, pairs=sw.read_manifest(tmp_path / "m.csv"), jobs=1)
    assert prepared_calls == []
    proc = cli("sweep", "--pairs", tmp_path / "m.csv", "--compare-timeout", "300", "-j", "1")
    one_line_error(proc, "m.csv: row 4 (pair 'late')")


# -- 4. Dask: a timeout and one line ---------------------------------------------------------------

@pytest.mark.parametrize("address", ["127.0.0.1:1", "tcp://127.0.0.1:1"])
def test_unreachable_dask_is_one_line_within_the_timeout(address):
    proc = cli("sweep", PRIMARY, SECONDARY, "--compare-timeout", "100", "--dask", address,
               timeout=sw.DASK_TIMEOUT_S + 20)
    one_line_error(proc, f"--dask {address}")


@pytest.mark.parametrize("banner", [None, b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n"])
def test_a_listener_that_is_no_dask_scheduler_is_one_line(banner):
    """A port that accepts and never speaks (distributed's handshake has no timeout of its own),
    or speaks another protocol (its first bytes read as an exabyte frame length)."""
    conns = []
    with socket.socket() as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen(8)
        port = srv.getsockname()[1]

        def serve():
            while True:
                try:
                    conn, _ = srv.accept()
                except OSError:
                    return
                conns.append(conn)
                if banner:
                    conn.sendall(banner)

        threading.Thread(target=serve, daemon=True).start()
        proc = cli("sweep", PRIMARY, SECONDARY, "--compare-timeout", "100", "--dask", f"tcp://127.0.0.1:{port}",
                   timeout=sw.DASK_TIMEOUT_S + 20, memory=2 * GiB)
    for conn in conns:
        conn.close()
    one_line_error(proc, f"--dask tcp://127.0.0.1:{port}")


def test_a_scheduler_without_workers_is_one_line():
    from distributed import LocalCluster

    with LocalCluster(host="127.0.0.1", n_workers=0, processes=True, dashboard_address=None) as cluster:
        proc = cli("sweep", PRIMARY, SECONDARY, "--compare-timeout", "100", "--dask", cluster.scheduler_address,
                   timeout=sw.DASK_TIMEOUT_S + 30)
    one_line_error(proc, f"--dask {cluster.scheduler_address}", "no worker")


# -- 5. Ctrl-C: the rows finished so far, written and marked partial, exit 130 ----------------------

def _interrupt(args, after_s=4.0):
    proc = subprocess.Popen([sys.executable, "-m", "colo_replay.cli", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=_env(), cwd=REPO, start_new_session=True)
    time.sleep(after_s)
    os.killpg(proc.pid, signal.SIGINT)         # as a terminal's Ctrl-C: the parent and its workers
    out, err = proc.communicate(timeout=60)
    return proc.returncode, out, err


GRID_4000 = ["--compare-timeout", "1:4000:+1"]          # ~10 ms a setting: far longer than the wait


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_ctrl_c_writes_the_rows_so_far_marked_partial(tmp_path, jobs):
    out = tmp_path / "s.csv"
    (tmp_path / "s.csv.partial").write_text("stale\n")
    code, _, err = _interrupt(["sweep", PRIMARY, SECONDARY, *GRID_4000, "-j", jobs, "-o", out])
    assert code == 130, err
    assert "Traceback" not in err, err
    first = err.splitlines()[0]
    assert first.startswith("colo-replay: error: interrupted"), err
    rows = pd.read_csv(out)
    assert 0 < len(rows) < 4000
    assert rows["compare_timeout"].is_unique
    sidecar = (tmp_path / "s.csv.partial").read_text()
    assert sidecar.startswith("interrupted") and f"{len(rows)} of 4000" in sidecar
    # a complete run removes the stale sidecar
    proc = cli("sweep", PRIMARY, SECONDARY, "--compare-timeout", "100", "-j", "1", "-o", out)
    assert proc.returncode == 1 and not (tmp_path / "s.csv.partial").exists()


def test_ctrl_c_json_and_parquet_say_partial(tmp_path):
    code, _, err = _interrupt(["sweep", PRIMARY, SECONDARY, *GRID_4000, "-j", "2", "-o", tmp_path / "s.json"])
    assert code == 130 and "Traceback" not in err, err
    doc = json.loads((tmp_path / "s.json").read_text())
    assert doc["partial"] is True and doc["interrupted"] is True and doc["error"].startswith("interrupted")
    assert 0 < len(doc["rows"]) < 4000 == doc["settings"]
    code, _, err = _interrupt(["sweep", PRIMARY, SECONDARY, *GRID_4000, "-j", "1", "-o", tmp_path / "s.parquet"])
    assert code == 130 and "Traceback" not in err, err
    import pyarrow.parquet as pq
    meta = pq.read_schema(tmp_path / "s.parquet").metadata
    assert meta[b"colo_replay.partial"] == b"true" and meta[b"colo_replay.error"].startswith(b"interrupted")


def test_ctrl_c_on_stdout_keeps_the_rows_and_says_so(tmp_path):
    code, out, err = _interrupt(["sweep", PRIMARY, SECONDARY, *GRID_4000, "-j", "1"])
    assert code == 130 and "Traceback" not in err, err
    assert err.startswith("colo-replay: error: interrupted")
    lines = out.strip().splitlines()
    assert lines[0].startswith("pair,") and 1 < len(lines) < 4001


def test_ctrl_c_on_dask_keeps_the_rows_gathered(tmp_path):
    """The tasks are gathered as they finish: on Ctrl-C those finished are kept, the rest
    cancelled, and distributed leaves no traceback on stderr (an interrupted gather did)."""
    from distributed import LocalCluster

    with LocalCluster(host="127.0.0.1", n_workers=1, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster:
        code, _, err = _interrupt(["sweep", PRIMARY, SECONDARY, *GRID_4000, "--dask", cluster.scheduler_address,
                                   "-o", tmp_path / "s.json"], after_s=10)
    assert code == 130 and "Traceback" not in err, err
    assert err.startswith("colo-replay: error: interrupted")
    doc = json.loads((tmp_path / "s.json").read_text())
    assert doc["partial"] is True and 0 < len(doc["rows"]) < 4000
    cts = [r["compare_timeout"] for r in doc["rows"]]
    assert cts == sorted(set(cts))


def test_api_interrupt_returns_the_rows_so_far(monkeypatch):
    """In this process: a KeyboardInterrupt during the third replay ends the sweep there."""
    real = sw.run_one
    calls = []

    def run_one(pair, setting, with_summary=False):
        calls.append(setting)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(pair, setting, with_summary)

    monkeypatch.setattr(sw, "run_one", run_one)
    result = api.sweep(PRIMARY, SECONDARY, grid={"compare_timeout": "100:1000:+100"}, jobs=1)
    assert result.interrupted and result.exit_status == 130
    assert [r["compare_timeout"] for r in result.rows] == [100, 200]
    assert result.to_dict()["partial"] is True and "2 of 10" in result.error


# -- 6. ranges and multipliers without overflow ----------------------------------------------------

BIG = "1" * 400


@pytest.mark.parametrize("option, spec", [
    ("--compare-timeout", "100:3000:xinf"),
    ("--compare-timeout", "100:3000:x1e308"),
    ("--compare-timeout", "100:3000:x" + "9" * 400),
    ("--compare-timeout", "100:3000:+inf"),
    ("--compare-timeout", "100:3000:xnan"),
    ("--compare-timeout", "nan"),
    ("--compare-timeout", "inf"),
    ("--compare-timeout", "1:1e300:+1"),
    ("--compare-timeout", "1:1000000000000000000000000000000:+1"),
    ("--compare-timeout", "1:100000000000:+1"),
    ("--compare-timeout", "100:3000:x1.0000000001"),
    ("--compare-timeout", BIG),
    ("--max-queue-size", "1:" + BIG + ":x2"),
    ("--checkpoint-duration", BIG),
    ("--checkpoint-duration", "1s:" + BIG + "s:+1ms"),
    ("--checkpoint-delay", "0:" + BIG + ":+1s"),
])
def test_absurd_ranges_are_one_line_naming_the_option(option, spec):
    proc = cli("sweep", PRIMARY, SECONDARY, option, spec, "-j", "1", timeout=60, memory=1 * GiB)
    one_line_error(proc, option, spec[:20])
    assert len(proc.stderr) < 400, proc.stderr


def test_value_counts_are_known_before_the_values_are_made():
    assert sw.count_values("compare_timeout", "1:100000000000:+1") == 100_000_000_000
    assert sw.count_values("compare_timeout", "100:3000:x2,7") == 6
    with pytest.raises(ValueError, match="more than 10000 values"):
        sw.parse_values("compare_timeout", "1:100000000000:+1")


# -- 7. messages name the manifest row ------------------------------------------------------------

@pytest.mark.parametrize("name, text, parts", [
    ("dup.csv", "name,primary,secondary\nx,a,b\ny,a,b\nx,c,d\n", ["dup.csv: row 4", "'x'", "row 2"]),
    ("dup.toml", '[[pair]]\nname="x"\nprimary="a"\nsecondary="b"\n[[pair]]\nname="x"\nprimary="a"\nsecondary="b"\n',
     ["dup.toml: [[pair]] 2", "'x'", "[[pair]] 1"]),
    ("nul.csv", "name,primary,secondary\nx,a\x00b,c\n", ["nul.csv: row 2", "primary", "NUL"]),
    ("notab.toml", "pair = [1, 2]\n", ["notab.toml: [[pair]] 1", "not a table"]),
    ("types.toml", '[[pair]]\nname = "x"\nprimary = {x = 1}\nsecondary = "b"\n',
     ["types.toml: [[pair]] 1", "primary"]),
    ("big.csv", "name,primary,secondary\n" + "a" * 200_000 + ",a,b\n", ["big.csv", "line 2"]),
    ("deep.toml", "a = " + "[" * 100_000, ["deep.toml", "not TOML", "nested too deep"]),    # (was RecursionError)
    # a checkpoints_at file that cannot be read: the row and the field (the line named the file only)
    ("ckdir.csv", "name,primary,secondary,checkpoints_at\nx,a,b,.\n", ["ckdir.csv: row 2", "checkpoints_at",
                                                                     "Is a directory"]),
    ("cktable.toml", '[[pair]]\nname="x"\nprimary="a"\nsecondary="b"\ncheckpoints_at={x="."}\n',    # (was "in/{'x': '.'}")
     ["cktable.toml: [[pair]] 1", "checkpoints_at", "not a path"]),
    ("ckmissing.toml", '[[pair]]\nname="x"\nprimary="a"\nsecondary="b"\ncheckpoints_at="none.txt"\n',
     ["ckmissing.toml: [[pair]] 1", "checkpoints_at", "none.txt", "No such file"]),
])
def test_manifest_messages_name_the_row(tmp_path, name, text, parts):
    (tmp_path / name).write_text(text)
    proc = cli("sweep", "--pairs", tmp_path / name, "--compare-timeout", "100")
    one_line_error(proc, *parts)


@pytest.mark.parametrize("suffix", [".csv", ".toml"])
def test_binary_manifest_is_named(tmp_path, suffix):
    path = tmp_path / ("bin" + suffix)
    path.write_bytes(Path(PRIMARY).read_bytes()[:300])
    proc = cli("sweep", "--pairs", path, "--compare-timeout", "100")
    one_line_error(proc, str(path), "UTF-8", "line 1")
    # a bad byte further on: its line (text mode decodes ahead of the row being read)
    good = ("name,primary,secondary\nx,a,b\n" if suffix == ".csv" else '[[pair]]\nname = "x"\n').encode()
    path.write_bytes(good + b'y,\xff\xfe,c\n' if suffix == ".csv" else good + b'primary = "\xff"\n')
    proc = cli("sweep", "--pairs", path, "--compare-timeout", "100")
    one_line_error(proc, str(path), "line 3: not UTF-8", f"byte offset {len(good) + (2 if suffix == '.csv' else 11)}")


def test_api_pairs_name_their_index():
    pairs = [{"name": "a", "primary": PRIMARY, "secondary": SECONDARY},
             {"name": "a", "primary": PRIMARY, "secondary": SECONDARY}]
    with pytest.raises(ValueError, match=r"pairs\[1\]: name 'a' is already that of pairs\[0\]"):
        api.sweep(grid={"compare_timeout": "100"}, pairs=pairs)
    with pytest.raises(ValueError, match=r"pairs\[0\]: no name"):
        api.sweep(grid={"compare_timeout": "100"}, pairs=[{"primary": PRIMARY, "secondary": SECONDARY}])


@pytest.mark.parametrize("value", ["nan", "-5"])
def test_max_held_p99_must_be_a_number_of_ms(value):
    proc = cli("sweep", PRIMARY, SECONDARY, "--compare-timeout", "100", "--max-held-p99", value)
    one_line_error(proc, "--max-held-p99", value)


# -- many rows: the front and the recommendations in n log n -------------------------------------

def _brute_pareto(rows):
    marks = []
    for r in rows:
        p = sw._point(r)
        marks.append(p is not None and not any(
            (q := sw._point(o)) is not None and o is not r and o["pair"] == r["pair"]
            and q[0] <= p[0] and q[1] <= p[1] and (q[0] < p[0] or q[1] < p[1]) for o in rows))
    return marks


def test_pareto_in_one_pass_equals_the_definition():
    import random

    rng = random.Random(24)
    for _ in range(200):
        rows = [{"pair": rng.choice("abc"), "checkpoints_per_min": rng.choice([rng.randint(0, 5), float("nan")]),
                 "held_p99_ms": rng.choice([rng.randint(0, 5), rng.randint(0, 5), float("nan")]), "partial": False}
                for _ in range(rng.randint(0, 25))]
        assert sw.pareto(rows) == _brute_pareto(rows), rows


def test_a_sweep_of_many_pairs_is_marked_in_n_log_n():
    """200,000 rows of 100,000 pairs: the front, the recommendations and the marks (n^2 before:
    4 * 10^10 comparisons)."""
    code = ("import random\n"
            "from colo_replay.analysis import sweep as sw\n"
            "rng = random.Random(1)\n"
            "rows = [{'pair': f'p{i // 2}', 'checkpoints_per_min': rng.random(), 'held_p99_ms': rng.random(),\n"
            "         'partial': False, **{c: 1 for c in sw.KNOB_COLUMNS}} for i in range(200_000)]\n"
            "recs = sw.recommend(rows, 0.5)\n"
            "sw.mark(rows, recs)\n"
            "print(sum(r['pareto'] for r in rows), len(recs))\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=_env(),
                          preexec_fn=_limits(memory=2 * GiB))
    assert proc.returncode == 0, proc.stderr[-2000:]
    front, recs = map(int, proc.stdout.split())
    assert recs == 100_000 and 100_000 <= front <= 200_000


def test_the_memory_budget_is_counted_once_a_pair(tmp_path, monkeypatch):
    """Each pair's bytes are added to the group's once (summed over the whole group for every
    new pair before: n^2 for a manifest of many small pairs)."""
    from colo_replay.offline.prepared import PreparedCapture

    _tiny_pair(tmp_path)
    calls = []
    real = PreparedCapture.nbytes
    monkeypatch.setattr(PreparedCapture, "nbytes", property(lambda self: calls.append(1) or real.fget(self)))
    pairs = [{"name": f"p{i}", "primary": str(tmp_path / "p.pcap"), "secondary": str(tmp_path / "s.pcap")}
             for i in range(60)]
    rows = api.sweep(grid={"compare_timeout": "300"}, pairs=pairs, jobs=1).rows
    assert len(rows) == 60
    assert len(calls) <= 2 * 60


@pytest.mark.parametrize("kw, message", [
    ({"jobs": "4"}, r"jobs '4': must be a whole number"),
    ({"jobs": 0}, r"jobs 0: must be a whole number"),
    ({"start_method": "threads"}, r"start_method 'threads': must be fork, spawn or forkserver"),
    ({"max_held_p99": float("nan")}, r"--max-held-p99 nan: must be a number at or above 0"),
    ({"max_settings": 2.5}, r"max_settings 2.5: must be a whole number"),
])
def test_api_arguments_are_refused_by_name(kw, message):
    with pytest.raises(ValueError, match=message):
        sweep_result.run_sweep(PRIMARY, SECONDARY, {"compare_timeout": "100"}, Settings(), **kw)


# -- outputs never replace an input (issue 24, 1: README "Outputs never destroy inputs") ---------

@pytest.mark.parametrize("target", ["manifest", "capture", "checkpoints", "plot-is-output"])
def test_sweep_outputs_never_replace_an_input(tmp_path, target):
    import shutil

    for f in (PRIMARY, SECONDARY):
        shutil.copy(f, tmp_path)
    (tmp_path / "flush.txt").write_text("")
    (tmp_path / "m.csv").write_text("name,primary,secondary,checkpoints_at\nx,primary.pcap,secondary.pcap,"
                                    "flush.txt\n")
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    out = {"manifest": "m.csv", "capture": "secondary.pcap", "checkpoints": "flush.txt",
           "plot-is-output": "s.csv"}[target]
    link = tmp_path / ("plot.svg" if target == "plot-is-output" else "out.csv")   # the file a symlink names
    os.symlink(tmp_path / out, link)
    args = ["sweep", "--pairs", tmp_path / "m.csv", "--compare-timeout", "300", "-j", "1"]
    if target == "plot-is-output":
        args += ["-o", tmp_path / "s.csv", "--plot", link]
        message = "name the same file"
    else:
        args += ["-o", link]
        message = "destroy the input"
    proc = cli(*args)
    one_line_error(proc, message)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.name in before} == before


def test_sweep_outputs_are_written_beside_and_renamed(tmp_path, monkeypatch):
    """A write that fails leaves the file that was there (the table is written beside it and
    renamed into place once complete), for the table and the plot; no temporary file is left."""
    import shutil

    import matplotlib.figure
    import pandas.core.generic

    for f in (PRIMARY, SECONDARY):
        shutil.copy(f, tmp_path)
    secondary = tmp_path / "secondary.pcap"
    result = api.sweep(str(tmp_path / "primary.pcap"), str(secondary), grid={"compare_timeout": "300,3000"}, jobs=1)

    def boom(*a, **k):
        raise OSError(28, "No space left on device")

    for name in ("s.csv", "s.json", "s.parquet", "s.svg"):
        path = tmp_path / name
        path.write_text("the old file\n")
        with monkeypatch.context() as m:
            m.setattr(pandas.core.generic.NDFrame, "to_csv", boom)
            m.setattr(pd.DataFrame, "to_parquet", boom)
            m.setattr(json, "dump", boom)
            m.setattr(matplotlib.figure.Figure, "savefig", boom)
            with pytest.raises(OSError):
                result.plot(path) if name.endswith(".svg") else result.write(path)
        assert path.read_text() == "the old file\n", name
        assert not [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")], name
        result.plot(path) if name.endswith(".svg") else result.write(path)
        assert path.read_bytes() != b"the old file\n"
    assert not [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    # the API refuses to write over the captures too
    before = secondary.read_bytes()
    with pytest.raises(ValueError, match="destroy the input"):
        result.write(secondary)
    with pytest.raises(ValueError, match="destroy the input"):
        result.plot(secondary)
    assert secondary.read_bytes() == before


@pytest.mark.parametrize("names", [["x" * 10_000, "y" * 10_000], ["名前", "ペア"]])
def test_plot_of_pairs_with_long_names_is_bounded_and_quiet(tmp_path, names):
    """Pair names of 10,000 characters (a manifest may hold any): the plot's legend and title cut
    them, so matplotlib does not warn on stderr that its layout cannot fit them (it did, with a
    2.4 MB SVG); names in a script the font lacks are drawn as boxes, without matplotlib's glyph
    warnings on stderr (found by tests/test_fuzz_saved_inputs.py)."""
    (tmp_path / "m.csv").write_text("name,primary,secondary\n" + "".join(f"{n},{PRIMARY},{SECONDARY}\n"
                                                                        for n in names))
    proc = cli("sweep", "--pairs", tmp_path / "m.csv", "--compare-timeout", "1000", "-j", "1", "-o",
               tmp_path / "s.csv", "--plot", tmp_path / "p.svg")
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert all(line.startswith("colo-replay: ") for line in proc.stderr.splitlines()), proc.stderr[:2000]
    assert (tmp_path / "p.svg").stat().st_size < 200_000


def test_plot_of_thousands_of_pairs_draws_a_bounded_number_of_artists():
    """5,000 pairs (a sweep JSON given to report --sweep, or a manifest under --max-settings):
    the pairs beyond the labelled ones share one scatter and one line collection (an artist per
    pair took 30 s to draw; found by tests/test_fuzz_saved_inputs.py's kind of input)."""
    import matplotlib.pyplot as plt

    one = {"checkpoints_per_min": 60.0, "held_p99_ms": 100.0, "pareto": True}
    rows = [{**one, "pair": f"p{k}", "checkpoints_per_min": 60.0 + s} for k in range(5000) for s in (0, 1)]
    recs = [sw.Recommendation(pair=f"p{k}", rule="r", row=2 * k, setting={"compare_timeout": 1000})
            for k in range(5000)]
    fig = sw.figure(rows, recs)
    try:
        ax = fig.axes[0]
        assert len(ax.collections) + len(ax.lines) <= 2 * sw._LABELLED + sw._LABELLED + 2
    finally:
        plt.close(fig)
