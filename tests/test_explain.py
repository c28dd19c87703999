"""``colo-replay explain`` and ``colo_replay.explain`` on real captures: the sample pair's
divergences with their fields, the planted differences of a generated free-running pair at
their exact frames and offsets, per-cause details, 4.1's inverted TCP test, the evidence file
read back by tshark, the JSON schema, selection and the CLI's exit codes."""

import json
import os
import shutil
import subprocess
import sys

import pytest

import colo_replay
from colo_replay.analysis.explain import SCHEMA
from colo_replay.analysis.fields import compare_start, dissect

from tests.support.frames import udp
from tests.support.pcapread import read_pcap_frames
from tests.support.planted import make_planted_pair

P, S = "sample_pcaps/primary.pcap", "sample_pcaps/secondary.pcap"
CHARDEV = "sample_pcaps/chardev-lo.pcap"
T0 = 1_700_000_000_000_000_000
MS = 1_000_000

# The sample pair replayed raw (streams as captured), with the filter-rewriter: 11 distinct
# divergences, 10 episodes (request 6, conn 14, is concurrent with request 5's episode).
# (request, P, S, frame offset, payload offset, field, concurrent)
SAMPLE_RAW = [
    (1, 14, 14, 91, 25, "json.value.number (member time_ns)", False),
    (2, 20, 20, 76, 34, "udp.payload", False),
    (3, 34, 34, 90, 24, "json.value.number (member time_ns)", False),
    (4, 77, 78, 77, 35, "udp.payload", False),
    (5, 88, 79, 41, None, "compare-order", False),
    (6, 91, 91, 91, 25, "json.value.number (member time_ns)", True),
    (7, 105, 105, 77, 35, "udp.payload", False),
    (8, 108, 108, 91, 25, "json.value.number (member time_ns)", False),
    (9, 136, 137, 93, 27, "json.value.number (member time_ns)", False),
    (10, 141, 142, 90, 24, "json.value.number (member time_ns)", False),
    (11, 158, 160, 79, 37, "udp.payload", False),
]


def _cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "colo_replay.cli", *args], capture_output=True, text=True,
                          env=env)


@pytest.fixture(scope="module")
def sample_raw():
    return colo_replay.explain(P, S, filter_rewriter=True, after_checkpoint="raw")


@pytest.mark.wireshark
def test_tools_are_here():
    assert shutil.which("tshark"), "tshark is required (apt-get install tshark)"


def test_sample_pair_raw_divergences_with_their_fields(sample_raw):
    x = sample_raw
    assert x.counts == {"episodes": 10, "divergences": 11, "concurrent": 1, "requests": 11, "checkpoints": 11,
                        "compare_order": 1, "order_unchecked": 0, "chained": 0, "mechanics": 1, "roots": 10}
    got = [(d.request, d.primary_frame, d.secondary_frame, d.offset, d.payload_offset, d.field, d.concurrent)
           for d in x.divergences]
    assert got == SAMPLE_RAW
    assert x.app_fields == "tshark"
    # the bytes say so too (read by the tests' own pcap reader): equal from where colo-compare
    # starts comparing up to the offset, different there
    prim = read_pcap_frames(P)
    sec = read_pcap_frames(S)
    for d in x.divergences:
        p, s = prim[d.primary_frame], sec[d.secondary_frame]
        start = compare_start(p)
        s_start = compare_start(s)
        assert p[d.offset] != s[d.secondary_offset]
        # before it, only checksums differ (a checksum differs because other bytes do)
        sums = [f for f in dissect(p).fields if f.name.endswith("checksum")]
        earlier = [i for i in range(start, d.offset) if p[i] != s[i - start + s_start]]
        assert all(any(f.covers(i) for f in sums) for i in earlier)
    icmp = x.divergences[4]
    assert icmp.fields[0] == {"name": "icmp.seq", "primary": 18, "secondary": 16}
    # the TCP ones differ in the JSON body's time_ns digits: tshark names the member (the body
    # is its own segment: reassembled with the headers before it), the package the payload
    assert b"time_ns" in prim[14]
    first = x.divergences[0].fields
    assert first[0]["name"] == "json.value.number" and first[0]["context"] == "member time_ns"
    assert first[0]["primary"].isdigit() and first[0]["primary"] in prim[14].decode("latin-1")
    assert first[1]["name"] == "tcp.payload" and "'" in first[1]["primary"]
    # classes: the headline a user acts on
    top = x.classes.iloc[0]
    assert (top["protocol"], top["cause"], top["field"], top["count"]) == \
        ("tcp", "miscompare", "json.value.number (member time_ns)", 6)
    assert list(x.classes["count"]) == [6, 4, 1]
    assert "headline: 6 of 11: tcp, miscompare, json.value.number (member time_ns)" in x.format()
    assert "10 episodes, 11 distinct divergences (1 concurrent)" in x.format()


