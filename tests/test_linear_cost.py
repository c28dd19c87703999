"""A flush and a scan cost what is queued, not the size of the connection table (issue 24,
item 7): ``--checkpoint-duration 0 --after-checkpoint raw`` on 20,000 UDP connections, one
checkpoint per frame, took 10.8 s against 0.6 s at 100 ms, because every flush walked the whole
conn_list (QEMU does; a connection with empty queues does nothing there).  The engine keeps the
connections that may hold frames (``Engine._occupied``) and walks those, in conn_list order."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd

from colo_replay import PRIMARY, SECONDARY, Engine, EventKind
from tests.support import frames as F
from tests.support.pcapwrite import write_pcap

REPO = Path(__file__).resolve().parent.parent
T0 = 1_795_000_000 * 10**9
MS = 1_000_000


def _udp(i: int, payload: bytes) -> bytes:
    return F.udp(payload, sport=1024 + i % 60000, dport=53, dst=f"10.1.{(i // 60000) % 250}.{1 + (i // 250) % 250}")


def test_a_checkpoint_per_frame_over_many_connections_is_linear(tmp_path):
    """80,000 UDP connections (the table resets at 16,384), each a miscompare and an immediate
    checkpoint: 1-2 s now; walking the table at every flush, 42 s.  The bound is the subprocess's timeout (a hang or a
    quadratic walk fails it), not a stopwatch."""
    n = 80_000
    pri = [(T0 + i * MS, _udp(i, b"p%08d" % i)) for i in range(n)]
    sec = [(T0 + i * MS + MS // 5, _udp(i, b"s%08d" % i)) for i in range(n)]
    p, s = write_pcap(tmp_path / "p.pcap", pri, nanos=True), write_pcap(tmp_path / "s.pcap", sec, nanos=True)
    env = dict(os.environ, PYTHONPATH=str(REPO))
    r = subprocess.run([sys.executable, "-m", "colo_replay.cli", "replay", str(p), str(s), "--checkpoint-duration",
                        "0", "--after-checkpoint", "raw", "--summary-json", str(tmp_path / "s.json"), "-o",
                        str(tmp_path / "t.parquet")], capture_output=True, text=True, env=env, timeout=30)
    assert r.returncode == 1, r.stderr
    df = pd.read_parquet(tmp_path / "t.parquet")
    assert (df["kind"] == "checkpoint_request").sum() == n


def test_flushes_release_in_conn_list_order_whatever_the_order_connections_filled():
    eng = Engine("7.2")
    a, b, c = (_udp(i, b"x%d" % i) for i in range(3))
    for i, f in enumerate((a, b, c)):             # connections 0, 1, 2 in that order: matched pairs
        eng.feed(PRIMARY, f, time_ns=T0 + i, ident=i)
        eng.feed(SECONDARY, f, time_ns=T0 + i, ident=100 + i)
    assert eng.queued == 0
    eng.feed(PRIMARY, _udp(2, b"late2"), time_ns=T0 + 10, ident=12)      # 2 fills first, then 0
    eng.feed(PRIMARY, _udp(0, b"late0"), time_ns=T0 + 11, ident=10)
    eng.feed(SECONDARY, _udp(1, b"late1"), time_ns=T0 + 12, ident=111)
    events = eng.checkpoint(T0 + 20)
    order = [(ev.kind, ev.frame.ident) for ev in events if ev.kind in (EventKind.RELEASE, EventKind.SECONDARY_DROPPED)]
    assert order == [(EventKind.RELEASE, 10), (EventKind.SECONDARY_DROPPED, 111), (EventKind.RELEASE, 12)]
    assert eng.queued == 0 and eng._occupied == []


def test_a_frame_queued_behind_the_engines_back_is_still_flushed():
    """Should a frame ever be queued without its connection being marked, the flush notices
    (its count differs from ``queued``) and walks the whole conn_list, as QEMU does."""
    eng = Engine("7.2")
    for i in range(3):
        eng.feed(PRIMARY, _udp(i, b"q%d" % i), time_ns=T0 + i, ident=i)
    conn = eng.conn_list[1]
    stray = conn.primary.popleft()
    eng.conn_list[1].occupied = False
    eng._occupied.remove(conn)
    conn.primary.append(stray)                    # in the queue, not in _occupied
    released = [ev.frame.ident for ev in eng.checkpoint(T0 + 10) if ev.kind == EventKind.RELEASE]
    assert released == [0, 1, 2] and eng.queued == 0
