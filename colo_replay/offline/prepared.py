"""A capture read once and kept in memory, to be replayed many times (``colo-replay sweep``).

``prepare(reader, bpf)`` drains a capture reader (a ``CaptureReader``, or one behind the
filter-rewriter: whatever ``api.replay`` would hand to the driver) into a ``PreparedCapture``;
its ``reader()`` is a fresh reader over the same batches, to give to
``offline.driver.replay_partial`` exactly as the original would have been.  Every replay of a
sweep is therefore the same replay as ``colo-replay replay``'s, minus the reading.

Storage is compact and shared: each batch keeps its frames as one ``bytes`` blob plus an
``array`` of end offsets, its timestamps and lengths as ``array('q')``.  A forked worker reads
these without writing to them (one reference count per batch, not per frame), so the pages stay
shared copy-on-write between the sweep's processes, and the whole thing pickles in a few large
buffers (a Dask worker).  The frames' ``bytes`` objects are cut from the blob again for each
replay, one batch at a time (C-level slicing, ~0.1 µs a frame).

The BPF filter (``--filter``, ``--guest``) is applied here, once: a batch keeps only the frames
the filter accepts, split into runs of consecutive frame numbers (a ``Batch`` numbers its frames
contiguously), plus the frames cut by a snaplen (the driver reports those as uncomparable before
it filters, so they stay).  ``filtered`` counts the rest; ``fix_stats`` puts those counts and the
filter back into a replay's result, where the driver would have counted them.  A frame filtered
out still moved the replay's clock: the scan grid and the checkpoint model start at the first
frame read (``ReplayOptions.first_arrival_ns``), and the clock runs on to the last one read (as
``end_ns`` would); between two kept frames nothing is fed, so running the scans and checkpoints
due by a filtered frame's arrival at the next kept frame instead changes nothing, as long as the
timestamps never go backwards (captures whose timestamps do are filtered by the driver).  A capture that ends
in a read error leaves both unfiltered (``filter_pair`` returns False), so the driver filters them
itself: after a read error the other side is replayed up to the failed one's last *read* frame,
filtered or not.
"""

from __future__ import annotations

from array import array
from itertools import accumulate, islice
from operator import le

from ..captures.base import Batch
from ..captures.errors import CaptureError


class _Stored:
    """One batch, stored: the frames' bytes in one blob."""

    __slots__ = ("first", "ts", "blob", "ends", "origs", "ifaces", "vnets", "truncated")

    def __init__(self, first: int, ts, frames, origs, ifaces, vnets, truncated):
        self.first = first
        self.ts = array("q", ts)
        self.blob = b"".join(frames)
        self.ends = array("q", accumulate(map(len, frames)))
        self.origs = array("q", origs)
        self.ifaces = array("i", ifaces)
        self.vnets = None if vnets is None else array("i", vnets)
        self.truncated = truncated

    def __len__(self) -> int:
        return len(self.ends)

    def batch(self) -> Batch:
        ends = self.ends.tolist()
        frames = list(map(self.blob.__getitem__, map(slice, [0] + ends[:-1], ends)))
        return Batch(self.first, self.ts.tolist(), frames, self.origs.tolist(), self.ifaces.tolist(),
                     None if self.vnets is None else self.vnets.tolist(), self.truncated)

    def __getstate__(self):
        return tuple(getattr(self, s) for s in self.__slots__)

    def __setstate__(self, state):
        for s, v in zip(self.__slots__, state):
            setattr(self, s, v)


class PreparedCapture:
    """A capture's batches in memory, read, rewritten and filtered once.

    ``path``, ``format``, ``linktypes``, ``synthesised_ethernet``: what the driver reads from a
    reader after the replay.  ``frames``: records read; ``filtered``: frames the BPF filter
    removed; ``error``: the ``CaptureError`` that ended the capture, or None; ``first_ns`` /
    ``last_ns``: the first and last timestamps read (None when empty)."""

    def __init__(self, path, batches: list, error: CaptureError | None, frames: int, filtered: int,
                 bpf_applied: bool, attrs: dict, first_ns, last_ns):
        self.path = path
        self._batches = batches
        self.error = error
        self.frames = frames
        self.filtered = filtered
        self.bpf_applied = bpf_applied
        self.format = attrs.get("format", "")
        self.linktypes = attrs.get("linktypes", set())
        self.synthesised_ethernet = attrs.get("synthesised_ethernet", False)
        self.warnings = attrs.get("warnings", [])      # the capture reader's (CaptureReader.warnings)
        self.first_ns = first_ns
        self.last_ns = last_ns
        self.ordered = True            # timestamps never decrease (set by ``prepare``)

    @property
    def nbytes(self) -> int:
        """Bytes of frame data held."""
        return sum(len(b.blob) for b in self._batches)

    def reader(self) -> "PreparedReader":
        """A new reader over the prepared batches (each replay takes its own)."""
        return PreparedReader(self)


