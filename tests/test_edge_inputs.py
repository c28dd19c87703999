"""Valid input at the edges (issue 19): what the bad-input work must not refuse, and what it
must not hide.

* an empty ``--checkpoints-at`` file is the honest record of a run without a checkpoint (``live
  --record`` leaves checkpoints.txt empty then): measured flushes, none of them; never the model (the recorder writes a comment line
  first: a file of comments and blank lines is empty too);
* a record whose original length is impossible (above 262144, up to 2^32 - 1) is a warning of
  the reader naming the file, Wireshark's frame number and the record's byte offset, and the
  value is kept as it is (pcap, both byte orders and resolutions; pcapng Enhanced, Simple and
  obsolete Packet Blocks; the record loops of both cores: tests/test_captures_columnar.py);
* ``--checkpoints-at`` says a time exactly as given (never through a float), and takes a file
  with a UTF-8 byte-order mark and CRLF line ends.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys

import pandas as pd
import pytest

from colo_replay.captures import open_capture
from colo_replay.captures import base as capture_base

MAX_ORIG_LEN = 262144                   # libpcap's and Wireshark's largest frame
WARNINGS_PER_KIND = getattr(capture_base, "WARNINGS_PER_KIND", 5)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
P, S = os.path.join(REPO, "sample_pcaps/primary.pcap"), os.path.join(REPO, "sample_pcaps/secondary.pcap")


def cli(*args, timeout=300):
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-m", "colo_replay.cli", *map(str, args)], capture_output=True,
                          text=True, timeout=timeout, env=env, cwd=REPO)


# ------------------------------------------------------------------ an empty --checkpoints-at

EMPTY_RECORDS = {"empty": "", "blank-lines": "\n\n  \n", "comments-only": "# live --record, no flush\n\n# end\n"}


@pytest.mark.parametrize("text", EMPTY_RECORDS.values(), ids=EMPTY_RECORDS.keys())
def test_an_empty_checkpoints_at_file_means_no_flush_at_all(tmp_path, text):
    """Measured flushes, none of them: no checkpoint of any cause (the model would flush on
    every request: 26 requested checkpoints on the sample pair), every request still counted,
    and what was never flushed stays queued."""
    times = tmp_path / "checkpoints.txt"
    times.write_text(text)
    r = cli("replay", P, S, "--checkpoints-at", times, "-o", tmp_path / "t.csv", "--summary-json", tmp_path / "s.json")
    assert r.returncode == 1, r.stderr            # requests were made: 1, as always
    assert "error" not in r.stderr and "Traceback" not in r.stderr
    summ = json.loads((tmp_path / "s.json").read_text())
    assert summ["knobs"]["checkpoints"] == "measured"
    assert summ["checkpoints"] == 0 and summ["checkpoint_requests"] > 0
    assert summ["released_by_cause"].get("flush", 0) == 0
    assert summ["after_checkpoint"]["mode"] == "raw"
    ev = pd.read_csv(tmp_path / "t.csv")
    assert not ev.kind.isin(["checkpoint_start", "checkpoint_end", "idle_checkpoints"]).any()


def test_an_empty_checkpoints_at_file_through_the_api(tmp_path):
    from colo_replay import api
    times = tmp_path / "checkpoints.txt"
    times.write_text("")
    tl = api.replay(P, S, checkpoints_at=str(times))
    assert tl.summary["knobs"]["checkpoints"] == "measured"
    assert tl.summary["checkpoints"] == 0 and tl.summary["checkpoint_requests"] > 0
    # the same as an empty list of times, and not the model
    assert api.replay(P, S, checkpoints_at=[]).summary["checkpoints"] == 0
    assert api.replay(P, S).summary["checkpoints"] > 0


def test_read_checkpoint_times_of_an_empty_file_is_an_empty_list(tmp_path):
    from colo_replay.offline.checkpoints import checkpoint_times, read_checkpoint_times
    (tmp_path / "c.txt").write_text("# nothing\n\n")
    assert read_checkpoint_times(tmp_path / "c.txt") == []
    assert checkpoint_times(str(tmp_path / "c.txt")) == []
    assert checkpoint_times(None) is None


# ------------------------------------------------------------------ impossible original lengths

def sample_records(path=P):
    """The sample pcap (little-endian, microseconds): its file header and [sec, usec, caplen,
    orig, data] per record."""
    data = open(path, "rb").read()
    out, pos = [], 24
    while pos < len(data):
        sec, usec, caplen, orig = struct.unpack_from("<IIII", data, pos)
        out.append([sec, usec, caplen, orig, data[pos + 16:pos + 16 + caplen]])
        pos += 16 + caplen
    return data[:24], out


def pcap_file(path, recs, order="<", nanos=False, header=None, snaplen=262144, linktype=1):
    """A pcap of ``recs`` ([sec, usec, caplen, orig, data]); returns each record's byte offset."""
    magic = 0xA1B23C4D if nanos else 0xA1B2C3D4
    out = [struct.pack(order + "IHHiIII", magic, 2, 4, 0, 0, snaplen, linktype)]
    offsets, pos = [], 24
    for sec, usec, caplen, orig, data in recs:
        offsets.append(pos)
        out.append(struct.pack(order + "IIII", sec, usec * 1000 if nanos else usec, caplen, orig) + data)
        pos += 16 + caplen
    path.write_bytes(b"".join(out))
    return offsets


