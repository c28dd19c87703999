"""explain scored against the real-software corpus (issue 22, item 7): pairs of captures of real
servers (nginx, Python's http.server, openssl s_server, dnsmasq, chronyd, dropbear) made by
scripts/make_real_corpus.py, each with a truth file decided without explain (the script's own
byte diff plus tshark: tests/data/real-corpus/README.md).

For every pair: every root of the truth is found at its frames and offset, with the expert's
field (and its context: the JSON member key); no consequence of the truth is reported as a root;
explain reports no root the truth does not have; a control has no divergence at all."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import colo_replay
from colo_replay import api
from tests.support.tools import require

CORPUS = Path(__file__).resolve().parent / "data" / "real-corpus"
CASES = sorted(p.name for p in CORPUS.iterdir() if (p / "truth.json").exists())


def test_the_corpus_is_here():
    assert len(CASES) >= 8, CASES
    truths = [json.loads((CORPUS / c / "truth.json").read_text()) for c in CASES]
    assert sum(t["control"] for t in truths) >= 2
    assert sum(len(t["consequences"]) for t in truths) >= 1
    assert any(t["one_direction"] for t in truths)


def _explain(case: str):
    t = json.loads((CORPUS / case / "truth.json").read_text())
    x = colo_replay.explain(str(CORPUS / case / "primary.pcap"), str(CORPUS / case / "secondary.pcap"),
                            guest=t["guest"], filter_rewriter=True, other_profile=False)
    return t, x


def _score(t: dict, x) -> dict:
    """found: truth roots explain found at their frames and offset; named: of those, with the
    expert's field (and context); consequence_as_root: truth consequences explain reports as a
    root; extra_roots: roots explain reports that are neither."""
    roots = [d for d in x.divergences if d.consequence_of is None]
    by_frames = {(d.primary_frame, d.secondary_frame): d for d in roots}
    found = named = 0                   # (the expert's field: tshark's, or explain's guess where the truth says
                                        # tshark cannot name it)
    for r in t["roots"]:
        d = by_frames.get((r["primary_frame"], r["secondary_frame"]))
        if d is None or d.offset != r["offset"] or d.secondary_offset != r["secondary_offset"]:
            continue
        found += 1
        top = d.fields[0] if d.fields else {}
        # a pair with the guest's direction only: tshark cannot dissect it, explain gives the most
        # likely field (marked so) and says that tshark needs the other direction
        likely = bool(r.get("likely"))
        if top.get("name") == r["field"] and top.get("context") == r["context"] and bool(top.get("likely")) == likely \
                and (not likely or any("tshark needs the other direction" in n for n in d.notes)):
            named += 1
    cons = {c["primary_frame"] for c in t["consequences"]}
    truth_roots = {(r["primary_frame"], r["secondary_frame"]) for r in t["roots"]}
    return {"roots": len(t["roots"]), "found": found, "named": named,
            "consequence_as_root": sum(1 for d in roots if d.primary_frame in cons),
            "extra_roots": sum(1 for d in roots if (d.primary_frame, d.secondary_frame) not in truth_roots),
            "divergences": x.counts["divergences"]}


@pytest.mark.wireshark
@pytest.mark.parametrize("case", CASES)
def test_explain_scores_full_marks_on_the_real_corpus(case):
    require("tshark")
    t, x = _explain(case)
    assert x.app_fields == "tshark"
    s = _score(t, x)
    assert s == {"roots": len(t["roots"]), "found": len(t["roots"]), "named": len(t["roots"]),
                 "consequence_as_root": 0, "extra_roots": 0, "divergences": len(t["roots"])}, \
        (s, x.format(hex_window=False))
    if t["control"]:
        assert x.divergences == [] and x.counts["requests"] == 0
    # every consequence explain shows is chained to the truth's root of its flow
    roots = {(d.request, d.primary_frame) for d in x.divergences if d.consequence_of is None}
    root_request = {pf: req for req, pf in roots}
    for d in x.divergences:
        if d.consequence_of is not None:
            c = next(c for c in t["consequences"] if c["primary_frame"] == d.primary_frame)
            assert d.consequence_of == root_request[c["consequence_of"]["primary_frame"]]


@pytest.mark.wireshark
def test_the_report_lists_the_roots_not_their_chained_consequences():
    """tls-handshake: the report built on explain shows the ServerHello root only; the later
    records are its consequences (its checkpoints count for its class)."""
    require("tshark")
    t = json.loads((CORPUS / "tls-handshake" / "truth.json").read_text())
    r = api.report(str(CORPUS / "tls-handshake" / "primary.pcap"),
                           str(CORPUS / "tls-handshake" / "secondary.pcap"), guest=t["guest"], filter_rewriter=True)
    doc = json.loads(r.json())
    rows = doc["divergences"]["rows"]
    assert [(d["primary_frame"], d["class"]) for d in rows] == \
        [(t["roots"][0]["primary_frame"], "miscompare/tcp/tls.handshake.random")]
    assert doc["divergences"]["total"] == 1
    [cls] = doc["divergences"]["classes"]
    assert cls["count"] == 1 and cls["checkpoints"] == doc["numbers"]["checkpoints"] == 3
