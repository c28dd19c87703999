"""``colo-replay live``: QEMU's colo-compare as a standalone process on real sockets.

Exit status (the same scheme as ``colo-replay replay``):

* 0  stopped cleanly (SIGINT/SIGTERM or ``--duration``) and colo-compare never asked for a
     checkpoint and no frame would have crashed QEMU;
* 1  differences were seen: at least one checkpoint request (DO_CHECKPOINT), or a frame that
     would have crashed QEMU (zero length);
* 2  bad usage or input: an endpoint QEMU would refuse, a property QEMU's setter would refuse,
     a socket that cannot be bound or connected at start-up (one line on stderr, no traceback).

stdout carries data only (the timeline with ``-o -``); logs, stats lines and the summary go to
stderr.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys

import click

from ..live.endpoint import EndpointError, parse_endpoint

EXIT_CLEAN, EXIT_DIVERGED, EXIT_BAD_INPUT = 0, 1, 2


class _Duration(click.ParamType):
    """Same syntax as ``colo-replay replay`` (``250ms``, ``1.5s``; bare numbers are ms)."""

    name = "duration"

    def convert(self, value, param, ctx):
        from .main import DURATION        # imported late: cli.py registers this command
        return DURATION.convert(value, param, ctx)


DURATION = _Duration()


def _fail(message: str) -> None:
    click.echo(f"colo-replay live: error: {message}", err=True)
    sys.exit(EXIT_BAD_INPUT)


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--primary-in", required=True, metavar="CHARDEV",
              help="primary_in: socket,path=/run/x.sock or socket,host=127.0.0.1,port=9001[,server=on|off]"
                   "[,wait=off][,reconnect=SECONDS]")
@click.option("--secondary-in", required=True, metavar="CHARDEV", help="secondary_in, same syntax.")
@click.option("--outdev", required=True, metavar="CHARDEV", help="outdev, same syntax.")
@click.option("--notify-dev", metavar="CHARDEV",
              help="notify_dev (Xen-style COLO frame): DO_CHECKPOINT out, COLO_CHECKPOINT in.")
@click.option("--allow-remote", is_flag=True, help="Allow listening on addresses that are not loopback.")
@click.option("--qemu", type=click.Choice(["4.1", "7.2"]), default="7.2", show_default=True,
              help="QEMU version whose colo-compare to reproduce.")
@click.option("--compare-timeout", type=int, help="compare_timeout, ms (7.2 only; default 3000).")
@click.option("--expired-scan-cycle", type=int, help="expired_scan_cycle, ms (7.2 only; default 1000).")
@click.option("--max-queue-size", type=int, help="max_queue_size (7.2 only; default 1024).")
@click.option("--vnet-hdr-support/--no-vnet-hdr-support", default=False, help="vnet_hdr_support as on colo-compare.")
@click.option("--flush-on-request", type=DURATION, default=None,
              help="Without --notify-dev: answer every checkpoint request with a simulated checkpoint "
                   "that flushes after this long (e.g. 100ms).")
@click.option("--stats", "stats_s", type=click.FloatRange(min=0, min_open=True), default=None,
              metavar="SECONDS", help="A stats line on stderr every SECONDS.")
@click.option("--record", "record_dir", type=click.Path(file_okay=False),
              help="Record every stream (pcapng) and the flush times here, replayable with colo-replay replay.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, allow_dash=True),
              help="Timeline at exit: .parquet, .csv, .jsonl, or - for JSON Lines on stdout.")
@click.option("--summary-json", type=click.Path(dir_okay=False), help="Also write the final summary here.")
@click.option("--log-format", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]), default="info",
              show_default=True)
@click.option("--duration", "duration_ns", type=DURATION, default=None, help="Stop after this long.")
@click.option("--max-send-buffer", type=click.IntRange(min=0), default=64 << 20, show_default=True,
              help="Bytes waiting for outdev above which the inputs are paused (back-pressure).")
def live(primary_in, secondary_in, outdev, notify_dev, allow_remote, qemu, compare_timeout, expired_scan_cycle,
         max_queue_size, vnet_hdr_support, flush_on_request, stats_s, record_dir, output, summary_json,
         log_format, log_level, duration_ns, max_send_buffer):
    """Run colo-compare live: read primary_in and secondary_in, release on outdev.

    Endpoints are QEMU chardev specs; colo-replay connects to (server=off, the default) or
    listens on (server=on) each of them.  Stop with SIGINT/SIGTERM for a summary.

    Exit status: 0 no differences, 1 checkpoint requests were made, 2 bad usage or input.
    """
    from ..engine.profiles import CompareConfig, get_profile
    from ..live.logs import Log

    specs = {"primary_in": primary_in, "secondary_in": secondary_in, "outdev": outdev}
    if notify_dev is not None:
        specs["notify_dev"] = notify_dev
    endpoints = {}
    for name, spec in specs.items():
        try:
            endpoints[name] = parse_endpoint(spec, allow_remote=allow_remote)
        except EndpointError as exc:
            _fail(f"--{name.replace('_', '-')}: {exc}")
    seen = {}
    for name, ep in endpoints.items():
        key = (ep.kind, ep.address)
        if key in seen:
            # colo_compare_complete: "'indev' and 'outdev' could not be same for compare module"
            _fail(f"--{name.replace('_', '-')} and --{seen[key].replace('_', '-')} name the same socket")
        seen[key] = name
    if flush_on_request is not None:
        if notify_dev is not None:
            _fail("--flush-on-request simulates the COLO frame; with --notify-dev the peer on notify_dev does that")
        if flush_on_request < 0:
            _fail("--flush-on-request must not be negative")
    if duration_ns is not None and duration_ns <= 0:
        _fail("--duration must be positive")
    config = CompareConfig(compare_timeout, expired_scan_cycle, max_queue_size, vnet_hdr_support)
    try:
        resolved = config.resolve(get_profile(qemu))
    except ValueError as exc:
        _fail(str(exc))
    if output is not None and output != "-":
        from ..output.timeline import check_timeline_path
        try:
            check_timeline_path(output)
        except ValueError as exc:
            _fail(str(exc))
    log = Log(log_format, log_level)
    recorder = None
    timeline = None
    if output is not None:
        from ..output.timeline import TimelineCollector
        timeline = TimelineCollector()

    from ..live.runtime import LiveCompare
    lc = LiveCompare(endpoints, qemu=qemu, config=config, log=log, flush_on_request_ns=flush_on_request,
                     stats_interval=stats_s, timeline=timeline, max_send_buffer=max_send_buffer)

    async def main():
        nonlocal recorder
        try:
            await lc.open()
        except OSError as exc:
            return f"cannot open endpoints: {exc.strerror or exc} ({getattr(exc, 'filename', None) or ''})".rstrip(" ()")
        if record_dir is not None:
            from ..live.recorder import Recorder
            try:
                recorder = Recorder(record_dir, {"qemu": qemu, **resolved.as_dict(),
                                                 "compare_timeout": compare_timeout,
                                                 "expired_scan_cycle": expired_scan_cycle,
                                                 "max_queue_size": max_queue_size,
                                                 "vnet_hdr_support": resolved.vnet_hdr_support,
                                                 "engine_start_ns": lc.start_ns,
                                                 "flush_on_request_ns": flush_on_request,
                                                 "endpoints": {k: v.spec for k, v in endpoints.items()}})
            except OSError as exc:
                lc.close_channels()
                return f"--record {record_dir}: {exc.strerror or exc}"
            lc.recorder = recorder
        await lc.run(None if duration_ns is None else duration_ns / 1e9)
        return None

    try:
        error = asyncio.run(main())
    except KeyboardInterrupt:
        error = None
    if error is not None:
        _fail(error)
    summary = lc.summary()
    if recorder is not None:
        m = recorder.close(summary, lc.stop_ns)
        summary["record"] = {"dir": os.path.abspath(record_dir), "replay_command": m["replay_command"]}
    if timeline is not None:
        from ..output.timeline import write_timeline
        try:
            write_timeline(timeline.to_frame(), None if output == "-" else output, sys.stdout)
        except OSError as exc:
            _fail(f"{output}: {exc.strerror}")
    code = EXIT_DIVERGED if (summary["checkpoint_requests"] or summary["qemu_crash_events"]) else EXIT_CLEAN
    if lc.stop_reason == "internal error":
        code = EXIT_BAD_INPUT       # the run is incomplete: say so in the status, as for bad input
    summary["exit_status"] = code
    if log_format == "json":
        log.info("summary", **summary)
    else:
        click.echo(format_summary(summary), err=True)
    if summary_json:
        with open(summary_json, "w", encoding="utf-8") as fh:
            json.dump(summary, fh, indent=2, default=str)
            fh.write("\n")
    sys.exit(code)


def format_summary(s: dict) -> str:
    lines = [
        f"colo-replay live summary (QEMU {s['qemu']} colo-compare, compare_timeout={s['compare_timeout']} ms, "
        f"expired_scan_cycle={s['expired_scan_cycle']} ms, max_queue_size={s['max_queue_size']}, "
        f"vnet_hdr_support={'on' if s['vnet_hdr_support'] else 'off'}), stopped by {s['stop_reason'] or '?'} "
        f"after {s['runtime_s']} s",
        f"  frames in:        primary {s['frames_in'][0]}, secondary {s['frames_in'][1]} "
        f"(bytes {s['bytes_in'][0]} / {s['bytes_in'][1]})",
        f"  released:         {s['released']} (pass-through {s['passthrough']}), {s['bytes_out']} bytes to outdev",
        f"  checkpoints:      {s['checkpoint_requests']} requested, {s['checkpoints']} flushes",
        f"  still queued:     primary {s['still_queued'][0]}, secondary {s['still_queued'][1]} "
        "(not released at exit, as QEMU's finalize)",
        f"  drops:            queue full {s['queue_full_drops']}, lost on outdev {s['outdev_lost']}, "
        f"DO_CHECKPOINT lost {s['notify_lost']}",
        f"  anomalies:        would crash QEMU {s['qemu_crash_events']}, inputs disabled (oversized) "
        f"{s['oversized']}, unsupported notify {s['unsupported_instructions']}, table resets {s['table_resets']}",
    ]
    if s.get("reconnects"):
        lines.append("  reconnects:       " + ", ".join(f"{k} {v}" for k, v in s["reconnects"].items()))
    if s.get("record"):
        lines.append(f"  recorded in {s['record']['dir']}; replay: {s['record']['replay_command']}")
    return "\n".join(lines)
