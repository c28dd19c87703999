"""Messages that name where (issue 24, item 6): what a reader reads on but finds absurd is a
warning naming the file and the byte offset (an if_tsresol finer than any clock), and a chardev
stream that ends inside a frame names where that frame's length word was."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
from pathlib import Path

import dpkt

from colo_replay.captures import open_capture
from colo_replay.captures.writer import PcapngWriter
from tests.support import frames as F

REPO = Path(__file__).resolve().parent.parent
CHARDEV = REPO / "sample_pcaps/chardev-lo.pcap"


def test_an_absurd_if_tsresol_is_a_warning_naming_the_block(tmp_path):
    path = tmp_path / "r.pcapng"
    with PcapngWriter(str(path), "x") as w:
        w.write(1_795_000_000 * 10**9, F.udp(b"a"))
    data = bytearray(path.read_bytes())
    i = data.find(bytes([9, 0, 1, 0, 9]))          # if_tsresol = 10^-9 as the writer puts it
    for value, warned in ((127, True), (19, False), (0x80 | 63, False), (0x80 | 65, True)):
        data[i + 4] = value
        path.write_bytes(bytes(data))
        rd = open_capture(path)
        rows = list(rd)
        assert len(rows) == 1
        if warned:
            res = f"2^-{value & 0x7F}" if value & 0x80 else f"10^-{value}"
            assert rd.warnings == [f"{path}: at byte offset 48: Interface Description Block 0 says if_tsresol "
                                   f"{res} s, finer than any clock: its timestamps read as about 0 s (as in "
                                   f"Wireshark)"]
        else:
            assert rd.warnings == []


def test_a_chardev_length_word_nothing_completes_is_named(tmp_path):
    """A primary_in length word of 2^31: QEMU fails on it only once NET_BUFSIZE bytes have
    arrived, so it waits for the rest until the capture ends; the warning names the capture
    frame of the length word, its stream offset and what it announced."""
    data = bytearray(CHARDEV.read_bytes())
    pos, number = 24, 0
    while pos < len(data):
        caplen = struct.unpack_from("<I", data, pos + 8)[0]
        number += 1
        eth = dpkt.ethernet.Ethernet(bytes(data[pos + 16:pos + 16 + caplen]))
        tcp = eth.data.data if isinstance(eth.data, dpkt.ip.IP) else None
        if isinstance(tcp, dpkt.tcp.TCP) and tcp.sport == 9001 and len(tcp.data) >= 4:
            struct.pack_into(">I", data, pos + 16 + caplen - len(tcp.data), 2**31)
            break
        pos += 16 + caplen
    path = tmp_path / "lo.pcap"
    path.write_bytes(bytes(data))
    env = dict(os.environ, PYTHONPATH=str(REPO))
    r = subprocess.run([sys.executable, "-m", "colo_replay.cli", "replay", "--chardev", str(path)],
                       capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 2, r.stderr
    assert (f"warning: primary_in: the stream ends inside a frame (its length word in capture frame {number}, "
            f"stream byte 0), announced 2147483648 bytes") in r.stderr
