"""A streamed Parquet timeline (``replay(output="t.parquet")``, ``colo-replay replay -o t.parquet``)
is the in-memory one: the same DataFrame read back, the same summary, the same partial marker,
on the sample pair and on pairs longer than one block of rows (65,536), complete, cut by a read
error or interrupted."""

import json
import os
import subprocess
import sys

import pandas as pd
import pyarrow.parquet as pq
import pytest

from colo_replay import api
from colo_replay.engine.eventlog import BLOCK_ROWS, EventLog
from colo_replay.output import stream as stream_mod
from tests.support.planted import make_planted_pair

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
P = os.path.join(REPO, "sample_pcaps/primary.pcap")
S = os.path.join(REPO, "sample_pcaps/secondary.pcap")
CHARDEV = os.path.join(REPO, "sample_pcaps/chardev-lo.pcap")


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    """30 s of two free-running VMs: ~147k rows resynchronised, ~249k raw (a cascade)."""
    p, s, _ = make_planted_pair(tmp_path_factory.mktemp("stream"), duration_s=30.0, planted=12)
    return p, s


@pytest.fixture(scope="module")
def cut_planted(planted, tmp_path_factory):
    """The planted primary cut inside a record, two thirds in: a read error after >1 block."""
    data = open(planted[0], "rb").read()
    path = tmp_path_factory.mktemp("cut") / "cut.pcap"
    path.write_bytes(data[:len(data) * 2 // 3])
    return str(path), planted[1]


def _same(mem, streamed, out):
    """The streamed run equals the in-memory one: file, events, summary, marker."""
    assert streamed.output == str(out) and len(streamed) == len(mem)
    df = pd.read_parquet(out)
    assert df.equals(mem.events)
    assert streamed.events.equals(mem.events)
    assert streamed.summary == mem.summary
    # what write_timeline makes of the in-memory timeline, read back: the same table
    ref = out.parent / ("ref-" + out.name)
    mem.write(str(ref))
    assert pd.read_parquet(ref).equals(df)
    assert pq.read_schema(ref).metadata == pq.read_schema(out).metadata
    # it was streamed: a row group per block, and the collector kept at most the last block
    groups = pq.ParquetFile(out).metadata.num_row_groups
    assert groups == max(1, -(-len(mem) // BLOCK_ROWS))
    assert len(streamed.result.collector) - streamed.result.collector.spilled <= BLOCK_ROWS


@pytest.mark.parametrize("after", ["resync", "raw"])
def test_sample_pair_streamed_equals_in_memory(tmp_path, after):
    out = tmp_path / "t.parquet"
    _same(api.replay(P, S, after_checkpoint=after), api.replay(P, S, after_checkpoint=after, output=str(out)), out)


def test_an_empty_timeline_streamed_reads_back_with_every_category(tmp_path):
    """Captures without frames: the streamed file's one row group is empty and has no dictionary
    pages, yet ``Timeline.events`` read back from it is the in-memory one, categories and all."""
    from tests.support.pcapwrite import write_pcap

    p, s, out = tmp_path / "p.pcap", tmp_path / "s.pcap", tmp_path / "t.parquet"
    write_pcap(p, [])
    write_pcap(s, [])
    mem, streamed = api.replay(str(p), str(s)), api.replay(str(p), str(s), output=str(out))
    assert len(mem) == 0 and len(pq.read_table(out)) == 0
    assert streamed.events.equals(mem.events) and (streamed.events.dtypes == mem.events.dtypes).all()
    assert list(streamed.events["kind"].cat.categories) == list(mem.events["kind"].cat.categories) != []


def test_chardev_streamed_equals_in_memory(tmp_path):
    out = tmp_path / "t.parquet"
    _same(api.replay_chardev(CHARDEV), api.replay_chardev(CHARDEV, output=str(out)), out)


@pytest.mark.parametrize("after", ["resync", "raw"])
def test_pair_of_several_blocks_streamed_equals_in_memory(planted, tmp_path, after):
    mem = api.replay(*planted, after_checkpoint=after)
    assert len(mem) > 2 * BLOCK_ROWS
    out = tmp_path / "t.parquet"
    streamed = api.replay(*planted, after_checkpoint=after, output=str(out))
    _same(mem, streamed, out)
    assert b"colo_replay.partial" not in (pq.read_schema(out).metadata or {})
    if after == "raw":      # the cascade signature, from the rows the stream kept of it
        assert streamed.summary["after_checkpoint"]["cascade"]["cascade"] is True


def test_read_error_streamed_equals_in_memory_and_is_marked(cut_planted, tmp_path):
    mem = api.replay(*cut_planted)
    assert mem.partial and len(mem) > BLOCK_ROWS
    out = tmp_path / "t.parquet"
    streamed = api.replay(*cut_planted, output=str(out))
    _same(mem, streamed, out)
    meta = pq.read_schema(out).metadata
    assert meta[b"colo_replay.partial"] == b"true" and meta[b"colo_replay.error"] == mem.error.encode()


class _StopAt:
    """A progress callback that interrupts the replay (as Ctrl-C does) once ``at`` frames went by."""

    def __init__(self, at):
        self.at = at

    def __call__(self, done):
        if done >= self.at:
            raise KeyboardInterrupt


def test_interrupted_streamed_equals_in_memory_and_is_marked(planted, tmp_path):
    mem = api.replay(*planted, progress=_StopAt(100_000))
    assert mem.interrupted and len(mem) > BLOCK_ROWS
    out = tmp_path / "t.parquet"
    streamed = api.replay(*planted, progress=_StopAt(100_000), output=str(out))
    _same(mem, streamed, out)
    assert pq.read_schema(out).metadata[b"colo_replay.error"] == b"interrupted"


def test_interrupt_as_a_block_begins_to_be_written_loses_no_row(planted, tmp_path, monkeypatch):
    """Python notices a pending Ctrl-C on entering a function: the spill then raises before it
    took the block.  The EventLog keeps that block and the stream writes it at the end."""
    calls = []
    real = stream_mod.ParquetStream.__call__

    def interrupted_second_time(self, block):
        calls.append(len(block["kind"]))
        if len(calls) == 2:
            raise KeyboardInterrupt
        real(self, block)

    monkeypatch.setattr(stream_mod.ParquetStream, "__call__", interrupted_second_time)
    out = tmp_path / "t.parquet"
    streamed = api.replay(*planted, output=str(out))
    n = sum(calls[:2])          # two blocks (a block may end a row short: a pair's rows go together)
    assert streamed.interrupted and len(streamed) == n > BLOCK_ROWS
    monkeypatch.undo()
    full = api.replay(*planted).events
    assert pd.read_parquet(out).equals(full.iloc[:n])
    assert streamed.summary["released"] == int((full.kind.iloc[:n] == "release").sum())


def test_eventlog_keeps_a_block_its_spill_did_not_take():
    taken = []

    def spill(cols):
        if not taken:
            taken.append(None)
            raise KeyboardInterrupt          # before taking it: the dict is left as it came
        taken.append(dict(cols))
        cols.clear()

    log = EventLog(block_rows=2, spill=spill)
    log.row(1, 1, 1, 0, 0, 1, 1, 0, 60, 60, -1, -1, 0)
    log.row(2, 1, 1, 0, 0, 2, 2, 0, 60, 60, -1, -1, 0)
    with pytest.raises(KeyboardInterrupt):
        log.row(3, 1, 1, 0, 0, 3, 3, 0, 60, 60, -1, -1, 0)      # the first block goes to spill
    assert len(log) == 2 and log.spilled == 0
    assert [list(b["time_ns"]) for b in log.blocks()] == [[1, 2]]
    log.row(3, 1, 1, 0, 0, 3, 3, 0, 60, 60, -1, -1, 0)
    log.row(4, 1, 1, 0, 0, 4, 4, 0, 60, 60, -1, -1, 0)
    log.row(5, 1, 1, 0, 0, 5, 5, 0, 60, 60, -1, -1, 0)           # the second one is taken
    assert log.spilled == 2 and list(taken[1]["time_ns"]) == [3, 4] and len(log) == 5


def test_streamed_timeline_written_elsewhere_and_as_csv(tmp_path):
    out = tmp_path / "t.parquet"
    streamed = api.replay(P, S, output=str(out))
    before = os.path.getmtime(out)
    streamed.write(str(out))                     # already there: nothing written again
    assert os.path.getmtime(out) == before
    streamed.write(str(tmp_path / "t.csv"))
    assert len(pd.read_csv(tmp_path / "t.csv")) == len(streamed.events)
    # output= in another format: written from memory when the replay ends
    csv = api.replay(P, S, output=str(tmp_path / "u.csv"))
    assert csv.output == str(tmp_path / "u.csv") and csv.stream is None
    assert (tmp_path / "u.csv").read_text() == (tmp_path / "t.csv").read_text()


def test_cli_streams_the_same_timeline_and_summary(planted, tmp_path):
    out, summ = tmp_path / "t.parquet", tmp_path / "s.json"
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    r = subprocess.run([sys.executable, "-m", "colo_replay.cli", "replay", *planted, "-o", str(out),
                        "--summary-json", str(summ), "--no-progress"], capture_output=True, text=True, env=env,
                       cwd=REPO, timeout=300)
    assert r.returncode == 1, r.stderr                    # the planted differences: checkpoint requests
    mem = api.replay(*planted)
    assert pd.read_parquet(out).equals(mem.events)
    assert json.loads(summ.read_text()) == json.loads(json.dumps(mem.summary, default=str))
    assert pq.ParquetFile(out).metadata.num_row_groups > 1


def test_cli_disk_full_while_streaming_is_one_line_naming_the_file(tmp_path):
    out = tmp_path / "t.parquet"
    out.symlink_to("/dev/full")
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    r = subprocess.run([sys.executable, "-m", "colo_replay.cli", "replay", P, S, "-o", str(out), "--no-progress"],
                       capture_output=True, text=True, env=env, cwd=REPO, timeout=120)
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
    assert r.stderr.startswith(f"colo-replay: error: {out}: ") and "No space left on device" in r.stderr
