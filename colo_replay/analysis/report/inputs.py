"""What was run on: each input file's size and SHA-256, and each side's frame count, time span,
arrival times (for the activity plot) and the bytes of the few frames the report names.

Two jobs, done so that a report costs little more than the replay:

* ``FileHashes`` hashes the input files in a background thread, started before the replay:
  ``hashlib`` releases the GIL on large buffers, so on a second core the hashing is free.
* ``scan_side`` reads one side once, front to back, in batches: the frame count, the first and
  last timestamp, every arrival time (one int64 per frame, binned later, never plotted row by
  row) and the bytes of the wanted frame numbers (connection 5-tuples).
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
            except OSError:
                self._out[p] = None

    def result(self) -> dict[str, str | None]:
        self._thread.join()
        return dict(self._out)


def file_info(path: str, sha256: str | None) -> dict:
    """Name, size and digest of one input file (size None when it is gone)."""
    try:
        size = os.path.getsize(path)
    except OSError:
        size = None
    return {"path": str(path), "name": os.path.basename(str(path)), "size": size, "sha256": sha256}


@dataclass
class SideScan:
    """One side's capture as read by ``scan_side``.  ``times`` are on the replay clock (capture
    time + the side's offset and delay), ns; ``frames_by_number`` maps each wanted frame number
    to ``(bytes, vnet header length)``."""

    frames: int = 0
    first_ns: int | None = None
    last_ns: int | None = None
    times: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    frames_by_number: dict = field(default_factory=dict)
    error: str | None = None


def scan_side(reader, wanted=(), shift_ns: int = 0, vnet_hdr_len: int = 0) -> SideScan:
    """Read ``reader`` (a ``CaptureReader`` or a chardev side reader) once.  A read error ends
    the scan and is kept in ``error`` (the replay has already said what and where)."""
    want = np.unique(np.asarray(sorted(int(w) for w in wanted if w is not None and w >= 1), dtype=np.int64))
    out = SideScan()
    chunks = []
    got = {}
    try:
        for batch in reader.batches():
            n = len(batch.frames)
            if not n:
                continue
            chunks.append(np.asarray(batch.timestamps, dtype=np.int64))
            if len(want):
                lo, hi = np.searchsorted(want, [batch.first_frame, batch.first_frame + n])
                vnets = batch.vnet_lens
                for num in want[lo:hi]:
                    i = int(num) - batch.first_frame
                    got[int(num)] = (bytes(batch.frames[i]), vnet_hdr_len if vnets is None else int(vnets[i]))
            out.frames += n
    except Exception as exc:      # CaptureError and friends: the replay reported it already
        out.error = str(exc)
    times = np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.int64)
    if shift_ns:
        times = times + shift_ns
    out.times = times
    if len(times):
        out.first_ns = int(times.min())
        out.last_ns = int(times.max())
    out.frames_by_number = got
    return out
