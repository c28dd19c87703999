"""Capture readers: pcap / pcapng (optionally gzip-compressed) to Ethernet frames, fast.

    from colo_replay.captures import open_capture

    reader = open_capture("primary.pcapng.gz")
    for batch in reader.batches():           # columns per chunk read: the fast way
        ...batch.timestamps, batch.frames, batch.orig_lens, batch.interface_ids
    for number, ts_ns, frame, orig_len, iface in open_capture("x.pcap"):   # per frame
        ...

``BpfFilter`` (``colo_replay.captures.bpf``) applies a libpcap filter expression to the
frames; it is imported lazily because it loads libpcap through ctypes.
"""

from .base import MAX_CAPLEN, Batch, CaptureReader, Interface
from .errors import CaptureError
from .pcap import PcapReader
from .pcapng import PcapngReader
from .reader import open_capture, read_all

__all__ = ["open_capture", "read_all", "CaptureReader", "PcapReader", "PcapngReader", "Batch",
           "Interface", "CaptureError", "MAX_CAPLEN", "BpfFilter"]


def __getattr__(name):
    if name == "BpfFilter":
        from .bpf import BpfFilter
        return BpfFilter
    raise AttributeError(name)
