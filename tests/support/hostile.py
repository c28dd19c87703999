"""A run whose captured bytes and file names are hostile (script tags, quotes, control bytes,
invalid UTF-8), for the report's escaping tests (test_report.py on the text, test_report_browser.py
in chromium)."""

from __future__ import annotations

import os

from colo_replay import api
from colo_replay.analysis.hexdiff import hexdiff

from .frames import udp
from .pcapwrite import write_pcap

HOSTILE_PAYLOADS = (
    b'<script>document.title="PWNED";document.body.setAttribute("data-pwned","1")</script>',
    b'"><img src=x onerror="document.title=\'PWNED\'">',
    b"'\"`&amp;\x00\x01\x07\x1b[31m\r\n\xff\xfe\xc3\x28 invalid utf-8 \xed\xa0\x80",
)
HOSTILE_NAME = b'<img src=x onerror="document.title=\'PWNED\'">"\'&\x01\xff<script>'     # no "/": a file name


def hostile_run(tmp_path):
    """A pair whose UDP replies differ in hostile payloads, in files with a hostile name, and an
    explain-shaped explanation carrying those bytes as field values and a hex window."""
    prim, sec = [], []
    t = 1_700_000_000_000_000_000
    for i, payload in enumerate(HOSTILE_PAYLOADS):
        prim.append((t + i * 50_000_000, udp(payload, sport=53, dport=5353 + i)))
        sec.append((t + i * 50_000_000 + 10_000, udp(payload[::-1], sport=53, dport=5353 + i)))
    d = tmp_path / os.fsdecode(HOSTILE_NAME)
    d.mkdir()
    p = write_pcap(str(d / (os.fsdecode(HOSTILE_NAME) + "-primary.pcap")), prim)
    s = write_pcap(str(d / (os.fsdecode(HOSTILE_NAME) + "-secondary.pcap")), sec)
    divs = []
    for (tp, fp), (_, fs) in zip(prim, sec):
        off = next(i for i in range(len(fp)) if fp[i] != fs[i])
        divs.append({"time_ns": tp, "cause": "miscompare",
                     "flow": {"proto": "udp", "src": "10.0.0.1", "dst": '<b id="pwned">x</b>', "sport": 53,
                              "dport": 5353},
                     "primary_frame": 1, "secondary_frame": 1, "offset": off, "payload_offset": off - 42,
                     "fields": [{"name": "udp.payload<script>", "primary": fp[42:].decode("utf-8", "surrogateescape"),
                                 "secondary": fs[42:].decode("latin-1")}],
                     "class": "miscompare/udp/udp.payload", "consequences": 0,
                     "hex": hexdiff(fp, fs, off).to_dict()})
    classes = [{"cause": "miscompare", "protocol": "udp", "field": HOSTILE_PAYLOADS[0].decode(), "count": 3,
                "share": 1.0, "checkpoints": 3, "first_ns": t, "last_ns": t, "examples": [(1, 1)],
                "hint": HOSTILE_PAYLOADS[1].decode()}]
    return p, s, {"divergences": divs, "classes": classes}


def hostile_report(tmp_path):
    """The report of ``hostile_run``, its explanation standing in for explain's."""
    from colo_replay.analysis.report import Sources, build_report
    p, s, explanation = hostile_run(tmp_path)
    tl = api.replay(p, s)
    assert tl.summary["checkpoint_requests"] > 0
    return build_report(tl.events, tl.summary, Sources.pair(p, s), mode="replay", explanation=explanation,
                        options={"bpf_filter": HOSTILE_PAYLOADS[0].decode()}, version="test")
