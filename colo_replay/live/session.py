"""A live run from start to summary: the checks made before any socket is opened
(``prepare``), the run (``run_session``), and its outcome (``LiveRun``), whose summary and exit
status follow the one contract of every command (``output.verdict``).  ``api.live`` and
``api.live_async`` drive these; ``runtime.LiveCompare`` is the run itself.
"""

from __future__ import annotations

from functools import cached_property

from ..offline.outcome import output_target
from ..offline.settings import Settings
from ..output.summary import format_summary
from ..output.timeline import write_timeline, write_timeline_blocks
from ..output.verdict import exit_status


class LiveStartError(ValueError):
    """``live``: an endpoint or the record directory could not be opened at start-up."""


class LiveRun:
    """The outcome of ``live``: ``summary`` (a dict: counters, the resolved properties,
    ``stop_reason``, ``exit_status``, ``record``), ``exit_status`` (0 no checkpoint request,
    1 requests or a frame that would crash QEMU, 2 the run stopped on an internal error) and,
    when a timeline was asked for, ``events`` (a pandas DataFrame, as ``Timeline.events``)."""

    def __init__(self, compare, summary: dict, collector=None):
        self.compare = compare          # the LiveCompare that ran
        self.summary = summary
        self.collector = collector

    @property
    def exit_status(self) -> int:
        return self.summary["exit_status"]

    @cached_property
    def events(self):
        if self.collector is None:
            raise ValueError("no timeline was collected (live(..., timeline=True))")
        return self.collector.to_frame()

    def format_summary(self) -> str:
        return format_summary(self.summary)

    def to_frame(self):
        """The events as a pandas DataFrame (``events``)."""
        return self.events

    def to_dict(self) -> dict:
        """The summary (what ``--summary-json`` writes)."""
        return self.summary

    def write(self, path_or_buf=None) -> None:
        """Write the events as ``Timeline.write`` does: a path (str or ``os.PathLike``) by its
        extension (.parquet / .csv / .jsonl), or JSON Lines on a text stream, ``"-"`` or None
        (standard output); CSV and JSON Lines a block of the collector at a time."""
        path, stream = output_target(path_or_buf)
        if self.collector is not None and (path is None or not path.lower().endswith(".parquet")):
            write_timeline_blocks(self.collector.blocks(), path, stream)
            return
        write_timeline(self.events, path, stream)

    def __repr__(self) -> str:
        return f"<LiveRun stopped by {self.summary['stop_reason']}, exit status {self.exit_status}>"


def prepare(primary_in: str, secondary_in: str, outdev: str, notify_dev: str | None, settings: Settings, *,
            allow_remote: bool = False, flush_on_request_ns: int | None = None, stats_interval: float | None = None,
            timeline: bool = False, log=None, log_format: str = "text", log_level: str = "info",
            duration_ns: int | None = None, max_send_buffer: int = 64 << 20):
    """Check everything QEMU (or we) would refuse before a socket is opened; the LiveCompare.
    ``settings``: colo-compare's properties only (``Settings.check_live``)."""
    from .endpoint import EndpointError, parse_endpoint
    from .logs import Log
    from .runtime import LiveCompare

    settings.check_live()
    specs = {"primary_in": primary_in, "secondary_in": secondary_in, "outdev": outdev}
    if notify_dev is not None:
        specs["notify_dev"] = notify_dev
    endpoints = {}
    for name, spec in specs.items():
        try:
            endpoints[name] = parse_endpoint(spec, allow_remote=allow_remote)
        except EndpointError as exc:
            raise EndpointError(f"--{name.replace('_', '-')}: {exc}") from None
    seen = {}
    for name, ep in endpoints.items():
        key = (ep.kind, ep.address)
        if key in seen:
            # colo_compare_complete: "'indev' and 'outdev' could not be same for compare module"
            raise ValueError(f"--{name.replace('_', '-')} and --{seen[key].replace('_', '-')} name the same socket")
        seen[key] = name
    if flush_on_request_ns is not None:
        if notify_dev is not None:
            raise ValueError("--flush-on-request simulates the COLO frame; with --notify-dev the peer on "
                             "notify_dev does that")
        if flush_on_request_ns < 0:
            raise ValueError("--flush-on-request must not be negative")
    if duration_ns is not None and duration_ns <= 0:
        raise ValueError("--duration must be positive")
    collector = None
    if timeline:
        from ..output.timeline import TimelineCollector
        collector = TimelineCollector()
    if log is None:
        log = Log(log_format, log_level)
    # (the properties were checked as QEMU's setters check them when the settings were made)
    return LiveCompare(endpoints, release=settings.release, config=settings.compare_config(), log=log,
                       flush_on_request_ns=flush_on_request_ns, stats_interval=stats_interval, timeline=collector,
                       max_send_buffer=max_send_buffer)


EVENT_LOOPS = ("auto", "uvloop", "asyncio")


