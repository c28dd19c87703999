"""explain costs what it shows (issue 24, item 4): tshark dissects the divergences shown plus one
representative per group of the others, its PDML is streamed, and a hung or endless tshark is
given up at a deadline that scales with the work.  Each test here failed before that change:
every divergence's frames went to one tshark run, its whole PDML was held in memory, and the
timeout was a fixed 120 s."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import textwrap
import time

import pytest

import colo_replay
from colo_replay.analysis import appfields
from colo_replay.analysis import explain as explain_mod
from colo_replay.analysis.fields import dissect
from tests.support import frames as F
from tests.support.live_harness import REPO
from tests.support.pcapwrite import write_pcap
from tests.support.tools import require


def _dns_answer(ident: int, qtype: int = 1) -> bytes:
    """A DNS response header and one question (``example.com QTYPE IN``)."""
    q = b"\x07example\x03com\x00" + struct.pack("!HH", qtype, 1)
    return struct.pack("!HHHHHH", ident, 0x8180, 1, 0, 0, 0) + q


def _dns_pair(tmp_path, n: int) -> tuple[str, str]:
    """``n`` DNS answers 50 ms apart, each differing between the sides: even ones in the id
    (``dns.id``), odd ones in the query type (``dns.qry.type``): two groups."""
    pri, sec = [], []
    for i in range(n):
        t = 1_000_000_000 + i * 50_000_000
        port = 40000 + i % 1000
        if i % 2 == 0:
            p, s = _dns_answer(i & 0xFFFF), _dns_answer((i ^ 0x5555) & 0xFFFF)
        else:
            p, s = _dns_answer(7, 1), _dns_answer(7, 28)
        pri.append((t, F.udp(p, sport=53, dport=port)))
        sec.append((t + 100_000, F.udp(s, sport=53, dport=port)))
    return (write_pcap(str(tmp_path / "p.pcap"), pri), write_pcap(str(tmp_path / "s.pcap"), sec))


@pytest.fixture
def tshark_spy(monkeypatch):
    """The frames each tshark run is given (the real tshark still runs)."""
    runs: list[int] = []
    real = explain_mod.app_fields

    def spy(capture, frames, offsets=None, **kw):
        runs.append(len(offsets))
        return real(capture, frames, offsets, **kw)
    monkeypatch.setattr(explain_mod, "app_fields", spy)
    return runs


@pytest.mark.wireshark
@pytest.mark.parametrize("select, shown", [({"limit": 1}, 1), ({"limit": 3}, 3), ({"request": 4}, 1),
                                           ({"frame": "P#9"}, 1)])
def test_selection_bounds_what_tshark_dissects(tmp_path, tshark_spy, select, shown):
    require("tshark")
    p, s = _dns_pair(tmp_path, 300)
    x = colo_replay.explain(p, s, other_profile=False, **select)
    assert x.app_fields == "tshark"
    assert len(x.divergences) == shown
    assert x.counts["divergences"] > 100
    # both frames of each divergence shown, plus both frames of one representative of each of
    # the two groups (none when a divergence shown already stands for its group)
    assert sum(tshark_spy) <= 2 * shown + 2 * 2, tshark_spy
    assert {d.field for d in x.divergences} <= {"dns.id", "dns.qry.type"}
    for d in x.divergences:
        assert d.fields[0]["primary"] is not None and "named_from" not in d.fields[0]
    # the classes still cover every divergence, by application field
    classes = x.classes.set_index("field")
    assert sorted(classes.index) == ["dns.id", "dns.qry.type"]
    assert int(classes["count"].sum()) == x.counts["divergences"]


@pytest.mark.wireshark
def test_groups_beyond_the_bound_keep_their_l2_l4_name(tmp_path, tshark_spy, monkeypatch):
    require("tshark")
    monkeypatch.setattr(explain_mod, "NAMED_GROUPS", 1)
    p, s = _dns_pair(tmp_path, 40)
    x = colo_replay.explain(p, s, other_profile=False, limit=0)
    assert sum(tshark_spy) == 2                         # one representative, both sides
    assert sorted(x.classes["field"]) == sorted(["dns.id", "udp.payload"]) or \
        sorted(x.classes["field"]) == sorted(["dns.qry.type", "udp.payload"])


@pytest.mark.wireshark
def test_batches_of_bounded_size(tmp_path, tshark_spy, monkeypatch):
    require("tshark")
    monkeypatch.setattr(explain_mod, "TSHARK_BATCH", 7)
    p, s = _dns_pair(tmp_path, 40)
    x = colo_replay.explain(p, s, other_profile=False, limit=10)
    assert max(tshark_spy) <= 7 and sum(tshark_spy) == 20, tshark_spy
    assert all(d.field in ("dns.id", "dns.qry.type") for d in x.divergences)


def test_tshark_timeout_scales_with_the_frames():
    assert appfields.tshark_timeout(0) == appfields.TSHARK_START_S
    assert appfields.tshark_timeout(2) < 15
    assert appfields.tshark_timeout(2000) == pytest.approx(appfields.TSHARK_START_S + 2000 * appfields.TSHARK_PER_FRAME_S)


def _fake_tshark(tmp_path, body: str) -> str:
    bindir = tmp_path / "bin"
    bindir.mkdir(exist_ok=True)
    exe = bindir / "tshark"
    exe.write_text(f"#!{sys.executable}\n" + textwrap.dedent(body))
    exe.chmod(0o755)
    return str(exe)


def test_a_hung_tshark_costs_seconds(tmp_path, monkeypatch):
    """A tshark that never answers: explain gives up at the scaled deadline (1 s start-up part
    here) and says so in one line; the L2-L4 fields are still named."""
    exe = _fake_tshark(tmp_path, "import time\ntime.sleep(120)\n")
    monkeypatch.setenv("PATH", os.path.dirname(exe) + os.pathsep + os.environ["PATH"])
    monkeypatch.setattr(appfields, "TSHARK_START_S", 1.0)
    p, s = _dns_pair(tmp_path, 10)
    t0 = time.monotonic()
    x = colo_replay.explain(p, s, other_profile=False, limit=2)
    took = time.monotonic() - t0
    assert took < 20, took
    assert x.app_fields.startswith("tshark timed out after 1.0"), x.app_fields
    assert x.divergences[0].field == "udp.payload"


ENDLESS = """
import sys
w = sys.stdout.write
w('<?xml version="1.0"?>\\n<pdml>\\n')
pk = ('<packet><proto name="geninfo"><field name="num" show="1"/><field name="caplen" show="80"/></proto>'
      '<proto name="udp"><field name="udp.payload" pos="42" size="10" show="x"/></proto></packet>\\n') * 500
