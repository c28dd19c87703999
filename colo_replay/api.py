"""Every command's work as a function; the command line (``colo_replay.cli``) only parses
options, builds one ``Settings`` and makes one of these calls.

* ``replay(primary, secondary, settings=...) -> Timeline``      ``colo-replay replay P S``
* ``replay_chardev(capture, ports, settings=...) -> Timeline``  ``colo-replay replay --chardev C``
* ``verify(capture, ports, settings=...) -> Verification``      ``colo-replay verify C``
* ``explain(primary, secondary, settings=...) -> Explanation``  ``colo-replay explain P S``
* ``report(primary, secondary, settings=...) -> Report``        ``colo-replay report P S -o r.html``
* ``sweep(primary, secondary, grid=..., settings=...) -> Sweep`` ``colo-replay sweep P S --compare-timeout ...``
* ``live(primary_in=..., secondary_in=..., outdev=..., settings=...) -> LiveRun``   ``colo-replay live``

Every function takes the options as one ``Settings`` (``colo_replay.offline.settings``:
validated when built, so what the command line refuses raises ``ValueError`` with the message
it prints), as its fields given as keywords (``replay(P, S, compare_timeout=100,
filter_rewriter=True)``), or both (the keywords replace the settings' values).  The results
follow pandas' manner: ``to_frame()``, ``to_dict()``, ``write(path_or_buf)``.  Paths may be
``str`` or ``os.PathLike``; an output given as ``"-"`` is standard output.

This module only orchestrates: the work is in the layers below (``offline``: settings, the pair
reader, the driver, the outcome; ``analysis``: explain, report, sweep; ``live``: the session).
"""

from __future__ import annotations

import dataclasses
import os
from functools import partial

from .analysis.sweep_result import Sweep, run_sweep
from .live.session import (LiveRun, LiveStartError, event_loop_factory, finish_session, prepare, run_session,
                           running_loop_name)
from .offline.outcome import Timeline, check_output, is_stdout, parquet_stream, run_streamed
from .offline.pair import is_path, open_pair, open_side
from .offline.replay_warnings import replay_warnings
from .offline.settings import NOT_WITH_CHARDEV, PEER_ISN_NEEDS_REWRITER, Settings, split_settings
from .offline.verify import Verification
from .output.files import check_outputs

__all__ = ["Settings", "Timeline", "Verification", "Sweep", "LiveRun", "LiveStartError", "replay",
           "replay_chardev", "verify", "explain", "report", "sweep", "live", "live_async",
           "NOT_WITH_CHARDEV", "PEER_ISN_NEEDS_REWRITER"]


def _stream_target(output):
    """The ``output`` a replay streams or writes itself: None for standard output (the caller
    writes JSON Lines there with ``Timeline.write``), else the path or stream given."""
    return None if is_stdout(output) else output


