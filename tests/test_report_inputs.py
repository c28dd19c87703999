"""Hostile saved inputs to ``colo-replay report`` (issue 24, items 2, 6 and 7): a saved timeline
(Parquet, CSV, JSON Lines), a summary, a baseline and a sweep JSON, each mutated the way a new
user (or a broken disk) would, through the real command line in a child process.

The contract, checked for every case of the table: exit status 2, exactly one line on stderr,
``colo-replay: error: `` naming the file and where in it (row / line / column / key path / byte
offset), no traceback, no output written; the time bound is the child's timeout and the memory
bound its address-space limit (``RLIMIT_AS``), so a runaway fails the test instead of eating the
machine.  Then what is accepted must cost nothing more for a hostile *value*: an accepted time
gap of ten years, a connection number of 2^31 - 1.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parent.parent
SAMPLE_TIMELINE = ROOT / "reports" / "sample-timeline.parquet"
SAMPLE_SUMMARY = ROOT / "reports" / "sample-summary.json"
SAMPLE_SWEEP = ROOT / "reports" / "sweep-sample.json"
PRIMARY = ROOT / "sample_pcaps" / "primary.pcap"

MEMORY_LIMIT = 2 << 30          # bytes of address space for the child
TIMEOUT_S = 45                  # a report of the sample takes ~1 s; the runaway passed 20 s
TEN_YEARS_NS = 10 * 365 * 86_400 * 10**9


def _limit_memory():
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


def cli(*args, cwd):
    """``python -m colo_replay.cli ARGS`` in ``cwd``, bounded in time and memory."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "colo_replay.cli", *map(str, args)], capture_output=True,
                          text=True, env=env, cwd=cwd, timeout=TIMEOUT_S, preexec_fn=_limit_memory)


def sample_frame() -> pd.DataFrame:
    """The sample timeline with plain columns (strings for kind / cause / side), for editing."""
    df = pd.read_parquet(SAMPLE_TIMELINE)
    for c in ("kind", "cause", "side"):
        df[c] = df[c].astype(str)
    return df


def sample_summary() -> dict:
    return json.loads(SAMPLE_SUMMARY.read_text())


def sample_baseline() -> dict:
    return json.loads((ROOT / "reports" / "sample-report.json").read_text())


def sample_sweep() -> dict:
    return json.loads(SAMPLE_SWEEP.read_text())


def write_timeline(df: pd.DataFrame, path: Path) -> Path:
    s = str(path)
    if s.endswith(".parquet"):
        df.to_parquet(path, index=False)
    elif s.endswith(".csv"):
        df.to_csv(path, index=False)
    else:
        df.to_json(path, orient="records", lines=True)
    return path


def edited(**cells):
    """A timeline builder: the sample with ``{column: {row index: value}}`` changed."""
    def build(df):
        df = df.astype(object)
        for col, changes in cells.items():
            for i, v in changes.items():
                df.loc[i if i >= 0 else len(df) + i, col] = v
        return df
    return build


# -- the table ------------------------------------------------------------------------------------
# id -> (what to write, the arguments after "report", what the one line must contain)

def _timeline_case(name, build, *fragments, summary=False):
    def make(tmp):
        path = write_timeline(build(sample_frame()), tmp / name)
        args = ["--timeline", path.name]
        if summary:
            (tmp / "s.json").write_text(json.dumps(sample_summary()))
            args += ["--summary", "s.json"]
        return args, name, fragments
    return make


def _text_case(name, text: str, *fragments):
    def make(tmp):
        (tmp / name).write_text(text)
        return ["--timeline", name], name, fragments
    return make


