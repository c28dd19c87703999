"""Capture readers: pcap / pcapng (optionally gzip-compressed) to Ethernet frames, fast.

    from colo_replay.captures import open_capture

    reader = open_capture("primary.pcapng.gz")
    for batch in reader.batches():           # columns per chunk read: the fast way
        ...batch.timestamps, batch.frames, batch.orig_lens, batch.interface_ids
    for number, ts_ns, frame, orig_len, iface in open_capture("x.pcap"):   # per frame
        ...

``BpfFilter`` (``colo_replay.captures.bpf``) applies a libpcap filter expression to the
frames; it is imported lazily because it loads libpcap through ctypes.  ``writer.PcapngWriter``
writes pcapng (live recordings, evidence files).

Why the readers are hand-written and the writer is not: reading is on every replay's hot path,
and ``open_capture(pcap).batches()`` (columnar batches, no object per frame) reads the 1M-frame
pair at about 8x the speed of a bare ``dpkt.pcap.Reader`` loop in the same run
(``bench/bench_readers.py``, figures in ``bench/README.md``, "Capture readers").  Writing is
rare and small (a recording, a handful of evidence frames), so the writer is built on dpkt's
pcapng blocks (``dpkt.pcapng.Writer``).
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
