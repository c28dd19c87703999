"""Fetch a few frames by number from a capture reader, in one pass.

Explaining a replay needs the bytes of a handful of frames (the root divergences' and their
peers') out of captures of millions: ``pick_frames`` walks the reader's batches once and keeps
only the wanted numbers, stopping after the last one.  Any reader with ``batches()`` works:
a capture (``open_capture``), a filter-rewritten secondary (``offline.rewriter``: the bytes as
the replay fed them), a chardev stream side (its numbers are the stream's own).

Explain looks frames up several times (the divergences', then their connections' since the
flush before, then tshark's context), each time spread over the whole capture: six walks of
nearly all of it on the 1M-frame pairs, a fifth of explain's time.  ``FramePicker`` walks once
and, for a plain pcap file, notes where each batch's records lie (``PcapReader.batch_offsets``);
later look-ups read just the batches holding the frames asked for (``PcapReader.batch_at``).
Given the offsets the replay itself noted (``FramePicker.index``), it does not walk at all.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from typing import Iterable, NamedTuple

__all__ = ["FramePicker", "Picked", "indexable", "pick_frames"]


class Picked(NamedTuple):
    """One frame: its capture timestamp (ns), bytes, and vnet header length when the reader
    gives one per frame (a chardev stream), else ``None``."""

    time_ns: int
    data: bytes
    vnet_hdr_len: int | None


def pick_frames(reader, numbers: Iterable[int]) -> dict[int, Picked]:
    """Frames ``numbers`` (the reader's numbering: Wireshark's, from 1, for captures) of
    ``reader``; numbers past the end are absent from the result."""
    wanted = sorted({int(n) for n in numbers if int(n) > 0})
    out: dict[int, Picked] = {}
    if not wanted:
        return out
    last = wanted[-1]
    for batch in reader.batches():
        first = batch.first_frame
        n = len(batch)              # (not len(batch.frames): that cuts every frame of every batch)
        if first + n <= wanted[0]:
            continue
        nums = wanted[bisect_left(wanted, first):bisect_left(wanted, first + n)]
        if nums:
            _take(batch, nums, out)
        if first + n > last:
            break
    return out


def _take(batch, nums: list, out: dict) -> None:
    """Frames ``nums`` (all in ``batch``) into ``out``, as ``Picked``."""
    first = batch.first_frame
    frames = batch.frames
    vl = getattr(batch, "vnet_lens", None)
    for num in nums:
        i = num - first
        out[num] = Picked(batch.timestamps[i], bytes(frames[i]), None if vl is None else vl[i])


def indexable(reader) -> bool:
    """``reader`` is a plain pcap file's (``PcapReader`` of an uncompressed regular file): where
    its batches lie can be noted (``note_offsets``) and read again by offset (``batch_at``).
    Not a filter-rewritten secondary (its bytes depend on what came before), pcapng or gzip."""
    from .pcap import PcapReader

    return type(reader) is PcapReader and reader.random_access


class FramePicker:
    """``pick_frames`` for several look-ups in one capture: ``picker(numbers)``.

    ``open_reader()`` gives a fresh reader of the capture, as the replay read it.  Each look-up
    that needs frames past what an earlier walk covered walks from the start (as
    ``pick_frames``); when that reader is a plain pcap file's (``PcapReader`` of an uncompressed
    regular file: not a filter-rewritten secondary, whose bytes depend on what came before, nor
    pcapng or gzip) the walk's batch offsets are kept, and frames up to where it stopped are
    then read batch by batch from a reader kept open for that.  ``close()`` closes it."""

    def __init__(self, open_reader):
        self._open = open_reader
        self._firsts: list = []         # the indexed batches' first frame numbers, ascending
        self._spans: list = []          # ... and their (offset, frames, bytes)
        self._covered = 0               # the indexed batches hold frames 1 .. this
        self._random = None             # the reader batch_at reads with

    def __call__(self, numbers: Iterable[int]) -> dict[int, Picked]:
        wanted = sorted({int(n) for n in numbers if int(n) > 0})
        if not wanted:
            return {}
        if wanted[-1] > self._covered:
            return self._walk(wanted)
        out: dict[int, Picked] = {}
        firsts, spans = self._firsts, self._spans
        i = 0
        while i < len(wanted):
            j = bisect_right(firsts, wanted[i]) - 1
            first = firsts[j]
            offset, n, size = spans[j]
            batch = self._random.batch_at(offset, first, size)
            if len(batch) != n:         # (the file changed since: walk it again)
                return self._walk(wanted)
            k = bisect_left(wanted, first + n, i)
            _take(batch, wanted[i:k], out)
            i = k
        return out

    def _walk(self, wanted: list) -> dict[int, Picked]:
        reader = self._open()
        indexed = indexable(reader)
        if indexed:
            reader.note_offsets = True
        out = pick_frames(reader, wanted)
        if indexed:
            self.index(reader.batch_offsets)
        return out

    def index(self, batch_offsets: list) -> None:
        """Take the batch offsets of a walk of the same capture (``PcapReader.batch_offsets``,
        noted by a reader of a plain pcap file, as ``_walk`` does; explain's replay notes them as
        it reads, so explain does not walk the captures again): look-ups up to the last frame
        they cover then read just the batches holding the frames asked for.  Ignored when the
        reader ``open_reader()`` gives is not a plain pcap file's (it could not read them)."""
        if not batch_offsets:
            return
        covered = batch_offsets[-1][0] + batch_offsets[-1][2] - 1       # the last batch's last frame
        if covered <= self._covered:
            return
        if self._random is None:
            reader = self._open()
            if not indexable(reader):
                close = getattr(reader, "close", None)
                if close is not None:
                    close()
                return
            self._random = reader
        self._firsts = [b[0] for b in batch_offsets]
        self._spans = [b[1:] for b in batch_offsets]
        self._covered = covered

    def close(self) -> None:
        if self._random is not None:
            self._random.close()
            self._random = None
