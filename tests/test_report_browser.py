"""The HTML report in a real browser: Debian's headless chromium, driven over the DevTools
protocol on a pipe (tests/support/chromium.py).  Fails, never skips, when chromium is missing.

* the sample report (reports/sample-report.html, and one built now the same way): every section
  in the rendered DOM, every plot decoded (naturalWidth > 0), the full-page screenshot not blank;
* the page with JavaScript disabled renders the same sections and plots (it has no script);
* hostile captured bytes and file names: nothing runs (the title stays, no injected element or
  attribute appears, no script element exists), with the page's Content-Security-Policy and
  without it (escaping alone must hold).
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from colo_replay import api
from colo_replay.analysis.report.html import CSP

from tests.support.chromium import Browser
from tests.support.hostile import hostile_report

pytestmark = pytest.mark.chromium

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "reports" / "sample-report.html"
SECTIONS = ["summary", "activity", "held", "checkpoints", "connections", "divergences", "inputs"]

_STATE = """(() => ({
  sections: [...document.querySelectorAll('section[id]')].map(s => s.id),
  images: [...document.images].map(i => ({id: i.id, complete: i.complete, w: i.naturalWidth, h: i.naturalHeight})),
  scripts: document.scripts.length,
  title: document.title,
  pwned: document.querySelectorAll('[data-pwned], #pwned').length,
  text: document.body.innerText,
}))()"""


def _not_blank(png: bytes) -> tuple[float, int]:
    """(share of non-white pixels, distinct colours) of a screenshot."""
    from PIL import Image
    import numpy as np

    img = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
    nonwhite = (img < 245).any(axis=2).mean()
    colours = len(np.unique(img.reshape(-1, 3)[::97], axis=0))
    return float(nonwhite), colours


def _check_page(path: Path, javascript: bool = True) -> dict:
    with Browser(javascript=javascript) as b:
        b.open(path.resolve().as_uri())
        state = b.evaluate(_STATE)
        png = b.screenshot()
    assert all(s in state["sections"] for s in SECTIONS), state["sections"]
    assert len(state["images"]) == 3
    for img in state["images"]:
        assert img["complete"] and img["w"] > 0 and img["h"] > 0, img
    nonwhite, colours = _not_blank(png)
    assert nonwhite > 0.05 and colours > 20, (nonwhite, colours)
    assert state["scripts"] == 0
    return state


def test_sample_report_renders():
    state = _check_page(SAMPLE)
    assert "CHECKPOINT REQUESTED" in state["text"]


def test_fresh_sample_report_renders_with_and_without_javascript(tmp_path):
    page = tmp_path / "r.html"
    page.write_text(api.report(str(ROOT / "sample_pcaps/primary.pcap"), str(ROOT / "sample_pcaps/secondary.pcap"),
                               filter_rewriter=True).html(), encoding="utf-8")
    on = _check_page(page)
    off = _check_page(page, javascript=False)
    assert on["sections"] == off["sections"]


@pytest.mark.parametrize("with_csp", [True, False], ids=["with-csp", "escaping-only"])
@pytest.mark.parametrize("source", ["explain-shaped", "explain"])
def test_hostile_report_runs_nothing(tmp_path, with_csp, source):
    """``explain-shaped``: hostile bytes in every string of the divergence data (classes, hints,
    flows, field values, hex); ``explain``: the real report of the hostile pair (explain's own
    field values and hex windows of those payloads, the hostile file names)."""
    if source == "explain":
        from tests.support.hostile import hostile_run
        p, s, _ = hostile_run(tmp_path)
        rep = api.report(p, s)
    else:
        rep = hostile_report(tmp_path)
    text = rep.html()
    if not with_csp:
        marker = f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        assert marker in text
        text = text.replace(marker, "")
    page = tmp_path / "hostile.html"
    page.write_text(text, encoding="utf-8")
    state = _check_page(page)
    assert state["title"].startswith("colo-replay report: ") and "PWNED" in state["title"]   # as text
    assert state["pwned"] == 0
    if source == "explain-shaped":
        assert '<script>document.title="PWNED"' in state["text"]
        assert "\\x1b" in state["text"] and "\\udcff" in state["text"]
    else:
        assert "onerror=" in state["text"] and rep.data["divergences"]["source"] == "explain"


def test_the_harness_sees_scripts_run_and_not_run(tmp_path):
    """The control for the tests above: a page whose script sets the title does so with
    JavaScript on (so 'nothing ran' is a real observation) and not with it off."""
    page = tmp_path / "js.html"
    page.write_text('<html><head><title>before</title></head><body>'
                    '<script>document.title="ran";document.body.setAttribute("data-pwned","1")</script></body></html>')
    for javascript, title, pwned in ((True, "ran", 1), (False, "before", 0)):
        with Browser(javascript=javascript) as b:
            b.open(page.as_uri())
            assert b.evaluate(_STATE.replace("document.body.innerText", "''"))["title"] == title
            assert b.evaluate("document.querySelectorAll('[data-pwned]').length") == pwned


def test_a_real_runs_report_shows_the_requests_judged(tmp_path):
    """report --chardev with --qemu-trace (the bundled real COLO run): a section "The real run"
    with the matched / missed / extra requests, in the browser, the Markdown and the JSON."""
    run = ROOT / "sample_pcaps" / "colo-run"
    rep = api.report(chardev=str(run / "lo-chardevs.pcap"), qemu_trace=[str(run / "primary-trace.log")])
    rr = rep.data["real_run"]
    assert rr["ok"] and rr["matched_colo_compare"] == rr["colo_compare_triggered"] == 16 and rr["extra"] == 0
    assert "**The real run (--qemu-trace):** 16 of 16" in rep.markdown()
    page = tmp_path / "r.html"
    page.write_text(rep.html(), encoding="utf-8")
    state = _check_page(page)
    assert "real_run" in state["sections"]
    assert "16 of 16 (100.0 %)" in state["text"] and "152 of 152 agree" in state["text"]
