"""A minimal classic-pcap reader for tests (standard library only): frame bytes by Wireshark
frame number, independent of the package's capture readers."""

from __future__ import annotations

import struct


def read_pcap_frames(path: str) -> dict[int, bytes]:
    """Frame number (1-based) -> captured bytes, for a classic pcap of either byte order."""
    with open(path, "rb") as fh:
        data = fh.read()
    magic = data[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
        end = "<"
    elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        end = ">"
    else:
        raise ValueError(f"{path}: not a classic pcap")
    out = {}
    pos, n = 24, 0
    while pos + 16 <= len(data):
        _, _, incl, _ = struct.unpack(end + "IIII", data[pos:pos + 16])
        n += 1
        out[n] = data[pos + 16:pos + 16 + incl]
        pos += 16 + incl
    return out
