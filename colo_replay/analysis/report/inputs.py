"""What was run on: each input file's size and SHA-256, each side's frame count and time span,
and the bytes of the few frames the report names.

Two jobs, done so that a report costs little more than the replay:

* ``FileHashes`` hashes the input files in a background thread, started before the replay:
  ``hashlib`` releases the GIL on large buffers, so on a second core the hashing is free.
* ``scan_side`` reads one side, front to back, in batches: the bytes of the wanted frame numbers
  (connection 5-tuples) and the first timestamp; with ``full=True`` (a saved run, whose frame
  counts and spans nobody recorded) to the end, for the frame count and the last timestamp.
  After a replay the driver has counted the frames and seen the last timestamp, so the scan
  stops at the last wanted frame.
"""

from __future__ import annotations

import hashlib
import os
import threading
from dataclasses import dataclass, field

import numpy as np

__all__ = ["FileHashes", "SideScan", "scan_side", "file_info"]

_CHUNK = 1 << 20


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while True:
            block = fh.read(_CHUNK)
            if not block:
                return h.hexdigest()
            h.update(block)


class FileHashes:
    """SHA-256 of some files, computed in a daemon thread from construction on.
    ``result()`` waits and returns ``{path: hexdigest or None}`` (None: unreadable)."""

    def __init__(self, paths):
        self.paths = [str(p) for p in paths if p is not None]
        self._out: dict[str, str | None] = {}
        self._thread = threading.Thread(target=self._run, name="report-sha256", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        for p in self.paths:
            try:
                self._out[p] = _sha256(p)
            except (OSError, TypeError):
                self._out[p] = None

    def result(self) -> dict[str, str | None]:
        self._thread.join()
        return dict(self._out)


def file_info(path: str, sha256: str | None) -> dict:
    """Name, size and digest of one input file (size None when it is gone)."""
    try:
        size = os.path.getsize(path)
    except (OSError, TypeError):      # gone, or an open reader rather than a path
        size = None
    return {"path": str(path), "name": os.path.basename(str(path)), "size": size, "sha256": sha256}


@dataclass
class SideScan:
    """One side's capture as read by ``scan_side`` (capture clock, ns).  ``frames`` and
    ``last_ns`` are None unless the scan was ``full``; ``frames_by_number`` maps each wanted
    frame number to ``(bytes, vnet header length)``."""

    frames: int | None = None
    first_ns: int | None = None
    last_ns: int | None = None
    frames_by_number: dict = field(default_factory=dict)
    error: str | None = None


def scan_side(reader, wanted=(), vnet_hdr_len: int = 0, full: bool = False) -> SideScan:
    """Read ``reader`` (a ``CaptureReader`` or a chardev side reader) up to the last wanted frame
    (at least one batch), or to the end when ``full``.  A read error ends the scan and is kept in
    ``error`` (the replay has already said what and where)."""
    want = np.unique(np.asarray(sorted(int(w) for w in wanted if w is not None and w >= 1), dtype=np.int64))
    last_wanted = int(want[-1]) if len(want) else 0
    out = SideScan()
    got = {}
    frames = 0
    first = last = None
    try:
        for batch in reader.batches():
            n = len(batch.frames)
            if not n:
                continue
            ts = batch.timestamps
            lo_t, hi_t = min(ts), max(ts)
            first = lo_t if first is None else min(first, lo_t)
            last = hi_t if last is None else max(last, hi_t)
            if len(want):
                lo, hi = np.searchsorted(want, [batch.first_frame, batch.first_frame + n])
                vnets = batch.vnet_lens
                for num in want[lo:hi]:
                    i = int(num) - batch.first_frame
                    got[int(num)] = (bytes(batch.frames[i]), vnet_hdr_len if vnets is None else int(vnets[i]))
            frames += n
            if not full and batch.first_frame + n > last_wanted:
                break
    except Exception as exc:      # CaptureError and friends: the replay reported it already
        out.error = str(exc)
    out.first_ns = first
    if full:
        out.frames, out.last_ns = frames, last
    out.frames_by_number = got
    return out