def test_sample_pair_resync_supersedes_the_cascade_frame():
    x = colo_replay.explain(P, S, filter_rewriter=True, other_profile=False)
    assert x.replay["after_checkpoint"] == "resync"
    assert x.counts["divergences"] == 10 and x.counts["concurrent"] == 0
    # request 5 of the raw replay (P#88 against S#79, the ping reply the secondary sent 5 us
    # after the flush that released the primary's copy P#78) is gone: P#78 arrived while the
    # checkpoint had the VMs stopped, so it is sent (fed) at its end, and matches S#79
    assert (88, 79) not in [(d.primary_frame, d.secondary_frame) for d in x.divergences]
    y = colo_replay.explain(P, S, filter_rewriter=True, frame="S#79", other_profile=False, tshark=False)
    assert y.divergences == [] and y.selection["frame_rows"] == ["release compared_equal",
                                                                   "secondary_dropped compared_equal"]
    ev = y.timeline.events
    assert list(ev[(ev["kind"] == "release") & (ev["secondary_frame"] == 79)]["primary_frame"]) == [78]
    assert "S#79 is in no checkpoint request" in y.format()


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    return make_planted_pair(tmp_path_factory.mktemp("planted-explain"))


def test_planted_differences_found_at_their_exact_frame_and_offset(planted):
    p, s, found = planted
    x = colo_replay.explain(p, s, other_profile=False)
    assert len(x.divergences) == len(found)
    for d, want in zip(x.divergences, found):
        assert (d.protocol, d.primary_frame, d.secondary_frame, d.offset) == \
            (want.proto, want.primary_frame, want.secondary_frame, want.offset)
        if want.payload_offset >= 0:
            assert d.payload_offset == want.payload_offset
        assert d.hex is not None and d.hex.differing >= 1
        assert d.consequences == 0 and d.checkpoints == 1
    assert "warning" not in x.replay
    raw = colo_replay.explain(p, s, after_checkpoint="raw", other_profile=False, tshark=False, limit=0)
    assert raw.counts["requests"] > 100 * len(found)
    assert "warning: " in raw.format() and "--after-checkpoint resync" in raw.replay["warning"]
    by_proto = {d.protocol: d.field for d in x.divergences}
    assert by_proto["tcp"] == "tcp.payload" and by_proto["udp"] in ("udp.payload", "syslog.msg")
    assert by_proto["ip-253"] == "data.data"


def test_the_41_profiles_inverted_tcp_test_is_reported_as_such():
    x = colo_replay.explain(P, S, filter_rewriter=True, qemu="4.1", tshark=False)
    inv = [d for d in x.divergences if d.details.get("inverted_tcp_test")]
    assert inv and all(d.protocol == "tcp" and d.offset is None for d in inv)
    assert "inverted" in inv[0].notes[0]
    # 7.2 released those frames after comparing them equal
    assert inv[0].other_profile == {"profile": "7.2", "verdict": "release compared_equal", "differs": True}
    top = x.classes.iloc[0]
    assert top["field"] == "inverted-tcp-test" and "4.1" in top["hint"]


def test_other_profile_verdict_on_the_sample(sample_raw):
    d = sample_raw.divergences[4]          # the ICMP one: 4.1 compares the same and releases
    assert d.other_profile["profile"] == "4.1" and d.other_profile["differs"]
    assert any("QEMU 4.1 would decide differently" in n for n in d.notes)
    udp_d = sample_raw.divergences[1]      # a UDP payload difference: 4.1 requests too
    assert udp_d.other_profile == {"profile": "4.1", "verdict": "checkpoint_request miscompare", "differs": False}