def replay(primary, secondary, progress=None, *, settings: Settings | None = None, output=None,
           **options) -> Timeline:
    """Replay two captures (paths or open ``CaptureReader``s) through colo-compare.

    ``settings`` / ``options``: a ``Settings`` and its fields (``qemu="7.2"``,
    ``compare_timeout=...``, ``filter_rewriter=True``, ``guest="auto"``, ``align="auto"``,
    ``checkpoints_at=path_or_times``, ``end_ns=...``, ``after_checkpoint="raw"``, ...; see
    ``Settings``).  A read error does not raise: the timeline holds everything up to it and
    ``timeline.partial`` is True.  ``summary["warnings"]``: surprising situations (the same file
    twice, a side with far fewer frames, traffic never compared, differing ISNs, skewed clocks,
    a truncated max_queue_size).

    ``progress``: called with the number of frames replayed so far; if it has a
    ``track(readers, paths)`` method, that is called first and returns the readers to use (the
    command line's progress bar counts bytes that way).  ``output``: the timeline file
    (.parquet, .csv, .jsonl; marked partial as ``Timeline.write`` does).  A Parquet timeline is
    streamed: each block of 65,536 rows is written as it fills and not kept, so memory stays
    flat however long the captures are (``timeline.events`` then reads the file back).
    """
    settings = Settings.of(settings, **options)
    check_output(output)
    check_outputs({"output": output}, {"primary capture": primary, "secondary capture": secondary})
    output = _stream_target(output)
    pair = open_pair(primary, secondary, settings)
    prd, srd = pair.primary, pair.secondary
    if progress is not None and hasattr(progress, "track"):
        prd, srd = progress.track((prd, srd), tuple(c for c in (primary, secondary) if is_path(c)))
    stream = parquet_stream(output, pair.options)
    result = run_streamed(stream, prd, srd, pair.options, progress)
    result.source = pair.finished_source()
    timeline = Timeline(result, stream)
    timeline.finish(output)
    result.warnings = settings.warnings() + result.warnings       # the readers' come from the driver
    if not result.interrupted:
        result.warnings += replay_warnings(timeline, primary, secondary, pair.options, settings.filter_rewriter,
                                           settings.align)
    # The summary was made on the way (the warnings read it): its own warnings (the raw replay's
    # cascade) stay, after the replay's.
    made = [w for w in timeline.summary["warnings"] if w not in result.warnings]
    timeline.summary["warnings"] = list(result.warnings) + made
    return timeline


def replay_chardev(capture, ports: dict | None = None, progress=None, flushes: str = "measured", *,
                   settings: Settings | None = None, output=None, **options) -> Timeline:
    """Replay a chardev-stream capture (a path or a ``ChardevCapture``): its primary_in and
    secondary_in streams, as colo-compare read them, on the capture's clock.

    ``ports`` maps primary_in / secondary_in / outdev / notify_dev to TCP ports (QEMU's
    documented 9001 / 9004 / 9005 / 9009 by default).  ``flushes="measured"`` (the default)
    flushes at the times colo-compare was sent ``COLO_CHECKPOINT`` on notify_dev, as the real
    one was; ``"model"`` uses the checkpoint model instead, e.g. to ask what another timeout
    would have done; ``checkpoints_at`` overrides both.  ``vnet_hdr_support`` must be what
    colo-compare ran with.  The pair-only settings (offsets, delays, ``vnet_hdr_len``,
    ``align``, ``guest``, the filter-rewriter, ``after_checkpoint="resync"``) are refused
    (``Settings.check_chardev``).  ``output`` as for ``replay``; ``timeline.capture`` is the
    ``ChardevCapture`` (``describe()``, ``warnings``, ``read_error``).
    """
    from .offline.chardev import ChardevCapture, resolve_options

    settings = Settings.of(settings, **options)
    settings.check_chardev()
    check_output(output)
    check_outputs({"output": output}, {"chardev capture": getattr(capture, "path", capture)})
    output = _stream_target(output)
    opts = settings.replay_options(after_checkpoint="raw")
    cap = capture if isinstance(capture, ChardevCapture) else ChardevCapture(
        capture, ports, settings.vnet_hdr_support, max_gap_ns=settings.max_gap_ns)
    source = resolve_options(cap, opts, flushes)
    if settings.qemu_trace is not None:
        source["flushes"] = "measured (the QEMU trace's checkpoints)"
    primary, secondary = cap.side_readers()
    stream = parquet_stream(output, opts)
    result = run_streamed(stream, primary, secondary, opts, progress)
    tc = result.trace_check
    if tc is not None and tc.get("first") is not None:
        # out of step with QEMU's comparisons: colo-compare's iothread may have read a secondary
        # frame after a primary captured later (offline/read_order.py); replayed again in its
        # order, the output (a streamed Parquet file too) is written anew
        from .offline.read_order import qemu_read_order
        secondary, read_order = qemu_read_order(cap, opts, settings.trace, tc)
        if read_order["moved"]:
            result = run_streamed(parquet_stream(output, opts), primary, secondary, opts, None)
        result.trace_check["read_order"] = read_order
    if cap.read_error is not None and not result.partial:
        result.partial, result.error = True, str(cap.read_error)
    result.source = source
    result.warnings = settings.warnings() + result.warnings
    timeline = Timeline(result, stream, capture=cap)
    timeline.finish(output)
    return timeline