def event_loop_factory(name: str = "auto"):
    """(loop factory, the loop's name) for ``asyncio.Runner``.

    ``uvloop`` (libuv's loop, a dependency) runs each socket callback with much less Python
    around it than the standard library's selector loop: at 10k pairs/s, the added latency's
    p50 was 41-47 us against 62-70 us in the same rounds (bench/README.md, "The event loop").
    ``asyncio`` is the standard library's loop; ``auto`` is uvloop where it can be imported, else
    asyncio (a platform without uvloop's wheels).  ValueError for another name, or when
    uvloop is asked for by name and missing (both before any socket is opened)."""
    if name not in EVENT_LOOPS:
        raise ValueError(f"--event-loop {name!r}: one of {', '.join(EVENT_LOOPS)}")
    if name != "asyncio":
        try:
            import uvloop
        except ImportError:
            if name == "uvloop":
                raise ValueError("--event-loop uvloop: uvloop is not installed (pip install uvloop, or "
                                 "--event-loop asyncio)") from None
        else:
            return uvloop.new_event_loop, "uvloop"
    import asyncio
    return asyncio.new_event_loop, "asyncio"


def running_loop_name() -> str:
    """"uvloop" or "asyncio": the loop running the caller (``api.live_async`` runs in it)."""
    import asyncio
    return "uvloop" if type(asyncio.get_running_loop()).__module__.startswith("uvloop") else "asyncio"


async def run_session(lc, record_dir, duration_ns, done: dict) -> LiveRun:
    """Open the endpoints (and the recording), run until stopped, and make the ``LiveRun``
    (also kept in ``done["run"]``, so that a caller interrupted before the end still gets it
    from ``finish_session``)."""
    try:
        await lc.open()
    except OSError as exc:
        raise LiveStartError(_endpoint_error(lc, exc)) from None
    if record_dir is not None:
        from .recorder import Recorder
        r = lc.resolved
        try:
            qemu = lc.release.given if lc.release is not None else lc.profile.name
            lc.recorder = Recorder(record_dir, {"qemu": qemu, **r.as_dict(),
                                                "compare_timeout": lc.config.compare_timeout,
                                                "expired_scan_cycle": lc.config.expired_scan_cycle,
                                                "max_queue_size": lc.config.max_queue_size,
                                                "vnet_hdr_support": r.vnet_hdr_support,
                                                "engine_start_ns": lc.start_ns,
                                                "flush_on_request_ns": lc.flush_on_request_ns,
                                                "endpoints": {k: v.spec for k, v in lc.endpoints.items()}})
        except OSError as exc:
            lc.close_channels()
            raise LiveStartError(f"--record {record_dir}: {exc.strerror or exc}") from None
    try:
        await lc.run(None if duration_ns is None else duration_ns / 1e9)
    finally:
        finish_session(lc, record_dir, done)
    return done["run"]


def _endpoint_error(lc, exc: OSError) -> str:
    """One line naming the endpoint that failed (its option and spec) and the OS error (never
    asyncio's "Connect call failed ('127.0.0.1', 19781" with its bracket cut)."""
    import os

    name = getattr(exc, "endpoint_name", None)
    reason = (os.strerror(exc.errno) if exc.errno else exc.strerror) or type(exc).__name__
    where = (f"--{name.replace('_', '-')} {lc.endpoints[name].spec}" if name in lc.endpoints
             else "endpoints " + ", ".join(ep.spec for ep in lc.endpoints.values()))
    return f"cannot open {where}: {reason}"


def finish_session(lc, record_dir, done: dict) -> LiveRun:
    """The summary (and the recording's manifest) of a run that stopped, once."""
    import os

    if "run" not in done:
        summary = lc.summary()
        summary["event_loop"] = done.get("event_loop")
        if lc.recorder is not None:
            m = lc.recorder.close(summary, lc.stop_ns)
            summary["record"] = {"dir": os.path.abspath(record_dir), "replay_command": m["replay_command"]}
        silent = [name for name, n in zip(("primary_in", "secondary_in"), summary["frames_in"]) if not n]
        summary["nothing_compared"] = (f"no frame arrived on {' or '.join(silent)}" if silent else None)
        summary["exit_status"] = session_exit_status(lc, summary, done.get("allow_empty", False))
        done["run"] = LiveRun(lc, summary, lc.timeline)
    return done["run"]


def session_exit_status(lc, summary: dict, allow_empty: bool = False) -> int:
    """The run's exit status."""
    # The one contract (output.verdict).  An internal error leaves the run incomplete: status 2,
    # as for a read error.  A frame that would crash QEMU counts as a threshold exceeded.  SIGINT
    # and SIGTERM are how a live run is ended, not an interruption of it: 0 or 1.  A run in which
    # one input never sent a frame compared nothing: 2, unless allow_empty.
    return exit_status(requests=summary["checkpoint_requests"], exceeded=bool(summary["qemu_crash_events"]),
                       nothing_compared=summary["nothing_compared"], allow_empty=allow_empty,
                       error="internal error" if lc.stop_reason == "internal error" else None)
