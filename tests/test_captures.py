"""Capture readers and the BPF helper, checked against real captures and real tools.

The fixture captures are made at test time, in a temporary directory, by the tools people
make them with: tcpdump on the loopback interface (``lo`` and ``any``, UDP to 127.0.0.1 and
::1 only), editcap / mergecap / text2pcap for the other formats, gzip for compression.  A
few variants no tool writes (big-endian pcap, base-2 ``if_tsresol``, Simple and obsolete
Packet Blocks, ...) are built here from frames of the real captures.  Every file is then
read by tshark too, and the reader must agree with it on frame numbers, timestamps (ns),
lengths and bytes.

Missing tools or missing capture rights make the tests FAIL, never skip: a green run must
mean the readers were checked.
"""

from __future__ import annotations

import gzip
import json
import os
import pickle
import random
import socket
import struct
import subprocess
import time
from decimal import Decimal
from pathlib import Path

import pytest

from colo_replay.captures import BpfFilter, CaptureError, open_capture, read_all
from colo_replay.captures import linktypes
from tests.support.tools import require

TOOLS = ("tcpdump", "tshark", "editcap", "mergecap", "text2pcap")
SIZES = (0, 1, 100, 1400, 3000, 9000)      # UDP payload sizes, cycled
FRAMES = 12                                 # frames per live capture
SLL_HDR = {linktypes.LINUX_SLL: 16, linktypes.LINUX_SLL2: 20}


def tool(name: str) -> str:
    return require(name)        # fails, never skips, without it


def run(*args: str) -> str:
    proc = subprocess.run([tool(args[0]), *args[1:]], capture_output=True, text=True,
                          timeout=120)
    if proc.returncode != 0:
        pytest.fail(f"{' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()}",
                    pytrace=False)
    return proc.stdout


# ---------------------------------------------------------------------------------------
# Making captures


def udp_pair(port: int = 0):
    """Receivers on 127.0.0.1 and ::1 sharing one free port (so no ICMP unreachable)."""
    for _ in range(50):
        r4 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        r4.bind(("127.0.0.1", port))
        chosen = r4.getsockname()[1]
        r6 = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        try:
            r6.bind(("::1", chosen))
        except OSError:
            r4.close()
            r6.close()
            continue
        return r4, r6, chosen
    pytest.fail("could not bind UDP receivers on 127.0.0.1 and ::1", pytrace=False)


