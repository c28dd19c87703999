"""The Python API of the offline replay: ``replay(primary, secondary, **options) -> Timeline``."""

from __future__ import annotations

from functools import cached_property

from .offline.driver import ReplayOptions, ReplayResult, replay_partial
from .output.summary import format_summary, summarise
from .output.timeline import write_timeline


class Timeline:
    """The outcome of a replay.

    ``events`` is a pandas DataFrame with one row per event (columns documented in
    ``colo_replay.timeline``; ``kind``, ``cause`` and ``side`` are categorical), ``summary``
    the summary as a dict, ``partial`` True when a capture ended in a read error (``error``).
    """

    def __init__(self, result: ReplayResult):
        self.result = result

    @cached_property
    def events(self):
        return self.result.collector.to_frame()

    @cached_property
    def summary(self) -> dict:
        summary = summarise(self.events, self.result)
        source = getattr(self.result, "source", None)
        if source:
            summary["source"] = source
        return summary

    @property
    def partial(self) -> bool:
        return self.result.partial

    @property
    def error(self) -> str | None:
        return self.result.error

    @property
    def diverged(self) -> bool:
        return self.summary["divergences"] > 0

    def format_summary(self) -> str:
        return format_summary(self.summary)

    def write(self, path: str | None = None, stream=None) -> None:
        """Write the events: .parquet / .csv / .jsonl by extension, or JSON Lines to ``stream``."""
        write_timeline(self.events, path, stream)

    def __len__(self) -> int:
        return len(self.result.collector)

    def __repr__(self) -> str:
        return f"<Timeline {len(self)} events, {self.summary['divergences']} divergences>"


def _is_path(capture) -> bool:
    return isinstance(capture, (str, bytes)) or hasattr(capture, "__fspath__")


def replay(primary, secondary, progress=None, filter_rewriter: bool = False, peer_isn: bool = False,
           **options) -> Timeline:
    """Replay two captures (paths or open ``CaptureReader``s) through colo-compare.

    ``options`` are the fields of ``ReplayOptions`` (``qemu="7.2"``, ``compare_timeout=...``,
    ``secondary_offset_ns=...``, ``checkpoint_duration_ns=...``, ...).  A read error does not
    raise: the timeline holds everything up to it and ``timeline.partial`` is True.

    ``filter_rewriter=True`` shifts the secondary's TCP sequence numbers as QEMU's
    filter-rewriter does before colo-compare (see ``colo_replay.rewriter``; the primary must be
    a path, it is read twice); ``peer_isn=True`` also aligns the secondary's ACK numbers, for
    pairs captured with two separate clients.
    """
    from .captures import open_capture

    def reader(capture):
        return open_capture(capture) if _is_path(capture) else capture

    opts = ReplayOptions(**options)
    srd = reader(secondary)
    rewriter = None
    if filter_rewriter or peer_isn:
        from .offline.rewriter import rewrite_secondary
        if not _is_path(primary):
            raise ValueError("filter_rewriter needs the primary capture as a path (it is read twice)")
        srd = rewriter = rewrite_secondary(srd, primary, opts.vnet_hdr_len, peer_isn)
    result, _exc = replay_partial(reader(primary), srd, opts, progress)
    if rewriter is not None:
        result.source = {"filter_rewriter": rewriter.stats.as_dict()}
    return Timeline(result)


def replay_chardev(capture, ports: dict | None = None, progress=None, flushes: str = "measured",
                   **options) -> Timeline:
    """Replay a chardev-stream capture (a path or a ``ChardevCapture``): its primary_in and
    secondary_in streams, as colo-compare read them, on the capture's clock.

    ``flushes="measured"`` (the default) flushes at the times colo-compare was sent
    ``COLO_CHECKPOINT`` on notify_dev, as the real one was; ``"model"`` uses the checkpoint
    model instead (``checkpoint_duration_ns`` ...), e.g. to ask what another timeout would
    have done.  The expiry-scan grid starts at the first SYN on the chardev ports (about when
    colo-compare was created), plus ``scan_phase_ns``.  ``vnet_hdr_support`` must be what
    colo-compare ran with.  Other ``options`` as for ``replay``.
    """
    from .offline.chardev import ChardevCapture

    if flushes not in ("measured", "model"):
        raise ValueError(f"flushes must be 'measured' or 'model', not {flushes!r}")
    cap = capture if isinstance(capture, ChardevCapture) else ChardevCapture(
        capture, ports, options.get("vnet_hdr_support", False))
    opts = ReplayOptions(**options)
    opts.vnet_hdr_support = cap.vnet_hdr_support
    if flushes == "measured" and opts.checkpoints_at is None and cap.notify_to.frames:
        opts.checkpoints_at = cap.flush_times()
    if opts.end_ns is None and cap.read_error is None:
        opts.end_ns = cap.end_ns        # scans and flushes after the last input frame count too
    firsts = [s.times[0] for s in (cap.primary_in, cap.secondary_in) if s.times]
    if cap.start_ns is not None and firsts:
        opts.scan_phase_ns += cap.start_ns - min(firsts)
    primary, secondary = cap.side_readers()
    result, _exc = replay_partial(primary, secondary, opts, progress)
    if cap.read_error is not None and not result.partial:
        result.partial, result.error = True, str(cap.read_error)
    result.source = {"chardev": cap.path, "ports": dict(cap.ports), "warnings": list(cap.warnings),
                     "flushes": "measured (COLO_CHECKPOINT on notify_dev)"
                     if opts.checkpoints_at is not None and flushes == "measured" else "model"}
    timeline = Timeline(result)
    timeline.capture = cap
    return timeline
