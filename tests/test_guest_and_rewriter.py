"""``--guest`` (outbound selection) on a real two-direction tcpdump capture, and
``--filter-rewriter`` on the real sample pair.

The two-direction capture is made here: two network namespaces of our own joined by a veth pair,
a "guest" (MAC 52:54:00:12:34:56, 10.201.0.2) answering UDP echo and a TCP request from a
"peer" (02:00:00:00:00:01, 10.201.0.1), captured with tcpdump on the guest's interface in both
directions.  Needs root (CI runs as root) and fails, never skips, without it.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys

import pytest

from colo_replay.api import replay
from colo_replay.captures import CaptureError, open_capture
from colo_replay.offline.guest import detect_guest, guest_bpf
from tests.support.polling import wait_until

GUEST_MAC, PEER_MAC = "52:54:00:12:34:56", "02:00:00:00:00:01"
GUEST_IP, PEER_IP = "10.201.0.2", "10.201.0.1"

_GUEST_SERVER = r"""
import socket, threading
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(("0.0.0.0", 7))
t = socket.socket(); t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); t.bind(("0.0.0.0", 80)); t.listen()
def udp():
    while True:
        d, a = u.recvfrom(2048); u.sendto(d, a)
threading.Thread(target=udp, daemon=True).start()
print("ready", flush=True)
while True:
    c, _ = t.accept(); c.recv(100); c.sendall(b"HTTP/1.0 200 OK\r\n\r\n" + b"x" * 3000); c.close()
"""

_PEER_CLIENT = r"""
import socket
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.settimeout(2)
for i in range(5):
    u.sendto(b"echo %d" % i, ("GUEST", 7)); u.recvfrom(100)
