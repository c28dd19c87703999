"""A batch's frames as numpy columns, for the heuristics that look at a few header bytes of
every frame (``rewriter.synack_table``, ``align.estimate_alignment``).

``columns(batch)`` gives the bytes of all the batch's frames as one buffer, a ``uint8`` view of
it and each frame's start and captured length: a columnar batch (the pcap reader's) is viewed in
place, without a ``bytes`` object per frame; a list batch (pcapng, chardev, rewritten frames) is
joined into one buffer first (one copy, much cheaper than a Python step per frame).  Header
fields are then gathered for all frames at once (``a[starts + offset]``) and the exact per-frame
code runs only on the few frames that can matter.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class Columns(NamedTuple):
    """A batch's frames: ``buf[starts[i]:starts[i] + caps[i]]`` is frame ``i`` (``bytes``),
    ``a`` the same buffer as ``uint8``, ``ends`` = ``starts + caps``."""

    buf: bytes
    a: np.ndarray
    starts: np.ndarray
    caps: np.ndarray
    ends: np.ndarray

    def frame(self, i: int) -> bytes:
        s = int(self.starts[i])
        return self.buf[s:s + int(self.caps[i])]


def columns(batch) -> Columns:
    """The frames of ``batch`` (a ``captures.base.Batch``) as ``Columns``."""
    buf = batch.buf
    if buf is None:
        frames = batch.frames
        n = len(frames)
        caps = np.fromiter(map(len, frames), dtype=np.int64, count=n)
        starts = np.zeros(n, dtype=np.int64)
        np.cumsum(caps[:-1], out=starts[1:])
        buf = b"".join(frames)
    else:
        starts = np.asarray(batch.starts, dtype=np.int64)
        caps = np.asarray(batch.caps, dtype=np.int64)
        if not isinstance(buf, bytes):
            buf = bytes(buf)            # a slice of it must be a hashable, comparable bytes
    return Columns(buf, np.frombuffer(buf, dtype=np.uint8), starts, caps, starts + caps)


def u16(a: np.ndarray, at: np.ndarray) -> np.ndarray:
    """The big-endian 16-bit fields at ``at`` (int64; the caller knows ``at + 1`` is in ``a``)."""
    return (a[at].astype(np.int64) << 8) | a[at + 1]
