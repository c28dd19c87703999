"""Chardev-stream captures: TCP reassembly, framing, replay and ``verify``.

The ground truth is ``sample_pcaps/chardev-lo.pcap`` (and ``-t1000``): tcpdump on lo while the
real QEMU 7.2 colo-compare compared the sample pair (see sample_pcaps/README.md).  Damaged
variants are made from it with Wireshark's own editcap / mergecap, so retransmissions,
reordering and holes are real capture records, moved by real tools.  Sequence wrap-around, port
reuse and vnet framing, which that capture does not contain, use segments written here.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from colo_replay.api import replay_chardev
from colo_replay.captures import read_all
from colo_replay.captures.tcpstream import StreamGap, TcpReassembler
from colo_replay.offline.chardev import ChardevCapture, ChardevError
from colo_replay.engine.framing import COLO_CHECKPOINT, DO_CHECKPOINT, encode_frame, encode_notify_from_compare
from colo_replay.offline.verify import verify_capture
from tests.support.frames import eth, ipv4, tcp_segment, udp
from tests.support.pcapwrite import write_pcap

SAMPLE = "sample_pcaps/chardev-lo.pcap"
SAMPLE_T1000 = "sample_pcaps/chardev-lo-t1000.pcap"
SAMPLE_VNET = "sample_pcaps/chardev-lo-vnet.pcap"      # vnet_hdr_support=on, 12-byte vnet headers
KNOBS = {"compare_timeout": 200, "expired_scan_cycle": 100}
MS = 1_000_000
T0 = 1_700_000_000 * 1_000_000_000
LO = "127.0.0.1"


def _tool(name):
    path = shutil.which(name)
    assert path, f"{name} is missing: install the tshark/wireshark-common package (.ci/run does)"
    return path


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "colo_replay.cli", *args], capture_output=True, text=True)


def _sample_frames(path):
    return [f for _n, _t, f, _o, _i in read_all(path)]


def _data_frames(port):
    """Capture frame numbers of the sample's TCP segments with payload sent from ``port``."""
    import struct
    out = []
    for n, _t, f, _o, _i in read_all(SAMPLE):
        if len(f) > 54 and struct.unpack_from("!H", f, 34)[0] == port:
            ihl = (f[14] & 15) * 4
            doff = (f[14 + ihl + 12] >> 4) * 4
            total = struct.unpack_from("!H", f, 16)[0]
            if total - ihl - doff > 0:
                out.append(n)
    return out


# ---------------------------------------------------------------------------- the real sample

def test_sample_streams_decode_to_the_pair():
    cap = ChardevCapture(SAMPLE)
    assert cap.primary_in.frames == _sample_frames("sample_pcaps/primary.pcap")
    assert cap.secondary_in.frames == _sample_frames("sample_pcaps/secondary.pcap")
    assert len(cap.outdev.frames) == 167 and cap.outdev.direction == "from compare"
    assert len(cap.flush_times()) == 65 and len(cap.request_times()) == 65
    assert cap.warnings == []
    # every frame is stamped with the capture frame that completed it (Wireshark numbering)
    assert cap.primary_in.capture_frames[0] == 19
    assert all(a <= b for a, b in zip(cap.primary_in.times, cap.primary_in.times[1:]))


@pytest.mark.parametrize("path, knobs", [(SAMPLE, KNOBS),
                                         (SAMPLE_T1000, {"compare_timeout": 1000, "expired_scan_cycle": 200}),
                                         (SAMPLE_VNET, {**KNOBS, "vnet_hdr_support": True})])
def test_verify_passes_on_the_real_qemu_captures(path, knobs):
    tl = replay_chardev(path, **knobs)
    res = verify_capture(tl.capture, tl)
    assert res.ok, res.mismatch.describe(tl.capture)
    assert res.released_replay == res.released_qemu == 167
    # requests are timing-dependent in QEMU (iothread reads, timer drift): most match closely
    assert res.requests_matched >= 0.85 * res.requests_qemu
    assert tl.summary["checkpoints"] == len(tl.capture.flush_times())


