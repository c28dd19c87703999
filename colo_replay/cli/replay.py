"""``colo-replay replay``: parse the options, one call to ``api.replay`` (or
``api.replay_chardev``), write the timeline, print the summary, exit 0/1/2."""

from __future__ import annotations

import sys

import click

from .options import (AFTER_CHECKPOINT_OPTION, COMPARE_OPTIONS, DURATION, EXIT_INTERRUPTED,
                      INPUT_CLOCK_OPTIONS, PAIR_SELECTION_OPTIONS, PORT_OPTIONS, bad_input,
                      check_output_path, check_threshold, echo_chardev, echo_source, echo_warnings, epilog, fail,
                      ports, write_json)


@click.command(epilog=epilog())
@click.argument("primary", type=click.Path(dir_okay=False), required=False)
@click.argument("secondary", type=click.Path(dir_okay=False), required=False)
@click.option("--chardev", type=click.Path(dir_okay=False),
              help="Replay a loopback capture of colo-compare's chardev sockets instead of PRIMARY SECONDARY.")
@PORT_OPTIONS
@click.option("--flushes", type=click.Choice(["measured", "model"]), default="measured", show_default=True,
              help="Chardev capture: flush at the captured COLO_CHECKPOINT times, or use the checkpoint model.")
@COMPARE_OPTIONS
@INPUT_CLOCK_OPTIONS
@click.option("--checkpoint-duration", type=DURATION, default="100ms", show_default=True,
              help="How long a modelled checkpoint stops the VM before compare is flushed.")
@click.option("--checkpoint-delay", type=DURATION, default=None,
              help="x-checkpoint-delay: periodic checkpoint this long after the last one (default 20000 ms; 0 = off).")
@click.option("--checkpoints-at", type=click.Path(dir_okay=False),
              help="Measured flush times (one per line, epoch seconds) replacing the checkpoint model.")
@click.option("--until", "until",
              help="Keep the clock running to this time after the last frame (epoch seconds, nanoseconds "
                   "with 'ns', or +DURATION after the last frame, e.g. +5s): the expiry scans and flushes "
                   "up to then happen too.  Before the last frame, or more than a day after it, is an error.")
@click.option("--allow-gaps", is_flag=True,
              help="Accept timestamps that jump forward (or back) by more than a day, and an --until that "
                   "far after the last frame (an error otherwise, naming the frame and its byte offset).")
@click.option("--allow-empty", is_flag=True,
              help="Nothing compared (a side without frames after reading, --filter or --guest, or no "
                   "primary frame that met a secondary one) is not exit status 2.")
@AFTER_CHECKPOINT_OPTION
@PAIR_SELECTION_OPTIONS
@click.option("-o", "--output", type=click.Path(dir_okay=False),
              help="Timeline file: .parquet, .csv or .jsonl (default: JSON Lines on stdout).")
