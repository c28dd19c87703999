"""``open_capture``: open a capture file of any supported format, detected by its magic.

Formats: classic pcap (microsecond and nanosecond, both byte orders), pcapng, and either
of them gzip-compressed (detected by the gzip magic, decompressed as a stream).
"""

from __future__ import annotations

from .base import DEFAULT_MAX_GAP_NS, MAX_CAPLEN, CaptureReader
from .errors import CaptureError
from .pcap import MAGICS as PCAP_MAGICS, MODIFIED_MAGICS, PcapReader
from .pcapng import MAGIC as PCAPNG_MAGIC, PcapngReader
from .source import DEFAULT_CHUNK, ChunkSource

# Enough to hold a pcap file header plus a record header, or a pcapng SHB's fixed part.
_HEAD = 32


def open_capture(path, *, chunk_size: int = DEFAULT_CHUNK, max_caplen: int = MAX_CAPLEN,
                 max_gap_ns: int | None = DEFAULT_MAX_GAP_NS) -> CaptureReader:
    """Open ``path`` and return a reader positioned after the file header.

    Raises ``CaptureError`` at once when the file is not a capture (bad magic, empty, a
    truncated file header, a link type that cannot become Ethernet in a pcap file) and
    ``OSError`` when it cannot be opened.  Everything else is raised lazily, while
    iterating, after the good frames before it.

    ``chunk_size`` is how much is read at a time; ``max_caplen`` is the largest captured
    length accepted in a record before it is called corrupt; ``max_gap_ns`` the largest
    timestamp step between two frames (either way) before it is an error (None: any).
    """
    reader = _open(path, chunk_size, max_caplen)
    reader.max_gap_ns = max_gap_ns
    return reader


def _open(path, chunk_size: int, max_caplen: int) -> CaptureReader:
    source = ChunkSource(path, chunk_size)
    try:
        head = source.read(chunk_size)
        while 0 < len(head) < _HEAD:           # short reads from pipes and small gzip steps
            more = source.read(chunk_size)
            if not more:
                break
            head += more
        magic = head[:4]
        if source.error is not None and len(head) < _HEAD:
            raise CaptureError(path, f"gzip data corrupt or truncated after {len(head)} "
                               f"decompressed bytes ({source.error})", byte_offset=len(head))
        if magic in PCAP_MAGICS:
            return PcapReader(path, source, head, max_caplen=max_caplen)
        if magic == PCAPNG_MAGIC:
            return PcapngReader(path, source, head, max_caplen=max_caplen)
        if not head:
            raise CaptureError(path, "empty file" + (" (after gzip decompression)"
                                                     if source.compressed else ""),
                               byte_offset=0)
        if magic in MODIFIED_MAGICS:
            raise CaptureError(path, "modified (Kuznetzov) pcap is not supported; convert it "
                               "with editcap -F pcap", byte_offset=0)
        raise CaptureError(path, f"not a pcap or pcapng capture (magic {magic.hex() or 'none'}"
                           f"{' after gzip decompression' if source.compressed else ''})",
                           byte_offset=0)
    except BaseException:
        source.close()
        raise


def read_all(path, **kw) -> list[tuple[int, int, bytes, int, int]]:
    """All frames of a (small) capture as a list of tuples; convenient in tests and
    notebooks, wasteful for large files."""
    return list(open_capture(path, **kw))


__all__ = ["open_capture", "read_all", "CaptureReader", "CaptureError"]
