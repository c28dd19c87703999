"""Fetch a few frames by number from a capture reader, in one pass.

Explaining a replay needs the bytes of a handful of frames (the root divergences' and their
peers') out of captures of millions: ``pick_frames`` walks the reader's batches once and keeps
only the wanted numbers, stopping after the last one.  Any reader with ``batches()`` works:
a capture (``open_capture``), a filter-rewritten secondary (``offline.rewriter``: the bytes as
the replay fed them), a chardev stream side (its numbers are the stream's own).
"""

from __future__ import annotations

from bisect import bisect_left
from typing import Iterable, NamedTuple

__all__ = ["Picked", "pick_frames"]


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
            frames = batch.frames
            vl = getattr(batch, "vnet_lens", None)
            for num in nums:
                i = num - first
                out[num] = Picked(batch.timestamps[i], bytes(frames[i]), None if vl is None else vl[i])
        if first + n > last:
            break
    return out