def verify(capture, ports: dict | None = None, request_window: float | None = None, *,
           settings: Settings | None = None, request_tolerance: float = 10.0, max_missed_pct: float = 2.0,
           max_extra_pct: float = 2.0, **options) -> Verification:
    """Replay a chardev-stream capture (a path or a ``ChardevCapture``) with its measured
    flushes and check the releases against its captured outdev stream: same bytes, vnet lengths
    and order.  ``request_window`` (ms) is how close a replayed checkpoint request must be to a
    ``DO_CHECKPOINT`` to count as matched (default expired_scan_cycle + 5).  Settings as for
    ``replay_chardev`` (pass the compare_timeout / expired_scan_cycle / vnet_hdr_support
    colo-compare ran with).  ValueError when the capture has no outdev stream to verify against.

    With ``qemu_trace`` (the real run's QEMU trace, a ``Settings`` field) the flushes are the
    trace's, and the replay's checkpoint requests are judged against the real ones
    (``offline.request_judge``): ``request_tolerance`` ms apart at most, at most
    ``max_missed_pct`` % of colo-compare's real requests missed and ``max_extra_pct`` % of the
    predicted ones extra, or ``Verification.ok`` is false."""
    from .offline.chardev import ChardevCapture
    from .offline.verify import verify_capture

    settings = Settings.of(settings, **options)
    settings.check_chardev()
    cap = capture if isinstance(capture, ChardevCapture) else ChardevCapture(
        capture, ports, settings.vnet_hdr_support, max_gap_ns=settings.max_gap_ns)
    if not cap.outdev.frames and not cap.outdev.connections:
        raise ValueError(f"{cap.path}: no outdev stream on port {cap.ports['outdev']}: nothing to verify "
                         f"against (see --outdev-port)")
    timeline = replay_chardev(cap, settings=settings)
    judgement = None
    if settings.trace is not None:
        judgement = _judge_requests(timeline.events, timeline.result, settings, request_tolerance, max_missed_pct,
                                    max_extra_pct)
    return Verification(cap, timeline, verify_capture(cap, timeline, request_window), judgement)


def _judge_requests(events, result, settings: Settings, tolerance_ms: float = 10.0, max_missed_pct: float = 2.0,
                    max_extra_pct: float = 2.0):
    """The replay's checkpoint requests judged against the real run of ``settings.trace``
    (``offline.request_judge``), with the TCP memcmps the replay walked along with the trace."""
    from .offline.request_judge import judge_requests

    delay = settings.checkpoint_delay_ns
    judgement = judge_requests(events, settings.trace,
                               coalescing=settings.release.profile.checkpoint_requests_coalesce,
                               delay_ms=None if delay is None else delay // 1_000_000, tolerance_ms=tolerance_ms,
                               max_missed_pct=max_missed_pct, max_extra_pct=max_extra_pct)
    tc = getattr(result, "trace_check", None)
    if tc is not None:
        judgement.read_order = tc.get("read_order")
        judgement.cross_check["tcp payload compares (ip_info/tcp_info)"] = {
            "trace": tc["trace"], "replay": tc["replay"], "agree": tc["agree"] - tc["outcome_disagreements"],
            "first": tc["first"], "undefined_resolved": tc["undefined_resolved"]}
        judgement.cross_check["tcp_info seq/ack/hdlen/pdlen"] = {
            "trace": tc["tcp_info"], "replay": tc["tcp_info"], "agree": tc["tcp_info_agree"],
            "first": tc["tcp_info_first"]}
    return judgement