c = socket.create_connection(("GUEST", 80), timeout=2); c.sendall(b"GET / HTTP/1.0\r\n\r\n")
while c.recv(4096): pass
"""


def _run(*cmd, **kw):
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw)


@pytest.fixture(scope="module")
def two_way_capture(tmp_path_factory):
    assert os.geteuid() == 0, "this test builds network namespaces: run it as root (CI does)"
    for tool in ("ip", "tcpdump"):
        assert shutil.which(tool), f"{tool} is missing (.ci/run installs iproute2 and tcpdump)"
    out = tmp_path_factory.mktemp("guest") / "two-way.pcap"
    tag = f"{os.getpid() % 100000}"
    g, p = f"crg{tag}", f"crp{tag}"
    procs = []
    try:
        _run("ip", "netns", "add", g)
        _run("ip", "netns", "add", p)
        _run("ip", "link", "add", f"vg{tag}", "netns", g, "type", "veth", "peer", "name", f"vp{tag}", "netns", p)
        for ns, dev, mac, ip in ((g, f"vg{tag}", GUEST_MAC, GUEST_IP), (p, f"vp{tag}", PEER_MAC, PEER_IP)):
            _run("ip", "-n", ns, "link", "set", dev, "address", mac)
            _run("ip", "-n", ns, "addr", "add", f"{ip}/24", "dev", dev)
            _run("ip", "-n", ns, "link", "set", dev, "up")
            _run("ip", "-n", ns, "link", "set", "lo", "up")
        dump = subprocess.Popen(["ip", "netns", "exec", g, "tcpdump", "-i", f"vg{tag}", "-s", "0", "-U", "--immediate-mode",
                                 "-Z", "root", "-w", str(out), "not ip6"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        procs.append(dump)
        line = dump.stderr.readline()
        assert "listening on" in line, line
        server = subprocess.Popen(["ip", "netns", "exec", g, sys.executable, "-c", _GUEST_SERVER],
                                  stdout=subprocess.PIPE, text=True)
        procs.append(server)
        assert server.stdout.readline().strip() == "ready"
        _run("ip", "netns", "exec", p, sys.executable, "-c", _PEER_CLIENT.replace("GUEST", GUEST_IP))
        # tcpdump -U writes each frame as it comes: wait until the file holds the TCP exchange's end
        # (a FIN from each side), not a fixed time
        wait_until(lambda: _fins(out) >= {GUEST_MAC, PEER_MAC}, "both FINs of the TCP exchange in the capture")
    finally:
        for proc in reversed(procs):
            # tcpdump writes what it has and exits on SIGINT
            proc.send_signal(signal.SIGINT if proc is procs[0] else signal.SIGTERM)
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
        subprocess.run(["ip", "netns", "del", g], capture_output=True)
        subprocess.run(["ip", "netns", "del", p], capture_output=True)
    return str(out)


def _fins(path) -> set:
    """The source MACs of the TCP FINs in the capture so far (a record still being written ends
    the reading)."""
    out = set()
    try:
        for _n, _t, f, _o, _i in open_capture(path):
            if len(f) >= 48 and f[12:14] == b"\x08\x00" and f[23] == 6:
                flags = f[14 + (f[14] & 15) * 4 + 13]
                if flags & 1:
                    out.add(f[6:12].hex(":"))
    except (CaptureError, OSError):
        pass
    return out


def _sources(path):
    return [f[6:12].hex(":") for _n, _t, f, _o, _i in open_capture(path)]


def test_detects_the_guest_on_a_two_way_capture(two_way_capture):
    srcs = _sources(two_way_capture)
    assert GUEST_MAC in srcs and PEER_MAC in srcs        # really both directions
    choice = detect_guest(open_capture(two_way_capture))
    assert choice.mac == GUEST_MAC
    assert choice.sent == srcs.count(GUEST_MAC)
    assert "52:54:00" in choice.reason                   # the two MACs tie; QEMU's prefix decides


def test_guest_filters_by_mac_and_by_ip(two_way_capture, tmp_path):
    srcs = _sources(two_way_capture)
    inbound = srcs.count(PEER_MAC)
    for spec in (GUEST_MAC, GUEST_IP, "auto"):
        out = tmp_path / "t.jsonl"
        summ = tmp_path / "s.json"
        r = subprocess.run([sys.executable, "-m", "colo_replay.cli", "replay", two_way_capture, two_way_capture,
                            "--guest", spec, "-o", str(out), "--summary-json", str(summ)],
                           capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        import json
        doc = json.loads(summ.read_text())
        assert doc["source"]["guest"]["filter"] == (guest_bpf(spec) if spec != "auto" else f"ether src {GUEST_MAC}")
        assert doc["captures"]["primary"]["filtered"] == inbound
        assert doc["captures"]["secondary"]["fed"] == len(srcs) - inbound
        assert "keeping the guest's outbound frames" in r.stderr
    # and without --guest, the inbound frames are compared as if the guest sent them
    t = replay(two_way_capture, two_way_capture)
    t_guest = replay(two_way_capture, two_way_capture, bpf_filter=guest_bpf(GUEST_MAC))
    assert t.result.primary.fed == len(srcs)
    assert t_guest.result.primary.fed == len(srcs) - inbound
    assert t_guest.result.primary.filtered == inbound


def test_bad_guest_spec_is_exit_2():
    r = subprocess.run([sys.executable, "-m", "colo_replay.cli", "replay", "sample_pcaps/primary.pcap",
                        "sample_pcaps/secondary.pcap", "--guest", "not-an-address"], capture_output=True, text=True)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "--guest" in r.stderr


# ------------------------------------------------------------------------------ filter-rewriter

def test_filter_rewriter_on_the_sample_pair():
    """sample_pcaps/README.md lists the ISN offsets (secondary minus primary) of 41001-41009;
    with the rewriter only the real payload divergences remain: 6 /api/now bodies, 4 stat
    replies and one UDP reply (sample README, "Divergences, and why")."""
    raw = replay("sample_pcaps/primary.pcap", "sample_pcaps/secondary.pcap", after_checkpoint="raw")
    tl = replay("sample_pcaps/primary.pcap", "sample_pcaps/secondary.pcap", filter_rewriter=True,
                after_checkpoint="raw")
    st = tl.summary["source"]["filter_rewriter"]
    assert [off for _port, off in st["offsets"]] == [-333, 2502, 1, -2209, 2725, 8347, -2483, -2660, 2990]
    assert st["connections"] == 9 and st["unpaired"] == 0
    ev = tl.events
    req = ev[ev.kind == "checkpoint_request"]
    assert len(req) == 11 and set(req.cause) == {"miscompare"}
    assert sorted(req["size"].value_counts().items()) == [(100, 4), (102, 1), (133, 6)]
    assert raw.summary["divergences"] > 4 * tl.summary["divergences"]
    assert not (ev.kind == "undefined").any()


def test_filter_rewriter_shifts_seq_and_fixes_the_checksum():
    from colo_replay.offline.rewriter import RewrittenReader, synack_table
    import struct
    table = synack_table(open_capture("sample_pcaps/primary.pcap"))
    rd = RewrittenReader(open_capture("sample_pcaps/secondary.pcap"), table)
    before = [f for _n, _t, f, _o, _i in open_capture("sample_pcaps/secondary.pcap")]
    after = [f for b in rd.batches() for f in b.frames]
    changed = [(a, b) for a, b in zip(before, after) if a != b]
    assert len(changed) == rd.stats.frames_rewritten == 100
    for a, b in changed:
        assert a[:38] == b[:38] and a[46:50] == b[46:50] and a[54:] == b[54:]   # only seq/ack/checksum
        # the recomputed checksum verifies: the one's-complement sum over pseudo-header + segment is 0xffff
        ihl = (b[14] & 15) * 4
        seg = b[14 + ihl:14 + struct.unpack_from("!H", b, 16)[0]]
        total = sum(struct.unpack_from("!HHHH", b, 26)) + 6 + len(seg)
        seg += b"\0" * (len(seg) % 2)
        total += sum(struct.unpack(f"!{len(seg) // 2}H", seg))
        while total >> 16:
            total = (total & 0xFFFF) + (total >> 16)
        assert total == 0xFFFF
