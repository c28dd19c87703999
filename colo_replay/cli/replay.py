"""``colo-replay replay``: parse the options, one call to ``api.replay`` (or
``api.replay_chardev``), write the timeline, print the summary, exit 0/1/2."""

from __future__ import annotations

import sys

import click

from .options import (AFTER_CHECKPOINT_OPTION, ALLOW_GAPS_OPTION, CHECKPOINTS_AT_OPTION, COMPARE_OPTIONS, DURATION,
                      EXIT_INTERRUPTED, INPUT_CLOCK_OPTIONS, PAIR_SELECTION_OPTIONS, PORT_OPTIONS, QEMU_TRACE_OPTION,
                      UNTIL_OPTION, bad_input, check_output_path, check_outputs, check_threshold, echo_chardev,
                      echo_source, echo_warnings, epilog, fail, ports, take_settings, trace_inputs, write_json)


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
@click.option("--checkpoint-duration", "checkpoint_duration_ns", type=DURATION, default="100ms", show_default=True,
              help="How long a modelled checkpoint stops the VM before compare is flushed.")
@click.option("--checkpoint-delay", "checkpoint_delay_ns", type=DURATION, default=None,
              help="x-checkpoint-delay: periodic checkpoint this long after the last one (default 20000 ms; 0 = off).")
@CHECKPOINTS_AT_OPTION
@QEMU_TRACE_OPTION
@UNTIL_OPTION
@ALLOW_GAPS_OPTION
@click.option("--allow-empty", is_flag=True,
              help="Nothing compared (a side without frames after reading, --filter or --guest, or no "
                   "primary frame that met a secondary one) is not exit status 2.")
@AFTER_CHECKPOINT_OPTION
@PAIR_SELECTION_OPTIONS
@click.option("-o", "--output", type=click.Path(dir_okay=False, allow_dash=True),
              help="Timeline file: .parquet, .csv or .jsonl; - or none: JSON Lines on stdout.")
@click.option("--summary-json", type=click.Path(dir_okay=False, allow_dash=True),
              help="Also write the summary as JSON here ('-': stdout, when the timeline goes to a file).")
@click.option("--max-checkpoints", type=click.IntRange(min=0), help="Exit 1 when more checkpoints were performed.")
@click.option("--max-held-p99", type=float, help="Exit 1 when the p99 held time exceeds this many ms.")
@click.option("--progress/--no-progress", default=None, help="Progress bar on stderr (default: when a terminal).")
def replay(primary, secondary, chardev, primary_in_port, secondary_in_port, outdev_port, notify_port, flushes,
           allow_empty, output, summary_json, max_checkpoints, max_held_p99, progress, **kw):
    """Replay PRIMARY and SECONDARY captures (or one --chardev capture); write the timeline,
    print the summary.

    A read error, an --until that cannot be honoured or an interruption (Ctrl-C) print their
    error line first on stderr, then the summary; the timeline written is marked partial.
    """
    checkpoints_file = kw.get("checkpoints_at")          # (Settings keeps the times it holds)
    traces = trace_inputs(kw)
    settings = take_settings(kw)
    if chardev is not None:
        if primary is not None or secondary is not None:
            fail("give either PRIMARY SECONDARY or --chardev CAPTURE, not both")
        # (the options a chardev capture cannot take: refused by api.replay_chardev, one rule)
    elif primary is None or secondary is None:
        fail("missing PRIMARY and SECONDARY captures (or --chardev CAPTURE)")
    check_output_path(output, summary_json=summary_json)
    check_outputs({"-o": output, "--summary-json": summary_json},
                  {"primary capture": primary, "secondary capture": secondary, "chardev capture": chardev,
                   "--checkpoints-at file": checkpoints_file, **traces})
    check_threshold(max_held_p99, "--max-held-p99")
    bar = None
    if sys.stderr.isatty() if progress is None else progress:
        from .progress import ProgressBar
        bar = ProgressBar()
    from .. import api
    try:
        with bad_input():
            if chardev is not None:
                timeline = api.replay_chardev(chardev, ports(primary_in_port, secondary_in_port, outdev_port,
                                                             notify_port), bar, flushes, settings=settings,
                                              output=output)
            else:
                timeline = api.replay(primary, secondary, bar, settings=settings, output=output)
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
        timeline.write(output)          # a file the replay wrote already: nothing to do; else stdout
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
    if timeline.capture is not None:
        echo_chardev(timeline.capture)
    echo_source(timeline.result.source or {})
