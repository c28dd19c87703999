"""analysis.episodes on hand-made timelines and on a replay of the sample pair; analysis.classes
grouping and hints."""

import numpy as np
import pandas as pd
import pytest

from colo_replay.analysis.classes import class_key, group_classes, hint_for
from colo_replay.analysis.episodes import ROOT_COLUMNS, episodes
from colo_replay.analysis.hints import CAUSE_HINTS, FIELD_HINTS

KINDS = ["release", "secondary_dropped", "checkpoint_request", "flush", "checkpoint_start", "checkpoint_end"]
CAUSES = ["none", "compared_equal", "miscompare", "expired", "checkpoint", "requested", "periodic"]


def timeline(rows):
    """rows: (time_ns, kind, cause, conn, primary_frame, secondary_frame)."""
    t, k, c, conn, pf, sf = zip(*rows) if rows else ([], [], [], [], [], [])
    n = len(t)
    return pd.DataFrame({
        "time_ns": np.array(t, dtype=np.int64), "kind": pd.Categorical(k, categories=KINDS),
        "cause": pd.Categorical(c, categories=CAUSES), "side": pd.Categorical(["primary"] * n),
        "conn": np.array(conn, dtype=np.int32), "primary_frame": np.array(pf, dtype=np.int64),
        "secondary_frame": np.array(sf, dtype=np.int64), "held_ns": np.full(n, -1),
        "size": np.full(n, 60, dtype=np.int32), "other_size": np.full(n, 60, dtype=np.int32),
        "tcp_seq": np.full(n, -1), "tcp_seq_end": np.full(n, -1), "detail": np.zeros(n, dtype=np.int64)})


def req(t, conn, pf, cause="miscompare"):
    return (t, "checkpoint_request", cause, conn, pf, pf)


def ckpt(t):
    """A requested checkpoint started at t, flushed 100 later."""
    return [(t, "checkpoint_start", "requested", -1, -1, -1), (t + 100, "flush", "checkpoint", -1, -1, -1),
            (t + 100, "checkpoint_end", "requested", -1, -1, -1)]


def test_episode_grouping_roots_consequences_and_open():
    rows = [(5, "release", "compared_equal", 0, 1, 1),
            req(10, 0, 2), *ckpt(10)[:1], req(20, 0, 3), req(30, 1, 4), req(40, 1, 5), *ckpt(10)[1:],
            *ckpt(110),                                   # the coalesced extra checkpoint
            req(300, 2, 6), *ckpt(300),
            req(500, 3, 7), req(510, 3, 8)]               # no flush after: open
    e = episodes(timeline(rows))
    r = e.roots
    assert list(r.columns) == list(ROOT_COLUMNS)
    assert r["episode"].tolist() == [0, 1, 2]
    assert r["primary_frame"].tolist() == [2, 6, 7]
    assert r["requests"].tolist() == [4, 1, 2]
    assert r["consequences"].tolist() == [3, 0, 1]
    assert r["other_conns"].tolist() == [1, 0, 0]          # conn 1's first request in episode 0
    assert r["checkpoints"].tolist() == [2, 1, 0]
    assert r["end_ns"].tolist() == [110, 400, -1]
    assert r["duration_ns"].tolist() == [100, 100, -1]
    assert r["open"].tolist() == [False, False, True]
    assert e.divergences == 4
    q = e.requests
    assert q["episode"].tolist() == [0, 0, 0, 0, 1, 2, 2]
    assert q["role"].tolist() == ["root"] + ["consequence"] * 3 + ["root", "root", "consequence"]
    assert q["new_conn"].tolist() == [False, False, True, False, False, False, False]
    assert str(r["cause"].dtype) == "category" and r["cause"].iloc[0] == "miscompare"


def test_request_and_flush_at_the_same_time_ordered_by_position():
    # the request was recorded after the flush of the same nanosecond: next episode
    rows = [req(0, 0, 1), (100, "flush", "checkpoint", -1, -1, -1), req(100, 0, 2),
            (200, "flush", "checkpoint", -1, -1, -1)]
    r = episodes(timeline(rows)).roots
    assert r["primary_frame"].tolist() == [1, 2] and r["end_ns"].tolist() == [100, 200]


def test_no_requests_and_flushes_only():
    for rows in ([], [(1, "flush", "checkpoint", -1, -1, -1), (2, "release", "compared_equal", 0, 1, 1)]):
        e = episodes(timeline(rows))
        assert len(e.roots) == 0 and len(e.requests) == 0 and e.divergences == 0
        assert list(e.roots.columns) == list(ROOT_COLUMNS)


def test_large_timeline_is_vectorised():
    # 200k rows, 20k requests, 10k flushes: seconds would mean a Python loop per row crept in
    n = 200_000
    kinds = np.array(["release"] * n, dtype=object)
    kinds[::10] = "checkpoint_request"
    kinds[5::20] = "flush"
    df = pd.DataFrame({"time_ns": np.arange(n, dtype=np.int64), "kind": pd.Categorical(kinds, categories=KINDS),
                       "cause": pd.Categorical(["miscompare"] * n, categories=CAUSES),
                       **{c: np.zeros(n, dtype=np.int64) for c in ("conn", "primary_frame", "secondary_frame",
                                                                  "size", "other_size", "tcp_seq",
                                                                  "tcp_seq_end", "detail")}})
    e = episodes(df)
    assert len(e.roots) == 10_001 and e.roots["requests"].sum() == 20_000
    assert e.roots["open"].sum() == 1


