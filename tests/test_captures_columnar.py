"""The pcap reader's columnar batches: the chunk kept whole (``buf``) with ``array('q')`` columns
of time, frame offset, captured and original length, and ``frames`` cut from ``buf`` only when
asked.  Checked on both cores in one run: the module Python loaded (compiled when built) and
its ``.py`` source loaded beside it (scripts/test runs this file again on the interpreted core
a machine without a C compiler installs), against records these tests wrote themselves, for every read chunk size from 1 to 64
bytes (records straddle every chunk boundary, and are larger than a chunk), both byte orders,
micro- and nanosecond files, gzip, truncated records and corrupt headers.
"""

from __future__ import annotations

import gzip
import importlib.util
import os
import random
import struct
import subprocess
import sys
from array import array
from pathlib import Path

import pytest

import colo_replay.captures.pcap as loaded_pcap
import colo_replay.captures.reader as reader_module
from colo_replay.captures import Batch, CaptureError, open_capture
from colo_replay.captures.source import ChunkSource
from tests.support.pcapread import read_pcap_frames

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = [ROOT / "sample_pcaps" / "primary.pcap", ROOT / "sample_pcaps" / "secondary.pcap"]
CHUNKS = list(range(1, 65)) + [4096, 256 << 10]


def _interpreted_pcap():
    """colo_replay/captures/pcap.py loaded from its source under another name (its relative
    imports resolve in colo_replay.captures), whichever core the package loaded."""
    src = Path(loaded_pcap.__file__).with_name("pcap.py")
    spec = importlib.util.spec_from_file_location("colo_replay.captures._pcap_source", src)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert mod.__file__.endswith(".py")
    return mod


INTERPRETED = _interpreted_pcap()


@pytest.fixture(params=["loaded", "source"])
def core(request, monkeypatch):
    """open_capture with the loaded pcap module (compiled when built), or the .py source."""
    mod = loaded_pcap if request.param == "loaded" else INTERPRETED
    monkeypatch.setattr(reader_module, "PcapReader", mod.PcapReader)
    return mod