def live_capture(out: Path, *tcpdump_args: str, count: int = FRAMES) -> Path:
    """tcpdump -c count on a loopback interface while UDP datagrams go to 127.0.0.1 / ::1."""
    if os.geteuid() != 0:
        pytest.fail("live captures with tcpdump need root (or CAP_NET_RAW)", pytrace=False)
    r4, r6, port = udp_pair()
    s4 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s6 = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    # -Z root: tcpdump would otherwise drop to user "tcpdump", who cannot write pytest's
    # private tmp dir.  -U: write every packet at once.
    proc = subprocess.Popen([tool("tcpdump"), "-Z", "root", "-U", "-n", "-w", str(out),
                             "-c", str(count), *tcpdump_args, f"udp dst port {port}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        first = ""
        while "listening on" not in first:
            line = proc.stderr.readline()
            if not line:
                break
            first += line
        if "listening on" not in first:
            proc.wait(10)
            pytest.fail(f"tcpdump did not start: {first}{proc.stderr.read()}", pytrace=False)
        # Keep sending until tcpdump has its count: the ring may start a little late.
        i = 0
        deadline = time.monotonic() + 60
        while proc.poll() is None:
            if time.monotonic() > deadline:
                pytest.fail(f"tcpdump {' '.join(tcpdump_args)} got fewer than {count} frames",
                            pytrace=False)
            size = SIZES[i % len(SIZES)]
            if i % 3 == 2:
                s6.sendto(b"y" * size, ("::1", port))
            else:
                s4.sendto(b"x" * size, ("127.0.0.1", port))
            i += 1
            time.sleep(0.004)
        if proc.returncode != 0:
            pytest.fail(f"tcpdump failed: {proc.stderr.read()}", pytrace=False)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stderr.close()
        for s in (r4, r6, s4, s6):
            s.close()
    return out


# ---------------------------------------------------------------------------------------
# What tshark says


def tshark_rows(path: Path) -> list[tuple]:
    """(number, ts_ns, frame.len, frame.cap_len, interface_id, encap, file_offset) per
    record; ts_ns is None when tshark shows no time (Simple Packet Blocks), encap is None
    for records that are not packets (pcapng custom blocks)."""
    out = run("tshark", "-o", "frame.show_file_off:TRUE", "-r", str(path), "-T", "fields",
              "-e", "frame.number", "-e", "frame.time_epoch", "-e", "frame.len",
              "-e", "frame.cap_len", "-e", "frame.interface_id", "-e", "frame.encap_type",
              "-e", "frame.file_off")
    rows = []
    for line in out.splitlines():
        num, epoch, flen, clen, iface, encap, off = line.split("\t")
        ns = int(Decimal(epoch) * 1_000_000_000) if epoch else None
        rows.append((int(num), ns, int(flen), int(clen), int(iface or 0),
                     int(encap) if encap else None, int(off)))
    return rows


def tshark_raw(path: Path) -> list[bytes]:
    """Every frame's bytes as tshark read them (link-layer header included)."""
    out = run("tshark", "-r", str(path), "-T", "json", "-x")
    return [bytes.fromhex(p["_source"]["layers"]["frame_raw"][0]) for p in json.loads(out)]


def tshark_sll(path: Path) -> list[tuple[int, bytes | None]]:
    """(ethertype, source address) per frame, from tshark's Linux cooked dissector."""
    out = run("tshark", "-r", str(path), "-T", "fields", "-e", "sll.etype", "-e", "sll.src.eth")
    rows = []
    for line in out.splitlines():
        etype, src = line.split("\t")
        rows.append((int(etype, 16), bytes.fromhex(src.replace(":", "")) if src else None))
    return rows


# Encapsulation numbers tshark prints (wiretap's WTAP_ENCAP_*), per pcap link type.
WTAP_ENCAP = {1: 1, 113: 25, 276: 210, 101: 7, 12: 7, 14: 7, 228: 129, 229: 130}


def check_against_tshark(path: Path, reader=None, *, global_ids: list[int] | None = None):
    """Read ``path`` with our reader and with tshark; everything must agree."""
    reader = reader or open_capture(path)
    ours = list(reader)
    records = tshark_rows(path)
    raws = tshark_raw(path)
    assert len(records) == len(raws)
    theirs = [r for r in records if r[5] is not None]
    raws = [raw for r, raw in zip(records, raws) if r[5] is not None]
    assert len(ours) == len(theirs) > 0
    assert reader.non_packet_records == len(records) - len(theirs)
    linktype_of = {i.interface_id: i.linktype for i in reader.interfaces}
    for k, ((num, ts, frame, orig, iface), (tnum, tts, tlen, tcap, tiface, encap, _off),
            raw) in enumerate(zip(ours, theirs, raws)):
        lt = linktype_of[iface]
        delta = linktypes.lookup(lt).delta
        assert num == tnum
        assert ts == (0 if tts is None else tts), f"frame {num}: {ts} != tshark {tts}"
        assert orig == tlen + delta, f"frame {num}: orig_len"
        assert len(frame) == tcap + delta, f"frame {num}: caplen"
        assert WTAP_ENCAP[lt] == encap
        expected_iface = tiface if global_ids is None else global_ids[k]
        assert iface == expected_iface, f"frame {num}: interface"
        if lt == linktypes.ETHERNET:
            assert frame == raw
        else:
            hdr = SLL_HDR.get(lt, 0)
            assert frame[14:] == raw[hdr:], f"frame {num}: payload after synthesised header"
    return reader, ours, theirs


# ---------------------------------------------------------------------------------------
# Hand-built variants (from real frames)


def pcap_bytes(order: str, nsec: bool, linktype: int, snaplen: int, records) -> bytes:
    magic = 0xA1B23C4D if nsec else 0xA1B2C3D4
    out = [struct.pack(order + "IHHiIII", magic, 2, 4, 0, 0, snaplen, linktype)]
    div = 1 if nsec else 1000
    for ts, frame, orig in records:
        sec, frac = divmod(ts, 1_000_000_000)
        out.append(struct.pack(order + "IIII", sec, frac // div, len(frame), orig) + frame)
    return b"".join(out)


def pad4(b: bytes) -> bytes:
    return b + bytes(-len(b) & 3)


def ng_block(o: str, btype: int, body: bytes) -> bytes:
    body = pad4(body)
    blen = 12 + len(body)
    return struct.pack(o + "II", btype, blen) + body + struct.pack(o + "I", blen)


def ng_opt(o: str, code: int, value: bytes) -> bytes:
    return struct.pack(o + "HH", code, len(value)) + pad4(value)


def ng_shb(o: str) -> bytes:
    return ng_block(o, 0x0A0D0D0A, struct.pack(o + "IHHq", 0x1A2B3C4D, 1, 0, -1))


def ng_idb(o: str, linktype: int, snaplen: int, *, tsresol: int | None = None,
           tsoffset: int | None = None, name: str | None = None) -> bytes:
    opts = b""
    if name is not None:
        opts += ng_opt(o, 2, name.encode())
    if tsresol is not None:
        opts += ng_opt(o, 9, bytes([tsresol]))
    if tsoffset is not None:
        opts += ng_opt(o, 14, struct.pack(o + "q", tsoffset))
    if opts:
        opts += ng_opt(o, 0, b"")
    return ng_block(o, 1, struct.pack(o + "HHI", linktype, 0, snaplen) + opts)


def ticks(ts_ns: int, units: int, tsoffset: int = 0) -> int:
    return (ts_ns - tsoffset * 1_000_000_000) * units // 1_000_000_000


def ng_epb(o: str, iid: int, t: int, frame: bytes, orig: int) -> bytes:
    return ng_block(o, 6, struct.pack(o + "IIIII", iid, t >> 32, t & 0xFFFFFFFF, len(frame),
                                      orig) + frame)


def ng_pb(o: str, iid: int, t: int, frame: bytes, orig: int) -> bytes:
    return ng_block(o, 2, struct.pack(o + "HHIIII", iid, 0, t >> 32, t & 0xFFFFFFFF,
                                      len(frame), orig) + frame)


def ng_spb(o: str, frame: bytes, orig: int) -> bytes:
    return ng_block(o, 3, struct.pack(o + "I", orig) + frame)


def handmade_pcapng(eth_rows, sll2_rows) -> tuple[bytes, list[int]]:
    """From rows of an Ethernet capture (our reader's) and (ts, raw SLL2 bytes, orig_len)
    of a cooked one: two sections (little- then big-endian), interfaces with base-2 and base-10
    resolutions and an offset, all three packet block kinds, and blocks to skip.
    Returns the file and the global interface id of every frame."""
    le, be = "<", ">"
    parts = [ng_shb(le),
             ng_idb(le, 1, 262144, tsresol=0x80 | 20, tsoffset=1000, name="lo-b2"),  # 2^-20 s
             ng_idb(le, 1, 262144, tsresol=3),                                          # ms
             ng_idb(le, 276, 0, tsresol=9, name="any")]                                 # ns
    ids = []
    units = {0: 2**20, 1: 1000, 2: 10**9}
    offsets = {0: 1000, 1: 0, 2: 0}
    parts.append(ng_block(le, 4, b"\x00\x00\x00\x00"))                # NRB, empty: skipped
    for k, (_n, ts, frame, orig, _i) in enumerate(eth_rows[:6]):
        iid = k % 2
        parts.append(ng_epb(le, iid, ticks(ts, units[iid], offsets[iid]), frame, orig))
        ids.append(iid)
    for ts, frame, orig in sll2_rows[:3]:
        parts.append(ng_epb(le, 2, ticks(ts, units[2]), frame, orig))
        ids.append(2)
    parts.append(ng_block(le, 5, struct.pack(le + "III", 0, 0, 0)))   # ISB: skipped
    parts.append(ng_block(le, 0x00000BAD, b"custom!"))               # custom block: skipped
    _n, ts, frame, orig, _i = eth_rows[6]
    parts.append(ng_pb(le, 0, ticks(ts, units[0], offsets[0]), frame, orig))
    ids.append(0)
    _n, ts, frame, orig, _i = eth_rows[7]
    parts.append(ng_spb(le, frame, orig))
    ids.append(0)
    parts += [ng_shb(be), ng_idb(be, 1, 128)]                         # snaplen 128
    for _n, ts, frame, orig, _i in eth_rows[8:12]:
        parts.append(ng_epb(be, 0, ticks(ts, 10**6), frame[:128], orig))
        ids.append(3)
    parts.append(ng_spb(be, eth_rows[3][2][:128], eth_rows[3][3]))
    ids.append(3)
    return b"".join(parts), ids


# ---------------------------------------------------------------------------------------
# The fixture set


@pytest.fixture(scope="session")
def caps(tmp_path_factory) -> dict[str, Path]:
    for name in TOOLS:
        tool(name)
    d = tmp_path_factory.mktemp("captures")
    c: dict[str, Path] = {}

    # Live captures on loopback.
    c["eth_us"] = live_capture(d / "eth_us.pcap", "-i", "lo")
    c["eth_ns"] = live_capture(d / "eth_ns.pcap", "-i", "lo", "--time-stamp-precision", "nano")
    c["eth_snap"] = live_capture(d / "eth_snap.pcap", "-i", "lo", "-s", "96")
    c["sll"] = live_capture(d / "sll.pcap", "-i", "any", "-y", "LINUX_SLL")
    c["sll2"] = live_capture(d / "sll2.pcap", "-i", "any", "-y", "LINUX_SLL2")

    # Conversions by Wireshark's tools.
    c["eth_pcapng"] = d / "eth.pcapng"
    run("editcap", "-F", "pcapng", str(c["eth_us"]), str(c["eth_pcapng"]))
    c["eth_nsec"] = d / "eth_nsec.pcap"
    run("editcap", "-F", "nsecpcap", str(c["eth_us"]), str(c["eth_nsec"]))
    c["sll2_pcapng"] = d / "sll2.pcapng"
    run("editcap", "-F", "pcapng", str(c["sll2"]), str(c["sll2_pcapng"]))
    c["merged"] = d / "merged.pcapng"
    run("mergecap", "-w", str(c["merged"]), str(c["eth_us"]), str(c["sll2"]),
        str(c["eth_snap"]), str(c["eth_ns"]))
    c["sections"] = d / "sections.pcapng"
    c["sections"].write_bytes(c["eth_pcapng"].read_bytes() + c["sll2_pcapng"].read_bytes())

    # Raw IP through text2pcap, from the IP packets tshark sees in the SLL2 capture.
    lines4, lines_all = [], []
    for (num, ts, *_rest), raw in zip(tshark_rows(c["sll2"]), tshark_raw(c["sll2"])):
        sec, ns = divmod(ts, 1_000_000_000)
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec)) + f".{ns:09d}Z"
        line = f"{stamp} {raw[20:].hex()}\n"
        lines_all.append(line)
        if raw[20] >> 4 == 4:
            lines4.append(line)
    (d / "ip_all.txt").write_text("".join(lines_all))
    (d / "ip_v4.txt").write_text("".join(lines4))
    t2p = ["-q", "-t", "ISO", "-r", r"^(?<time>\S+) (?<data>[0-9a-f]+)$"]
    for key, fmt, lt, txt in [("raw101", "pcap", "101", "ip_all.txt"),
                              ("raw101_ns", "nsecpcap", "101", "ip_all.txt"),
                              ("raw228", "pcap", "228", "ip_v4.txt"),
                              ("raw_pcapng", "pcapng", "101", "ip_all.txt")]:
        c[key] = d / f"{key}.{'pcapng' if fmt == 'pcapng' else 'pcap'}"
        run("text2pcap", *t2p, "-F", fmt, "-l", lt, str(d / txt), str(c[key]))
    # DLT_RAW as some platforms wrote it into files (text2pcap normalises to 101).
    raw101 = c["raw101"].read_bytes()
    for lt in (12, 14):
        c[f"raw{lt}"] = d / f"raw{lt}.pcap"
        c[f"raw{lt}"].write_bytes(raw101[:20] + struct.pack("<I", lt) + raw101[24:])

    # Big-endian pcap (no tool here writes it), rebuilt from the real frames.
    for key, src, nsec in [("be_us", "eth_us", False), ("be_ns", "eth_ns", True)]:
        rows = read_all(c[src])
        c[key] = d / f"{key}.pcap"
        c[key].write_bytes(pcap_bytes(">", nsec, 1, 262144,
                                      [(ts, f, o) for _n, ts, f, o, _i in rows]))

    # SLL with a real-looking sender address (loopback's is all zeros).
    data = bytearray(c["sll"].read_bytes())
    pos = 24
    while pos < len(data):
        caplen = struct.unpack_from("<I", data, pos + 8)[0]
        data[pos + 16 + 6:pos + 16 + 12] = bytes.fromhex("525400c0ffee")
        pos += 16 + caplen
    c["sll_mac"] = d / "sll_mac.pcap"
    c["sll_mac"].write_bytes(bytes(data))

    # Compressed.
    for key in ("eth_us", "sections", "sll2"):
        c[key + "_gz"] = d / (c[key].name + ".gz")
        c[key + "_gz"].write_bytes(gzip.compress(c[key].read_bytes()))

    # pcapng features no tool here writes.
    sll2_raw = [(row[1], raw, row[2])
                for row, raw in zip(tshark_rows(c["sll2"]), tshark_raw(c["sll2"]))]
    made, ids = handmade_pcapng(read_all(c["eth_us"]), sll2_raw)
    c["handmade"] = d / "handmade.pcapng"
    c["handmade"].write_bytes(made)
    c["handmade_ids"] = ids
    return c


# ---------------------------------------------------------------------------------------
# Agreement with tshark, per format


@pytest.mark.parametrize("key", ["eth_us", "eth_ns", "eth_nsec", "be_us", "be_ns", "eth_snap",
                                 "eth_pcapng", "eth_us_gz"])
def test_ethernet_files_match_tshark(caps, key):
    reader, ours, theirs = check_against_tshark(caps[key])
    assert reader.linktypes == {1}
    assert not reader.synthesised_ethernet
    assert reader.frames_read == len(ours)


def test_pcap_variants(caps):
    for key, order, nsec in [("eth_us", "<", False), ("eth_ns", "<", True),
                             ("eth_nsec", "<", True), ("be_us", ">", False),
                             ("be_ns", ">", True)]:
        r = open_capture(caps[key])
        assert (r.format, r.byte_order, r.nanosecond, r.compressed) == ("pcap", order, nsec,
                                                                        False), key
    # The same frames whatever the container: pcap (us), nsecpcap, big-endian, pcapng.
    base = read_all(caps["eth_us"])
    for key in ("eth_nsec", "be_us", "eth_pcapng", "eth_us_gz"):
        assert read_all(caps[key]) == base, key
    assert open_capture(caps["eth_us_gz"]).compressed


def test_nanosecond_timestamps_are_kept(caps):
    ts = [row[1] for row in read_all(caps["eth_ns"])]
    assert any(t % 1000 for t in ts), "a nanosecond capture should not look like microseconds"


def test_snaplen_truncation_is_flagged(caps):
    reader, ours, theirs = check_against_tshark(caps["eth_snap"])
    cut = [num for num, _ts, frame, orig, _i in ours if len(frame) < orig]
    assert cut == [t[0] for t in theirs if t[3] < t[2]]
    assert cut, "the snaplen-96 capture should contain cut frames"
    assert reader.truncated_frames == len(cut)
    assert all(len(frame) <= 96 for _n, _t, frame, _o, _i in ours)


@pytest.mark.parametrize("key,linktype,hdr", [("sll", 113, 16), ("sll2", 276, 20),
                                              ("sll_mac", 113, 16), ("sll2_pcapng", 276, 20),
                                              ("sll2_gz", 276, 20)])
def test_linux_cooked_becomes_ethernet(caps, key, linktype, hdr):
    reader, ours, _ = check_against_tshark(caps[key])
    assert reader.linktypes == {linktype}
    assert reader.synthesised_ethernet
    for (_n, _t, frame, _o, _i), (etype, src) in zip(ours, tshark_sll(caps[key])):
        assert frame[:6] == bytes(6)
        assert struct.unpack("!H", frame[12:14])[0] == etype
        assert frame[6:12] == (src if src is not None else bytes(6))
    ethertypes = {frame[12:14] for _n, _t, frame, _o, _i in ours}
    assert ethertypes == {b"\x08\x00", b"\x86\xdd"}
    if key == "sll_mac":
        assert all(frame[6:12] == bytes.fromhex("525400c0ffee") for _n, _t, frame, _o, _i in ours)


@pytest.mark.parametrize("key,linktype", [("raw101", 101), ("raw101_ns", 101), ("raw228", 228),
                                          ("raw12", 12), ("raw14", 14), ("raw_pcapng", 101)])
def test_raw_ip_becomes_ethernet(caps, key, linktype):
    reader, ours, _ = check_against_tshark(caps[key])
    assert reader.linktypes == {linktype}
    assert reader.synthesised_ethernet
    for _n, _t, frame, _o, _i in ours:
        assert frame[:12] == bytes(12)
        version = frame[14] >> 4
        assert frame[12:14] == {4: b"\x08\x00", 6: b"\x86\xdd"}[version]
    versions = {frame[14] >> 4 for _n, _t, frame, _o, _i in ours}
    assert versions == ({4} if linktype == 228 else {4, 6})


def test_raw_ip_frames_equal_the_cooked_ones(caps):
    """text2pcap got the IP packets of the SLL2 capture: after synthesis both agree."""
    cooked = read_all(caps["sll2"])
    raw = read_all(caps["raw101_ns"])
    assert [(t, f[12:], o) for _n, t, f, o, _i in raw] == \
           [(t, f[12:], o) for _n, t, f, o, _i in cooked]


def test_mergecap_multi_interface(caps):
    reader, ours, _ = check_against_tshark(caps["merged"])
    assert reader.format == "pcapng"
    assert [i.linktype for i in reader.interfaces] == [1, 276, 1, 1]
    assert [i.snaplen for i in reader.interfaces] == [262144, 262144, 96, 262144]
    assert [i.units_per_second for i in reader.interfaces] == [10**6, 10**6, 10**6, 10**9]
    assert reader.linktypes == {1, 276}
    assert reader.synthesised_ethernet
    assert {row[4] for row in ours} == {0, 1, 2, 3}
    assert reader.truncated_frames == sum(1 for r in ours if len(r[2]) < r[3]) > 0
    # mergecap sorted the four captures by time
    ts = [row[1] for row in ours]
    assert ts == sorted(ts)


@pytest.mark.parametrize("key", ["sections", "sections_gz"])
def test_multiple_sections(caps, key):
    n_eth = len(read_all(caps["eth_us"]))
    n = len(read_all(caps["sll2"]))
    # tshark 4.0 prints section-local interface ids; ours are global (unique in the file).
    reader, ours, theirs = check_against_tshark(caps[key], global_ids=[0] * n_eth + [1] * n)
    assert reader.sections == 2
    assert [(i.section, i.linktype) for i in reader.interfaces] == [(0, 1), (1, 276)]
    assert [t[4] for t in theirs] == [0] * (n_eth + n)


def test_handmade_pcapng_resolutions_offsets_and_block_kinds(caps):
    reader, ours, theirs = check_against_tshark(caps["handmade"],
                                                global_ids=caps["handmade_ids"])
    assert reader.sections == 2
    assert reader.byte_orders == ["<", ">"]
    assert [(i.linktype, i.units_per_second, i.tsoffset, i.name) for i in reader.interfaces] == [
        (1, 2**20, 1000, "lo-b2"), (1, 1000, 0, None), (276, 10**9, 0, "any"),
        (1, 10**6, 0, None)]
    assert reader.untimestamped_frames == 2       # the two Simple Packet Blocks
    spb = [num for num, ts, *_ in ours if ts == 0]
    assert spb == [12, 17]
    assert [t[1] for t in theirs if t[0] in spb] == [None, None]
    # the custom block is record 10 in Wireshark: numbers skip it
    assert reader.non_packet_records == 1
    assert [row[0] for row in ours] == list(range(1, 10)) + list(range(11, 18))
    # Resolution really was applied: base 2 (2^-20 s) is not a whole number of µs, ms is
    # coarse, the offset shifted nothing once undone.
    eth = read_all(caps["eth_us"])
    assert ours[0][1] != eth[0][1] and abs(ours[0][1] - eth[0][1]) < 10**9 / 2**20
    assert ours[1][1] == eth[1][1] // 10**6 * 10**6
    assert ours[6][2] == read_all(caps["sll2"])[0][2]
    # big-endian section with snaplen 128: frames cut and flagged
    assert all(len(f) <= 128 for _n, _t, f, _o, i in ours if i == 3)
    assert reader.truncated_frames == sum(1 for r in ours if len(r[2]) < r[3]) > 0


def test_chunk_boundaries_do_not_matter(caps):
    """Frames straddling chunk ends, and frames larger than a chunk, read the same."""
    for key in ("eth_us", "sll2", "merged", "sections", "handmade", "sections_gz", "raw101"):
        whole = read_all(caps[key])
        for size in (1, 7, 100, 4096):
            assert read_all(caps[key], chunk_size=size) == whole, (key, size)


def test_batches_and_rows_agree(caps):
    reader = open_capture(caps["merged"])
    rows = []
    for batch in reader.batches():
        assert len(batch.frames) == len(batch.timestamps) == len(batch.orig_lens) == \
               len(batch.interface_ids) == len(batch)
        assert batch.frame_numbers.start == batch.first_frame
        rows.extend(batch)
    assert rows == read_all(caps["merged"])
    with pytest.raises(RuntimeError):
        list(reader)


def test_iteration_is_lazy_and_chunked(caps):
    reader = open_capture(caps["eth_us"], chunk_size=4096)
    batches = list(reader.batches())
    assert len(batches) > 1
    assert sum(map(len, batches)) == reader.frames_read == FRAMES


# ---------------------------------------------------------------------------------------
# Errors: hand-corrupted files.  Each must name the file, the frame and the byte offset,
# in one line, after yielding every good frame before the damage.


def read_until_error(path: Path, **kw):
    rows = []
    with pytest.raises(CaptureError) as info:
        for row in open_capture(path, **kw):
            rows.append(row)
    err = info.value
    msg = str(err)
    assert "\n" not in msg
    assert msg.startswith(f"{path}: ")
    assert err.path == str(path)
    return rows, err, msg


def offsets(path: Path) -> list[int]:
    """Byte offset of every record / packet block, per tshark."""
    return [row[6] for row in tshark_rows(path)]


def corrupt(src: Path, dst: Path, edit) -> Path:
    data = bytearray(src.read_bytes())
    edit(data)
    dst.write_bytes(bytes(data))
    return dst


def check_error(err, msg, frame: int | None, offset: int | None, *words: str):
    assert err.frame_number == frame
    assert err.byte_offset == offset
    if frame is not None:
        assert f"frame {frame} " in msg
    if offset is not None:
        assert f"at byte offset {offset}:" in msg
    for w in words:
        assert w in msg, msg


def test_error_not_a_capture(tmp_path):
    p = tmp_path / "notes.txt"
    p.write_text("hello, this is not a capture\n")
    with pytest.raises(CaptureError) as info:
        open_capture(p)
    check_error(info.value, str(info.value), None, 0, "notes.txt", "not a pcap or pcapng",
                "68656c6c")
    empty = tmp_path / "empty.pcap"
    empty.write_bytes(b"")
    with pytest.raises(CaptureError, match="empty file"):
        open_capture(empty)
    gz = tmp_path / "text.gz"
    gz.write_bytes(gzip.compress(b"plain text, compressed"))
    with pytest.raises(CaptureError, match="after gzip decompression"):
        open_capture(gz)


def test_error_truncated_file_header(caps, tmp_path):
    p = tmp_path / "short.pcap"
    p.write_bytes(caps["eth_us"].read_bytes()[:10])
    with pytest.raises(CaptureError) as info:
        open_capture(p)
    check_error(info.value, str(info.value), None, 10, "short.pcap", "24-byte pcap file header")


def test_error_partial_record_header(caps, tmp_path):
    good = read_all(caps["eth_us"])
    offs = offsets(caps["eth_us"])
    p = corrupt(caps["eth_us"], tmp_path / "cut_header.pcap", lambda d: d.__delitem__(
        slice(offs[7] + 7, None)))
    rows, err, msg = read_until_error(p)
    assert rows == good[:7]
    check_error(err, msg, 8, offs[7], "cut_header.pcap", "partial record header",
                "after 7 of its 16 bytes")


def test_error_partial_frame_data(caps, tmp_path):
    good = read_all(caps["eth_us"])
    offs = offsets(caps["eth_us"])
    caplen = len(good[4][2])
    p = corrupt(caps["eth_us"], tmp_path / "cut_frame.pcap", lambda d: d.__delitem__(
        slice(offs[4] + 16 + 120, None)))
    for chunk in (8 << 20, 64):
        rows, err, msg = read_until_error(p, chunk_size=chunk)
        assert rows == good[:4]
        check_error(err, msg, 5, offs[4], "cut_frame.pcap",
                    f"record header declares {caplen} captured bytes, file ends after 120")


def test_caplen_over_snaplen_is_read_in_full_with_a_warning(caps, tmp_path):
    """A record larger than the file's snaplen (a writer that put a wrong snaplen in the header)
    is valid: Wireshark reads it whole, libpcap reads it too (cut to the snaplen).  The reader
    reads it whole after one warning naming the first such frame (issue 19: it was refused)."""
    full = read_all(caps["eth_us"])
    offs = offsets(caps["eth_us"])
    p = corrupt(caps["eth_us"], tmp_path / "over_snap.pcap", lambda d: struct.pack_into("<I", d, 16, 96))
    first = next(k for k, row in enumerate(full) if len(row[2]) > 96)
    reader = open_capture(p)
    assert list(reader) == full
    assert reader.warnings == [f"{p}: frame {first + 1} at byte offset {offs[first]}: record header declares "
                               f"{len(full[first][2])} captured bytes, more than the file's snaplen 96: read in "
                               f"full, as Wireshark does (this frame and any other up to 262144 bytes)"]
    assert [r[2] for r in tshark_rows(p)] == [len(r[2]) for r in full]      # Wireshark: whole frames
    # above the largest frame, it is still an error
    p = corrupt(p, tmp_path / "over_max.pcap", lambda d: struct.pack_into("<I", d, offs[first + 2] + 8, 300_000))
    rows, err, msg = read_until_error(p)
    assert rows == full[:first + 2]
    check_error(err, msg, first + 3, offs[first + 2], "declares 300000 captured bytes, more than the 262144 bytes")


def test_error_absurd_caplen(caps, tmp_path):
    good = read_all(caps["eth_us"])
    offs = offsets(caps["eth_us"])
    p = corrupt(caps["eth_us"], tmp_path / "absurd.pcap",
                lambda d: struct.pack_into("<I", d, offs[9] + 8, 70_000_000))
    rows, err, msg = read_until_error(p)
    assert rows == good[:9]
    check_error(err, msg, 10, offs[9], "absurd.pcap",
                "declares 70000000 captured bytes, more than the 262144 bytes")
    # A big-endian file is checked the same way.
    be = corrupt(caps["be_us"], tmp_path / "absurd_be.pcap",
                 lambda d: struct.pack_into(">I", d, offs[2] + 8, 300_000))
    rows, err, msg = read_until_error(be)
    check_error(err, msg, 3, offs[2], "declares 300000 captured bytes")


def test_error_unsupported_linktype(caps, tmp_path):
    p = corrupt(caps["eth_us"], tmp_path / "radiotap.pcap",
                lambda d: struct.pack_into("<I", d, 20, 127))
    with pytest.raises(CaptureError) as info:
        open_capture(p)
    check_error(info.value, str(info.value), None, 20, "IEEE802_11_RADIOTAP (127)",
                "not supported")


def test_error_pcapng_bad_block_length(caps, tmp_path):
    good = read_all(caps["eth_pcapng"])
    offs = offsets(caps["eth_pcapng"])
    p = corrupt(caps["eth_pcapng"], tmp_path / "badlen.pcapng",
                lambda d: struct.pack_into("<I", d, offs[3] + 4, 102))
    rows, err, msg = read_until_error(p)
    assert rows == good[:3]
    check_error(err, msg, 4, offs[3], "badlen.pcapng", "bad block length 102",
                "Enhanced Packet Block", "multiple of 4")
    p = corrupt(caps["eth_pcapng"], tmp_path / "huge.pcapng",
                lambda d: struct.pack_into("<I", d, offs[3] + 4, 0x40000000))
    rows, err, msg = read_until_error(p)
    assert rows == good[:3]
    check_error(err, msg, 4, offs[3], "bad block length 1073741824", "absurd")
    p = corrupt(caps["eth_pcapng"], tmp_path / "tiny.pcapng",
                lambda d: struct.pack_into("<I", d, offs[3] + 4, 20))
    rows, err, msg = read_until_error(p)
    check_error(err, msg, 4, offs[3], "bad block length 20", "too short (minimum 32)")


def test_error_pcapng_trailer_mismatch(caps, tmp_path):
    good = read_all(caps["eth_pcapng"])
    offs = offsets(caps["eth_pcapng"])

    def edit(d):
        blen = struct.unpack_from("<I", d, offs[6] + 4)[0]
        struct.pack_into("<I", d, offs[6] + blen - 4, blen + 8)

    p = corrupt(caps["eth_pcapng"], tmp_path / "trailer.pcapng", edit)
    rows, err, msg = read_until_error(p)
    assert rows == good[:6]
    blen = struct.unpack_from("<I", caps["eth_pcapng"].read_bytes(), offs[6] + 4)[0]
    check_error(err, msg, 7, offs[6], "trailer.pcapng", "block length mismatch",
                f"header says {blen}, trailer says {blen + 8}")


def test_error_pcapng_unknown_byte_order(caps, tmp_path):
    data = caps["sections"].read_bytes()
    second = caps["eth_pcapng"].stat().st_size          # where the second SHB starts
    n_eth = len(read_all(caps["eth_pcapng"]))
    p = corrupt(caps["sections"], tmp_path / "bom.pcapng",
                lambda d: d.__setitem__(slice(second + 8, second + 12), b"\x11\x22\x33\x44"))
    rows, err, msg = read_until_error(p)
    assert len(rows) == n_eth and rows == read_all(caps["sections"])[:n_eth]
    check_error(err, msg, None, second + 8, "bom.pcapng", "unknown pcapng byte-order magic 11223344")
    first = tmp_path / "bom_first.pcapng"
    first.write_bytes(data[:8] + b"\x00\x00\x00\x00" + data[12:])
    with pytest.raises(CaptureError) as info:
        open_capture(first)
    check_error(info.value, str(info.value), None, 8, "unknown pcapng byte-order magic")


def test_error_pcapng_undefined_interface(caps, tmp_path):
    good = read_all(caps["eth_pcapng"])
    offs = offsets(caps["eth_pcapng"])
    p = corrupt(caps["eth_pcapng"], tmp_path / "iface.pcapng",
                lambda d: struct.pack_into("<I", d, offs[8] + 8, 5))
    rows, err, msg = read_until_error(p)
    assert rows == good[:8]
    check_error(err, msg, 9, offs[8], "iface.pcapng", "references interface 5",
                "defines 1 interface(s)")


def test_error_pcapng_caplen_beyond_block(caps, tmp_path):
    offs = offsets(caps["eth_pcapng"])
    p = corrupt(caps["eth_pcapng"], tmp_path / "epbcap.pcapng",
                lambda d: struct.pack_into("<I", d, offs[1] + 20, 4000))
    rows, err, msg = read_until_error(p)
    assert len(rows) == 1
    check_error(err, msg, 2, offs[1], "declares 4000 captured bytes, but the block holds only")


def test_error_pcapng_truncated(caps, tmp_path):
    good = read_all(caps["eth_pcapng"])
    offs = offsets(caps["eth_pcapng"])
    p = corrupt(caps["eth_pcapng"], tmp_path / "cut.pcapng",
                lambda d: d.__delitem__(slice(offs[10] + 40, None)))
    rows, err, msg = read_until_error(p)
    assert rows == good[:10]
    check_error(err, msg, 11, offs[10], "cut.pcapng", "Enhanced Packet Block declares",
                "file ends after 40")
    p = corrupt(caps["eth_pcapng"], tmp_path / "cut_hdr.pcapng",
                lambda d: d.__delitem__(slice(offs[10] + 5, None)))
    rows, err, msg = read_until_error(p)
    assert rows == good[:10]
    check_error(err, msg, None, offs[10], "partial block header")


def test_error_pcapng_option_overrun(caps, tmp_path):
    # first IDB starts after the 28-byte SHB; its first option (if_name) is at +16
    p = corrupt(caps["handmade"], tmp_path / "opt.pcapng",
                lambda d: struct.pack_into("<H", d, 28 + 16 + 2, 400))
    rows, err, msg = read_until_error(p)
    assert rows == []
    check_error(err, msg, None, 28 + 16, "option 2 of 400 bytes runs past the end")


def test_pcapng_caplen_over_snaplen_is_read_in_full_with_a_warning(caps, tmp_path):
    """An Enhanced Packet Block larger than its interface's snaplen: Wireshark reads it whole
    (libpcap refuses it); the reader reads it whole after one warning per interface."""
    frames = [row[2] for row in read_all(caps["eth_us"])]
    small = [f for f in frames if len(f) <= 64][:2]
    big = [f for f in frames if len(f) > 100][:2]
    p = tmp_path / "snap64.pcapng"
    blocks = [ng_shb("<"), ng_idb("<", 1, 64)] + [ng_epb("<", 0, 7, f, len(f)) for f in small]
    p.write_bytes(b"".join(blocks) + b"".join(ng_epb("<", 0, 8 + k, f, len(f)) for k, f in enumerate(big)))
    reader = open_capture(p)
    assert [r[2] for r in reader] == small + big
    offset = sum(map(len, blocks))
    assert reader.warnings == [f"{p}: frame 3 at byte offset {offset}: Enhanced Packet Block declares {len(big[0])} "
                               f"captured bytes, more than interface 0's snaplen 64: read in full, as Wireshark "
                               f"does (this frame and any other of the interface up to 262144 bytes)"]
    assert [r[3] for r in tshark_rows(p)] == [len(f) for f in small + big]
    # an obsolete Packet Block the same way
    p2 = tmp_path / "snap64_pb.pcapng"
    p2.write_bytes(b"".join(blocks) + ng_pb("<", 0, 8, big[0], len(big[0])))
    reader = open_capture(p2)
    assert [r[2] for r in reader] == small + big[:1] and len(reader.warnings) == 1
    assert "Packet Block declares" in reader.warnings[0]
    # the absurd-size limit is a parameter, and beyond it an error still
    rows, err, msg = read_until_error(caps["eth_pcapng"], max_caplen=100)
    first_big = next(k for k, f in enumerate(frames) if len(f) > 100)
    assert len(rows) == first_big
    check_error(err, msg, first_big + 1, offsets(caps["eth_pcapng"])[first_big],
                "more than the 100 bytes any frame can have")


def test_error_unsupported_linktype_in_pcapng(tmp_path, caps):
    frame = read_all(caps["eth_us"])[0][2]
    p = tmp_path / "usb.pcapng"
    p.write_bytes(ng_shb("<") + ng_idb("<", 1, 0) + ng_idb("<", 220, 0)
                  + ng_epb("<", 0, 5, frame, len(frame)) + ng_epb("<", 1, 6, frame, len(frame)))
    rows, err, msg = read_until_error(p)
    assert len(rows) == 1
    check_error(err, msg, 2, 28 + 20 + 20 + 32 + len(frame) + (-len(frame) & 3),
                "USB_LINUX_MMAPPED (220)", "not supported")


def test_error_gzip_truncated(caps, tmp_path):
    raw = caps["eth_us"].read_bytes()
    comp = gzip.compress(raw)
    p = tmp_path / "cut.pcap.gz"
    p.write_bytes(comp[:len(comp) * 2 // 3])
    rows, err, msg = read_until_error(p, chunk_size=1024)
    good = read_all(caps["eth_us"])
    assert 0 < len(rows) < len(good) and rows == good[:len(rows)]
    check_error(err, msg, len(rows) + 1, err.byte_offset, "cut.pcap.gz", "gzip",
                "decompressed bytes")
    assert err.byte_offset <= len(raw)


def test_error_gzip_corrupt(caps, tmp_path):
    # Incompressible frames, so the damage sits far from the start of the deflate stream.
    rnd = random.Random(7)
    good_file = tmp_path / "random.pcap"
    good_file.write_bytes(pcap_bytes("<", False, 1, 65535, [
        (1_700_000_000_000_000_000 + k * 1000, rnd.randbytes(1000), 1000) for k in range(500)]))
    good = read_all(good_file)
    comp = bytearray(gzip.compress(good_file.read_bytes()))
    for k in range(len(comp) // 2, len(comp) // 2 + 64):
        comp[k] ^= 0x5A
    p = tmp_path / "corrupt.pcap.gz"
    p.write_bytes(bytes(comp))
    rows, err, msg = read_until_error(p)
    # Frames before the damage survive.  (Deflate may turn damage into garbage rather than
    # an error until the CRC at the end: such frames cannot be told from good ones, but
    # the error then still names gzip.)
    intact = next((k for k, (a, b) in enumerate(zip(rows, good)) if a != b), len(rows))
    assert 100 < intact and len(rows) < len(good)
    check_error(err, msg, len(rows) + 1, err.byte_offset, "corrupt.pcap.gz", "gzip data corrupt")
    # A flipped CRC only shows at the very end: every frame was good.
    comp = bytearray(gzip.compress(caps["eth_us"].read_bytes()))
    comp[-8] ^= 0xFF
    p = tmp_path / "crc.pcap.gz"
    p.write_bytes(bytes(comp))
    rows, err, msg = read_until_error(p)
    assert rows == read_all(caps["eth_us"])
    assert "CRC check failed" in msg


def test_gzip_garbage_is_blamed_on_gzip(tmp_path):
    """Damage that decompresses into garbage breaks the records before zlib notices."""
    rnd = random.Random(8)
    records = [(1_700_000_000_000_000_000 + k, rnd.randbytes(60), 60) for k in range(50)]
    raw = bytearray(pcap_bytes("<", False, 1, 65535, records))
    struct.pack_into("<I", raw, 24 + 10 * 76 + 8, 10**8)    # absurd caplen in frame 11
    comp = bytearray(gzip.compress(bytes(raw)))
    comp[-8] ^= 0xFF                                         # and a bad CRC
    p = tmp_path / "garbage.pcap.gz"
    p.write_bytes(bytes(comp))
    rows, err, msg = read_until_error(p)
    assert len(rows) == 10
    check_error(err, msg, 11, 24 + 10 * 76, "gzip data corrupt", "CRC check failed",
                "declares 100000000 captured bytes")


def test_capture_error_pickles():
    err = CaptureError("x.pcap", "bad", frame_number=3, byte_offset=99)
    back = pickle.loads(pickle.dumps(err))
    assert str(back) == str(err) == "x.pcap: frame 3 at byte offset 99: bad"
    assert CaptureError("y.pcap", "two\nlines").__str__() == "y.pcap: two lines"


# ---------------------------------------------------------------------------------------
# BPF: libpcap's verdict through our helper equals tcpdump's on the same file


# Filters that mean the same on any link type (IP-level), and length filters, which only
# mean the same where the link-layer header is Ethernet's.
FILTERS = ["udp", "ip6", "udp[8] = 0x78", "ip[2:2] > 1000", "ip6[4:2] > 100", "not ip6"]
LEN_FILTERS = ["ip and greater 1000", "less 100", "ip6 and greater 200", "not ip6 and len >= 142"]


def tcpdump_selected(path: Path, expr: str, tmp_path: Path) -> list[tuple[int, int]]:
    out = tmp_path / "selected.pcap"
    run("tcpdump", "-Z", "root", "-r", str(path), "-w", str(out), expr)
    return [(t[1], t[2]) for t in tshark_rows(out)] if out.stat().st_size > 24 else []


@pytest.mark.parametrize("key", ["eth_us", "eth_snap", "sll2", "sll", "raw101"])
def test_bpf_matches_tcpdump(caps, tmp_path, key):
    rows = read_all(caps[key])
    delta = linktypes.lookup(next(iter(open_capture(caps[key]).linktypes))).delta
    for expr in FILTERS + (LEN_FILTERS if delta == 0 else []):
        f = BpfFilter(expr)
        ours = [(ts, orig - delta) for _n, ts, frame, orig, _i in rows if f.matches(frame, orig)]
        assert ours == tcpdump_selected(caps[key], expr, tmp_path), (key, expr)
        frames = [r[2] for r in rows]
        origs = [r[3] for r in rows]
        assert f.mask(frames, origs) == [f.matches(a, b) for a, b in zip(frames, origs)]
    some = BpfFilter("udp")
    assert any(some.mask([r[2] for r in rows]))


def test_bpf_bad_expression():
    with pytest.raises(ValueError, match="syntax error"):
        BpfFilter("udp and bogus")
    with pytest.raises(ValueError, match="illegal port number 99999"):
        BpfFilter("port 99999")


def test_bpf_truncated_frame_never_matches_on_missing_bytes():
    frame = bytes(12) + b"\x08\x00" + bytes.fromhex("4500003c000040004011") + bytes(10)
    f = BpfFilter("ip[30] = 0")           # past the captured bytes
    assert not f.matches(frame, 74)
    assert BpfFilter("ip and greater 70").matches(frame, 74)   # wire length is what counts
    assert not BpfFilter("ip and greater 70").matches(frame)