def explain(primary=None, secondary=None, *, chardev=None, ports: dict | None = None, flushes: str = "measured",
            request: int | None = None, frame: str | None = None, flow: str | None = None,
            limit: int | None = None, other_profile: bool = True, tshark: bool = True,
            evidence=None, progress=None, settings: Settings | None = None, **options):
    """Why did the replay diverge: replay ``primary`` and ``secondary`` (as ``replay``), or the
    ``chardev`` capture (as ``replay_chardev``), and explain its root divergences
    (``colo_replay.analysis.explain``).

    Returns an ``Explanation``: ``.roots`` / ``to_frame()`` (one row per selected divergence),
    ``.classes`` (DataFrame), ``.to_dict()`` (the JSON schema), ``.format()`` (text), and
    ``.timeline`` (the replay).  Selection: ``request`` N, ``frame`` ``"P#N"``/``"S#N"``,
    ``flow`` (words of the flow text, e.g. ``"udp :53"``), ``limit``.  ``other_profile``:
    replay again with the other QEMU profile (4.1 <-> 7.2) and note where it decides
    differently on a divergence's frame.  ``tshark``: name application fields (one tshark run
    over the frames involved).  ``evidence``: write those frames, both sides, with comments, to
    this pcapng.  The frames shown are read again as the replay read them (``--allow-gaps``,
    the filter-rewriter).
    """
    from .analysis.explain import Selection, explain_timeline
    from .engine.profiles import CompareConfig
    from .captures.pick import FramePicker, pick_frames
    from .engine.releases import get_profile
    from .offline.background import OtherProfileReplay

    settings = Settings.of(settings, **options)
    selection = Selection(request, frame, flow, limit)
    selection.parse_frame()                 # a bad --frame is refused before any work
    if evidence is not None and (not os.fspath(evidence) or is_stdout(evidence)):
        raise ValueError(f"--evidence {os.fspath(evidence)!r}: give a pcapng file to write (stdout carries the "
                         f"explanation)")
    check_outputs({"--evidence": evidence}, {"primary capture": primary, "secondary capture": secondary,
                                             "chardev capture": chardev})
    pickers = []                            # (a pair's: FramePicker, closed at the end)
    noting = None                           # (a pair's replay's progress: _NotingOffsets)
    if chardev is not None:
        if primary is not None or secondary is not None:
            raise ValueError("give either PRIMARY SECONDARY or chardev=, not both")

        def run(s, progress=progress, output=None):
            return replay_chardev(chardev, ports, progress, flushes, settings=s, output=output)

        def fetch(side, nums):
            return pick_frames(tl.capture.side_readers()[side], nums)
        replay_info = {"chardev": str(chardev)}
    else:
        if primary is None or secondary is None:
            raise ValueError("missing PRIMARY and SECONDARY captures (or chardev=)")

        noting = _NotingOffsets(progress)

        def run(s, progress=noting, output=None):
            return replay(primary, secondary, progress, settings=s, output=output)

        # (the batches the replay noted, or one walk of each capture; then only the batches
        # holding the frames asked for)
        pickers = [FramePicker(partial(open_side, (primary, secondary), settings, side)) for side in (0, 1)]

        def fetch(side, nums):
            return pickers[side](nums)
        replay_info = {"primary": str(primary), "secondary": str(secondary),
                       "filter_rewriter": settings.filter_rewriter}
    # the other profile's replay runs beside this one from the start (offline/background.py)
    # (without the caller's progress: that is the first replay's, in this process)
    job = OtherProfileReplay(lambda s, output: run(s, None, output), settings) if other_profile else None
    try:
        tl = run(settings)
    except BaseException:
        if job is not None:
            job.close()
        raise
    if job is not None:
        job.first_done()
    if noting is not None:
        for picker, reader in zip(pickers, noting.readers):
            if reader is not None:
                picker.index(reader.batch_offsets)
    knobs = tl.result.knobs
    profile = knobs["qemu"]
    replay_info.update(profile=profile, qemu=tl.result.qemu, after_checkpoint=knobs.get("after_checkpoint"),
                       checkpoints=knobs.get("checkpoints"), partial=tl.partial)
    warning = (tl.summary.get("after_checkpoint") or {}).get("warning")
    if warning:
        replay_info["warning"] = warning        # the cascade signature of a raw replay

    def other(primary_frames: set, secondary_frames: set):
        """The other profile's timeline rows about these frames (only those come back)."""
        rows = job.rows(primary_frames, secondary_frames)
        if rows is None:
            replay_info["other_profile"] = job.note
        return rows

    o = tl.result.options
    try:
        result = explain_timeline(tl.events, fetch, replay=replay_info, vnet_hdr_len=o.vnet_hdr_len,
                                  inverted_tcp=get_profile(profile).tcp_compare_inverted,
                                  other=other if job is not None else None,
                                  other_profile=job.name if job is not None else None,
                                  selection=selection, tshark=tshark,
                                  qemu_row=o.release.row if o.release is not None else None,
                                  config=CompareConfig(o.compare_timeout, o.expired_scan_cycle,
                                                       o.max_queue_size, o.vnet_hdr_support),
                                  offsets_ns=(o.primary_offset_ns + o.primary_delay_ns,
                                              o.secondary_offset_ns + o.secondary_delay_ns))
    finally:
        if job is not None:
            job.close()             # (asked, or not: nothing was shown)
    result = dataclasses.replace(result, timeline=tl)
    if evidence is not None:
        from .analysis.evidence import write_evidence
        write_evidence(os.fspath(evidence), result, fetch, vnet_hdr_len=o.vnet_hdr_len,
                       offsets_ns=(o.primary_offset_ns + o.primary_delay_ns,
                                   o.secondary_offset_ns + o.secondary_delay_ns))
    for picker in pickers:
        picker.close()
    return result


