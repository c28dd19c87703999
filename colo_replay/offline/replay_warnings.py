"""The warnings after a replay: surprising situations, one line each (``summary["warnings"]``):
the same file twice, a side with far fewer frames, traffic colo-compare never compares,
differing TCP initial sequence numbers (raw pair captures without ``--filter-rewriter``), clocks
that seem skewed (try ``--align auto``).

The last two need a second look at the captures: a sample of each (its first 50,000 frames or
16 MiB), read once for both heuristics (``sample_heuristics``).
"""

from __future__ import annotations

import os
from itertools import accumulate

from .driver import ReplayOptions
from .pair import is_path


# The warnings' second look at the captures reads the first this many frames of each, or this
# many bytes, whichever comes first: a warning is a hint, and SYN|ACKs and skew show early, so a
# big capture costs no second full read.  The bytes bound it where frames are large: 50,000
# TSO-merged frames are up to 3 GB, and the free 1M pair's ~1.1 kB frames made the sample 110 MB,
# 0.06 s of copying alone; 16 MiB still holds thousands of frames (~15,000 of those, 50,000 of
# the clean bench pair's).
WARNING_SAMPLE_FRAMES = 50_000
WARNING_SAMPLE_BYTES = 16 << 20
# ... in chunks of this size: the heuristics work a batch at a time in numpy, and a few large
# batches cost less than many small ones (0.10 s against 0.13 for the 1M bench pair's samples)
WARNING_SAMPLE_CHUNK = 4 << 20


class Head:
    """A capture reader cut after its first ``limit`` frames, or before the first frame that
    would take their captured bytes past ``max_bytes`` (None: no bound), whichever comes first.
    The cut is at a frame, not at a chunk: the sample does not depend on the chunk size."""

    def __init__(self, reader, limit: int, max_bytes: int | None = None):
        self.reader = reader
        self.limit = limit
        self.max_bytes = max_bytes

    def batches(self):
        left = self.limit
        room = self.max_bytes
        for batch in self.reader.batches():
            n = min(len(batch), left)       # (len(batch.frames) would cut every frame into bytes)
            if room is not None:
                # a pcap batch knows its frames' lengths (``caps``); another reader cut the frames
                sizes = batch.caps if batch.buf is not None else [len(f) for f in batch.frames]
                used = sum(sizes[:n])
                if used > room:
                    n = next(i for i, upto in enumerate(accumulate(sizes)) if upto > room)
                room -= used                # (below 0: the frame cut off ends the sample)
            if n:
                yield batch.head(n)
            left -= n
            if left <= 0 or (room is not None and room < 0):
                return


def replay_warnings(timeline, primary, secondary, opts: ReplayOptions, filter_rewriter: bool, align) -> list:
    """Surprising situations after a replay, one line each (``summary["warnings"]``)."""
    from functools import partial

    from ..captures import open_capture
    from ..output.timeline import KIND_CODES

    read = partial(open_capture, max_gap_ns=opts.max_gap_ns, chunk_size=WARNING_SAMPLE_CHUNK)

    def sample(path):
        return Head(read(path), WARNING_SAMPLE_FRAMES, WARNING_SAMPLE_BYTES)

    out = []
    res = timeline.result
    paths = is_path(primary) and is_path(secondary)
    try:
        if paths and os.path.samefile(primary, secondary):
            out.append(f"the same file is given as both captures ({os.fspath(primary)}): nothing can diverge")
    except OSError:
        pass
    fp, fs = res.primary.frames, res.secondary.frames
    if min(fp, fs) and max(fp, fs) >= 20 and min(fp, fs) * 4 < max(fp, fs):
        few = "primary" if fp < fs else "secondary"
        out.append(f"the {few} capture has far fewer frames than the other ({min(fp, fs)} against {max(fp, fs)}): "
                   f"are they the same stretch of time?")
    s = timeline.summary
    uns = timeline.tally.causes(KIND_CODES["unsupported"])
    kinds = ", ".join(f"{k} {v}" for k, v in uns.items())
    if kinds:
        out.append(f"some traffic is never compared by colo-compare (passed through or dropped as QEMU does: "
                   f"{kinds})")
    if not paths or res.partial:
        return out
    req = s["checkpoint_requests_by_cause"]
    isns = not filter_rewriter and bool(req.get("miscompare") or req.get("ack_gate"))
    skew = align in (None, "none") and not opts.secondary_offset_ns and bool(req.get("expired")
                                                                              or s["nothing_compared"])
    if not (isns or skew):
        return out
    tables, found = sample_heuristics(sample(primary), sample(secondary), opts.vnet_hdr_len, isns, skew)
    if isns:
        pt, st = tables
        both = pt.keys() & st.keys()
        differ = sum(1 for k in both if pt[k][0][0] != st[k][0][0])
        if both and differ * 2 > len(both):
            out.append(f"the TCP initial sequence numbers differ on {differ} of {len(both)} connections: raw "
                       f"pair captures need --filter-rewriter (QEMU's filter-rewriter shifts them)")
    if found is not None and abs(found.offset_ns) > 10 * 1_000_000:
        out.append(f"the captures' clocks seem skewed ({found.describe()}): try --align auto")
    return out


def sample_heuristics(primary, secondary, vnet: int, isns: bool, skew: bool):
    """The warnings' look at the two captures' samples, each read once for both heuristics:
    ``([primary SYN|ACKs, secondary SYN|ACKs], Alignment or None)`` (``rewriter.synack_table``
    and ``align.estimate_alignment`` of the samples, when asked for)."""
    from . import framecols
    from .align import AlignmentEstimator
    from .rewriter import add_synacks

    tables: list = [{}, {}]
    est = AlignmentEstimator(vnet) if skew else None
    for side, reader in enumerate((primary, secondary)):
        table = tables[side]
        add_keys = None if est is None else (est.secondary if side else est.primary)
        for batch in reader.batches():
            if not len(batch):
                continue
            cols = framecols.columns(batch)
            if isns:
                add_synacks(table, cols, vnet)
            if add_keys is not None:
                add_keys(cols, batch.timestamps)
    found = None
    if est is not None:
        try:
            found = est.result()
        except ValueError:          # no frame matches on both sides: nothing to say
            found = None
    return tables, found