def pcap_file(path: Path, records, *, order="<", nsec=False, snaplen=65535, compress=False) -> Path:
    """``records``: (timestamp ns, frame, orig_len).  Returns ``path``."""
    magic = 0xA1B23C4D if nsec else 0xA1B2C3D4
    out = [struct.pack(order + "IHHiIII", magic, 2, 4, 0, 0, snaplen, 1)]
    for ts, frame, orig in records:
        sec, frac = divmod(ts, 1_000_000_000)
        out.append(struct.pack(order + "IIII", sec, frac if nsec else frac // 1000, len(frame), orig))
        out.append(frame)
    data = b"".join(out)
    path.write_bytes(gzip.compress(data) if compress else data)
    return path


def make_records(seed: int, count: int, nsec: bool, snaplen: int = 65535):
    """Frames of 0 to 3000 bytes (larger than most chunks tried), some cut by the snaplen, with
    times stepping by up to a second, a few back (high bytes set in every field, so byte order
    matters)."""
    rnd = random.Random(seed)
    t = 3_900_000_000 * 1_000_000_000 + rnd.randrange(10**9)     # seconds above 2**31
    recs = []
    for _ in range(count):
        t += rnd.randrange(-2 * 10**8, 10**9)
        if not nsec:
            t -= t % 1000
        size = rnd.choice((0, 14, 60, 66, 1514, 3000, rnd.randrange(3001)))
        frame = rnd.randbytes(size)
        orig = size
        if size > snaplen:
            frame = frame[:snaplen]
        elif rnd.random() < 0.2:
            orig = size + rnd.randrange(1, 70000)
        recs.append((t, frame, orig))
    return recs


def offsets_of(records) -> list[int]:
    """Byte offset of each record in the file."""
    out, pos = [], 24
    for _t, frame, _o in records:
        out.append(pos)
        pos += 16 + len(frame)
    return out


def check_batches(path: Path, records, chunk_size: int, **kw) -> list[Batch]:
    """Read ``path`` in columnar batches and check them against ``records``."""
    reader = open_capture(path, chunk_size=chunk_size, **kw)
    batches = list(reader.batches())
    rows = []
    number = 1
    for b in batches:
        n = len(b)
        assert b._frames is None, "frames were cut before anyone asked"
        assert b.buf is not None and n == len(b.starts) == len(b.caps) == len(b.timestamps) \
            == len(b.orig_lens) == len(b.interface_ids) > 0
        assert all(isinstance(c, array) and c.typecode == "q"
                   for c in (b.timestamps, b.starts, b.caps, b.orig_lens))
        assert b.first_frame == number
        assert b.ts_min == min(b.timestamps) and b.ts_max == max(b.timestamps)
        for s, c in zip(b.starts, b.caps):
            assert 0 <= s and s + c <= len(b.buf)         # every frame lies in this batch's buffer
        cut = [bytes(b.buf[s:s + c]) for s, c in zip(b.starts, b.caps)]
        assert b._frames is None
        assert b.frames == cut and b.frames is b.frames  # cut once, then kept
        assert b.truncated == sum(len(f) < o for f, o in zip(cut, b.orig_lens))
        rows.extend(b)
        number += n
    assert rows == [(i, t, f, o, 0) for i, (t, f, o) in enumerate(records, 1)]
    assert reader.frames_read == len(records)
    assert reader.truncated_frames == sum(len(f) < o for _t, f, o in records)
    return batches


@pytest.mark.parametrize("order", ["<", ">"])
@pytest.mark.parametrize("nsec", [False, True])
def test_columns_equal_the_records_at_every_chunk_size(core, tmp_path, order, nsec):
    records = make_records((order == ">") * 2 + nsec, 40, nsec)
    path = pcap_file(tmp_path / "x.pcap", records, order=order, nsec=nsec)
    for size in CHUNKS:
        batches = check_batches(path, records, size, max_gap_ns=None)
        if size == 256 << 10:
            assert len(batches) == 1
        elif size < 64:
            assert len(batches) >= len(records) // 2  # records larger than the chunk: few a batch


def test_gzip_pushback_gives_the_same_batches(core, tmp_path):
    records = make_records(5, 60, True, snaplen=2000)
    path = pcap_file(tmp_path / "x.pcap.gz", records, nsec=True, snaplen=2000, compress=True)
    for size in (1, 7, 16, 17, 64, 1000, 4096, 256 << 10):
        check_batches(path, records, size, max_gap_ns=None)


def test_sample_captures_read_as_dpkt_reads_them(core):
    import dpkt
    for path in SAMPLES:
        frames = read_pcap_frames(str(path))
        with open(path, "rb") as fh:
            times = [round(ts * 1e6) * 1000 for ts, _buf in dpkt.pcap.Reader(fh)]
        records = [(t, frames[i], len(frames[i])) for i, t in enumerate(times, 1)]
        for size in (61, 4096, 256 << 10):
            check_batches(path, records, size)


def test_empty_and_header_only_files(core, tmp_path):
    path = pcap_file(tmp_path / "empty.pcap", [])
    for size in (1, 24, 4096):
        assert list(open_capture(path, chunk_size=size).batches()) == []
    one = [(10**18, b"", 0)]
    path = pcap_file(tmp_path / "one.pcap", one)
    for size in (1, 24, 40, 41):
        check_batches(path, one, size)


# ---------------------------------------------------------------------------------------
# Errors: the same message, frame number and byte offset at every chunk size, after the
# same good frames.


def read_to_error(path: Path, chunk_size: int):
    rows = []
    with pytest.raises(CaptureError) as info:
        for batch in open_capture(path, chunk_size=chunk_size, max_gap_ns=None).batches():
            rows.extend(batch)
    err = info.value
    assert "\n" not in str(err)
    return rows, err


def expect_error(path: Path, records, good: int, offset: int, *words: str, sizes=range(1, 65)):
    want = [(i, t, f, o, 0) for i, (t, f, o) in enumerate(records[:good], 1)]
    for size in list(sizes) + [4096, 256 << 10]:
        rows, err = read_to_error(path, size)
        assert rows == want, size
        assert (err.frame_number, err.byte_offset) == (good + 1, offset), (size, str(err))
        for w in words:
            assert w in str(err), (size, str(err))


@pytest.mark.parametrize("order", ["<", ">"])
def test_truncated_record_header_and_data(core, tmp_path, order):
    records = make_records(11, 12, False)
    offs = offsets_of(records)
    data = pcap_file(tmp_path / "whole.pcap", records, order=order).read_bytes()
    cut = tmp_path / "cut_header.pcap"
    cut.write_bytes(data[:offs[9] + 9])
    expect_error(cut, records, 9, offs[9], "partial record header: file ends after 9 of its 16 bytes")
    big = max(range(12), key=lambda k: len(records[k][1]))
    cut.write_bytes(data[:offs[big] + 16 + 5])
    expect_error(cut, records, big, offs[big],
                 f"record header declares {len(records[big][1])} captured bytes, file ends after 5")


@pytest.mark.parametrize("order", ["<", ">"])
@pytest.mark.parametrize("nsec", [False, True])
def test_bad_record_headers(core, tmp_path, order, nsec):
    records = make_records(13, 12, nsec, snaplen=1600)
    offs = offsets_of(records)
    data = bytearray(pcap_file(tmp_path / "whole.pcap", records, order=order, nsec=nsec,
                               snaplen=1600).read_bytes())
    bad = tmp_path / "bad.pcap"
    absurd = bytearray(data)
    struct.pack_into(order + "I", absurd, offs[3] + 8, 0xFFFFFFFF)
    bad.write_bytes(absurd)
    expect_error(bad, records, 3, offs[3], "declares 4294967295 captured bytes, more than the 262144")
    frac = bytearray(data)
    lim = 10**9 if nsec else 10**6
    struct.pack_into(order + "I", frac, offs[8] + 4, lim)
    bad.write_bytes(frac)
    expect_error(bad, records, 8, offs[8],
                 f"invalid timestamp: {'ts_nsec' if nsec else 'ts_usec'} {lim} is not below {lim}")


# ---------------------------------------------------------------------------------------
# Valid but surprising (issue 19): a warning naming the frame and the record's offset, the
# same at every chunk size, and the frames read as they are.


@pytest.mark.parametrize("order", ["<", ">"])
@pytest.mark.parametrize("nsec", [False, True])
def test_frames_above_the_snaplen_are_read_whole_after_one_warning(core, tmp_path, order, nsec):
    """A header whose snaplen is smaller than its frames (Wireshark reads them whole, libpcap
    cuts them): read whole, one warning at the first of them."""
    records = make_records(23 + nsec, 30, nsec)
    path = pcap_file(tmp_path / "small_snaplen.pcap", records, order=order, nsec=nsec, snaplen=1000)
    first = next(k for k, (_t, f, _o) in enumerate(records) if len(f) > 1000)
    want = (f"{path}: frame {first + 1} at byte offset {offsets_of(records)[first]}: record header declares "
            f"{len(records[first][1])} captured bytes, more than the file's snaplen 1000: read in full")
    for size in CHUNKS:
        reader = open_capture(path, chunk_size=size, max_gap_ns=None)
        rows = [row for b in reader.batches() for row in b]
        assert rows == [(i, t, f, o, 0) for i, (t, f, o) in enumerate(records, 1)], size
        assert len(reader.warnings) == 1 and reader.warnings[0].startswith(want), (size, reader.warnings)


@pytest.mark.parametrize("order", ["<", ">"])
@pytest.mark.parametrize("nsec", [False, True])
def test_impossible_original_lengths_are_warned_and_kept(core, tmp_path, order, nsec):
    """An original length above 262144 (up to 2^32 - 1: the field's largest) on a cut frame:
    a warning per frame (frame number, record offset), the value in ``orig_lens`` as it is."""
    records = make_records(31 + nsec, 30, nsec)
    odd = {3: 0xFFFFFFFF, 4: 2**31, 17: 262145, 29: 2**31 - 1}
    for k, orig in odd.items():
        t, f, _o = records[k]
        records[k] = (t, f[:50], orig)
    records[9] = (records[9][0], records[9][1][:10], 262144)           # possible: no warning
    path = pcap_file(tmp_path / "odd.pcap", records, order=order, nsec=nsec)
    offs = offsets_of(records)
    for size in CHUNKS:
        reader = open_capture(path, chunk_size=size, max_gap_ns=None)
        rows = [row for b in reader.batches() for row in b]
        assert rows == [(i, t, f, o, 0) for i, (t, f, o) in enumerate(records, 1)], size
        assert [w.split(": ")[1] for w in reader.warnings] == \
            [f"frame {k + 1} at byte offset {offs[k]}" for k in odd], (size, reader.warnings)
        for w, orig in zip(reader.warnings, odd.values()):
            assert w.startswith(f"{path}: ") and f"declares an original length of {orig} bytes" in w


def test_gzip_truncated_after_the_good_frames(core, tmp_path):
    rnd = random.Random(3)
    records = [(1_700_000_000_000_000_000 + k * 1000, rnd.randbytes(700), 700) for k in range(300)]
    comp = gzip.compress(pcap_file(tmp_path / "x.pcap", records, nsec=True).read_bytes())
    path = tmp_path / "cut.pcap.gz"
    path.write_bytes(comp[:len(comp) // 2])
    for size in (1, 13, 64, 4096, 256 << 10):
        rows, err = read_to_error(path, size)
        n = len(rows)
        assert 0 < n < len(records) and rows == [(i, t, f, o, 0) for i, (t, f, o) in
                                                  enumerate(records[:n], 1)]
        assert err.frame_number == n + 1 and "gzip data corrupt or truncated" in str(err)
        assert offsets_of(records)[n] <= err.byte_offset < offsets_of(records)[n] + 16 + 700


def test_a_gap_inside_a_batch_yields_the_columnar_head_first(core, tmp_path):
    records = make_records(17, 20, True)
    records = records[:12] + [(t + 2 * 86_400 * 10**9, f, o) for t, f, o in records[12:]]
    path = pcap_file(tmp_path / "gap.pcap", records, nsec=True)
    reader = open_capture(path)
    batches = []
    with pytest.raises(CaptureError) as info:
        for b in reader.batches():
            batches.append(b)
    assert info.value.frame_number == 13 and "timestamp jumps forward" in str(info.value)
    assert len(batches) == 1 and batches[0].buf is not None and batches[0]._frames is None
    assert list(batches[0]) == [(i, t, f, o, 0) for i, (t, f, o) in enumerate(records[:12], 1)]


def test_linux_cooked_frames_are_converted_batch_by_batch(core, tmp_path):
    """A link type the replay converts to Ethernet gets list frames (the converted bytes)."""
    sll = bytes.fromhex("0000 0001 0006 020000000001 0000 0800")
    rec = struct.pack("<IIII", 1, 0, len(sll) + 20, len(sll) + 20) + sll + bytes(20)
    path = tmp_path / "sll.pcap"
    path.write_bytes(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 113) + rec * 3)
    for size in (5, 4096):
        batches = list(open_capture(path, chunk_size=size).batches())
        rows = [r for b in batches for r in b]
        assert [len(r[2]) for r in rows] == [34] * 3 and [r[3] for r in rows] == [34] * 3
        assert all(b.buf is None for b in batches)


# ---------------------------------------------------------------------------------------
# The pieces


def test_batch_from_lists_still_works_and_len_does_not_cut_frames():
    b = Batch(5, [1, 2], [b"ab", b"c"], [2, 9], [0, 0])
    assert len(b) == 2 and b.buf is None and list(b.frame_numbers) == [5, 6]
    assert list(b) == [(5, 1, b"ab", 2, 0), (6, 2, b"c", 9, 0)]
    col = Batch(1, array("q", [7, 8]), None, array("q", [3, 1]), [0, 0],
                buf=b"xxabcyy", starts=array("q", [2, 4]), caps=array("q", [2, 1]))
    assert len(col) == 2 and col._frames is None
    assert col.frames == [b"ab", b"c"]
    col.frames = [b"zz"]                       # replaced frames no longer come from buf
    assert len(col) == 1 and col.buf is None and col.starts is None
    with pytest.raises(TypeError):
        Batch(1, [], None, [], [])


@pytest.mark.parametrize("compress", [False, True])
def test_chunk_source_unread(tmp_path, compress):
    data = bytes(range(256)) * 40
    path = tmp_path / ("d.gz" if compress else "d")
    path.write_bytes(gzip.compress(data) if compress else data)
    src = ChunkSource(path, 1000)
    got = bytearray()
    a = src.read() + src.read(10)                 # the tail of two reads joined
    assert a == data[:1010]
    src.unread(a[700:])
    b = src.read(2000)
    assert b == data[700:2700]
    src.unread(b)                                 # all of it
    c = src.read(5)
    assert c == data[700:705]
    got += a[:700] + c
    while chunk := src.read():
        got += chunk
    assert bytes(got) == data
    src.unread(b"")
    assert src.read() == b""
    src.close()


def test_reader_works_without_cython_installed(tmp_path):
    """No Cython at run time (a pure-Python install): the module's own stand-ins for the
    decorators and type names take its place, with the same results."""
    records = make_records(23, 30, True)
    path = pcap_file(tmp_path / "x.pcap", records, nsec=True, order=">")
    code = ("import sys; sys.modules['cython'] = None\n"
            "from colo_replay.captures import open_capture\n"
            "import colo_replay.captures.pcap as p; assert p.__file__.endswith('.py')\n"
            f"rows = [r for b in open_capture({str(path)!r}, chunk_size=100).batches() for r in b]\n"
            "print(repr(rows))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, "COLO_REPLAY_CORE": "interpreted"})
    assert proc.returncode == 0, proc.stderr
    assert eval(proc.stdout) == [(i, t, f, o, 0) for i, (t, f, o) in enumerate(records, 1)]