def _pair(tmp_path, prim, sec):
    from tests.support.pcapwrite import write_pcap
    pp = write_pcap(tmp_path / "p.pcap", [(T0 + t, f) for t, f in prim], nanos=True)
    sp = write_pcap(tmp_path / "s.pcap", [(T0 + t, f) for t, f in sec], nanos=True)
    return str(pp), str(sp)


def test_size_mismatch_gives_both_sizes_and_what_is_extra(tmp_path):
    x = colo_replay.explain(*_pair(tmp_path, [(0, udp(b"abc"))], [(MS, udp(b"abcd"))]), other_profile=False)
    (d,) = x.divergences
    assert d.cause == "size_mismatch"
    assert d.details["primary_size"] == 45 and d.details["secondary_size"] == 46
    assert d.details["extra"] == {"side": "secondary", "bytes": 1, "at": 45, "hex": "64", "after_equal_prefix": False}
    assert d.field == "udp.length" and d.fields[0]["primary"] == 11 and d.fields[0]["secondary"] == 12
    assert "the secondary has 1 more bytes from offset 45" in x.format()


def test_expired_gives_the_waiting_frame_its_age_and_the_nearest_candidate(tmp_path):
    # P#1 waits alone: expired at the 4 s scan; its late counterpart S#1 (one byte different)
    # comes at 5 s and expires itself later.  Raw: nothing is superseded.
    pair = _pair(tmp_path, [(0, udp(b"hello"))], [(5000 * MS, udp(b"hellp"))])
    x = colo_replay.explain(*pair, after_checkpoint="raw", end_ns=f"{T0 + 10_000 * MS}ns", other_profile=False)
    d = x.divergences[0]
    assert d.cause == "expired" and d.details["waiting_frame"] == "P#1" and d.details["age_ms"] == 4000
    assert d.details["candidate"] == "S#1" and d.secondary_frame == 1
    assert d.offset == 46 and d.details["candidate_difference"] == {"offset": 46, "field": "udp.payload"}
    assert "waiting       P#1 for 4000 ms; nearest on the other side: S#1" in x.format()


def test_ack_gate_gives_both_acks_on_the_chardev_capture():
    x = colo_replay.explain(chardev=CHARDEV, other_profile=False, tshark=False)
    gates = [d for d in x.divergences if d.cause == "ack_gate"]
    assert gates
    g = gates[0]
    frames = {d.primary_frame: d for d in gates}
    assert g.details["primary_ack"] != g.details["secondary_ack"] and g.fields[0]["name"] == "tcp.ack"
    assert x.replay["after_checkpoint"] == "raw" and 6 in frames


