"""Where a frame's record starts in a capture file: for error messages found after the reader
has moved on (a timestamp jump is seen in a whole batch), never on the per-frame path.

The file is walked again from its start, record header by record header (pcap) or block by
block (pcapng, frames numbered as Wireshark numbers them), decompressing gzip as a stream.
"""

from __future__ import annotations

import gzip
import struct

from .source import GZIP_MAGIC


def _open(path):
    with open(path, "rb") as fh:
        gz = fh.read(2) == GZIP_MAGIC
    return gzip.open(path, "rb") if gz else open(path, "rb")


def pcap_record_offset(path, frame_number: int) -> int | None:
    """The byte offset of a classic pcap file's frame ``frame_number`` (in the decompressed
    stream for gzip), or None if the file cannot be walked that far."""
    try:
        with _open(path) as fh:
            head = fh.read(24)
            order = {b"\xd4\xc3\xb2\xa1": "<", b"\x4d\x3c\xb2\xa1": "<",
                     b"\xa1\xb2\xc3\xd4": ">", b"\xa1\xb2\x3c\x4d": ">"}.get(head[:4])
            if order is None:
                return None
            pos = 24
            for _ in range(frame_number - 1):
                rh = fh.read(16)
                if len(rh) < 16:
                    return None
                caplen = struct.unpack(order + "I", rh[8:12])[0]
                fh.seek(caplen, 1)
                pos += 16 + caplen
            return pos
    except (OSError, EOFError, struct.error):
        return None


def pcapng_record_offset(path, frame_number: int, shb: int, packet_blocks, numbered) -> int | None:
    """The byte offset of a pcapng file's frame ``frame_number``: its packet block, numbered as
    Wireshark numbers them (``packet_blocks`` and the ``numbered`` non-packet records count)."""
    try:
        with _open(path) as fh:
            pos = 0
            number = 1
            order = "<"
            while True:
                bh = fh.read(12)
                if len(bh) < 12:
                    return None
                if struct.unpack("<I", bh[:4])[0] == shb:
                    order = "<" if bh[8:12] == b"\x4d\x3c\x2b\x1a" else ">"
                btype, blen = struct.unpack(order + "II", bh[:8])
                if btype in packet_blocks:
                    if number == frame_number:
                        return pos
                    number += 1
                elif btype in numbered:
                    number += 1
                if blen < 12:
                    return None
                fh.seek(blen - 12, 1)
                pos += blen
    except (OSError, EOFError, struct.error):
        return None