def _pad4(b):
    return b + bytes(-len(b) & 3)


def ng_block(btype, body):
    body = _pad4(body)
    return struct.pack("<II", btype, 12 + len(body)) + body + struct.pack("<I", 12 + len(body))


NG_HEAD = (ng_block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1))
           + ng_block(1, struct.pack("<HHI", 1, 0, 0)))


def ng_epb(t_us, data, orig):
    return ng_block(6, struct.pack("<IIIII", 0, t_us >> 32, t_us & 0xFFFFFFFF, len(data), orig) + data)


def ng_pb(t_us, data, orig):
    return ng_block(2, struct.pack("<HHIIII", 0, 0, t_us >> 32, t_us & 0xFFFFFFFF, len(data), orig) + data)


def ng_spb(data, orig):
    return ng_block(3, struct.pack("<I", orig) + data)


def cut(recs, i, orig, keep=40):
    """Record ``i`` (0-based) cut to ``keep`` captured bytes, claiming ``orig`` on the wire."""
    recs[i][2] = keep
    recs[i][4] = recs[i][4][:keep]
    recs[i][3] = orig


ODD = {4: 4294967295, 8: 2 ** 31, 12: MAX_ORIG_LEN + 1}     # record index -> impossible orig_len


def check_warnings(reader, path, expected):
    """``expected``: [(frame number, byte offset, orig_len)], in order."""
    assert len(reader.warnings) == len(expected), reader.warnings
    for line, (frame, offset, orig) in zip(reader.warnings, expected):
        assert line.startswith(f"{path}: frame {frame} at byte offset {offset}: "), line
        assert f"original length of {orig} bytes" in line and "\n" not in line


@pytest.mark.parametrize("order, nanos", [("<", False), (">", False), ("<", True), (">", True)])
@pytest.mark.parametrize("chunk", [1 << 20, 300])
def test_pcap_impossible_orig_len_is_a_warning_and_kept(tmp_path, order, nanos, chunk):
    _, recs = sample_records()
    for i, orig in ODD.items():
        cut(recs, i, orig)
    cut(recs, 20, 1514)                 # an honest snaplen cut: no warning
    path = tmp_path / "p.pcap"
    offsets = pcap_file(path, recs, order, nanos)
    reader = open_capture(path, chunk_size=chunk)
    rows = list(reader)
    assert len(rows) == len(recs)
    origs = {number: orig for number, _t, _f, orig, _i in rows}
    for i, orig in ODD.items():
        assert origs[i + 1] == orig                 # kept as it is
    assert origs[21] == 1514 and reader.truncated_frames == len(ODD) + 1
    check_warnings(reader, path, [(i + 1, offsets[i], orig) for i, orig in ODD.items()])


def test_pcap_impossible_orig_lens_beyond_the_first_few_are_counted(tmp_path):
    _, recs = sample_records()
    for i in range(10, 10 + WARNINGS_PER_KIND + 7):
        cut(recs, i, 4294967295)
    path = tmp_path / "p.pcap"
    offsets = pcap_file(path, recs)
    reader = open_capture(path)
    list(reader.batches())
    assert len(reader.warnings) == WARNINGS_PER_KIND + 1
    for k, line in enumerate(reader.warnings[:-1]):
        assert line.startswith(f"{path}: frame {11 + k} at byte offset {offsets[10 + k]}: ")
    assert reader.warnings[-1] == (f"{path}: 7 more frames with an impossible original length after the "
                                   f"{WARNINGS_PER_KIND} above")