def test_evidence_file_opens_in_tshark_with_comments(sample_raw, tmp_path):
    ev = tmp_path / "evidence.pcapng"
    x = colo_replay.explain(P, S, filter_rewriter=True, after_checkpoint="raw", evidence=str(ev), tshark=False,
                            other_profile=False)
    r = subprocess.run(["tshark", "-r", str(ev), "-T", "fields", "-e", "frame.interface_id", "-e", "frame.comment"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    rows = [ln.split("\t", 1) for ln in r.stdout.splitlines() if ln.strip()]
    expected = {("0", d.primary_frame) for d in x.divergences} | {("1", d.secondary_frame) for d in x.divergences}
    assert len(rows) == len(expected) == 22
    assert {iface for iface, _c in rows} == {"0", "1"}
    comments = [c for _i, c in rows]
    assert any(c.startswith("P#14: divergence #1 (episode 0, root): checkpoint_request miscompare with S#14; "
                            "first difference at frame offset 91, payload 25: tcp.payload") for c in comments)
    assert any(c.startswith("S#14: divergence #1") and "with P#14" in c for c in comments)
    assert any("concurrent root" in c for c in comments)


def test_json_schema_and_selection():
    r = _cli("explain", P, S, "--filter-rewriter", "--after-checkpoint", "raw", "--json", "--no-other-profile",
             "--flow", "udp")
    assert r.returncode == 1, r.stderr
    doc = json.loads(r.stdout)
    assert doc["schema"] == SCHEMA
    assert doc["counts"]["divergences"] == 11 and len(doc["classes"]) == 3
    divs = doc["divergences"]
    assert [d["primary_frame"] for d in divs] == [20, 77, 105, 158]
    d = divs[0]
    for key in ("time_ns", "cause", "flow", "primary_frame", "secondary_frame", "offset", "payload_offset", "fields",
                "class", "consequences", "concurrent"):
        assert key in d
    assert d["flow"] == {"proto": "udp", "src": "10.200.0.2", "dst": "10.200.0.1", "sport": 7777, "dport": 52004,
                         "ip_proto": 17}
    assert d["class"] == {"cause": "miscompare", "protocol": "udp", "field": "udp.payload"}
    assert set(d["fields"][0]) == {"name", "primary", "secondary"}
    c = doc["classes"][0]
    assert set(c) == {"cause", "protocol", "field", "count", "share", "checkpoints", "first_ns", "last_ns",
                      "examples", "hint"}
    one = json.loads(_cli("explain", P, S, "--filter-rewriter", "--after-checkpoint", "raw", "--json",
                          "--no-other-profile", "--no-tshark", "--frame", "S#79").stdout)
    assert [(d["primary_frame"], d["secondary_frame"]) for d in one["divergences"]] == [(88, 79)]
    two = json.loads(_cli("explain", P, S, "--filter-rewriter", "--after-checkpoint", "raw", "--json",
                          "--no-other-profile", "--no-tshark", "--request", "6", "--limit", "5").stdout)
    assert [d["request"] for d in two["divergences"]] == [6] and two["divergences"][0]["concurrent"] is True


def test_python_api_roots_and_classes(sample_raw):
    roots = sample_raw.roots
    assert len(roots) == 11 and roots["concurrent"].sum() == 1
    assert list(roots.columns[:4]) == ["request", "episode", "concurrent", "time_ns"]
    assert roots.loc[4, "field"] == "icmp.seq" and roots.loc[4, "primary_value"] == "18"
    assert sample_raw.to_dict()["schema"] == SCHEMA


def test_without_tshark_one_line_and_l2_l4_fields_still_named(tmp_path):
    env = dict(os.environ, PATH=str(tmp_path))        # no tshark on PATH
    r = _cli("explain", P, S, "--filter-rewriter", "--after-checkpoint", "raw", "--no-other-profile", "--no-hex",
             env=env)
    assert r.returncode == 1
    assert r.stderr.count("\n") == 1 and "tshark not found" in r.stderr
    assert "field         icmp.seq  18" in r.stdout and "udp.payload" in r.stdout


def test_cli_refusals_are_one_line_exit_2():
    for args in (("explain", P, S, "--frame", "Q#1"), ("explain", P, S, "--request", "999"),
                 # int() would refuse these with its own line, naming no option (found by the fuzz)
                 ("explain", P, S, "--frame", "P#\u00b2"), ("explain", P, S, "--frame", "P#" + "9" * 5000),
                 # past the frames the replay read: refused as a request past the last is
                 ("explain", P, S, "--frame", "P#99999999999999999"), ("explain", P, S, "--frame", "S#0"),
                 ("explain", "--chardev", CHARDEV, "--after-checkpoint", "resync"),
                 ("explain", "no-such.pcap", S)):
        r = _cli(*args)
        assert r.returncode == 2 and r.stderr.count("\n") == 1, (args, r.stderr)
        assert "Traceback" not in r.stderr
        if "--frame" in args:
            assert r.stderr.startswith("colo-replay: error: --frame "), r.stderr


def test_chardev_resync_refused_by_the_api():
    with pytest.raises(ValueError, match="chardev"):
        colo_replay.replay_chardev(CHARDEV, after_checkpoint="resync")


def test_the_readme_explain_example_gives_the_report(tmp_path):
    """README's explain command, run as written (its --evidence redirected into tmp_path), prints
    what reports/explain-sample.txt holds."""
    import re
    import shlex
    text = open("README.md", encoding="utf-8").read()
    section = text.split("## Explain: why did it diverge", 1)[1]
    block = re.search(r"```sh\n(.*?)```", section, flags=re.S).group(1)
    argv = shlex.split(block.strip())
    assert argv[:2] == ["colo-replay", "explain"]
    argv[argv.index("--evidence") + 1] = str(tmp_path / "e.pcapng")
    r = _cli(*argv[1:])
    assert r.returncode == 1, r.stderr
    assert r.stdout == open("reports/explain-sample.txt", encoding="utf-8").read()
    assert (tmp_path / "e.pcapng").read_bytes() == open("reports/explain-sample.pcapng", "rb").read()
