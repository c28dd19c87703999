"""Frames by number (captures/pick.py): ``pick_frames`` walks a reader once; ``FramePicker``,
explain's fetch, walks a plain pcap once and then reads only the batches holding the frames
asked for.  Both must give the same frames as reading the capture from the start."""

import gzip
import random

import pytest

from colo_replay.captures import open_capture
from colo_replay.captures.pick import FramePicker, pick_frames
from colo_replay.captures.pcap import PcapReader

from tests.support.frames import tcp, udp
from tests.support.pcapwrite import write_pcap

T0 = 1_700_000_000_000_000_000


def _capture(path, n=6000, seed=5, nanos=False):
    rng = random.Random(seed)
    recs = []
    for i in range(n):
        if rng.random() < 0.5:
            f = tcp(i, bytes([i % 251]) * rng.randrange(0, 1400), sport=1000 + i % 97)
        else:
            f = udp(bytes([i % 241]) * rng.randrange(1, 1400))
        # (a few frames larger than a 4 KiB chunk: their batch is read whole)
        if i % 1500 == 7:
            f = udp(b"J" * 9000)
        recs.append((T0 + i * 1000, f))
    write_pcap(path, recs, nanos=nanos)
    return {i + 1: (t, f) for i, (t, f) in enumerate(recs)}


class _Counting:
    """open_reader for FramePicker, counting the readers made and their batch_at calls."""

    def __init__(self, path, chunk_size):
        self.path, self.chunk_size = path, chunk_size
        self.opened = 0
        self.reads_at = 0

    def __call__(self):
        self.opened += 1
        rd = open_capture(self.path, chunk_size=self.chunk_size)
        if isinstance(rd, PcapReader):
            orig = rd.batch_at

            def counted(*a):
                self.reads_at += 1
                return orig(*a)
            rd.batch_at = counted
        return rd


@pytest.mark.parametrize("nanos", [False, True])
def test_the_picker_gives_the_frames_a_walk_gives_reading_only_their_batches(tmp_path, nanos):
    path = tmp_path / "c.pcap"
    truth = _capture(path, nanos=nanos)
    opener = _Counting(path, 4096)
    picker = FramePicker(opener)
    rng = random.Random(9)
    first = sorted(rng.sample(range(1, 5001), 40))
    got = picker(first)
    assert opener.opened == 2 and opener.reads_at == 0      # one walk (and the reader kept for batch_at)
    for n in first:
        assert (got[n].time_ns, got[n].data) == truth[n]
    # later look-ups inside what the walk covered: batches read, no new walk
    for _ in range(5):
        nums = sorted(rng.sample(range(1, first[-1] + 1), 60)) + [first[-1]]
        got = picker(nums)
        assert set(got) == set(nums)
        for n in nums:
            assert (got[n].time_ns, got[n].data) == truth[n]
            assert got[n] == pick_frames(open_capture(path), [n])[n]
    assert opener.opened == 2 and 0 < opener.reads_at <= 5 * 61
    # past the walk: a new walk, which covers more; numbers past the end are absent
    got = picker([3, 5999, 6000, 6001, 10**9])
    assert sorted(got) == [3, 5999, 6000] and opener.opened == 3
    assert got[6000].data == truth[6000][1]
    picker.close()


def test_the_picker_walks_each_time_where_it_cannot_read_at_an_offset(tmp_path):
    """gzip (no offsets to read at) and a reader that is not a plain pcap's (the
    filter-rewritten secondary: its bytes depend on what came before) are walked every time."""
    path = tmp_path / "c.pcap"
    truth = _capture(path, n=800)
    gz = tmp_path / "c.pcap.gz"
    gz.write_bytes(gzip.compress(path.read_bytes()))
    opener = _Counting(gz, 4096)
    picker = FramePicker(opener)
    for nums in ([5, 700], [6, 400], [799]):
        got = picker(nums)
        assert {n: (p.time_ns, p.data) for n, p in got.items()} == {n: truth[n] for n in nums}
    assert opener.opened == 3 and opener.reads_at == 0

    class Wrapped:
        def __init__(self, rd):
            self.rd = rd

        def __getattr__(self, name):
            return getattr(self.rd, name)

        def batches(self):
            return self.rd.batches()

    opened = []
    picker = FramePicker(lambda: opened.append(1) or Wrapped(open_capture(path, chunk_size=4096)))
    for nums in ([5, 700], [6, 400]):
        assert sorted(picker(nums)) == nums
    assert len(opened) == 2