while True:
    w(pk)
"""


def test_endless_pdml_is_streamed_in_flat_memory(tmp_path):
    """A tshark that writes PDML without end: parsed as it streams, killed at the deadline, and
    the memory of the process does not grow with what it wrote (it was all held before)."""
    exe = _fake_tshark(tmp_path, ENDLESS)
    code = textwrap.dedent(f"""
        import resource, sys
        from colo_replay.analysis.appfields import app_fields
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        r = app_fields("unused.pcap", [1], {{1: [45]}}, tshark={exe!r}, timeout=3.0)
        grew = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
        print(grew, r.reason)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=60,
                         env=dict(os.environ, PYTHONPATH=REPO))
    assert out.returncode == 0, out.stderr
    grew_kib, reason = out.stdout.split(" ", 1)
    assert reason.startswith("tshark timed out after 3"), out.stdout
    assert int(grew_kib) < 40 * 1024, f"memory grew by {int(grew_kib) // 1024} MiB while tshark wrote"


@pytest.mark.wireshark
def test_many_divergences_with_a_limit_stay_small(tmp_path):
    """20,000 answers, every one a divergence: ``explain --limit 10`` in bounded memory (it
    took 765 MB and 30 s before, for tshark's PDML of 20,000 frames)."""
    require("tshark")
    pri, sec = [], []
    for i in range(20000):
        t = 1_000_000_000 + i * 50_000_000
        body = b"Date: %08d xxxxxxxxxxxxxxxx" % i
        pri.append((t, F.udp(body, sport=7000, dport=40000, ident=i & 0xFFFF)))
        sec.append((t + 100_000, F.udp(body[:-1] + b"y", sport=7000, dport=40000, ident=i & 0xFFFF)))
    p = write_pcap(str(tmp_path / "p.pcap"), pri)
    s = write_pcap(str(tmp_path / "s.pcap"), sec)
    with open(tmp_path / "out.json", "wb") as out, open(tmp_path / "err.txt", "wb") as err:
        t0 = time.monotonic()
        proc = subprocess.Popen([sys.executable, "-m", "colo_replay.cli", "explain", p, s, "--limit", "10",
                                 "--no-other-profile", "--json"], stdout=out, stderr=err, cwd=REPO,
                                env=dict(os.environ, PYTHONPATH=REPO))
        _pid, status, usage = os.wait4(proc.pid, 0)        # this child's own peak memory
        took = time.monotonic() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    errtext = (tmp_path / "err.txt").read_text()
    assert proc.returncode == 1, errtext
    assert "Traceback" not in errtext
    doc = json.loads((tmp_path / "out.json").read_text())
    assert len(doc["divergences"]) == 10 and doc["counts"]["divergences"] > 5000
    assert doc["app_fields"] == "tshark"
    assert usage.ru_maxrss < 400 * 1024, f"peak RSS {usage.ru_maxrss // 1024} MiB"
    assert took < 120, took


@pytest.mark.wireshark
def test_tcp_context_is_a_bounded_window_of_the_connection(monkeypatch):
    """A TCP divergence's frame goes to tshark with its connection's frames (both directions)
    among CONTEXT_BEFORE frames before it and CONTEXT_AFTER after: never more, never another
    connection; the sample's JSON bodies are still named (their headers are the frame before)."""
    require("tshark")
    monkeypatch.setattr(explain_mod, "CONTEXT_BEFORE", 3)
    monkeypatch.setattr(explain_mod, "CONTEXT_AFTER", 1)
    seen = []
    real = explain_mod._context

    def spy(side, nums, fetch, vnet, last=None):
        ctx, one_way = real(side, nums, fetch, vnet, last)
        conns = {explain_mod._conn_key(dissect(pk.data)) for n, pk in ctx.items() if n in nums}
        assert all(explain_mod._conn_key(dissect(pk.data)) in conns for pk in ctx.values())
        seen.append((list(nums), sorted(ctx)))
        return ctx, one_way
    monkeypatch.setattr(explain_mod, "_context", spy)
    x = colo_replay.explain("sample_pcaps/primary.pcap", "sample_pcaps/secondary.pcap", filter_rewriter=True,
                            other_profile=False, limit=1)
    assert x.divergences[0].field == "json.value.number (member time_ns)"
    assert seen and all(ctx for _n, ctx in seen)
    for nums, ctx in seen:
        assert all(any(n - 3 <= c <= n + 1 for n in nums) for c in ctx), (nums, ctx)
        assert len(ctx) <= 5 * len(nums)