class PreparedReader:
    """What the driver reads: ``batches()`` yields the prepared batches as ``Batch`` objects, then
    raises the capture's read error, if it had one, as the original reader did."""

    def __init__(self, prepared: PreparedCapture):
        self.prepared = prepared
        self.path = prepared.path
        self.format = prepared.format
        self.linktypes = prepared.linktypes
        self.synthesised_ethernet = prepared.synthesised_ethernet
        self.warnings = prepared.warnings          # (the driver puts them in each replay's summary)

    def batches(self):
        for stored in self.prepared._batches:
            yield stored.batch()
        if self.prepared.error is not None:
            raise self.prepared.error


def prepare(reader) -> PreparedCapture:
    """Read ``reader`` to its end (or its read error, kept to be raised again) into a
    ``PreparedCapture``, batch by batch."""
    stored: list[_Stored] = []
    frames = 0
    error = None
    first_ns = last_ns = None
    ordered = True
    try:
        for batch in reader.batches():
            n = len(batch.frames)
            if not n:
                continue
            frames += n
            ts = batch.timestamps
            if first_ns is None:
                first_ns = ts[0]
            elif ts[0] < last_ns:
                ordered = False
            if ordered and not all(map(le, ts, islice(ts, 1, None))):
                ordered = False
            last_ns = ts[-1]
            stored.append(_Stored(batch.first_frame, batch.timestamps, batch.frames, batch.orig_lens,
                                  batch.interface_ids, batch.vnet_lens, batch.truncated))
    except CaptureError as exc:
        error = exc
    attrs = {"format": getattr(reader, "format", ""), "linktypes": set(getattr(reader, "linktypes", ())),
             "synthesised_ethernet": bool(getattr(reader, "synthesised_ethernet", False)),
             "warnings": list(getattr(reader, "warnings", ()))}
    prep = PreparedCapture(reader.path, stored, error, frames, 0, False, attrs, first_ns, last_ns)
    prep.ordered = ordered
    return prep


def filter_pair(primary: PreparedCapture, secondary: PreparedCapture, bpf) -> bool:
    """Apply ``bpf`` (a ``captures.bpf.BpfFilter``) to both prepared captures, in place, batch by
    batch; False, and nothing done, when either capture ended in a read error or has timestamps
    that go backwards (the driver must then filter: see the module docstring)."""
    if primary.error is not None or secondary.error is not None or not (primary.ordered and secondary.ordered):
        return False
    for prep in (primary, secondary):
        out: list[_Stored] = []
        old = prep._batches
        prep._batches = out
        for j, stored in enumerate(old):
            old[j] = None                   # release each batch as it is replaced
            batch = stored.batch()
            keep = bpf.mask(batch.frames, batch.orig_lens)
            # Frames cut by a snaplen reach the driver's "uncomparable" row before its filter.
            keep = [k or len(f) < o for k, f, o in zip(keep, batch.frames, batch.orig_lens)]
            prep.filtered += keep.count(False)
            for lo, hi in _runs(keep):
                sl = slice(lo, hi)
                fr = batch.frames[sl]
                og = batch.orig_lens[sl]
                cut = sum(1 for f, o in zip(fr, og) if len(f) < o)
                out.append(_Stored(batch.first_frame + lo, batch.timestamps[sl], fr, og,
                                   batch.interface_ids[sl],
                                   None if batch.vnet_lens is None else batch.vnet_lens[sl], cut))
        prep.bpf_applied = True
    return True