def test_verify_cli_exit_codes_and_json():
    r = _cli("verify", SAMPLE, "--compare-timeout", "200", "--expired-scan-cycle", "100", "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["ok"] is True and doc["released_qemu"] == 167 and doc["mismatch"] is None
    assert "verify: OK" in r.stderr and "Traceback" not in r.stderr


def test_replay_cli_chardev_mode(tmp_path):
    out = tmp_path / "t.csv"
    r = _cli("replay", "--chardev", SAMPLE, "--compare-timeout", "200", "--expired-scan-cycle", "100",
             "-o", str(out), "--no-progress")
    assert r.returncode == 1, r.stderr              # the sample diverges
    assert "primary_in    port 9001: 167 frames" in r.stderr
    assert "measured 65" in r.stderr
    import pandas as pd
    df = pd.read_csv(out)
    assert (df.kind == "release").sum() == 167


def test_replay_cli_chardev_rejects_clock_options():
    r = _cli("replay", "--chardev", SAMPLE, "--secondary-offset", "5ms")
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "--secondary-offset" in r.stderr
    r = _cli("replay", "--chardev", SAMPLE, "sample_pcaps/primary.pcap")
    assert r.returncode == 2 and "not both" in r.stderr


def test_wrong_ports_are_a_clear_error():
    r = _cli("verify", SAMPLE, "--primary-in-port", "7001", "--secondary-in-port", "7004")
    assert r.returncode == 2 and r.stderr.count("\n") == 1
    assert "no colo-compare input found" in r.stderr and "7001" in r.stderr


def test_verify_reports_the_first_mismatch():
    """Flushing the model's way instead of at the captured COLO_CHECKPOINT times changes when
    the divergent primaries go out: verify must find and name the first difference."""
    cap = ChardevCapture(SAMPLE)
    tl = replay_chardev(cap, flushes="model", checkpoint_duration_ns=300 * MS, **KNOBS)
    res = verify_capture(cap, tl)
    assert not res.ok
    m = res.mismatch
    assert m.reason == "bytes differ" and m.outdev_message == m.index
    assert m.qemu_candidates, "QEMU's frame is one of the primary_in frames"
    assert m.replay_message not in m.qemu_candidates
    text = m.describe(cap)
    assert f"release #{m.index}" in text and "capture frame" in text


# ------------------------------------------------------------ damaged with editcap / mergecap

@pytest.mark.wireshark
def test_missing_segment_is_a_gap_naming_stream_and_seq(tmp_path):
    victim = _data_frames(9001)[10]
    out = tmp_path / "gap.pcap"
    subprocess.run([_tool("editcap"), SAMPLE, str(out), str(victim)], check=True)
    with pytest.raises(ChardevError) as err:
        ChardevCapture(out)
    text = str(err.value)
    assert "127.0.0.1:9001 -> 127.0.0.1:" in text and "bytes missing at seq" in text
    assert "relative" in text and "frame" in text
    r = _cli("verify", str(out))
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "Traceback" not in r.stderr


@pytest.mark.wireshark
def test_retransmitted_segment_is_dropped(tmp_path):
    victim = _data_frames(9004)[5]
    one = tmp_path / "one.pcap"
    late = tmp_path / "late.pcap"
    out = tmp_path / "retrans.pcap"
    subprocess.run([_tool("editcap"), "-r", SAMPLE, str(one), str(victim)], check=True)
    subprocess.run([_tool("editcap"), "-t", "0.002", str(one), str(late)], check=True)
    subprocess.run([_tool("mergecap"), "-F", "pcap", "-w", str(out), SAMPLE, str(late)], check=True)
    cap = ChardevCapture(out)
    assert cap.secondary_in.frames == _sample_frames("sample_pcaps/secondary.pcap")
    tl = replay_chardev(cap, **KNOBS)
    assert verify_capture(cap, tl).ok


@pytest.mark.wireshark
def test_reordered_segment_delivers_when_the_hole_fills(tmp_path):
    data = _data_frames(9001)
    victim = data[20]
    one, late, rest, out = (tmp_path / n for n in ("one.pcap", "late.pcap", "rest.pcap", "reorder.pcap"))
    subprocess.run([_tool("editcap"), "-r", SAMPLE, str(one), str(victim)], check=True)
    subprocess.run([_tool("editcap"), SAMPLE, str(rest), str(victim)], check=True)
    # arrives 1.5 s late: after the segments that follow it
    subprocess.run([_tool("editcap"), "-t", "1.5", str(one), str(late)], check=True)
    subprocess.run([_tool("mergecap"), "-F", "pcap", "-w", str(out), str(rest), str(late)], check=True)
    orig = ChardevCapture(SAMPLE)
    cap = ChardevCapture(out)
    assert cap.primary_in.frames == orig.primary_in.frames
    late_t = max(cap.primary_in.times)
    # frames after the hole now become available only when the late segment arrives
    moved = [i for i, (a, b) in enumerate(zip(orig.primary_in.times, cap.primary_in.times)) if a != b]
    assert moved and all(cap.primary_in.times[i] >= orig.primary_in.times[i] for i in moved)
    assert late_t > max(orig.primary_in.times) or cap.primary_in.times[moved[0]] > orig.primary_in.times[moved[0]]


# ------------------------------------------------------------------- crafted segment streams

def _seg(sport, dport, seq, payload=b"", flags=0x18, ack=1):
    return eth(ipv4(6, tcp_segment(sport, dport, seq, ack, payload, flags, src=LO, dst=LO), src=LO, dst=LO))


def _stream_records(port, payload: bytes, isn: int, cuts, t0=T0, client=40000, to_port=False):
    """SYN, then ``payload`` cut at ``cuts``, then FIN, as (time, frame) records; sent from
    ``port`` (the peer listens, QEMU connects, as in the sample) or, with ``to_port``, to it
    (QEMU listens: ``server=on``, as in QEMU's COLO documentation)."""
    if to_port:
        port, client = client, port
    recs = [(t0, _seg(port, client, isn, flags=0x02))]
    pos = 0
    seq = isn + 1
    t = t0
    for c in list(cuts) + [len(payload)]:
        if c <= pos:
            continue
        t += MS
        recs.append((t, _seg(port, client, seq, payload[pos:c])))
        seq += c - pos
        pos = c
    recs.append((t + MS, _seg(port, client, seq, flags=0x11)))
    return recs


def test_sequence_wraparound():
    frames = [udp(bytes([i]) * (30 + i)) for i in range(12)]
    payload = b"".join(encode_frame(f) for f in frames)
    rs = TcpReassembler({9001})
    for i, (t, f) in enumerate(_stream_records(9001, payload, 0xFFFFFF00, range(7, len(payload), 61))):
        rs.add(i + 1, t, f)
    (st,) = rs.finish()
    assert st.data() == payload and st.closed_by == "FIN"


def test_port_reuse_starts_a_new_connection_and_keeps_the_parser(tmp_path):
    """Two connections on the same 4-tuple, the first closed mid-frame: QEMU's SocketReadState
    is never reset on reconnect, so the second connection's bytes continue the frame."""
    f1, f2 = udp(b"first frame"), udp(b"second frame")
    a = encode_frame(f1) + encode_frame(f2)[:9]
    b = encode_frame(f2)[9:]
    recs = _stream_records(9001, a, 1000, []) + _stream_records(9001, b, 5000, [], t0=T0 + 10 * MS)
    recs += _stream_records(9004, encode_frame(f1) + encode_frame(f2), 7000, [3], t0=T0 + 20 * MS, client=40001)
    path = write_pcap(tmp_path / "reuse.pcap", recs, nanos=True)
    cap = ChardevCapture(path)
    assert cap.primary_in.frames == [f1, f2]
    assert len(cap.primary_in.connections) == 2
    assert any("continue that frame" in w for w in cap.warnings)


def test_vnet_framing_and_notify_asymmetry(tmp_path):
    """With vnet_hdr_support, inputs and notify *to* colo-compare carry the vnet word, outdev
    carries it too, notify *from* colo-compare never does."""
    f = b"\x01" * 10 + udp(b"with a vnet header")
    vin = encode_frame(f, 10, vnet_hdr=True)
    notify_from = encode_notify_from_compare(DO_CHECKPOINT)
    import struct
    notify_to = struct.pack("!II", len(COLO_CHECKPOINT), 0) + COLO_CHECKPOINT
    recs = (_stream_records(9001, vin, 100, [5]) + _stream_records(9004, vin, 200, [], client=40001)
            + _stream_records(9005, vin, 300, [], client=40002)
            + _stream_records(9009, notify_to, 400, [], client=40003)
            + [(T0 + 9 * MS, _seg(40003, 9009, 900, flags=0x02)),
               (T0 + 10 * MS, _seg(40003, 9009, 901, notify_from))])
    recs.sort(key=lambda r: r[0])
    path = write_pcap(tmp_path / "vnet.pcap", recs, nanos=True)
    cap = ChardevCapture(path, vnet_hdr_support=True)
    assert cap.primary_in.frames == [f] and cap.primary_in.vnet_lens == [10]
    assert cap.outdev.vnet_lens == [10]
    assert len(cap.flush_times()) == 1 and len(cap.request_times()) == 1
    assert cap.warnings == []


def test_capture_starting_mid_connection_is_an_error(tmp_path):
    recs = _stream_records(9001, encode_frame(udp(b"x")), 100, [])[1:]   # no SYN
    path = write_pcap(tmp_path / "nosyn.pcap", recs, nanos=True)
    with pytest.raises(ChardevError, match="middle of the connection"):
        ChardevCapture(path)


def test_snaplen_cut_segment_is_an_error(tmp_path):
    recs = _stream_records(9001, encode_frame(udp(b"y" * 200)), 100, [])
    t, f = recs[1]
    recs[1] = (t, f[:80], len(f))
    path = write_pcap(tmp_path / "cut.pcap", recs, nanos=True)
    with pytest.raises(ChardevError, match="snaplen"):
        ChardevCapture(path)


def test_stream_gap_error_type_is_one_line():
    rs = TcpReassembler({9001}, "x.pcap")
    for i, (t, f) in enumerate(_stream_records(9001, b"a" * 100, 10, [20, 40])):
        if i != 2:
            rs.add(i + 1, t, f)
    with pytest.raises(StreamGap) as err:
        rs.finish()
    assert "\n" not in str(err.value) and "20 bytes missing at seq 31" in str(err.value)


def test_truncated_chardev_capture_gives_a_partial_replay(tmp_path):
    data = open(SAMPLE, "rb").read()
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(data[:len(data) // 2 + 7])          # ends inside a record
    cap = ChardevCapture(cut)
    assert cap.read_error is not None and "frame" in str(cap.read_error)
    assert 0 < len(cap.primary_in.frames) < 167
    tl = replay_chardev(cap, **KNOBS)
    assert tl.partial and "byte offset" in tl.error
    out = tmp_path / "t.csv"
    r = _cli("replay", "--chardev", str(cut), "--compare-timeout", "200", "--expired-scan-cycle", "100",
             "-o", str(out))
    assert r.returncode == 2 and "timeline is partial" in r.stderr and "Traceback" not in r.stderr
    assert out.exists()
    r = _cli("verify", str(cut), "--compare-timeout", "200", "--expired-scan-cycle", "100")
    assert r.returncode == 2 and "verified up to there only" in r.stderr


def test_qemu_as_server_streams_flow_to_the_well_known_ports(tmp_path):
    """QEMU's COLO documentation has colo-compare listen (server=on): then the inputs flow *to*
    9001/9004 and outdev *from* 9005; the data-carrying direction decides, not the port side."""
    frames = [udp(b"frame %d" % i, sport=1000 + i) for i in range(3)]
    data = b"".join(encode_frame(f) for f in frames)
    recs = (_stream_records(9001, data, 100, [10], to_port=True, client=41000)
            + _stream_records(9004, data, 200, [], to_port=True, client=41001, t0=T0 + MS)
            + _stream_records(9005, data, 300, [7, 30], client=41002, t0=T0 + 2 * MS))
    recs.sort(key=lambda r: r[0])
    cap = ChardevCapture(write_pcap(tmp_path / "server.pcap", recs, nanos=True))
    assert cap.primary_in.frames == frames == cap.secondary_in.frames == cap.outdev.frames
    assert cap.primary_in.connections == ["127.0.0.1:41000 -> 127.0.0.1:9001"]
    tl = replay_chardev(cap)
    assert verify_capture(cap, tl).ok


def test_vnet_sample_carries_vnet_words_and_verifies_through_the_cli():
    cap = ChardevCapture(SAMPLE_VNET, vnet_hdr_support=True)
    assert set(cap.primary_in.vnet_lens) == {12} == set(cap.outdev.vnet_lens)
    assert [f[12:] for f in cap.primary_in.frames] == _sample_frames("sample_pcaps/primary.pcap")
    r = _cli("verify", SAMPLE_VNET, "--vnet-hdr-support", "--compare-timeout", "200", "--expired-scan-cycle", "100")
    assert r.returncode == 0, r.stderr
    assert "vnet_hdr_len 12" in r.stderr
    # read without vnet_hdr_support, the vnet word is taken for frame bytes: verify cannot pass
    r = _cli("verify", SAMPLE_VNET, "--compare-timeout", "200", "--expired-scan-cycle", "100")
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "--vnet-hdr-support" in r.stderr
    r = _cli("verify", SAMPLE, "--vnet-hdr-support")
    assert r.returncode == 2 and "--no-vnet-hdr-support" in r.stderr


def test_chardev_replay_under_the_41_profile():
    """The same chardev input through QEMU 4.1's colo-compare: its inverted TCP compare asks for a
    checkpoint on matching data, and its releases then differ from what 7.2 wrote on outdev, which
    verify must notice (the capture was made with 7.2)."""
    tl = replay_chardev(SAMPLE, qemu="4.1")
    assert tl.summary["knobs"]["qemu"] == "4.1"
    assert tl.summary["checkpoint_requests"] > replay_chardev(SAMPLE, **KNOBS).summary["checkpoint_requests"]
    r = _cli("verify", SAMPLE, "--qemu", "4.1")
    assert r.returncode == 1 and "verify: MISMATCH at release #" in r.stderr
    r = _cli("verify", SAMPLE, "--qemu", "4.1", "--compare-timeout", "200")
    assert r.returncode == 2 and "compare_timeout" in r.stderr