class _NotingOffsets:
    """explain's replay's ``progress``: as the replay starts (``track``), a capture read by a plain
    pcap reader is told to note where each batch lies (``PcapReader.note_offsets``: a tuple a
    batch), so that explain's ``FramePicker`` starts from them instead of walking the capture
    again (0.36 s of the 1M clean pair's 3.5 s explain).  ``readers``: those readers (None for
    the other kinds: a filter-rewritten secondary, pcapng, gzip).  The caller's ``progress`` is
    called (and its ``track``, after) as it would have been."""

    def __init__(self, progress):
        self.progress = progress
        self.readers: tuple = (None, None)

    def track(self, readers, paths):
        from .captures.pick import indexable

        self.readers = tuple(r if indexable(r) else None for r in readers)
        for reader in self.readers:
            if reader is not None:
                reader.note_offsets = True
        track = getattr(self.progress, "track", None)
        return readers if track is None else track(readers, paths)

    def __call__(self, frames: int) -> None:
        if self.progress is not None:
            self.progress(frames)


def report(primary=None, secondary=None, *, chardev=None, timeline=None, summary=None, ports: dict | None = None,
           flushes: str = "measured", baseline=None, tolerance=(), top: int = 20, progress=None, sweep=None,
           settings: Settings | None = None, **options):
    """A regression report (``colo_replay.analysis.report.Report``: ``html()``, ``markdown()``,
    ``json()``, ``exit_status``) of one run: a replay of ``primary`` and ``secondary``, of a
    ``chardev`` capture (``ports``, ``flushes``: as ``replay_chardev``), or a saved ``timeline``
    file with its ``summary`` JSON (``replay -o t.parquet --summary-json s.json``, ``live -o``),
    reported later without replaying (no setting applies then).  ``baseline``: an earlier
    report's JSON, gated by the ``tolerance`` rules (``analysis.report.baseline``); ``top``: rows
    of long tables.  The divergences are ``explain``'s (the first ``top`` detailed, the classes
    over all; a saved run: the timeline's roots and classes by cause, no frame is read).  The
    input files are hashed in a thread while the replay runs.  ``sweep``: a ``sweep -o
    sweep.json`` whose table, plot and recommendation the report includes.  With ``qemu_trace``
    (a real COLO run's trace) the report has a section "The real run": the replay's checkpoint
    requests judged against the real ones, as ``verify`` judges them."""
    from .analysis.report import Sources, build_report
    from .analysis.report.load import load_summary, load_timeline

    settings = Settings.of(settings, **options)
    fspath = _fspath_or_none
    timeline, summary, baseline, sweep = fspath(timeline), fspath(summary), fspath(baseline), fspath(sweep)
    if timeline is not None:
        if primary is not None or secondary is not None or chardev is not None:
            raise ValueError("give a saved timeline, or captures to replay, not both")
        # (--allow-gaps applies to the saved run's rows: a replay with it may have written a gap)
        given = [flag for name, flag in settings.given().items() if name != "allow_gaps"]
        given += ["--*-port"] if ports else []
        given += ["--flushes"] if flushes != "measured" else []
        if given:
            raise ValueError(f"{', '.join(given)} not applicable with --timeline: the saved run is reported as it "
                             f"was replayed")
        summ = load_summary(summary)
        sources = Sources.saved(timeline, summary, summ, ports)
        events, mode, result, why = load_timeline(timeline), "saved", None, None
    elif chardev is not None:
        if primary is not None or secondary is not None:
            raise ValueError("give either PRIMARY SECONDARY or --chardev CAPTURE, not both")
        sources = Sources.chardev(fspath(chardev))
        why = explain(chardev=chardev, ports=ports, flushes=flushes, limit=top, other_profile=False,
                      progress=progress, settings=settings)
        run = why.timeline
        sources.use_capture(run.capture)
        events, summ, mode, result = run.events, run.summary, "chardev", run.result
    elif primary is not None and secondary is not None:
        sources = Sources.pair(fspath(primary), fspath(secondary))
        why = explain(primary, secondary, limit=top, other_profile=False, progress=progress, settings=settings)
        run = why.timeline
        events, summ, mode, result = run.events, run.summary, "replay", run.result
    else:
        raise ValueError("missing PRIMARY and SECONDARY captures (or --chardev CAPTURE, or --timeline FILE)")
    real_run = None
    if settings.trace is not None:      # (a saved timeline refused --qemu-trace above)
        real_run = _judge_requests(events, result, settings).as_dict()
    return build_report(events, summ, sources, mode=mode, result=result, explanation=why,
                        options=settings.report_options(), baseline=baseline, tolerance=tolerance, top=top,
                        sweep=sweep, real_run=real_run)


