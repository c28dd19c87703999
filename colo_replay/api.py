"""The Python API of the offline replay: ``replay(primary, secondary, **options) -> Timeline``."""

from __future__ import annotations

from functools import cached_property

from .driver import ReplayOptions, ReplayResult, replay_partial
from .summary import format_summary, summarise
from .timeline import write_timeline


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
        return summarise(self.events, self.result)

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


def replay(primary, secondary, progress=None, **options) -> Timeline:
    """Replay two captures (paths or open ``CaptureReader``s) through colo-compare.

    ``options`` are the fields of ``ReplayOptions`` (``qemu="7.2"``, ``compare_timeout=...``,
    ``secondary_offset_ns=...``, ``checkpoint_duration_ns=...``, ...).  A read error does not
    raise: the timeline holds everything up to it and ``timeline.partial`` is True.
    """
    from .captures import open_capture

    def reader(capture):
        is_path = isinstance(capture, (str, bytes)) or hasattr(capture, "__fspath__")
        return open_capture(capture) if is_path else capture

    opts = ReplayOptions(**options)
    result, _exc = replay_partial(reader(primary), reader(secondary), opts, progress)
    return Timeline(result)