@pytest.fixture(scope="module")
def sample_events():
    import colo_replay
    return colo_replay.replay("sample_pcaps/primary.pcap", "sample_pcaps/secondary.pcap",
                              filter_rewriter=True, after_checkpoint="raw").events


def test_sample_pair_episodes(sample_events):
    ev = sample_events
    e = episodes(ev)
    req_rows = ev.index[ev["kind"] == "checkpoint_request"]
    # every request is in exactly one episode
    assert list(e.requests.index) == list(req_rows)
    assert e.requests["episode"].notna().all()
    assert e.roots["requests"].sum() == len(req_rows) == 11
    # one request (conn 14, an /api/now response) came while the checkpoint of the conn 0
    # request ran: the same flush cleared it, so 10 episodes, 11 divergences
    assert len(e.roots) == 10 and e.divergences == 11
    assert not e.roots["open"].any()
    flush_times = set(ev.loc[ev["kind"] == "flush", "time_ns"])
    assert set(e.roots["end_ns"]) <= flush_times
    assert (e.roots["end_ns"] > e.roots["time_ns"]).all()
    # the checkpoints the episodes cost account for every requested checkpoint
    starts = ((ev["kind"] == "checkpoint_start") & (ev["cause"] == "requested")).sum()
    assert e.roots["checkpoints"].sum() == starts == 11
    # each root is the first request of its episode
    firsts = e.requests.groupby("episode")["time_ns"].min()
    assert (firsts.to_numpy() == e.roots["time_ns"].to_numpy()).all()


def test_class_keys_and_hints():
    assert class_key("ACK_GATE", "tcp", "tcp.payload") == ("ack_gate", "tcp", "")
    assert hint_for("miscompare", "tcp", "tcp.options.timestamp.tsval").startswith(
        "Each guest's TCP timestamp clock differs")
    assert hint_for("ack_gate", "tcp", "tcp.payload") == CAUSE_HINTS["ack_gate"]
    assert "secondary has not acknowledged the data yet" in CAUSE_HINTS["ack_gate"]
    assert "within compare_timeout" in hint_for("expired", "udp")
    assert hint_for("miscompare", "udp", "ntp.rec") == FIELD_HINTS["ntp.rec"]
    assert hint_for("miscompare", "udp", "ntp.stratum").startswith("NTP")      # by prefix
    assert hint_for("size_mismatch", "udp", "") == CAUSE_HINTS["size_mismatch"]
    assert hint_for("miscompare", "ip-99", "") and hint_for("miscompare", "udp", "dhcp.id")
    for key in ("tcp.options.timestamp.tsval", "ip.id", "dns.id", "ntp.xmt", "ntp.rec", "ntp.org",
                "http.date", "tls.handshake.random", "tcp.window_size_value", "icmp.ident", "icmp.seq",
                "dhcp.id", "tcp.srcport", "udp.srcport", "tcp.payload", "tls.handshake.session_id",
                "ssh.cookie", "http.set_cookie", "http.last_modified", "compare-order"):
        assert FIELD_HINTS[key].endswith(".")
    # the real causes of issue 22 each have their own hint, not a prefix's or the generic one
    assert "KEXINIT" in hint_for("miscompare", "tcp", "ssh.cookie")
    assert hint_for("miscompare", "tcp", "ssh.encrypted_packet").startswith("SSH output is randomised")
    assert "session ID" in hint_for("miscompare", "tcp", "tls.handshake.session_id")


def test_group_classes():
    roots = pd.DataFrame({
        "cause": ["miscompare", "miscompare", "ack_gate", "miscompare", "expired"],
        "protocol": ["udp", "udp", "tcp", "tcp", "tcp"],
        "field": ["udp.payload", "udp.payload", "tcp.payload", "http.date", ""],
        "time_ns": [50, 10, 30, 20, 40], "primary_frame": [5, 1, 3, 2, 4],
        "secondary_frame": [5, 1, 3, 2, -1], "checkpoints": [1, 1, 3, 1, 1]})
    c = group_classes(roots, examples=1)
    assert c[["cause", "field"]].values.tolist() == [["ack_gate", ""], ["miscompare", "udp.payload"],
                                                      ["miscompare", "http.date"], ["expired", ""]]
    udp = c.iloc[1]
    assert (udp["count"], udp["checkpoints"], udp["first_ns"], udp["last_ns"]) == (2, 2, 10, 50)
    assert udp["examples"] == [(1, 1)] and udp["share"] == pytest.approx(2 / 7)
    assert c["share"].sum() == pytest.approx(1.0)
    assert c.iloc[0]["hint"] == CAUSE_HINTS["ack_gate"]
    # without a checkpoints column every root counts once
    c2 = group_classes(roots.drop(columns="checkpoints").to_dict("records"))
    assert c2["checkpoints"].tolist() == [2, 1, 1, 1] and c2.iloc[0]["field"] == "udp.payload"
    assert len(group_classes([])) == 0
