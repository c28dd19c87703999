"""explain says which QEMU releases would decide a root differently (issue 20, item 3): the
root's connection, from the flush before it, replayed in every behaviour row A..K
(``analysis/row_verdicts.py``), grouped into release ranges in ``details["releases"]`` and a
note."""

from __future__ import annotations

import colo_replay
from colo_replay.analysis.row_verdicts import row_verdicts
from colo_replay.engine.profiles import CompareConfig
from tests.test_resync_datagram_rates import make_pair

P, S = "sample_pcaps/primary.pcap", "sample_pcaps/secondary.pcap"


def _groups(d) -> dict:
    return {g["rows"]: g["verdict"] for g in d.details["releases"]["rows"]}


def test_a_compare_order_root_is_no_request_on_the_oldest_first_releases(tmp_path):
    """A 1 kHz flow behind by more than its period: 7.0 on (rows H..K) compare the newest
    waiting primary first and request; 4.1.0 .. 6.2.x (rows A..G) leave it waiting for its copy."""
    p, s, _fast = make_pair(tmp_path, 1000, "udp", "extra", lag=(1_200_000, 2_000_000))
    x = colo_replay.explain(p, s, other_profile=False, tshark=False, limit=1)
    d = x.divergences[0]
    assert d.field == "compare-order"
    groups = _groups(d)
    assert set(groups) == {"A-G", "H-K"}
    assert groups["A-G"] == f"no request: P#{d.primary_frame} still waiting"
    assert groups["H-K"] == f"checkpoint_request miscompare P#{d.primary_frame}"
    assert d.details["releases"]["on"] == "its connection's frames alone"
    note = next(n for n in d.notes if n.startswith("other releases"))
    assert "rows A-G (4.1.0; 4.1.1, 4.2.x; 5.0.x; 5.1.0; 5.2.0, 6.0.x; 6.1.x; 6.2.0)" in note
    assert x.to_dict()["divergences"][0]["details"]["releases"]["rows"][1]["same_as_replay"] is True


def test_the_sample_tcp_roots_differ_only_in_4_1_0():
    """The sample's TCP roots: QEMU 4.1.0's inverted payload test requests on an earlier, equal
    segment of the same connection; every later release decides as 7.2 does."""
    x = colo_replay.explain(P, S, filter_rewriter=True, other_profile=False, tshark=False)
    tcp = [d for d in x.divergences if d.protocol == "tcp" and "releases" in d.details]
    assert len(tcp) >= 4
    for d in tcp:
        groups = _groups(d)
        assert groups["B-K"] == f"checkpoint_request miscompare P#{d.primary_frame}"
        assert groups["A"].startswith("checkpoint_request miscompare P#") and groups["A"] != groups["B-K"]
    udp = [d for d in x.divergences if d.protocol == "udp" and "releases" in d.details]
    assert udp and all(set(_groups(d)) == {"A-K"} for d in udp)
    assert all(not any(n.startswith("other releases") for n in d.notes) for d in udp)


def test_nothing_is_claimed_when_the_connection_alone_does_not_show_the_decision():
    # the replay's row would not request on these frames alone: no verdicts at all
    assert row_verdicts([], 1, "miscompare", "K", CompareConfig()) is None
    assert row_verdicts([(0, 0, 1, None)], 1, "expired", "K", CompareConfig()) is None