def test_a_whole_frame_or_an_honest_cut_gives_no_warning(tmp_path):
    _, recs = sample_records()
    cut(recs, 3, MAX_ORIG_LEN)          # the largest possible: a snaplen cut of a 256 KiB frame
    path = tmp_path / "p.pcap"
    pcap_file(path, recs)
    reader = open_capture(path)
    list(reader)
    assert reader.warnings == [] and reader.truncated_frames == 1
    reader = open_capture(P)
    list(reader)
    assert reader.warnings == []


def test_pcapng_impossible_orig_len_is_a_warning_and_kept(tmp_path):
    _, recs = sample_records()
    frames = [r[4] for r in recs[:12]]
    t0 = recs[0][0] * 1_000_000 + recs[0][1]
    blocks = [NG_HEAD]
    blocks.append(ng_epb(t0, frames[0], len(frames[0])))
    blocks.append(ng_epb(t0 + 1, frames[1][:30], 4294967295))             # frame 2
    blocks.append(ng_pb(t0 + 2, frames[2][:30], 2 ** 31))                 # frame 3
    blocks.append(ng_spb(frames[3][:30], MAX_ORIG_LEN + 7))               # frame 4 (SPB: caplen from the block)
    blocks.append(ng_epb(t0 + 4, frames[4][:30], 1514))                   # an honest cut
    blocks.append(ng_epb(t0 + 5, frames[5], len(frames[5])))
    offsets = [sum(map(len, blocks[:k])) for k in range(1, len(blocks))]
    path = tmp_path / "p.pcapng"
    path.write_bytes(b"".join(blocks))
    reader = open_capture(path)
    rows = list(reader)
    assert [r[3] for r in rows[1:4]] == [4294967295, 2 ** 31, MAX_ORIG_LEN + 7]
    check_warnings(reader, path, [(2, offsets[1], 4294967295), (3, offsets[2], 2 ** 31),
                                  (4, offsets[3], MAX_ORIG_LEN + 7)])
    assert "Enhanced Packet Block declares" in reader.warnings[0]
    assert "Packet Block declares" in reader.warnings[1] and "Simple Packet Block" in reader.warnings[2]


