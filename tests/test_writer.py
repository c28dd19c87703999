"""``colo_replay.captures.writer.PcapngWriter``: one pcapng writer (dpkt's blocks) for live
recordings, tests and evidence files: several interfaces, nanosecond stamps, packet comments,
truncated frames; read back by tshark and by our own reader."""

from __future__ import annotations

import io
import subprocess

import pytest

from colo_replay.captures import open_capture
from colo_replay.captures.writer import PcapngWriter
from tests.support.tools import require

T0 = 1_795_000_000_123_456_789
ETH = bytes.fromhex("525400123456" "525400abcdef" "0800") + bytes(46)


def _evidence(path):
    with PcapngWriter(str(path), ["primary", "secondary"]) as w:
        w.write(T0, ETH, comment="P#1 differs at byte 54", interface=0)
        w.write(T0 + 7, ETH[:-1] + b"\x01", comment="S#1 (é: UTF-8)", interface=1)
        w.write(T0 + 9, ETH[:20], orig_len=len(ETH), interface=1)
        w.write(0, b"\x02" * 61, comment="abc")            # t=0 stays 0 (dpkt's writepkt would stamp now)
        assert w.count == 4


def test_our_reader_reads_it_back(tmp_path):
    p = tmp_path / "e.pcapng"
    _evidence(p)
    rows = [(t, bytes(f), o, i) for b in open_capture(str(p)).batches()
            for t, f, o, i in zip(b.timestamps, b.frames, b.orig_lens, b.interface_ids)]
    assert rows == [(T0, ETH, len(ETH), 0), (T0 + 7, ETH[:-1] + b"\x01", len(ETH), 1),
                    (T0 + 9, ETH[:20], len(ETH), 1), (0, b"\x02" * 61, 61, 0)]


@pytest.mark.wireshark
def test_tshark_reads_comments_interfaces_and_ns_stamps(tmp_path):
    tshark = require("tshark")
    p = tmp_path / "e.pcapng"
    _evidence(p)
    out = None
    for field in ("frame.comment", "pkt_comment"):       # Wireshark >= 3.6 / older
        r = subprocess.run([tshark, "-r", str(p), "-T", "fields", "-E", "separator=|", "-e", field,
                            "-e", "frame.interface_name", "-e", "frame.time_epoch", "-e", "frame.len",
                            "-e", "frame.cap_len"], capture_output=True, text=True)
        if r.returncode == 0:
            out = r.stdout
            break
    assert out is not None, r.stderr
    rows = [line.split("|") for line in out.splitlines()]
    assert [row[0] for row in rows] == ["P#1 differs at byte 54", "S#1 (é: UTF-8)", "", "abc"]
    assert [row[1] for row in rows] == ["primary", "secondary", "secondary", "primary"]
    assert rows[1][2] == "1795000000.123456796"
    assert rows[2][3:] == [str(len(ETH)), "20"]


def test_file_object_and_errors():
    buf = io.BytesIO()
    w = PcapngWriter(buf, "outdev")
    w.write(T0, ETH, "x")
    data = buf.getvalue()
    assert data[:4] == b"\x0a\x0d\x0d\x0a" and data.count(b"outdev") == 1
    with pytest.raises(ValueError):
        PcapngWriter(io.BytesIO(), [])
