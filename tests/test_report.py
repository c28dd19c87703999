"""``colo-replay report`` and ``api.report``: the data against the replay's own summary, every
way in (pair, chardev capture, saved timeline in each format), the Markdown and JSON outputs, the
baseline gate and its rules, bad input, and hostile captured strings (escaping, checked on the
HTML text here; in a real browser in test_report_browser.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest

from colo_replay import api
from colo_replay.analysis.report import baseline as bl
from colo_replay.analysis.report.html import CSP
from colo_replay.analysis.report.load import load_timeline

from tests.support.hostile import hostile_report, hostile_run

ROOT = Path(__file__).resolve().parent.parent
PRIMARY = str(ROOT / "sample_pcaps" / "primary.pcap")
SECONDARY = str(ROOT / "sample_pcaps" / "secondary.pcap")
CHARDEV = str(ROOT / "sample_pcaps" / "chardev-lo.pcap")
SECTIONS = ("summary", "activity", "held", "checkpoints", "connections", "divergences", "inputs")


def cli(*args, cwd=None):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "colo_replay.cli", *map(str, args)], capture_output=True,
                          text=True, env=env, cwd=cwd, timeout=300)


class Page(HTMLParser):
    """Tags, attributes and ids of a page, as an HTML parser sees them."""

    def __init__(self, text):
        super().__init__(convert_charrefs=True)
        self.tags, self.ids, self.attrs, self.data = [], set(), [], []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.attrs.extend(attrs)
        self.ids.update(v for k, v in attrs if k == "id")

    def handle_data(self, data):
        self.data.append(data)


@pytest.fixture(scope="module")
def sample():
    return api.report(PRIMARY, SECONDARY, filter_rewriter=True, top=5)


def test_numbers_agree_with_the_replay_summary(sample):
    s = api.replay(PRIMARY, SECONDARY, filter_rewriter=True).summary
    n = sample.data["numbers"]
    assert (n["frames_primary"], n["frames_secondary"]) == (s["frames"]["primary"], s["frames"]["secondary"])
    assert n["released"] == s["released"]
    assert n["checkpoint_requests"] == s["checkpoint_requests"] > 0
    assert n["requests_by_cause"] == s["checkpoint_requests_by_cause"]
    assert n["checkpoints"] == s["checkpoints"] and n["divergences"] == s["divergences"]
    assert n["held_p99_ms"] == pytest.approx(s["held_ms"]["p99"])
    assert n["unsupported"] == s["never_compared"]["unsupported"]
    assert sample.data["verdict"]["status"] == "diverged" and sample.exit_status == 1


def test_inputs_carry_size_frames_span_and_sha256(sample):
    import hashlib
    rows = {i["role"]: i for i in sample.data["inputs"]}
    for role, path in (("primary", PRIMARY), ("secondary", SECONDARY)):
        r = rows[role]
        assert r["size"] == os.path.getsize(path)
        assert r["sha256"] == hashlib.sha256(Path(path).read_bytes()).hexdigest()
        assert r["frames"] == sample.data["numbers"][f"frames_{role}"]
        assert 0 < r["span_s"] < 60 and r["last_ns"] > r["first_ns"]


def test_connection_table_counts_and_5_tuples(sample):
    c = sample.data["connections"]
    ev = api.replay(PRIMARY, SECONDARY, filter_rewriter=True).events
    assert c["total"] == ev.loc[ev["conn"] >= 0, "conn"].nunique() and c["shown"] == 5
    first = c["rows"][0]
    assert first["requests"] == max(r["requests"] for r in c["rows"]) > 0
    rel = ev[(ev["conn"] == first["conn"]) & (ev["kind"] == "release")]
    assert first["released"] == len(rel)
    assert first["held_p99_ms"] == pytest.approx(rel["held_ns"].quantile(0.99) / 1e6)
    assert first["flow"]["proto"] in ("tcp", "udp") and first["flow"]["src"].startswith("10.200.0.")
    assert sum(first["requests_by_cause"].values()) == first["requests"]


def test_page_sections_plots_and_no_external_reference(sample):
    text = sample.html()
    page = Page(text)
    assert set(SECTIONS) <= page.ids
    assert "script" not in page.tags
    srcs = [v for k, v in page.attrs if k in ("src", "href")]
    assert len([s for s in srcs if s.startswith("data:image/png;base64,")]) == 3
    assert all(s.startswith(("data:image/png;base64,", "#")) for s in srcs)
    assert "http://" not in text and "https://" not in text
    assert f'content="{CSP}"' in text


def test_markdown_is_short_and_has_verdict_numbers_classes(sample):
    md = sample.markdown()
    assert md.count("\n") < 60 and len(md) < 8000
    n = sample.data["numbers"]["checkpoint_requests"]
    assert "CHECKPOINT REQUESTED" in md and f"| checkpoint requests | {n} " in md
    assert "**Divergence classes**" in md and "**First root divergences**" in md


def test_json_is_the_documented_schema(sample):
    d = json.loads(sample.json())
    assert d["schema"] == "colo-replay-report/1"
    import colo_replay.analysis.report as rep
    for key in ("tool", "generated", "run", "inputs", "t0_ns", "verdict", "numbers", "connections",
                "divergences", "notes"):
        assert key in d and f"    {key}" in rep.__doc__, key
    for key in d["numbers"]:
        assert key in rep.__doc__, key
    ep = api.replay(PRIMARY, SECONDARY, filter_rewriter=True)
    from colo_replay.analysis.episodes import episodes
    assert d["numbers"]["roots"] == len(episodes(ep.events).roots) > 0
    assert d["divergences"]["source"] == "explain" and d["divergences"]["total"] >= d["numbers"]["roots"]
    row = d["divergences"]["rows"][0]
    assert row["fields"] and row["hex"]["rows"] and row["class"].startswith(row["cause"])
    assert {"cause", "protocol", "field", "count", "share", "checkpoints", "hint"} <= set(d["divergences"]["classes"][0])


def test_cli_pair_chardev_and_saved_timeline(tmp_path):
    r = cli("report", PRIMARY, SECONDARY, "--filter-rewriter", "-o", tmp_path / "r.html", "--json",
            tmp_path / "r.json", "--markdown", tmp_path / "r.md")
    assert r.returncode == 1, r.stderr
    assert r.stdout == "" and "CHECKPOINT REQUESTED" in r.stderr
    direct = json.loads((tmp_path / "r.json").read_text())
    for ext in ("parquet", "csv", "jsonl"):
        t, s = tmp_path / f"t.{ext}", tmp_path / f"s-{ext}.json"
        assert cli("replay", PRIMARY, SECONDARY, "--filter-rewriter", "-o", t, "--summary-json", s).returncode == 1
        r = cli("report", "--timeline", t, "--summary", s, "--json", "-")
        assert r.returncode == 1, r.stderr
        saved = json.loads(r.stdout)
        assert saved["run"]["mode"] == "saved"
        assert saved["numbers"] == direct["numbers"], ext
        assert saved["connections"] == direct["connections"], ext
        # a saved run is not explained (no field diff or hex window): the same roots, from the timeline
        assert saved["divergences"]["source"] == "timeline" and direct["divergences"]["source"] == "explain"
        assert [(r["time_ns"], r["primary_frame"], r["secondary_frame"]) for r in saved["divergences"]["rows"]] == \
            [(r["time_ns"], r["primary_frame"], r["secondary_frame"]) for r in direct["divergences"]["rows"]], ext
        roles = [i["role"] for i in saved["inputs"]]
        assert roles == ["timeline", "summary", "primary", "secondary"]
    r = cli("report", "--chardev", CHARDEV, "--compare-timeout", "200", "--expired-scan-cycle", "100",
            "--json", tmp_path / "c.json", "-o", tmp_path / "c.html")
    assert r.returncode == 1, r.stderr
    c = json.loads((tmp_path / "c.json").read_text())
    summary = api.replay_chardev(CHARDEV, compare_timeout=200, expired_scan_cycle=100).summary
    assert c["run"]["mode"] == "chardev" and c["numbers"]["checkpoint_requests"] == summary["checkpoint_requests"]
    assert [i["role"] for i in c["inputs"]] == ["chardev", "primary_in", "secondary_in"]
    assert Page((tmp_path / "c.html").read_text()).ids >= set(SECTIONS)


def test_saved_timeline_without_captures_or_summary(tmp_path):
    t = tmp_path / "t.parquet"
    api.replay(PRIMARY, SECONDARY, filter_rewriter=True).write(str(t))
    r = cli("report", "--timeline", t, "--json", "-", "-o", tmp_path / "r.html")
    assert r.returncode == 1, r.stderr
    d = json.loads(r.stdout)
    want = api.replay(PRIMARY, SECONDARY, filter_rewriter=True).summary["checkpoint_requests"]
    assert d["numbers"]["checkpoint_requests"] == want and d["numbers"]["frames_primary"] is None
    assert all(row["flow"] is None for row in d["connections"]["rows"])
    assert Page((tmp_path / "r.html").read_text()).ids >= set(SECTIONS)


def test_load_timeline_keeps_categories_across_formats(tmp_path):
    tl = api.replay(PRIMARY, SECONDARY, filter_rewriter=True)
    for ext in ("parquet", "csv", "jsonl"):
        p = tmp_path / f"t.{ext}"
        tl.write(str(p))
        df = load_timeline(str(p))
        assert list(df.columns) == list(tl.events.columns)
        assert (df["kind"].astype(str).to_numpy() == tl.events["kind"].astype(str).to_numpy()).all()
        assert (df["held_ns"].to_numpy() == tl.events["held_ns"].to_numpy()).all()


def _gate(tmp_path, numbers_change: dict, *tolerance):
    base = json.loads(api.report(PRIMARY, SECONDARY, filter_rewriter=True).json())
    base["numbers"].update(numbers_change)
    p = tmp_path / "base.json"
    p.write_text(json.dumps(base))
    args = ["report", PRIMARY, SECONDARY, "--filter-rewriter", "--json", tmp_path / "new.json", "--baseline", p]
    for t in tolerance:
        args += ["--tolerance", t]
    r = cli(*args)
    return r, json.loads((tmp_path / "new.json").read_text())["baseline"] if r.returncode in (0, 1) else None


def test_baseline_same_run_passes(tmp_path):
    r, b = _gate(tmp_path, {})
    assert r.returncode == 0, r.stderr
    assert not b["regressed"] and b["classes_new"] == b["classes_gone"] == []
    assert all(m["delta"] in (0, 0.0) for m in b["metrics"] if m["delta"] is not None)


def test_baseline_more_checkpoints_regresses_unless_tolerated(tmp_path):
    n = api.replay(PRIMARY, SECONDARY, filter_rewriter=True).summary["checkpoints"]
    r, b = _gate(tmp_path, {"checkpoints": n - 1})
    assert r.returncode == 1 and "REGRESSED" in r.stderr
    row = next(m for m in b["metrics"] if m["name"] == "checkpoints")
    assert (row["old"], row["new"], row["delta"], row["regressed"]) == (n - 1, n, 1, True)
    r, b = _gate(tmp_path, {"checkpoints": n - 1}, "checkpoints=+1")
    assert r.returncode == 0, r.stderr


def test_baseline_held_p99_percentage_rule(tmp_path):
    new_p99 = api.report(PRIMARY, SECONDARY, filter_rewriter=True).data["numbers"]["held_p99_ms"]
    r, b = _gate(tmp_path, {"held_p99_ms": new_p99 / 1.2})          # +20%
    assert r.returncode == 1 and [m["name"] for m in b["metrics"] if m["regressed"]] == ["held_p99"]
    r, _ = _gate(tmp_path, {"held_p99_ms": new_p99 / 1.2}, "held_p99=+25%")
    assert r.returncode == 0
    r, _ = _gate(tmp_path, {"held_p99_ms": new_p99 / 1.2}, "held_p99=any")
    assert r.returncode == 0


def test_baseline_new_and_gone_classes():
    new = {"numbers": {}, "divergences": {"classes": [{"cause": "miscompare", "protocol": "udp", "field": "x"}]}}
    old = {"numbers": {}, "divergences": {"classes": [{"cause": "expired", "protocol": "tcp", "field": ""}]}}
    b = bl.compare(new, old, bl.parse_rules([]))
    assert b["classes_new"] == ["miscompare/udp/x"] and b["classes_gone"] == ["expired/tcp"]
    assert b["regressed"] and [m["name"] for m in b["metrics"] if m["regressed"]] == ["new_classes"]


def test_tolerance_rules_parse_and_refuse():
    rules = bl.parse_rules(["checkpoints=+3,held_p99=+5.5%", "roots=any"])
    assert rules["checkpoints"] == (3.0, False) and rules["held_p99"] == (5.5, True) and rules["roots"] is None
    assert rules["checkpoint_requests"] == (0.0, False)           # a default stays
    for bad in ("checkpoints", "checkpoints=-1", "nope=+1", "held_p99=10x"):
        with pytest.raises(ValueError, match="--tolerance"):
            bl.parse_rules([bad])


@pytest.mark.parametrize("args, message", [
    (("report", PRIMARY, SECONDARY), "nothing to write"),
    (("report", "--timeline", "missing.parquet", "-o", "x.html"), "missing.parquet"),
    (("report", "--timeline", PRIMARY, "-o", "x.html"), "unknown timeline format"),
    (("report", PRIMARY, SECONDARY, "-o", "x.html", "--tolerance", "checkpoints=+0"), "--tolerance goes with"),
    (("report", PRIMARY, SECONDARY, "-o", "x.html", "--baseline", PRIMARY), "not UTF-8 text (byte offset 0)"),
    (("report", "--chardev", CHARDEV, "--guest", "auto", "-o", "x.html"), "not applicable with --chardev"),
    (("report", "--timeline", "t.parquet", "--qemu", "4.1", "-o", "x.html"), "not applicable with --timeline"),
    (("report", PRIMARY, SECONDARY, "-o", "x.html", "--sweep", CHARDEV), "not UTF-8 text (byte offset 0)"),
])
def test_bad_input_is_one_line_exit_2(tmp_path, args, message):
    r = cli(*args, cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    assert message in r.stderr and "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "x.html").exists()


def test_timeline_file_that_is_not_one(tmp_path):
    p = tmp_path / "t.csv"
    p.write_text("a,b\n1,2\n")
    r = cli("report", "--timeline", p, "-o", tmp_path / "x.html")
    assert r.returncode == 2 and "not a colo-replay timeline" in r.stderr and "Traceback" not in r.stderr


# -- hostile strings ------------------------------------------------------------------------

def test_hostile_strings_are_escaped_in_html_markdown_and_json(tmp_path):
    rep = hostile_report(tmp_path)
    page_text = rep.html()
    page_text.encode("utf-8")                       # no lone surrogate left: the page can be written
    page = Page(page_text)
    assert "script" not in page.tags
    assert not [k for k, _ in page.attrs if k.startswith("on")]
    assert page.tags.count("img") == 3
    assert "pwned" not in page.ids
    shown = "".join(page.data)
    assert '<script>document.title="PWNED"' in shown          # shown as text, intact
    assert "\\x00" in shown and "\\x1b" in shown and "\\udcff" in shown
    md = rep.markdown()
    assert "<script>" not in md and "<img" not in md and "&lt;script&gt;" in md
    assert "\x00" not in md and "\x1b" not in md
    json.loads(rep.json())


def test_hostile_file_names_through_the_cli(tmp_path):
    p, s, _ = hostile_run(tmp_path)
    out = tmp_path / "r.html"
    r = cli("report", p, s, "-o", out, "--markdown", tmp_path / "r.md")
    assert r.returncode == 1, r.stderr
    page = Page(out.read_text(encoding="utf-8"))
    assert "script" not in page.tags and set(SECTIONS) <= page.ids
    assert "<script>" not in (tmp_path / "r.md").read_text(encoding="utf-8")


def test_readme_report_examples_run(tmp_path):
    """Every ``colo-replay report`` command of README.md runs (outputs into ``tmp_path``) with the
    exit status its rules give: the sample diverges (1); against its own sample as a baseline it
    did not regress (0)."""
    import re
    import shlex
    import shutil

    text = (ROOT / "README.md").read_text(encoding="utf-8")
    commands = [shlex.split(line) for block in re.findall(r"^```sh\n(.*?)^```", text, flags=re.S | re.M)
                for line in re.sub(r"\\\n\s*", " ", block).splitlines() if line.startswith("colo-replay report")]
    assert len(commands) >= 3
    for d in ("sample_pcaps", "reports"):
        shutil.copytree(ROOT / d, tmp_path / d)
    for argv in commands:
        r = cli(*argv[1:], cwd=tmp_path)
        assert r.returncode == (0 if "--baseline" in argv else 1), (argv, r.stderr)
        for opt in ("-o", "--markdown", "--json"):
            if opt in argv:
                assert (tmp_path / argv[argv.index(opt) + 1]).stat().st_size > 0


def test_report_of_a_live_run(tmp_path):
    """``live -o t.parquet --summary-json s.json``, reported later: live's summary (frames_in,
    its own keys) and timeline give the same numbers the live run counted."""
    import signal

    from tests.support import frames as F
    from tests.support.live_harness import LiveHarness

    tl, sj = tmp_path / "t.parquet", tmp_path / "s.json"
    with LiveHarness(extra_args=("-o", str(tl), "--summary-json", str(sj))) as h:
        h.step(("P", F.udp(b"a")))
        h.step(("S", F.udp(b"a")))
        h.step(("P", F.udp(b"b", sport=2)))
        h.step(("S", F.udp(b"B", sport=2)))      # mismatch: one request
        h.step(("FLUSH",))          # (a step ends with its barrier: the flush has been handled)
        rc, _ = h.stop(sig=signal.SIGINT)
    assert rc == 1
    live = json.loads(sj.read_text())
    r = cli("report", "--timeline", tl, "--summary", sj, "--json", "-", "-o", tmp_path / "r.html")
    assert r.returncode == 1, r.stderr
    d = json.loads(r.stdout)
    n = d["numbers"]
    assert (n["frames_primary"], n["frames_secondary"]) == tuple(live["frames_in"])
    assert n["checkpoint_requests"] == live["checkpoint_requests"] == 1 and n["released"] == live["released"]
    assert d["run"]["profile"] == "7.2" and d["run"]["options"]["stop_reason"] == "SIGINT"
    assert d["connections"]["rows"][0]["requests"] == 1
    assert Page((tmp_path / "r.html").read_text()).ids >= set(SECTIONS)


def test_empty_captures_nothing_compared_exit_2(tmp_path):
    from tests.support.pcapwrite import write_pcap
    p, s = write_pcap(str(tmp_path / "p.pcap"), []), write_pcap(str(tmp_path / "s.pcap"), [])
    r = cli("report", p, s, "-o", tmp_path / "r.html", "--json", tmp_path / "r.json")
    assert r.returncode == 2 and "NOTHING COMPARED" in r.stderr and "Traceback" not in r.stderr
    d = json.loads((tmp_path / "r.json").read_text())
    assert d["verdict"]["status"] == "empty" and d["connections"]["total"] == 0
    page = Page((tmp_path / "r.html").read_text())
    assert set(SECTIONS) <= page.ids and page.tags.count("img") == 3


def test_every_replay_option_is_a_report_option():
    """The report takes the replay command's options (its outputs and thresholds excepted), so a
    new replay option cannot be forgotten here."""
    from colo_replay.cli.replay import replay
    from colo_replay.cli.report import report
    own = {"output", "summary_json", "max_checkpoints", "max_held_p99"}
    assert {p.name for p in replay.params} - own <= {p.name for p in report.params}


def test_sweep_section_from_a_sweep_json(tmp_path):
    """``report --sweep sweep.json`` includes the sweep: its recommendation with the rule, its plot
    (a decodable PNG), one table row per setting with the front and the pick marked; the JSON and
    the Markdown carry the recommendation too.  A JSON that is not a sweep's is refused."""
    import base64

    sweep = ROOT / "reports" / "sweep-sample.json"
    data = json.loads(sweep.read_text())
    rep = api.report(PRIMARY, SECONDARY, filter_rewriter=True, top=5, sweep=str(sweep))
    page = Page(rep.html())
    assert "sweep" in page.ids and "plot-sweep" in page.ids
    rec = data["recommendations"][0]
    setting = ", ".join(f"{k}={v}" for k, v in rec["setting"].items())
    assert f"Recommended for {rec['pair']}: {setting}" in "".join(page.data)
    src = rep.html().split('id=plot-sweep src="', 1)[1].split('"', 1)[0]
    assert src.startswith("data:image/png;base64,")
    assert base64.b64decode(src.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    out = json.loads(rep.json())["sweep"]
    assert len(out["rows"]) == len(data["rows"])
    assert [r["recommended"] for r in out["rows"]] == [r["recommended"] for r in data["rows"]]
    assert [r["pareto"] for r in out["rows"]] == [r["pareto"] for r in data["rows"]]
    assert out["recommendations"] == data["recommendations"]
    assert f"recommended for {rec['pair']}" in rep.markdown()
    (tmp_path / "not-sweep.json").write_text(json.dumps({"schema": "colo-replay-report/1"}))
    with pytest.raises(ValueError, match="not a colo-replay sweep JSON"):
        api.report(PRIMARY, SECONDARY, filter_rewriter=True, sweep=str(tmp_path / "not-sweep.json"))