def _fspath_or_none(path):
    return None if path is None else os.fspath(path)


def sweep(primary=None, secondary=None, *, grid: dict, settings: Settings | None = None,
          pairs: list[dict] | None = None, jobs: int | None = None, dask: str | None = None,
          max_held_p99: float | None = None, start_method: str | None = None, with_summary: bool = False,
          name: str | None = None, max_settings: int | None = None, **options) -> Sweep:
    """Replay a pair (or each of ``pairs``) under every setting of ``grid`` (pairs of paths read
    again for each setting, streamed; readers and Dask: read into memory once).

    ``grid``: knob -> spec text (``"100,300"``, ``"100:3000:x2"``, ``"100:1000:+300"``) or list
    of values, for the knobs of ``analysis.sweep.KNOBS`` (compare_timeout, expired_scan_cycle,
    max_queue_size, checkpoint_duration, checkpoint_delay; durations as ns in lists).
    ``settings`` / ``options``: as for ``replay``, for every pair.  ``pairs``: dicts with
    ``name``, ``primary``, ``secondary`` and per-pair ``Settings`` fields overriding those
    (``analysis.sweep.read_manifest`` reads them from a CSV or TOML file).  ``jobs``, ``dask``,
    ``start_method``: see ``analysis.sweep.run``.  ``max_held_p99`` (ms): the recommendation's
    bound.  ``with_summary``: keep each row's full summary (``Sweep.summaries``).  ``max_settings``:
    refuse (ValueError, before anything is read) more than this many replays, settings x pairs
    (default ``analysis.sweep.MAX_SETTINGS``, 10000).  Ctrl-C returns the rows finished so far:
    ``Sweep.interrupted``, ``exit_status`` 130.

    Each row is what ``replay(primary, secondary, **options, **setting)`` would report.  Bad
    grids and settings raise ``ValueError`` before anything is read."""
    return run_sweep(primary, secondary, grid, Settings.of(settings, **options), pairs=pairs, jobs=jobs, dask=dask,
                     max_held_p99=max_held_p99, start_method=start_method, with_summary=with_summary, name=name,
                     max_settings=max_settings)


