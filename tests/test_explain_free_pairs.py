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
