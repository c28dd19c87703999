"""explain on generated free-running pairs (bench/make_free_pair.py): every planted difference
that colo-compare compares is a root at its truth frame and offset, and nothing else is a root
(issue 22: at most planted + 2).  Requests that colo-compare's own mechanics cause on such a
pair (segments cut differently by TSO on the two sides) are given their class, with the
evidence (the waiting frame's twin, a partial compare), and are not roots."""

from __future__ import annotations

import importlib.util
import json
import os

import pytest

from colo_replay import api

BENCH = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "bench", "make_free_pair.py")
COMPARED = {"miscompare", "miscompare (sizes differ)"}


def _make(base, frames: int, seed: int):
    spec = importlib.util.spec_from_file_location("make_free_pair", BENCH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    out = base / f"f{frames}"
    mod.main(["--frames", str(frames), "--seed", str(seed), "--out", str(out)])
    with open(out / "truth.json") as f:
        return out, json.load(f)


def _expected_roots(truth) -> set:
    """(primary frame, secondary frame, offset) of each plant colo-compare compares, plus the
    one-sided secondary frame when no checkpoint flushes it first (an expiry root)."""
    return {(p["primary_frame"], p["secondary_frame"], p["offset"]) for p in truth["planted"]
            if p["expected"] in COMPARED}


@pytest.mark.parametrize("frames,seed", [(100_000, 1), (300_000, 1)])
def test_planted_differences_are_the_roots(tmp_path, frames, seed):
    out, truth = _make(tmp_path, frames, seed)
    x = api.explain(str(out / "primary.pcap"), str(out / "secondary.pcap"), other_profile=False)
    roots = [d for d in x.divergences if d.consequence_of is None and d.field not in
             ("segmentation-residue", "compare-order", "table-reset")]
    got = {(d.primary_frame, d.secondary_frame, d.offset) for d in roots if d.cause != "expired"}
    assert got == _expected_roots(truth)
    planted = truth["counts"]["planted"]
    assert x.counts["roots"] == len(roots) <= planted + 2
    assert x.counts["roots"] + x.counts["mechanics"] == x.counts["divergences"]
    # the mechanics: each with its evidence, none on a planted frame
    plant_frames = {p["primary_frame"] for p in truth["planted"]} | {p["secondary_frame"] for p in truth["planted"]}
    for d in x.divergences:
        m = d.details.get("mechanics")
        if m is None:
            continue
        assert d.cause == "expired" and m["name"] in ("segmentation-residue", "compare-order")
        assert m["twin"] != m["waiting_frame"] and int(m["waiting_frame"][2:]) not in plant_frames
        if m["name"] == "segmentation-residue":
            p, s = m["partial_compare"]
            assert p.startswith("P#") and s.startswith("S#")
        assert "not a divergence" in d.notes[0]
    if frames == 300_000:
        assert x.counts["mechanics"] >= 1      # TSO cut differently: residues on this pair


def test_a_fields_context_names_its_class_when_it_has_a_hint():
    """A random request id and a clock in JSON members or HTTP headers are classes of their own,
    each with its hint (hints.CONTEXT_HINTS); a context without one leaves the field alone."""
    from colo_replay.analysis.classes import context_class, hint_for
    from colo_replay.analysis.hints import CONTEXT_HINTS

    rid = context_class("json.value.string", "member request_id")
    assert rid == "json.value.string (member request_id)"
    assert hint_for("miscompare", "tcp", rid) == CONTEXT_HINTS[0][1]
    hdr = context_class("http.response.line", "header X-Request-Id")
    assert hint_for("miscompare", "tcp", hdr) == CONTEXT_HINTS[0][1]
    assert hint_for("miscompare", "tcp", context_class("json.value.string", "member trace_uuid")) == CONTEXT_HINTS[0][1]
    clock = context_class("json.value.number", "member time_ns")
    assert hint_for("miscompare", "tcp", clock) == CONTEXT_HINTS[1][1]
    assert context_class("json.value.string", "member status") == "json.value.string"
    assert context_class("http.date", "header Date") == "http.date"          # a field hint of its own wins


def test_requests_after_a_table_reset_are_its_mechanics():
    """On a timeline with a connection-table reset: a request on a connection made after it, on
    a flow whose queued primary the reset discarded, is `table-reset`; one on another flow, or
    on a connection older than the reset, is not; an expiry whose twin was released in the
    flow's entry before the reset is `table-reset` too."""
    import pandas as pd

    from colo_replay.analysis import mechanics
    from colo_replay.analysis.explain import Divergence
    from colo_replay.captures.pick import Picked

    cols = ["time_ns", "kind", "cause", "side", "conn", "primary_frame", "secondary_frame", "size", "other_size",
            "tcp_seq", "tcp_seq_end"]
    ms = 1_000_000
    rows = [
        (1 * ms, "release", "compared_equal", "primary", 3, 5, 6, 60, 60, 900, 906),   # flow B, before
        (2 * ms, "table_reset", "none", "", -1, -1, -1, -1, -1, -1, -1),
        (2 * ms, "primary_lost", "table_reset", "primary", 4, 7, -1, 60, -1, 100, 106),  # flow A's
        (3 * ms, "checkpoint_request", "miscompare", "primary", 5, 9, 8, 60, 60, 106, 112),
        (4 * ms, "checkpoint_request", "miscompare", "primary", 6, 11, 10, 60, 60, 50, 56),
        (3900 * ms, "checkpoint_request", "expired", "secondary", 7, -1, 12, 60, -1, 900, 906),
    ]
    events = pd.DataFrame(rows, columns=cols)
    for c in ("kind", "cause", "side"):
        events[c] = events[c].astype("category")
    resets = mechanics.reset_discards(events)
    assert resets == [{"time_ns": 2 * ms, "first_conn": 5, "primary": [7], "secondary": []}]

    def div(req, t, cause, conn, p, s, flow):
        return Divergence(request=req, episode=req, concurrent=False, time_ns=t, cause=cause,
                          side="secondary" if p < 1 else "primary", conn=conn, flow=flow, protocol="tcp",
                          primary_frame=p, secondary_frame=s, consequences=0, checkpoints=1)
    a = {"ip_proto": 6, "src": "10.0.0.10", "sport": 80, "dst": "10.1.0.1", "dport": 1000}
    b = {"ip_proto": 6, "src": "10.0.0.10", "sport": 80, "dst": "10.1.0.2", "dport": 2000}
    on_a = div(1, 3 * ms, "miscompare", 5, 9, 8, a)
    on_other = div(2, 4 * ms, "miscompare", 6, 11, 10, b | {"dport": 3000})
    expiry = div(3, 3900 * ms, "expired", 7, -1, 12, b)
    frames = {0: {7: Picked(0, b"A", None)}, 1: {}}
    mechanics.classify([on_a, on_other, expiry], mechanics.ConnRows(events), frames,
                       lambda pk: mechanics.flow_key(a) if pk.data == b"A" else None, resets)
    assert on_a.details["mechanics"]["name"] == "table-reset" and on_a.details["mechanics"]["discarded"] == ["P#7"]
    assert "mechanics" not in on_other.details
    m = expiry.details["mechanics"]
    assert (m["name"], m["twin"], m["waiting_frame"]) == ("table-reset", "P#5", "S#12")
    assert on_a.field == "table-reset" and "Not a divergence in the guests" in on_a.notes[0]