def _live_session(primary_in, secondary_in, outdev, notify_dev, settings, options: dict):
    mine, rest = split_settings(options)
    return prepare(primary_in, secondary_in, outdev, notify_dev, Settings.of(settings, **mine), **rest)


def live(primary_in: str, secondary_in: str, outdev: str, notify_dev: str | None = None, *,
         settings: Settings | None = None, record_dir=None, duration_ns: int | None = None,
         allow_empty: bool = False, event_loop: str = "auto", **options) -> LiveRun:
    """Run colo-compare live on real sockets until SIGINT/SIGTERM or ``duration_ns``.

    Endpoints are QEMU chardev specs (``socket,path=/run/x.sock``,
    ``socket,host=127.0.0.1,port=9001,server=on,wait=off``, ``reconnect=SECONDS``).
    ``settings`` / options: colo-compare's properties only (``qemu``, ``compare_timeout``,
    ``expired_scan_cycle``, ``max_queue_size``, ``vnet_hdr_support``).  The run's own keywords
    (``live.session.prepare``): ``allow_remote=True`` (listen on non-loopback addresses),
    ``flush_on_request_ns`` (simulated checkpoints without notify_dev), ``stats_interval`` (s),
    ``timeline=True`` (collect every event: ``run.events``), ``log`` or ``log_format`` /
    ``log_level`` (stderr logs), ``max_send_buffer``.  ``record_dir``: a pcapng recording,
    replayable.  The run's exit status (``run.exit_status``) follows the one contract; a run in
    which primary_in or secondary_in never sent a frame compared nothing
    (``summary["nothing_compared"]``): 2 unless ``allow_empty``.  ``event_loop``: ``"auto"``
    (uvloop where it is installed, else asyncio's own), ``"uvloop"`` or ``"asyncio"``
    (``live.session.event_loop_factory``); ``summary["event_loop"]`` says which ran.

    ValueError before any socket is opened for what QEMU would refuse (``EndpointError`` for a
    bad spec); ``LiveStartError`` when an endpoint or ``record_dir`` cannot be opened.
    """
    import asyncio

    loop_factory, loop_name = event_loop_factory(event_loop)
    lc = _live_session(primary_in, secondary_in, outdev, notify_dev, settings,
                       dict(options, duration_ns=duration_ns))
    record_dir = _fspath_or_none(record_dir)
    done: dict = {"allow_empty": allow_empty, "event_loop": loop_name}
    try:
        with asyncio.Runner(loop_factory=loop_factory) as runner:
            return runner.run(run_session(lc, record_dir, duration_ns, done))
    except KeyboardInterrupt:           # a SIGINT before the handlers were installed
        return finish_session(lc, record_dir, done)


async def live_async(primary_in: str, secondary_in: str, outdev: str, notify_dev: str | None = None, *,
                     settings: Settings | None = None, record_dir=None, duration_ns: int | None = None,
                     allow_empty: bool = False, **options) -> LiveRun:
    """``live`` as a coroutine, for callers that already run an event loop (a notebook); the
    same keywords as ``live`` but ``event_loop``: the caller's loop runs it, and
    ``summary["event_loop"]`` names that one."""
    lc = _live_session(primary_in, secondary_in, outdev, notify_dev, settings,
                       dict(options, duration_ns=duration_ns))
    return await run_session(lc, _fspath_or_none(record_dir), duration_ns,
                             {"allow_empty": allow_empty, "event_loop": running_loop_name()})
