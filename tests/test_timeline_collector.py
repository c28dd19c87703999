"""TimelineCollector (rows written into column blocks of the engine's EventLog) against a plain reference."""

import random
from pathlib import Path

import pytest

from colo_replay import api
from colo_replay.engine.events import Cause, Event, EventKind
from colo_replay.engine.packet import Packet
from colo_replay.output.timeline import COLUMNS, TimelineCollector

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = (str(ROOT / "sample_pcaps" / "primary.pcap"), str(ROOT / "sample_pcaps" / "secondary.pcap"))


def reference_row(ev) -> dict:
    """One row as the timeline columns define it (colo_replay/timeline.py docstring)."""
    kind, cause, t, frame, other, conn, detail = ev
    row = dict(time_ns=t, kind=int(kind), cause=int(cause), conn=conn, detail=detail,
               other_size=-1 if other is None else other.size)
    if frame is None:
        row.update(side=-1, primary_frame=-1, secondary_frame=-1, held_ns=-1, size=-1, tcp_seq=-1,
                   tcp_seq_end=-1)
        return row
    ident = -1 if frame.ident is None else frame.ident
    oident = -1 if other is None or other.ident is None else other.ident
    tcp = frame.ip_proto == 6 and frame.header_size
    row.update(side=frame.side, primary_frame=ident if frame.side == 0 else oident,
               secondary_frame=oident if frame.side == 0 else ident,
               held_ns=t - frame.time if kind == EventKind.RELEASE else -1, size=frame.size,
               tcp_seq=frame.tcp_seq if tcp else -1, tcp_seq_end=frame.seq_end if tcp else -1)
    return row


def packet(rng, side):
    p = Packet(bytes(rng.randrange(1, 1600)), side, rng.randrange(10**18), 0,
               None if rng.random() < 0.1 else rng.randrange(1, 10**6))
    if rng.random() < 0.7:
        p.ip_proto = 6
        p.header_size = rng.choice([0, 54, 66])
        p.tcp_seq = rng.randrange(2**32)
        p.seq_end = rng.randrange(2**32)
    else:
        p.ip_proto = rng.choice([1, 17])
    return p


@pytest.mark.parametrize("block_rows", [1, 97, 65536])
def test_rows_match_the_reference_across_blocks_and_export(block_rows):
    rng = random.Random(3)
    col = TimelineCollector(block_rows=block_rows)
    expect = []
    for i in range(3000):
        r = rng.random()
        if r < 0.1:
            t, kind, cause = rng.randrange(10**18), rng.choice([101, 102, 100]), rng.choice([101, 102, 103, 100])
            side = rng.choice([-1, 0, 1])
            frame = rng.randrange(10**6) if side >= 0 else -1
            size, detail = rng.randrange(-1, 2000), rng.randrange(10)
            col.add_row(t, kind, cause, side, frame, size, detail)
            expect.append(dict(time_ns=t, kind=kind, cause=cause, side=side, conn=-1,
                               primary_frame=frame if side == 0 else -1,
                               secondary_frame=frame if side == 1 else -1, held_ns=-1,
                               size=size, other_size=-1, tcp_seq=-1, tcp_seq_end=-1, detail=detail))
        else:
            side = rng.choice([0, 1])
            frame = None if r < 0.15 else packet(rng, side)
            other = None if rng.random() < 0.4 else packet(rng, 1 - side)
            ev = Event(rng.choice(list(EventKind)), rng.choice(list(Cause)), rng.randrange(10**18), frame, other,
                       rng.randrange(-1, 5000), rng.randrange(0, 10**6))
            if frame is not None and rng.random() < 0.3:
                # add_pair: e.g. a release and the matching secondary's drop
                ev2 = Event(EventKind.SECONDARY_DROPPED, rng.choice(list(Cause)), ev.time,
                            other or packet(rng, 1), rng.choice([None, frame]), ev.conn, 0)
                col.add_pair(ev, ev2)
                expect.append(reference_row(ev))
                expect.append(reference_row(ev2))
            else:
                col.add_event(ev)
                expect.append(reference_row(ev))
        if i == 2000:
            df = col.to_frame()          # shares the column arrays; adding rows must go on working
            assert len(df) == len(expect)
            rows_at_export = len(expect)
    assert len(col) == len(expect)
    cols = col.columns()
    got = [{name: int(cols[name][j]) for name in COLUMNS} for j in range(len(expect))]
    assert got == expect
    assert len(df) == rows_at_export      # the earlier DataFrame is unchanged


