"""Frame bytes by Wireshark frame number, read with dpkt: independent of the package's own
capture readers, so a test of the analysis layer does not rest on the code it sits on."""

from __future__ import annotations

import dpkt


def read_pcap_frames(path: str) -> dict[int, bytes]:
    """Frame number (1-based) -> captured bytes, for a pcap or pcapng file."""
    with open(path, "rb") as fh:
        magic = fh.read(4)
        fh.seek(0)
        reader = dpkt.pcapng.Reader(fh) if magic == b"\x0a\x0d\x0d\x0a" else dpkt.pcap.Reader(fh)
        return {n: bytes(buf) for n, (_, buf) in enumerate(reader, 1)}