def test_the_picker_converts_frames_of_other_link_types_as_a_walk_does(tmp_path):
    """Raw IP (link type 101): the frames come out with the Ethernet header the reader
    synthesises, by offset as by a walk."""
    path = tmp_path / "raw.pcap"
    recs = [(T0 + i * 1000, udp(bytes([i % 200]) * (20 + i % 700))[14:]) for i in range(3000)]
    write_pcap(path, recs, linktype=101)
    opener = _Counting(path, 4096)
    picker = FramePicker(opener)
    assert sorted(picker([2990])) == [2990]
    nums = [1, 2, 700, 1500, 2989, 2990]
    got = picker(nums)
    assert opener.reads_at > 0 and opener.opened == 2
    walked = pick_frames(open_capture(path), nums)
    assert got == walked and all(len(p.data) == len(recs[n - 1][1]) + 14 for n, p in got.items())


def test_the_picker_takes_the_offsets_a_reader_noted_and_never_walks(tmp_path):
    """FramePicker.index: the batch offsets another reader of the same file noted as it was read
    (explain's replay, api._NotingOffsets) make every look-up up to their last frame read batch
    by batch, with no walk; past them it walks as before.  Offsets from a reader of other chunk
    sizes serve alike; a reader it could not read at an offset (gzip) takes none."""
    path = tmp_path / "c.pcap"
    truth = _capture(path)
    replayed = open_capture(path, chunk_size=8192)          # the replay's reader, its own chunks
    replayed.note_offsets = True
    for _batch in replayed.batches():
        pass
    opener = _Counting(path, 4096)
    picker = FramePicker(opener)
    half = [b for b in replayed.batch_offsets if b[0] <= 3000]
    picker.index(half)
    covered = half[-1][0] + half[-1][2] - 1
    rng = random.Random(3)
    nums = sorted(rng.sample(range(1, covered + 1), 80)) + [covered]
    got = picker(nums)
    assert {n: (p.time_ns, p.data) for n, p in got.items()} == {n: truth[n] for n in nums}
    assert opener.opened == 1 and 0 < opener.reads_at <= len(nums)   # the batch_at reader only: no walk
    picker.index(half[:3])                                  # covering less: kept as it was
    assert picker([covered]) == {covered: got[covered]} and opener.opened == 1
    got = picker([covered + 1, 6000])                       # past them: one walk
    assert opener.opened == 2 and {n: p.data for n, p in got.items()} == {covered + 1: truth[covered + 1][1],
                                                                        6000: truth[6000][1]}
    picker.close()
    gz = tmp_path / "c.pcap.gz"
    gz.write_bytes(gzip.compress(path.read_bytes()))
    opener = _Counting(gz, 4096)
    picker = FramePicker(opener)
    picker.index(replayed.batch_offsets)
    assert picker._covered == 0 and picker._random is None and opener.opened == 1
    assert sorted(picker([5, 700])) == [5, 700] and opener.opened == 2


def test_explain_does_not_walk_a_plain_pcap_again(monkeypatch):
    """explain's replay notes where a plain pcap's batches lie, so explain's look-ups read just
    their batches; the filter-rewritten secondary (bytes that depend on what came before) is
    walked, as before."""
    import os

    import colo_replay
    from colo_replay.captures import pick

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    p, s = (os.path.join(root, "sample_pcaps", f"{side}.pcap") for side in ("primary", "secondary"))
    walks = []
    walk = pick.FramePicker._walk

    def counted(self, wanted):
        walks.append(type(self._open()).__name__)
        return walk(self, wanted)
    monkeypatch.setattr(pick.FramePicker, "_walk", counted)
    plain = colo_replay.explain(p, s, other_profile=False, tshark=False)
    assert plain.divergences and walks == []
    rewritten = colo_replay.explain(p, s, other_profile=False, tshark=False, filter_rewriter=True)
    assert rewritten.divergences and walks and set(walks) == {"RewrittenReader"}
