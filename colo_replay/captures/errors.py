"""The one error type of the capture readers.

A reader raises ``CaptureError`` lazily, at the point of corruption: every good frame
before it has been yielded already, so a caller can report partial results and then say
exactly where the file went wrong, in one line a person can act on.
"""

from __future__ import annotations

import os


class CaptureError(Exception):
    """A capture file that cannot be read (further).

    Attributes:
        path: the file, as the caller named it.
        frame_number: the 1-based frame being read when the problem was found (Wireshark's
            numbering), or None when the problem is not inside a frame (file header, a
            non-packet pcapng block).
        byte_offset: where the problem starts, counted in the capture stream (for a gzip
            file: in the decompressed stream), or None when unknown.
        reason: the message without the location prefix.

    ``str(err)`` is one line: ``"trace.pcap: frame 1234 at byte offset 56789: <reason>"``.
    """

    def __init__(self, path, reason: str, *, frame_number: int | None = None,
                 byte_offset: int | None = None):
        self.path = os.fspath(path)
        self.reason = reason
        self.frame_number = frame_number
        self.byte_offset = byte_offset
        super().__init__(self.path, reason, frame_number, byte_offset)

    def __str__(self) -> str:
        where = []
        if self.frame_number is not None:
            where.append(f"frame {self.frame_number}")
        if self.byte_offset is not None:
            where.append(f"at byte offset {self.byte_offset}")
        prefix = f"{self.path}: " + (" ".join(where) + ": " if where else "")
        # One line, whatever the underlying library put in its message.
        return prefix + " ".join(self.reason.split())

    def __reduce__(self):
        # Exception pickles via self.args; keyword-only arguments need spelling out.
        return (_rebuild, (self.path, self.reason, self.frame_number, self.byte_offset))


def _rebuild(path, reason, frame_number, byte_offset):
    return CaptureError(path, reason, frame_number=frame_number, byte_offset=byte_offset)
