"""A pair replayed from its files for every setting (``colo-replay sweep``).

A sweep replays one pair under many settings.  ``PreparedPair`` (offline/prepared.py) reads the
pair once and keeps every frame in memory for the workers to share; on the pairs users bring
(free-running guests, a GB a side) that is the whole capture in memory, and replaying from it is
no faster than reading the files again: the readers take ~0.3 µs a frame from the page cache,
the engine and the timeline the rest (bench/README.md, "Sweep").  ``StreamedPair`` therefore
holds only what was resolved once for the pair (``open_pair``: the guest selection, the clock
alignment, the options), and each setting opens both files again exactly as ``colo-replay
replay`` would (``open_side``: the same gap rule and filter-rewriter) and replays them streamed:
a worker's memory is one replay's, whatever the captures' size, and a row is what the replay of
that setting reports.  Dask workers, which may not see the files, still get prepared pairs.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from .pair import open_side


@dataclass
class _SideSpan:
    """What ``analysis.sweep.minutes_of`` reads of a side: first and last frame read, before
    the side's offset (None until a replay read it)."""

    first_ns: int | None = None
    last_ns: int | None = None


class StreamedPair:
    """A pair of capture paths and what ``open_pair`` resolved for them, replayed from the files
    under any setting; the same interface as ``PreparedPair`` (``name``, ``options``,
    ``replay(**setting)``, ``span_ns()``, ``primary`` / ``secondary`` spans)."""

    def __init__(self, name: str, paths: tuple, settings, options, source: dict | None = None):
        self.name = name
        self.paths = paths
        self.settings = settings
        self.options = options
        self.source = source or {}
        self.primary = _SideSpan()
        self.secondary = _SideSpan()

    def replay(self, **setting):
        """``offline.driver.replay_partial`` over both files, opened again, with ``setting``
        (fields of ``ReplayOptions``) replacing the pair's options: ``(ReplayResult, exc)``."""
        from .driver import replay_partial

        opts = replace(self.options, **setting)
        prd = open_side(self.paths, self.settings, 0)
        srd = open_side(self.paths, self.settings, 1)
        try:
            result, exc = replay_partial(prd, srd, opts)
        finally:
            for rd in (prd, srd):
                close = getattr(rd, "close", None)
                if close is not None:
                    close()
        source = dict(self.source)
        stats = getattr(srd, "stats", None)
        if self.settings.filter_rewriter and stats is not None:
            source = {"filter_rewriter": stats.as_dict(), **source}
        result.source = source
        for span, st, shift in ((self.primary, result.primary, opts.primary_offset_ns + opts.primary_delay_ns),
                                (self.secondary, result.secondary,
                                 opts.secondary_offset_ns + opts.secondary_delay_ns)):
            span.first_ns = None if st.first_ns is None else st.first_ns - shift
            span.last_ns = None if st.last_ns is None else st.last_ns - shift
        return result, exc

    def span_ns(self) -> int:
        """The traffic's length: first to last frame read on either side, before offsets (as
        the last replay read them)."""
        firsts = [p.first_ns for p in (self.primary, self.secondary) if p.first_ns is not None]
        lasts = [p.last_ns for p in (self.primary, self.secondary) if p.last_ns is not None]
        return max(lasts) - min(firsts) if firsts else 0


__all__ = ["StreamedPair"]