def _runs(keep: list) -> list[tuple[int, int]]:
    """``[(lo, hi), ...]``: the maximal runs of True in ``keep``."""
    runs = []
    lo = None
    for i, k in enumerate(keep):
        if k and lo is None:
            lo = i
        elif not k and lo is not None:
            runs.append((lo, i))
            lo = None
    if lo is not None:
        runs.append((lo, len(keep)))
    return runs


def fix_stats(result, primary: PreparedCapture, secondary: PreparedCapture, bpf_filter: str | None) -> None:
    """Put into a replay's ``ReplayResult`` what the driver would have counted had it filtered
    the frames itself: records read, frames filtered out, the filter in the knobs."""
    for st, prep in ((result.primary, primary), (result.secondary, secondary)):
        if prep.bpf_applied:
            st.frames += prep.filtered
            st.filtered += prep.filtered
    if bpf_filter and (primary.bpf_applied or secondary.bpf_applied):
        result.options.bpf_filter = bpf_filter
        result.knobs["filter"] = bpf_filter





class PreparedPair:
    """Two prepared captures and the replay options resolved for them (guest selection, clock
    alignment, measured checkpoint times), ready to be replayed under many settings.

    ``bpf_filter``: the filter of the replay it stands for; ``filter_pair`` was applied when
    ``prefiltered`` (the driver then runs without one and ``fix_stats`` restores the counts).
    ``source``: what ``api.replay`` would put in ``result.source`` (guest, filter-rewriter)."""

    def __init__(self, name: str, primary: PreparedCapture, secondary: PreparedCapture, options,
                 source: dict | None = None):
        from ..captures.bpf import BpfFilter

        self.name = name
        self.primary = primary
        self.secondary = secondary
        self.options = options
        self.source = source or {}
        self.bpf_filter = options.bpf_filter
        self.prefiltered = bool(self.bpf_filter) and filter_pair(primary, secondary, BpfFilter(self.bpf_filter))

    def replay(self, **setting):
        """``offline.driver.replay_partial`` over the prepared frames with ``setting`` (fields of
        ``ReplayOptions``) replacing the pair's options: ``(ReplayResult, exception_or_None)``."""
        from dataclasses import replace
        from .driver import replay_partial

        opts = replace(self.options, **setting)
        if self.prefiltered:
            # The scan grid and the checkpoint model start at the first frame *read*, filtered
            # out or not, as in a replay that filters as it goes.
            o = opts
            firsts = [p.first_ns + shift for p, shift in
                      ((self.primary, o.primary_offset_ns + o.primary_delay_ns),
                       (self.secondary, o.secondary_offset_ns + o.secondary_delay_ns)) if p.first_ns is not None]
            lasts = [p.last_ns + shift for p, shift in
                     ((self.primary, o.primary_offset_ns + o.primary_delay_ns),
                      (self.secondary, o.secondary_offset_ns + o.secondary_delay_ns)) if p.last_ns is not None]
            opts.bpf_filter = None
            opts.first_arrival_ns = min(firsts) if firsts else None
            # ... and the clock runs at least to the last frame read (a frame filtered out still
            # brought the scans and checkpoints due by its arrival).
            until = opts.end_ns
            if until is None and opts.checkpoints_at:
                until = max(opts.checkpoints_at)
            if lasts:
                opts.end_ns = max(lasts) if until is None else max(until, max(lasts))
        result, exc = replay_partial(self.primary.reader(), self.secondary.reader(), opts)
        if self.prefiltered:
            fix_stats(result, self.primary, self.secondary, self.bpf_filter)
            result.options.end_ns = self.options.end_ns
            result.options.first_arrival_ns = None
            end = self.options.end_ns
            if end is None and self.options.checkpoints_at:
                end = max(self.options.checkpoints_at)
            result.knobs["until_ns"] = end
        if self.source:
            result.source = self.source
        return result, exc

    def span_ns(self) -> int:
        """The traffic's length: first to last frame read on either side, before offsets."""
        firsts = [p.first_ns for p in (self.primary, self.secondary) if p.first_ns is not None]
        lasts = [p.last_ns for p in (self.primary, self.secondary) if p.last_ns is not None]
        return max(lasts) - min(firsts) if firsts else 0

__all__ = ["PreparedCapture", "PreparedReader", "PreparedPair", "prepare", "filter_pair", "fix_stats"]