@pytest.mark.wireshark
def test_impossible_orig_len_warning_names_the_frame_and_offset_wireshark_shows(tmp_path):
    """The frame number and byte offset in the warning are Wireshark's (frame.number,
    frame.file_off)."""
    _, recs = sample_records()
    cut(recs, 6, 4294967295)
    path = tmp_path / "p.pcap"
    pcap_file(path, recs)
    r = subprocess.run(["tshark", "-o", "frame.show_file_off:TRUE", "-r", str(path), "-Y", "frame.number == 7",
                        "-T", "fields", "-e", "frame.number", "-e", "frame.file_off"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    number, offset = r.stdout.split()
    reader = open_capture(path)
    list(reader)
    assert reader.warnings[0].startswith(f"{path}: frame {number} at byte offset {offset}: ")


# The reader's warnings in the replay's summary and on stderr (the driver collects both readers'),
# and the true value in the timeline (its size column is int64).


def _huge_primary(tmp_path, fmt):
    header, recs = sample_records()
    cut(recs, 4, 4294967295, keep=recs[4][2] - 10)
    if fmt == "pcap":
        path = tmp_path / "p.pcap"
        offset = pcap_file(path, recs)[4]
    else:
        blocks = [NG_HEAD] + [ng_epb(r[0] * 1_000_000 + r[1], r[4], r[3]) for r in recs]
        path = tmp_path / "p.pcapng"
        path.write_bytes(b"".join(blocks))
        offset = sum(map(len, blocks[:5]))
    return path, offset


@pytest.mark.parametrize("fmt", ["pcap", "pcapng"])
def test_impossible_orig_len_warned_on_stderr_and_in_the_summary_and_kept_in_the_timeline(tmp_path, fmt):
    path, offset = _huge_primary(tmp_path, fmt)
    r = cli("replay", path, S, "-o", tmp_path / "t.csv", "--summary-json", tmp_path / "s.json")
    assert r.returncode == 1, r.stderr
    where = f"{path}: frame 5 at byte offset {offset}: "
    line = next((ln for ln in r.stderr.splitlines() if where in ln), None)
    assert line is not None and line.startswith("colo-replay: warning: ") and "4294967295" in line, r.stderr
    summ = json.loads((tmp_path / "s.json").read_text())
    assert any(w.startswith(where) for w in summ["warnings"])
    ev = pd.read_csv(tmp_path / "t.csv")
    row = ev[ev.kind == "uncomparable"]
    assert list(row["primary_frame"]) == [5] and list(row["size"]) == [4294967295]


def test_impossible_orig_len_through_the_api(tmp_path):
    from colo_replay import api
    path, offset = _huge_primary(tmp_path, "pcap")
    for output in (None, tmp_path / "t.parquet"):
        tl = api.replay(str(path), S, output=output)
        assert any(w.startswith(f"{path}: frame 5 at byte offset {offset}: ") for w in tl.summary["warnings"])
        row = tl.events[tl.events["kind"] == "uncomparable"]
        assert list(row["size"]) == [4294967295]


# ------------------------------------------------------------------ --checkpoints-at, exactly

def test_checkpoints_at_messages_show_the_times_exactly(tmp_path):
    """A time is said to the nanosecond, as given (a float would print 1795653485.000000000 for
    1795653485000000001ns, and a user would copy a wrong time)."""
    from colo_replay.offline.checkpoints import read_checkpoint_times
    (tmp_path / "c.txt").write_text("1795653485000000001ns\n1795653485\n")
    with pytest.raises(ValueError) as info:
        read_checkpoint_times(tmp_path / "c.txt")
    assert str(info.value) == (f"{tmp_path / 'c.txt'}: line 2: 1795653485.000000000 is before the time above it "
                               f"(1795653485.000000001): times must be in order")
    (tmp_path / "c.txt").write_text("-0.000000007\n")
    with pytest.raises(ValueError, match=r"line 1: negative time -0\.000000007$"):
        read_checkpoint_times(tmp_path / "c.txt")


def test_checkpoints_at_file_with_a_byte_order_mark(tmp_path):
    """A file saved by an editor that writes a UTF-8 byte-order mark is the same file."""
    from colo_replay.offline.checkpoints import read_checkpoint_times
    (tmp_path / "c.txt").write_bytes("\ufeff1795653482.5\r\n1795653483000000000ns\r\n".encode())
    assert read_checkpoint_times(tmp_path / "c.txt") == [1795653482_500000000, 1795653483_000000000]


# ------------------------------------------------------------------ accepted as they are (issue 19's list)

def test_captures_without_a_frame_are_read_as_empty(tmp_path):
    """A pcap of its file header only, a pcapng of a Section Header Block only, or with an
    interface and no packet: zero frames, no error (tshark reads all three; the replay then
    says "nothing compared", exit 2, which --allow-empty turns off)."""
    header, _ = sample_records()
    files = {"hdr.pcap": header,
             "shb.pcapng": NG_HEAD[:28],
             "shb_idb.pcapng": NG_HEAD}
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
        reader = open_capture(tmp_path / name)
        assert list(reader) == [] and reader.warnings == [], name
    r = cli("replay", tmp_path / "hdr.pcap", tmp_path / "shb_idb.pcapng", "--allow-empty")
    assert r.returncode == 0 and "NOTHING COMPARED" in r.stderr and "error" not in r.stderr, r.stderr
    r = cli("replay", tmp_path / "hdr.pcap", S)
    assert r.returncode == 2 and "holds no frames" in r.stderr.splitlines()[0]


@pytest.mark.parametrize("snaplen", [0, 65535, 262144, 262145, 2 ** 31 - 1, 2 ** 32 - 1])
def test_any_snaplen_in_the_header_is_fine(tmp_path, snaplen):
    """0 ("no limit", some writers) and values above 262144 (libpcap and Wireshark use their own
    largest then) read the same frames, silently."""
    _, recs = sample_records()
    path = tmp_path / "p.pcap"
    pcap_file(path, recs, snaplen=snaplen)
    reader = open_capture(path)
    assert [r[2] for r in reader] == [r[4] for r in recs] and reader.warnings == []


def test_zero_length_and_zero_caplen_frames_are_read(tmp_path):
    """caplen 0 (orig 0: an empty frame; orig 66: all of it cut) is a record like any other."""
    _, recs = sample_records()
    recs[4][2:5] = [0, 0, b""]
    recs[6][2], recs[6][4] = 0, b""
    path = tmp_path / "p.pcap"
    pcap_file(path, recs)
    rows = list(open_capture(path))
    assert rows[4][2:4] == (b"", 0) and rows[6][2] == b"" and rows[6][3] == recs[6][3] > 0


def test_until_exactly_the_last_frame_is_accepted():
    last = max(r[1] for path in (P, S) for r in open_capture(path))
    assert cli("replay", P, S, "--until", f"{last}ns").returncode == 1
    r = cli("replay", P, S, "--until", f"{last - 1}ns")
    assert r.returncode == 2 and "before the last frame" in r.stderr.splitlines()[0]
