"""Write small classic pcap files for tests (Ethernet, microsecond or nanosecond stamps)."""

import struct


def write_pcap(path, records, nanos=False, snaplen=65535, linktype=1):
    """``records``: iterable of (timestamp_ns, frame_bytes) or (timestamp_ns, frame_bytes, orig_len)."""
    magic = 0xA1B23C4D if nanos else 0xA1B2C3D4
    with open(path, "wb") as fh:
        fh.write(struct.pack("<IHHiIII", magic, 2, 4, 0, 0, snaplen, linktype))
        for rec in records:
            t, frame = rec[0], rec[1]
            orig = rec[2] if len(rec) > 2 else len(frame)
            sec, rem = divmod(t, 1_000_000_000)
            frac = rem if nanos else rem // 1000
            fh.write(struct.pack("<IIII", sec, frac, len(frame), orig))
            fh.write(frame)
    return path