def _parquet_bomb(tmp):
    """32M rows of one repeated event in a file of a few hundred KB (dictionary + run-length
    encoding): the rows a reader would allocate are not bounded by the file's size."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    one = sample_frame().iloc[[1]]
    block = pa.Table.from_pandas(pd.concat([one] * 1024, ignore_index=True), preserve_index=False)
    block = pa.concat_tables([block] * 1024).combine_chunks()          # 1M rows
    with pq.ParquetWriter(tmp / "t.parquet", block.schema, use_dictionary=True) as w:
        for _ in range(32):
            w.write_table(block)
    return ["--timeline", "t.parquet"], "t.parquet", ("rows",)


def _parquet_corrupt_footer(tmp):
    """Four bytes of the sample's footer (its thrift metadata) inverted: pyarrow raises an OSError
    without an errno, which is about the file's content, not about opening it."""
    data = bytearray(SAMPLE_TIMELINE.read_bytes())
    for i in range(len(data) - 18, len(data) - 14):
        data[i] ^= 0xFF
    (tmp / "t.parquet").write_bytes(bytes(data))
    return ["--timeline", "t.parquet"], "t.parquet", ("not a readable timeline",)


def _csv_not_utf8(tmp):
    """The sample CSV with one byte of its third data row's kind made Latin-1: named by its offset
    in the file (pandas' own message counts from the start of its chunk)."""
    p = write_timeline(sample_frame(), tmp / "t.csv")
    data = p.read_bytes()
    third = data.index(b"\n", data.index(b"\n", data.index(b"\n") + 1) + 1) + 1
    at = data.index(b",", third) + 2            # inside the kind of data row 3
    p.write_bytes(data[:at] + b"\xe9" + data[at + 1:])
    return ["--timeline", "t.csv"], "t.csv", ("not UTF-8 text", f"byte offset {at}")


def _bytes_case(name, data: bytes, *fragments):
    def make(tmp):
        (tmp / name).write_bytes(data)
        return ["--timeline", name], name, fragments
    return make


def _edited_text(name, edit, *fragments):
    """The sample timeline written as ``name``, its lines (without line ends) edited by ``edit``."""
    def make(tmp):
        p = write_timeline(sample_frame(), tmp / name)
        p.write_text("\n".join(edit(p.read_text().splitlines())) + "\n")
        return ["--timeline", name], name, fragments
    return make


def _json_case(option, name, data, *fragments):
    """--summary (with the sample timeline), --baseline or --sweep (with the sample timeline and
    summary as the run) given ``data``: a dict / list (dumped), str (written as is) or bytes."""
    def make(tmp):
        p = tmp / name
        if isinstance(data, bytes):
            p.write_bytes(data)
        elif isinstance(data, str):
            p.write_text(data)
        else:
            p.write_text(json.dumps(data() if callable(data) else data))
        args = ["--timeline", str(SAMPLE_TIMELINE)]
        if option == "--summary":
            args += ["--summary", name]
        else:
            args += ["--summary", str(SAMPLE_SUMMARY), option, name]
        return args, name, fragments
    return make


def _with(base, path: str, value):
    """A builder: ``base()`` with the value at the dotted ``path`` (``a.b``, ``rows.0.pair``) replaced."""
    def build():
        d = base()
        keys = path.split(".")
        obj = d
        for k in keys[:-1]:
            obj = obj[int(k)] if isinstance(obj, list) else obj[k]
        last = keys[-1]
        if isinstance(obj, list):
            obj[int(last)] = value
        elif value is _DELETE:
            del obj[last]
        else:
            obj[last] = value
        return d
    return build


_DELETE = object()
BINARY = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe"
DEEP = "[" * 100_000 + "]" * 100_000

