"""Progress on stderr for long replays (command-line side; the replay itself knows nothing of it).

The captures' sizes are known up front, so progress is measured in capture bytes consumed:
``CountingReader`` wraps a reader and adds up what each batch held (frame bytes plus the record
header: 16 bytes in pcap, ~32 in pcapng), which for uncompressed files tracks the file position
closely enough for a bar.  Gzip files have no known uncompressed size: then the bar is a counter
of frames and rate.
"""

from __future__ import annotations

import os
import sys
import time

_RECORD_OVERHEAD = {"pcap": 16, "pcapng": 32}


class CountingReader:
    """A capture reader that counts the bytes of the batches it hands out (``consumed``)."""

    def __init__(self, reader):
        self.reader = reader
        self.consumed = 0
        self._overhead = _RECORD_OVERHEAD.get(getattr(reader, "format", ""), 16)

    def __getattr__(self, name):
        return getattr(self.reader, name)

    def batches(self):
        over = self._overhead
        for batch in self.reader.batches():
            frames = batch.frames
            self.consumed += sum(map(len, frames)) + over * len(frames)
            yield batch


class ProgressBar:
    """``bar(frames)`` redraws one line on stderr: a bar and percentage when the total size is
    known, and always the frames so far and the rate.  ``close()`` ends the line."""

    WIDTH = 30

    def __init__(self, readers=(), paths=(), stream=None):
        self.stream = stream if stream is not None else sys.stderr
        self.readers = []
        self.total = None
        self._watch(readers, paths)
        self._t0 = time.monotonic()
        self._shown = False

    def _watch(self, readers, paths) -> None:
        self.readers = list(readers)
        self.total = None
        if paths and self.readers and not any(getattr(r, "compressed", True) for r in self.readers):
            try:
                self.total = sum(os.path.getsize(p) for p in paths)
            except OSError:
                self.total = None

    def track(self, readers, paths):
        """Called by ``api.replay`` before the replay starts: wraps its ``readers`` so the bar
        can show a percentage of the capture files at ``paths``; returns the readers to use."""
        counting = tuple(CountingReader(r) for r in readers)
        self._watch(counting, paths if len(paths) == len(counting) else ())
        return counting

    def __call__(self, frames: int) -> None:
        elapsed = max(time.monotonic() - self._t0, 1e-9)
        text = f"{frames:,} frames, {frames / elapsed:,.0f} frames/s, {elapsed:.1f} s"
        if self.total:
            done = min(1.0, sum(r.consumed for r in self.readers) / self.total)
            filled = round(done * self.WIDTH)
            text = f"[{'#' * filled}{'.' * (self.WIDTH - filled)}] {done:4.0%}  " + text
        self.stream.write(f"\rreplaying {text}")
        self.stream.flush()
        self._shown = True

    def close(self) -> None:
        if self._shown:
            self.stream.write("\n")
            self.stream.flush()