@click.option("--summary-json", type=click.Path(dir_okay=False), help="Also write the summary as JSON here.")
@click.option("--max-checkpoints", type=click.IntRange(min=0), help="Exit 1 when more checkpoints were performed.")
@click.option("--max-held-p99", type=float, help="Exit 1 when the p99 held time exceeds this many ms.")
@click.option("--progress/--no-progress", default=None, help="Progress bar on stderr (default: when a terminal).")
def replay(primary, secondary, chardev, primary_in_port, secondary_in_port, outdev_port, notify_port, flushes,
           qemu, compare_timeout, expired_scan_cycle, max_queue_size, vnet_hdr_support,
           vnet_hdr_len, primary_offset, secondary_offset, align, primary_delay, secondary_delay, scan_phase,
           checkpoint_duration, checkpoint_delay, checkpoints_at, until, allow_gaps, allow_empty, after_checkpoint,
           bpf_filter, guest, filter_rewriter, peer_isn, output, summary_json, max_checkpoints, max_held_p99, progress):
    """Replay PRIMARY and SECONDARY captures (or one --chardev capture); write the timeline,
    print the summary.

    A read error, an --until that cannot be honoured or an interruption (Ctrl-C) print their
    error line first on stderr, then the summary; the timeline written is marked partial.
    """
    if chardev is not None:
        if primary is not None or secondary is not None:
            fail("give either PRIMARY SECONDARY or --chardev CAPTURE, not both")
        clock_opts = {"--primary-offset": primary_offset, "--secondary-offset": secondary_offset,
                      "--primary-delay": primary_delay, "--secondary-delay": secondary_delay,
                      "--vnet-hdr-len": vnet_hdr_len, "--align auto": align == "auto",
                      "--filter-rewriter": filter_rewriter, "--peer-isn": peer_isn, "--guest": guest,
                      "--after-checkpoint resync": after_checkpoint == "resync"}
        bad = [name for name, value in clock_opts.items() if value]
        if bad:
            fail(f"{', '.join(bad)} not applicable with --chardev: its streams are on colo-compare's own clock "
                 f"and carry their vnet lengths (and colo-compare's input is already rewritten and outbound only)")
    elif primary is None or secondary is None:
        fail("missing PRIMARY and SECONDARY captures (or --chardev CAPTURE)")
    check_output_path(output, summary_json=summary_json)
    check_threshold(max_held_p99, "--max-held-p99")
    options = dict(
        qemu=qemu, compare_timeout=compare_timeout, expired_scan_cycle=expired_scan_cycle,
        max_queue_size=max_queue_size, vnet_hdr_support=vnet_hdr_support, scan_phase_ns=scan_phase,
        checkpoint_duration_ns=checkpoint_duration, checkpoint_delay_ns=checkpoint_delay,
        checkpoints_at=checkpoints_at, end_ns=until, bpf_filter=bpf_filter)
    bar = None
    if sys.stderr.isatty() if progress is None else progress:
        from .progress import ProgressBar
        bar = ProgressBar()
    from .. import api
    try:
        with bad_input():
            if chardev is not None:
                timeline = api.replay_chardev(chardev, ports(primary_in_port, secondary_in_port, outdev_port,
                                                             notify_port), progress=bar, flushes=flushes,
                                              allow_gaps=allow_gaps, output=output, **options)
            else:
                timeline = api.replay(primary, secondary, progress=bar, filter_rewriter=filter_rewriter,
                                      peer_isn=peer_isn, guest=guest, align=align, vnet_hdr_len=vnet_hdr_len,
                                      primary_offset_ns=primary_offset, secondary_offset_ns=secondary_offset,
                                      primary_delay_ns=primary_delay, secondary_delay_ns=secondary_delay,
                                      allow_gaps=allow_gaps, after_checkpoint=after_checkpoint, output=output,
                                      **options)
    except KeyboardInterrupt:
        # Ctrl-C outside the replay loop (which keeps its results): nothing to write yet.
        click.echo("colo-replay: error: interrupted before the replay started", err=True)
        sys.exit(EXIT_INTERRUPTED)
    finally:
        if bar is not None:
            bar.close()
    summary = timeline.summary
    # The error line first (a read error, an --until that could not be honoured, Ctrl-C): the
    # summary that follows is about partial results.
    if timeline.error is not None:
        click.echo(f"colo-replay: error: {timeline.error} (timeline is partial)", err=True)
    elif timeline.interrupted:
        click.echo("colo-replay: error: interrupted (timeline is partial)", err=True)
    elif summary["nothing_compared"] and not allow_empty:
        click.echo(f"colo-replay: error: nothing compared: {summary['nothing_compared']} (--allow-empty "
                   f"accepts it)", err=True)
    _echo_source(timeline)
    echo_warnings(summary["warnings"])
    with bad_input(output):
        timeline.write(output, sys.stdout)
    click.echo(timeline.format_summary(), err=True)
    if summary_json:
        write_json(summary_json, summary, newline=False)
    exceeded = False
    if max_checkpoints is not None and summary["checkpoints"] > max_checkpoints:
        click.echo(f"colo-replay: {summary['checkpoints']} checkpoints > --max-checkpoints {max_checkpoints}",
                   err=True)
        exceeded = True
    held = summary["held_ms"]
    if max_held_p99 is not None and held and held["p99"] > max_held_p99:
        click.echo(f"colo-replay: held p99 {held['p99']:.3f} ms > --max-held-p99 {max_held_p99}", err=True)
        exceeded = True
    sys.exit(timeline.exit_status(allow_empty=allow_empty, exceeded=exceeded))


def _echo_source(timeline) -> None:
    """What the API resolved on the way (chardev streams, guest selection, filter-rewriter), on stderr."""
    capture = getattr(timeline, "capture", None)
    if capture is not None:
        echo_chardev(capture)
    echo_source(getattr(timeline.result, "source", None) or {})
