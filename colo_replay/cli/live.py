"""``colo-replay live``: QEMU's colo-compare as a standalone process on real sockets.

Exit status: the one contract of every command (``colo_replay.output.verdict``): 0 no
checkpoint request; 1 at least one checkpoint request (DO_CHECKPOINT), or a frame that would have
crashed QEMU (zero length); 2 bad usage or input (an endpoint QEMU would refuse, a property QEMU's
setter would refuse, a socket that cannot be bound or connected at start-up: one line naming the
endpoint, no traceback), or an internal error.  SIGINT/SIGTERM are how a live run is ended, not an
interruption of it: they give 0 or 1.

stdout carries data only (the timeline with ``-o -``); logs, stats lines and the summary go to
stderr.
"""

from __future__ import annotations

import sys

import click

from .options import (DURATION, QEMU_OPTION, VNET_OPTION, bad_input, check_output_path, check_outputs,
                      echo_warnings, epilog, take_settings, write_json)

PROG = "colo-replay live"


@click.command(context_settings={"help_option_names": ["-h", "--help"]},
               epilog=epilog("For live, SIGINT/SIGTERM end the run normally (0 or 1), and a frame that would "
                             "crash QEMU counts as a threshold exceeded."))
@click.option("--primary-in", required=True, metavar="CHARDEV",
              help="primary_in: socket,path=/run/x.sock or socket,host=127.0.0.1,port=9001[,server=on|off]"
                   "[,wait=off][,reconnect=SECONDS]")
@click.option("--secondary-in", required=True, metavar="CHARDEV", help="secondary_in, same syntax.")
@click.option("--outdev", required=True, metavar="CHARDEV", help="outdev, same syntax.")
@click.option("--notify-dev", metavar="CHARDEV",
              help="notify_dev (Xen-style COLO frame): DO_CHECKPOINT out, COLO_CHECKPOINT in.")
@click.option("--allow-remote", is_flag=True, help="Allow listening on addresses that are not loopback.")
@QEMU_OPTION
@click.option("--compare-timeout", type=int, help="compare_timeout, ms (a property from QEMU 5.0; default 3000).")
@click.option("--expired-scan-cycle", type=int,
              help="expired_scan_cycle, ms (a property from QEMU 5.0; default 1000, 3000 before 5.2).")
@click.option("--max-queue-size", type=int, help="max_queue_size (a property from QEMU 5.1; default 1024).")
@VNET_OPTION
@click.option("--flush-on-request", type=DURATION, default=None,
              help="Without --notify-dev: answer every checkpoint request with a simulated checkpoint "
                   "that flushes after this long (e.g. 100ms).")
@click.option("--stats", "stats_s", type=click.FloatRange(min=0, min_open=True), default=None,
              metavar="SECONDS", help="A stats line on stderr every SECONDS.")
@click.option("--record", "record_dir", type=click.Path(file_okay=False),
              help="Record every stream (pcapng) and the flush times here, replayable with colo-replay replay.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, allow_dash=True),
              help="Timeline at exit: .parquet, .csv, .jsonl, or - for JSON Lines on stdout.")
@click.option("--summary-json", type=click.Path(dir_okay=False, allow_dash=True),
              help="Also write the final summary here ('-': stdout, when the timeline does not go there).")
@click.option("--log-format", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]), default="info",
              show_default=True)
@click.option("--duration", "duration_ns", type=DURATION, default=None, help="Stop after this long.")
@click.option("--max-send-buffer", type=click.IntRange(min=0), default=64 << 20, show_default=True,
              help="Bytes waiting for outdev above which the inputs are paused (back-pressure).")
@click.option("--allow-empty", is_flag=True,
              help="A run in which primary_in or secondary_in never sent a frame is not exit status 2.")
@click.option("--event-loop", type=click.Choice(["auto", "uvloop", "asyncio"]), default="auto", show_default=True,
              help="The event loop: uvloop (less latency per frame), asyncio (the standard library's), or "
                   "auto (uvloop when installed).")
def live(primary_in, secondary_in, outdev, notify_dev, allow_remote, flush_on_request, stats_s, record_dir, output,
         summary_json, log_format, log_level, duration_ns, max_send_buffer, allow_empty, event_loop, **kw):
    """Run colo-compare live: read primary_in and secondary_in, release on outdev.

    Endpoints are QEMU chardev specs; colo-replay connects to (server=off, the default) or
    listens on (server=on) each of them.  Stop with SIGINT/SIGTERM for a summary.
    """
    from .. import api

    settings = take_settings(kw, PROG)
    check_output_path(output, PROG, summary_json=summary_json)
    check_outputs({"-o": output, "--summary-json": summary_json}, {}, PROG)
    echo_warnings(settings.warnings("live"), PROG)
    with bad_input(prog=PROG):
        run = api.live(primary_in, secondary_in, outdev, notify_dev, settings=settings, allow_remote=allow_remote,
                       flush_on_request_ns=flush_on_request, stats_interval=stats_s, record_dir=record_dir,
                       timeline=output is not None, log_format=log_format, log_level=log_level,
                       duration_ns=duration_ns, max_send_buffer=max_send_buffer, allow_empty=allow_empty,
                       event_loop=event_loop)
    if run.summary["nothing_compared"] and not allow_empty:
        click.echo(f"{PROG}: error: nothing compared: {run.summary['nothing_compared']} (--allow-empty accepts it)",
                   err=True)
    if output is not None:
        with bad_input(output, PROG):
            run.write(output)           # - : JSON Lines on stdout
    if log_format == "json":
        run.compare.log.info("summary", **run.summary)
    else:
        click.echo(run.format_summary(), err=True)
    if summary_json:
        write_json(summary_json, run.summary, prog=PROG)
    sys.exit(run.exit_status)