def test_the_join_gives_each_column_of_freed_blocks_back_as_it_goes():
    """Joining the blocks into whole columns frees each block's column once copied, and says so
    after each column (``released``: TimelineCollector gives that heap memory back to the system,
    output/heap.py), so the join's peak is the timeline plus one column, not twice the timeline."""
    from colo_replay.engine.eventlog import EventLog
    from colo_replay.output.heap import give_back_free_memory

    log = EventLog(block_rows=10)
    for i in range(95):
        log.row(i, 100, 100, -1, -1, i, -1, -1, -1, -1, -1, -1, 0)
    calls = []
    cols = log.columns(released=lambda: calls.append(len(calls)))
    assert len(calls) == len(COLUMNS)
    assert list(cols["primary_frame"]) == list(range(95))
    log.columns(released=lambda: calls.append(-1))      # joined already: nothing is freed again
    assert len(calls) == len(COLUMNS)
    give_back_free_memory()                 # glibc here: malloc_trim; elsewhere nothing
    col = TimelineCollector(block_rows=7)
    for i in range(50):
        col.add_row(i, 101, 101, detail=i)
    assert list(col.to_frame()["detail"]) == list(range(50))


def test_to_frame_columns_and_categories():
    col = TimelineCollector()
    col.add_row(5, 101, 101, detail=1)
    df = col.to_frame()
    assert list(df.columns) == list(COLUMNS)
    assert list(df.kind) == ["checkpoint_start"] and list(df.cause) == ["requested"]
    assert str(df.kind.dtype) == "category" and str(df.side.dtype) == "category"
    assert TimelineCollector().to_frame().shape == (0, len(COLUMNS))


def test_spilled_blocks_reach_the_sink_in_order():
    """With ``spill`` every full block goes to it (numpy columns) and is not kept."""
    got = []
    col = TimelineCollector(block_rows=4, spill=got.append)
    for i in range(10):
        col.add_row(i, 101, 101, detail=i)
    assert len(col) == 10 and col.spilled == 8
    assert [list(b["time_ns"]) for b in got] == [[0, 1, 2, 3], [4, 5, 6, 7]]
    col.add_row(10, 101, 101)
    assert len(col.columns()["time_ns"]) == 0        # closing the last block spills it too
    assert [list(b["time_ns"]) for b in got] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10]]
    assert col.spilled == len(col) == 11


@pytest.mark.parametrize("ext", [".csv", ".jsonl", None])
@pytest.mark.parametrize("partial", [None, "capture.pcap: frame 7: truncated record"])
def test_blocks_write_the_same_text_as_the_dataframe(tmp_path, ext, partial):
    """CSV and JSON Lines written a block at a time (``write_timeline_blocks``, what
    ``Timeline.write`` does) are byte for byte the whole DataFrame's (``write_timeline``), with
    the same partial sidecar; an empty timeline too (the CSV header alone)."""
    import io

    from colo_replay.output.timeline import frame_from_columns, write_timeline, write_timeline_blocks

    whole = api.replay(*SAMPLE).columns
    n = len(whole["kind"])
    assert n > 500
    cuts = list(range(0, n, 97)) + [n]
    blocks = [{k: v[a:b] for k, v in whole.items()} for a, b in zip(cuts, cuts[1:])]
    for given in (blocks, [{k: v[:0] for k, v in whole.items()}], []):
        rows = {k: v[:sum(len(b["kind"]) for b in given)] for k, v in whole.items()}
        if ext is None:
            want, got = io.StringIO(), io.StringIO()
            write_timeline(frame_from_columns(rows), None, want)
            write_timeline_blocks(given, None, got)
            assert got.getvalue() == want.getvalue()
            continue
        want, got = tmp_path / f"want{ext}", tmp_path / f"got{ext}"
        write_timeline(frame_from_columns(rows), str(want), partial=partial)
        write_timeline_blocks(given, str(got), partial=partial)
        assert got.read_bytes() == want.read_bytes()
        if given and len(given[0]["kind"]):
            assert len(got.read_bytes()) > 10_000                    # (the rows are there)
        elif ext == ".csv":
            assert got.read_text().startswith("time_ns,kind,")      # (the header alone)
        sidecars = [p.exists() for p in (Path(str(want) + ".partial"), Path(str(got) + ".partial"))]
        assert sidecars == [partial is not None] * 2