CASES = {
    # time gaps: a row at time 0, a row ten years late (the runaway of issue 24, item 2)
    "csv-row-at-time-0": _timeline_case("t.csv", edited(time_ns={0: 0}), "line 2", "row 1", "gap"),
    "csv-row-ten-years-late": _timeline_case(
        "t.csv", lambda df: edited(time_ns={-1: int(df["time_ns"].iloc[-1]) + TEN_YEARS_NS})(df),
        "line 385", "row 384", "gap"),
    "parquet-row-at-time-0": _timeline_case("t.parquet", lambda df: edited(time_ns={5: 0})(df).astype(
        {"time_ns": "int64"}), "row 6", "gap", summary=True),
    "jsonl-row-ten-years-late": _timeline_case(
        "t.jsonl", lambda df: edited(time_ns={-1: int(df["time_ns"].iloc[-1]) + TEN_YEARS_NS})(df),
        "line 384", "gap"),
    # types, columns, values
    "csv-string-in-int-column": _timeline_case("t.csv", edited(primary_frame={0: "zz"}), "line 2", "row 1",
                                               "primary_frame", "'zz'"),
    "csv-fraction-in-int-column": _timeline_case("t.csv", edited(held_ns={9: 1.5}), "line 11", "row 10",
                                                 "held_ns", "1.5"),
    "csv-empty-cell": _timeline_case("t.csv", edited(size={3: ""}), "line 5", "row 4", "size", "missing"),
    "csv-conn-out-of-range": _timeline_case("t.csv", edited(conn={3: 10**12}), "line 5", "row 4", "conn",
                                            "out of range"),
    "csv-time-beyond-int64": _timeline_case("t.csv", edited(time_ns={7: 2**64}), "line 9", "row 8", "time_ns",
                                            "out of range"),
    "csv-integer-of-2m-digits": _edited_text(          # int() refuses > 4300 digits: was a line naming nothing
        "t.csv", lambda lines: lines[:5] + [",".join(["1" * 2_000_000] + lines[5].split(",")[1:])] + lines[6:],
        "line 6", "row 5", "time_ns", "out of range"),
    "csv-unknown-kind": _timeline_case("t.csv", edited(kind={2: "zz"}), "line 4", "row 3", "kind", "'zz'"),
    "csv-unknown-column": _timeline_case("t.csv", lambda df: df.assign(extra=1), "unknown column", "extra"),
    "csv-missing-column": _timeline_case("t.csv", lambda df: df.drop(columns=["held_ns"]), "missing column",
                                         "held_ns"),
    "csv-ragged-row": _edited_text("t.csv", lambda lines: lines[:3] + [lines[3] + ",5"] + lines[4:], "line 4",
                                   "14 fields"),
    "csv-ragged-row-with-a-long-field": _edited_text("t.csv", lambda lines: lines[:3] + [lines[3] + "," + "x" * 200_000]
                                                     + lines[4:], "line 4", "14 fields"),   # (csv's 128 KiB limit)
    "jsonl-string-in-int-column": _timeline_case("t.jsonl", edited(conn={4: "zz"}), "line 5", "conn", "'zz'"),
    "jsonl-missing-key": _timeline_case("t.jsonl", lambda df: df.drop(columns=["detail"]), "missing column",
                                        "detail"),
    "jsonl-row-without-a-key": _edited_text("t.jsonl", lambda lines: lines[:4] + [lines[4].replace(',"detail":0', '')]
                                            + lines[5:], "line 5", "detail", "missing"),
    "jsonl-list-value": _timeline_case("t.jsonl", edited(detail={6: [1, 2]}), "line 7", "detail", "list"),
    "jsonl-not-json-line": _text_case("t.jsonl", '{"time_ns": 1}\n{"time_ns": 2\n', "line 2", "JSON"),
    "json-array-not-lines": _text_case("t.json", '[\n {"time_ns": 1}\n]\n', "line 1", "one JSON object a line"),
    "jsonl-not-an-object": _text_case("t.jsonl", '{"time_ns": 1}\n[1, 2]\n', "line 2", "object"),
    "jsonl-huge-int": _text_case("t.jsonl", '{"time_ns": 1}\n{"time_ns": 18446744073709551616}\n', "line 2"),
    "parquet-string-column": _timeline_case("t.parquet", lambda df: edited(conn={0: "zz"})(
        df.assign(conn=df["conn"].astype(str))), "row 1", "conn", "'zz'"),
    "parquet-fraction": _timeline_case("t.parquet", lambda df: edited(size={2: 1.5})(df).astype({"size": "float64"}),
                                       "row 3", "size", "1.5"),
    "csv-not-utf8": _csv_not_utf8,
    "jsonl-binary": _bytes_case("t.jsonl", BINARY, "not UTF-8 text", "byte offset 0"),
    "parquet-bomb": _parquet_bomb,
    "parquet-corrupt-footer": _parquet_corrupt_footer,
    "parquet-not-parquet": _text_case("t.parquet", "time_ns,kind\n", "not a readable timeline"),
    # summaries
    "summary-binary": _json_case("--summary", "s.json", BINARY, "not UTF-8 text", "byte offset 0"),
    "summary-invalid-utf8-later": _json_case("--summary", "s.json", b'{"profile": "7.2\xff"}',
                                             "not UTF-8 text", "byte offset 16"),
    "summary-bad-json": _json_case("--summary", "s.json", '{"profile": "7.2",\n "knobs": }', "line 2",
                                   "column 11"),
    "summary-empty": _json_case("--summary", "s.json", "", "empty"),
    "summary-too-deep": _json_case("--summary", "s.json", DEEP, "nested"),
    "summary-a-list": _json_case("--summary", "s.json", [1, 2], "object"),
    "summary-not-a-summary": _json_case("--summary", "s.json", {"a": 1}, "not a colo-replay summary"),
    "summary-a-report": _json_case("--summary", "s.json", sample_baseline, "colo-replay-report/1"),
    "summary-newer-schema": _json_case("--summary", "s.json", _with(sample_summary, "schema",
                                                                    "colo-replay-summary/9"), "colo-replay-summary/9"),
    "summary-knobs-a-list": _json_case("--summary", "s.json", _with(sample_summary, "knobs", []),
                                       "knobs: expected an object, got a list"),
    "summary-profile-a-number": _json_case("--summary", "s.json", _with(sample_summary, "profile", 7.2),
                                           "profile: expected a string, got a number"),
    "summary-frames-a-string": _json_case("--summary", "s.json", _with(sample_summary, "frames.primary", "167"),
                                          "frames.primary: expected an integer, got a string"),
    "summary-warnings-a-number": _json_case("--summary", "s.json", _with(sample_summary, "warnings", 5),
                                            "warnings: expected a list, got a number"),
    "summary-capture-a-list": _json_case("--summary", "s.json", _with(sample_summary, "captures.primary", []),
                                         "captures.primary: expected an object, got a list"),
    "summary-frames-in-a-string": _json_case(
        "--summary", "s.json", lambda: {"qemu": "7.2", "frames_in": "12", "released": 0}, "frames_in"),
    "summary-ports-a-string": _json_case(
        "--summary", "s.json", _with(sample_summary, "source", {"chardev": str(PRIMARY), "ports": "x"}),
        "source.ports: expected an object, got a string"),
    # baselines (issue 24, item 6: tracebacks with exit 1)
    "baseline-binary": _json_case("--baseline", "b.json", BINARY, "not UTF-8 text", "byte offset 0"),
    "baseline-numbers-a-list": _json_case("--baseline", "b.json", _with(sample_baseline, "numbers", []),
                                          "numbers: expected an object, got a list"),
    "baseline-number-a-list": _json_case("--baseline", "b.json", _with(sample_baseline, "numbers.checkpoints", [1]),
                                         "numbers.checkpoints: expected a number, got a list"),
    "baseline-number-a-string": _json_case("--baseline", "b.json", _with(sample_baseline, "numbers.roots", "3"),
                                           "numbers.roots: expected a number, got a string"),
    "baseline-number-infinite": _json_case(
        "--baseline", "b.json", json.dumps(_with(sample_baseline, "numbers.held_p99_ms", float("inf"))()),
        "numbers.held_p99_ms"),
    "baseline-number-huge": _json_case(
        "--baseline", "b.json", json.dumps(_with(sample_baseline, "numbers.checkpoints", 123456789)()).replace(
            "123456789", "1" + "0" * 400), "numbers.checkpoints"),
    "baseline-classes-an-object": _json_case("--baseline", "b.json",
                                             _with(sample_baseline, "divergences.classes", {}),
                                             "divergences.classes: expected a list, got an object"),
    "baseline-class-cause-a-number": _json_case("--baseline", "b.json",
                                                _with(sample_baseline, "divergences.classes.0.cause", 5),
                                                "divergences.classes[0].cause: expected a string, got a number"),
    "baseline-schema-a-number": _json_case("--baseline", "b.json", _with(sample_baseline, "schema", 1),
                                           "schema: expected a string, got a number"),
    "baseline-newer-schema": _json_case("--baseline", "b.json", _with(sample_baseline, "schema",
                                                                      "colo-replay-report/2"), "colo-replay-report/2"),
    "baseline-a-sweep": _json_case("--baseline", "b.json", sample_sweep, "colo-replay-sweep"),
    # sweeps
    "sweep-binary": _json_case("--sweep", "w.json", BINARY, "not UTF-8 text", "byte offset 0"),
    "sweep-row-a-number": _json_case("--sweep", "w.json", _with(sample_sweep, "rows.0", 5),
                                     "rows[0]: expected an object, got a number"),
    "sweep-pair-a-number": _json_case("--sweep", "w.json", _with(sample_sweep, "rows.1.pair", 5),
                                      "rows[1].pair: expected a string, got a number"),
    "sweep-held-a-string": _json_case("--sweep", "w.json", _with(sample_sweep, "rows.2.held_p99_ms", "x"),
                                      "rows[2].held_p99_ms: expected a number, got a string"),
    "sweep-recommendation-no-rule": _json_case("--sweep", "w.json",
                                               _with(sample_sweep, "recommendations.0.rule", _DELETE),
                                               "recommendations[0]", "rule"),
    "sweep-recommendation-row-out-of-range": _json_case("--sweep", "w.json",
                                                        _with(sample_sweep, "recommendations.0.row", 10**6),
                                                        "recommendations[0].row"),
    "sweep-newer-schema-version": _json_case("--sweep", "w.json", _with(sample_sweep, "schema_version", 2),
                                             "schema_version 2"),
    "sweep-no-schema-version": _json_case("--sweep", "w.json", _with(sample_sweep, "schema_version", _DELETE),
                                          "schema_version"),
    "sweep-swept-a-list": _json_case("--sweep", "w.json", _with(sample_sweep, "swept", []),
                                     "swept: expected an object, got a list"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_hostile_saved_input_is_one_line_exit_2(tmp_path, case):
    args, name, fragments = CASES[case](tmp_path)
    r = cli("report", *args, "-o", "out.html", "--json", "out.json", cwd=tmp_path)
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2, r.stderr[-3000:]
    assert "Traceback" not in r.stderr
    assert len(lines) == 1, r.stderr[-3000:]
    line = lines[0]
    assert line.startswith("colo-replay: error: "), line
    assert name in line, line
    for f in fragments:
        assert f in line, f"{f!r} not in {line!r}"
    assert not (tmp_path / "out.html").exists() and not (tmp_path / "out.json").exists()


# -- what is accepted costs nothing more for a hostile value -------------------------------------

def test_accepted_gap_costs_nothing(tmp_path):
    """A summary whose knobs say the run was replayed with allow_gaps accepts a ten-year gap; the
    report of it is made within the same bounds (its plots' bins do not grow with the span)."""
    df = sample_frame()
    df.loc[len(df) - 1, "time_ns"] = int(df["time_ns"].iloc[-1]) + TEN_YEARS_NS
    write_timeline(df, tmp_path / "t.csv")
    s = sample_summary()
    s["knobs"]["allow_gaps"] = True
    (tmp_path / "s.json").write_text(json.dumps(s))
    r = cli("report", "--timeline", "t.csv", "--summary", "s.json", "-o", "out.html", "--json", "out.json",
            cwd=tmp_path)
    assert r.returncode == 1, r.stderr[-3000:]
    d = json.loads((tmp_path / "out.json").read_text())
    assert d["numbers"]["duration_s"] > 10 * 365 * 86_400


def test_gap_of_a_row_at_time_0_accepted_through_the_api(tmp_path):
    """``build_report(..., options={"allow_gaps": True})`` (what ``report --allow-gaps`` passes once
    the command takes it with --timeline) accepts the gap, within the bounds."""
    df = sample_frame()
    df.loc[0, "time_ns"] = 0
    write_timeline(df, tmp_path / "t.parquet")
    out = bounded_python(
        "from colo_replay.analysis.report import Sources, build_report\n"
        "from colo_replay.analysis.report.load import load_timeline\n"
        "ev = load_timeline('t.parquet')\n"
        "rep = build_report(ev, {}, Sources.saved('t.parquet', None, {}), mode='saved',\n"
        "                   options={'allow_gaps': True})\n"
        "rep.html()\n"
        "print(rep.data['numbers']['duration_s'])\n", tmp_path)
    assert float(out) > 1.7e9


def test_huge_connection_number_costs_nothing(tmp_path):
    """conn is an int32 column: 2^31 - 1 is a value it can hold, and the connection table must
    not allocate per connection number (it asked for 16 GiB)."""
    df = sample_frame()
    conns = df["conn"].to_numpy()
    df.loc[conns == conns.max(), "conn"] = 2**31 - 1
    write_timeline(df, tmp_path / "t.parquet")
    r = cli("report", "--timeline", "t.parquet", "--json", "out.json", "--top", "1000", cwd=tmp_path)
    assert r.returncode == 1, r.stderr[-3000:]
    rows = json.loads((tmp_path / "out.json").read_text())["connections"]["rows"]
    assert 2**31 - 1 in [row["conn"] for row in rows]


def bounded_python(code: str, cwd):
    """Run ``code`` in a child Python, bounded in time and memory as the command line is."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=cwd,
                       timeout=TIMEOUT_S, preexec_fn=_limit_memory)
    assert r.returncode == 0, r.stderr[-3000:]
    return r.stdout


def test_summary_naming_a_fifo_as_its_chardev_capture(tmp_path):
    """A saved run's summary names the captures it was replayed from, and the report reads them
    again when they are still there; a FIFO (or a device) is not a capture left there: it is not
    opened (it blocked the report for ever)."""
    os.mkfifo(tmp_path / "cap.pcap")
    s = sample_summary()
    s["source"] = {"chardev": str(tmp_path / "cap.pcap")}
    (tmp_path / "s.json").write_text(json.dumps(s))
    r = cli("report", "--timeline", SAMPLE_TIMELINE, "--summary", "s.json", "--json", "out.json", cwd=tmp_path)
    assert r.returncode == 1, r.stderr[-3000:]
    assert [i["role"] for i in json.loads((tmp_path / "out.json").read_text())["inputs"]] == ["timeline", "summary"]


def test_time_bins_are_bounded_whatever_the_span():
    from colo_replay.analysis.report.plots import time_bins
    for span in (1, 10**9, 86_400 * 10**9, TEN_YEARS_NS, 2**62):
        width, n = time_bins(0, span)
        assert 1 <= n <= 241 and width * n > span


def test_plots_of_a_ten_year_span_are_bounded(tmp_path):
    """The three plots over ten years: a bounded number of bins each (the checkpoints plot had
    one bar a minute, 5 million of them)."""
    out = bounded_python(
        "from colo_replay.analysis.report import plots\n"
        "from colo_replay.analysis.report.load import load_timeline\n"
        "from colo_replay.analysis.report.model import side_times\n"
        f"ev = load_timeline({str(SAMPLE_TIMELINE)!r})\n"
        "t0 = int(ev['time_ns'].min())\n"
        f"out = plots.draw_all(ev, side_times(ev), t0, t0 + {TEN_YEARS_NS}, {{}})\n"
        "print(sorted(out), out['checkpoints']['alt'])\n", tmp_path)
    assert "['activity', 'checkpoints', 'held']" in out and "bins of" in out


def test_connection_table_same_with_large_numbers(tmp_path):
    """The connection table does not depend on how large the connection numbers are (it counted
    with one bin per number up to the largest)."""
    out = bounded_python(
        "import json\n"
        "from colo_replay.analysis.report.load import load_timeline\n"
        "from colo_replay.analysis.report.model import connections\n"
        f"ev = load_timeline({str(SAMPLE_TIMELINE)!r})\n"
        "before = connections(ev, 50)\n"
        "c = ev['conn'].to_numpy().copy()\n"
        "c[c >= 0] = c[c >= 0] * 200_000_000\n"
        "ev['conn'] = c\n"
        "after = connections(ev, 50)\n"
        "print(json.dumps([before, after]))\n", tmp_path)
    before, after = json.loads(out)
    assert after["total"] == before["total"] and len(after["rows"]) == len(before["rows"])
    for a, b in zip(after["rows"], before["rows"]):
        assert a["conn"] == b["conn"] * 200_000_000
        assert {k: v for k, v in a.items() if k != "conn"} == {k: v for k, v in b.items() if k != "conn"}


def test_valid_inputs_still_load(tmp_path):
    """Every format the replay writes loads with its categories; an empty timeline too."""
    from colo_replay.analysis.report.load import load_summary, load_timeline

    want = pd.read_parquet(SAMPLE_TIMELINE)
    for ext in ("parquet", "csv", "jsonl"):
        p = write_timeline(sample_frame(), tmp_path / f"t.{ext}")
        df = load_timeline(str(p))
        assert list(df.columns) == list(want.columns)
        assert (df["kind"].astype(str).to_numpy() == want["kind"].astype(str).to_numpy()).all()
        assert (df["time_ns"].to_numpy() == want["time_ns"].to_numpy()).all()
        assert all(str(df[c].dtype) == "category" for c in ("kind", "cause", "side"))
        assert all(df[c].dtype == np.int64 for c in df.columns if c not in ("kind", "cause", "side"))
    indexed = sample_frame().iloc[5:]               # a pandas index stored with the data: not a column
    indexed.to_parquet(tmp_path / "i.parquet")
    assert len(load_timeline(str(tmp_path / "i.parquet"))) == len(want) - 5
    (tmp_path / "e.csv").write_text(",".join(want.columns) + "\n")
    assert len(load_timeline(str(tmp_path / "e.csv"))) == 0
    assert load_summary(str(SAMPLE_SUMMARY))["profile"] == "7.2"


def test_report_allow_gaps_with_a_saved_timeline_and_replay_recording_it(tmp_path):
    """``report --timeline T --allow-gaps`` accepts the gap (the option is the saved run's, not a
    replay setting refused as "not applicable"), and a replay with --allow-gaps records it in the
    summary's knobs, so its saved run reports without the flag."""
    df = sample_frame()
    df.loc[len(df) - 1, "time_ns"] = int(df["time_ns"].iloc[-1]) + TEN_YEARS_NS
    write_timeline(df, tmp_path / "t.csv")
    (tmp_path / "s.json").write_text(json.dumps(sample_summary()))
    r = cli("report", "--timeline", "t.csv", "--summary", "s.json", "--json", "o.json", cwd=tmp_path)
    assert r.returncode == 2 and "--allow-gaps accepts it" in r.stderr, r.stderr
    r = cli("report", "--timeline", "t.csv", "--summary", "s.json", "--json", "o.json", "--allow-gaps", cwd=tmp_path)
    assert r.returncode == 1, r.stderr[-3000:]
    from colo_replay import api
    tl = api.replay(ROOT / "sample_pcaps/primary.pcap", ROOT / "sample_pcaps/secondary.pcap", allow_gaps=True)
    assert tl.summary["knobs"]["allow_gaps"] is True
    assert api.replay(ROOT / "sample_pcaps/primary.pcap",
                      ROOT / "sample_pcaps/secondary.pcap").summary["knobs"]["allow_gaps"] is False


# -- a saved run that says it is partial, empty or interrupted (found by tests/test_fuzz_saved_inputs.py)

@pytest.mark.parametrize("change, status, fragments", [
    ({"error": "p.pcap: frame 9 at byte offset 200: cut", "partial": True}, "partial",
     ["p.pcap: frame 9 at byte offset 200", "t.parquet", "partial"]),
    ({"error": "p.pcap: frame 9\nTraceback (most recent call last):\x1b[31m"}, "partial",      # a line end in a file
     ["p.pcap: frame 9\\nTraceback", "\\x1b[31m"]),
    ({"nothing_compared": "one side has no frame"}, "empty", ["nothing was compared in t.parquet", "--allow-empty"]),
    ({"interrupted": True}, "interrupted", ["saved run t.parquet was interrupted", "partial"]),
])
def test_saved_run_partial_empty_or_interrupted_is_exit_2_with_its_error_line(tmp_path, change, status, fragments):
    """Exit 2 (not 130: the report was not interrupted), the report written and marked, and the
    last stderr line the error naming what and where (it was the verdict, or a line naming nothing);
    every stderr line the tool's own, whatever the saved strings hold."""
    (tmp_path / "t.parquet").write_bytes(SAMPLE_TIMELINE.read_bytes())
    (tmp_path / "s.json").write_text(json.dumps({**sample_summary(), **change}))
    r = cli("report", "--timeline", "t.parquet", "--summary", "s.json", "--json", "out.json", cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().split("\n")
    assert all(line.startswith("colo-replay: ") for line in lines), r.stderr
    assert lines[-1].startswith("colo-replay: error: "), r.stderr
    for f in fragments:
        assert f in lines[-1], f"{f!r} not in {lines[-1]!r}"
    verdict = json.loads((tmp_path / "out.json").read_text())["verdict"]
    assert verdict["status"] == status and verdict["exit_status"] == 2


def test_report_of_a_sweep_of_thousands_of_pairs_is_bounded(tmp_path):
    """report --sweep of a sweep of 3,000 pairs (valid: a --pairs manifest's): the page's table
    and the Markdown comment hold the first --top pairs and say how many more (every pair's rows
    and recommendation made a 4.8 MB page and a 940 KB PR comment at 5,000 pairs)."""
    from colo_replay import api

    doc = sample_sweep()
    rows, recs = [], []
    for k in range(3000):
        rows += [{**r, "pair": f"p{k}"} for r in doc["rows"]]
        recs.append({**doc["recommendations"][0], "pair": f"p{k}", "row": len(rows) - 1})
    doc.update(rows=rows, recommendations=recs, pairs=[{**doc["pairs"][0], "name": f"p{k}"} for k in range(3000)])
    (tmp_path / "w.json").write_text(json.dumps(doc))
    rep = api.report(timeline=SAMPLE_TIMELINE, summary=SAMPLE_SUMMARY, sweep=tmp_path / "w.json", top=20)
    sweep = rep.data["sweep"]
    assert (sweep["pairs"], sweep["shown_pairs"], len(sweep["recommendations"])) == (3000, 20, 20)
    assert {r["pair"] for r in sweep["rows"]} == {f"p{k}" for k in range(20)}
    assert len(rep.markdown()) < 20_000 and "2,995 more pairs" in rep.markdown()
    assert len(rep.html()) < 1_000_000 and "2,980 more pairs" in rep.html()


def test_report_of_names_the_font_lacks_is_quiet(tmp_path):
    """A sweep whose pairs are named in CJK (DejaVu Sans has no such glyph): the report's plot
    draws boxes, and matplotlib's "Glyph missing" warnings stay off stderr (found by
    tests/test_fuzz_saved_inputs.py)."""
    doc = sample_sweep()
    names = {r["pair"] for r in doc["rows"]}
    cjk = {n: f"名前{i}" for i, n in enumerate(sorted(names))}
    for r in doc["rows"]:
        r["pair"] = cjk[r["pair"]]
    for rec in doc["recommendations"]:
        rec["pair"] = cjk[rec["pair"]]
    (tmp_path / "w.json").write_text(json.dumps(doc))
    r = cli("report", "--timeline", SAMPLE_TIMELINE, "--summary", SAMPLE_SUMMARY, "--sweep", "w.json", "-o", "r.html",
            cwd=tmp_path)
    assert r.returncode in (0, 1), r.stderr
    assert all(line.startswith("colo-replay: ") for line in r.stderr.splitlines()), r.stderr[:2000]
