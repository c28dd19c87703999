"""``colo-replay verify``: parse the options, one call to ``api.verify``, print the verdict,
exit 0 (same releases as QEMU's outdev and, with --qemu-trace, the same checkpoint requests as the
real run), 1 (the first mismatch, or requests missed/extra beyond the thresholds) or 2 (bad input)."""

from __future__ import annotations

import json
import sys

import click

from .options import (ALLOW_GAPS_OPTION, COMPARE_OPTIONS, DURATION, PORT_OPTIONS, QEMU_TRACE_OPTION, bad_input,
                      check_output_path, check_outputs, check_threshold, echo_chardev, echo_warnings, epilog,
                      exit_status, fail, ports, take_settings, trace_inputs)


@click.command(epilog=epilog("For verify the threshold is the captured outdev (and, with --qemu-trace, the real "
                             "checkpoint requests): 1 means the replay's releases "
                             "differ from it; checkpoint requests it reproduces are the expected outcome, not 1."))
@click.argument("capture", type=click.Path(dir_okay=False))
@PORT_OPTIONS
@COMPARE_OPTIONS
@click.option("--scan-phase", "scan_phase_ns", type=DURATION, default=0,
              help="Shift of the expiry-scan tick grid from the first SYN on the chardev ports.")
@click.option("--request-window", type=float, default=None,
              help="ms within which a DO_CHECKPOINT counts as matched (default expired_scan_cycle + 5).")
@QEMU_TRACE_OPTION
@click.option("--checkpoint-delay", "checkpoint_delay_ns", type=DURATION, default=None,
              help="With --qemu-trace: the run's x-checkpoint-delay, to class periodic requests (default: read "
                   "off the trace's request gaps, else QEMU's 20000 ms).")
@click.option("--request-tolerance", type=float, default=10.0, show_default=True,
              help="With --qemu-trace: ms within which a predicted request matches a real checkpoint-request.")
@click.option("--max-missed", type=float, default=2.0, show_default=True,
              help="With --qemu-trace: exit 1 when more than this % of the real colo-compare-triggered "
                   "requests have no predicted one.")
@click.option("--max-extra", type=float, default=2.0, show_default=True,
              help="With --qemu-trace: exit 1 when more than this % of the predicted requests have no real one.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, allow_dash=True),
              help="Also write the replay's timeline: .parquet, .csv or .jsonl (- : JSON Lines on stdout).")
@click.option("--json", "as_json", is_flag=True, help="Print the verification result as JSON on stdout.")
@click.option("--allow-empty", is_flag=True, help="No frame on primary_in or secondary_in is not exit status 2.")
@ALLOW_GAPS_OPTION
def verify(capture, primary_in_port, secondary_in_port, outdev_port, notify_port, request_window, request_tolerance,
           max_missed, max_extra, output, as_json, allow_empty, **kw):
    """Replay a chardev-stream CAPTURE and check its releases against the captured outdev.

    The replay reads primary_in and secondary_in as colo-compare did and flushes when
    colo-compare was sent COLO_CHECKPOINT; the frames it releases must be those on outdev, byte
    for byte and in order.  Checkpoint requests are compared with DO_CHECKPOINT and reported.
    Use the compare_timeout / expired_scan_cycle / vnet_hdr_support colo-compare ran with.

    With --qemu-trace (a KVM COLO run's trace: no notify_dev there) the flushes are the trace's
    real checkpoints, and every real checkpoint-request is matched with a predicted one
    (coalescing and the periodic timer modelled), classed as periodic, or missed; a predicted
    request without a real one is extra.  More than --max-missed / --max-extra is exit 1.

    The first mismatch is printed; a read error prints its error line first.
    """
    from .. import api

    traces = trace_inputs(kw)
    settings = take_settings(kw)
    check_output_path(output, "colo-replay")
    check_outputs({"-o": output}, {"capture": capture, **traces})
    for value, name in ((request_tolerance, "--request-tolerance"), (max_missed, "--max-missed"),
                        (max_extra, "--max-extra")):
        check_threshold(value, name)
    if output == "-" and as_json:
        fail("-o - and --json cannot both go to stdout")
    check_threshold(request_window, "--request-window")
    with bad_input():
        outcome = api.verify(capture, ports(primary_in_port, secondary_in_port, outdev_port, notify_port),
                             request_window, settings=settings, request_tolerance=request_tolerance,
                             max_missed_pct=max_missed, max_extra_pct=max_extra)
    cap = outcome.capture
    summary = outcome.timeline.summary
    if cap.read_error is not None:
        click.echo(f"colo-replay: error: {cap.read_error} (verified up to there only)", err=True)
    elif summary["nothing_compared"] and not allow_empty:
        click.echo(f"colo-replay: error: nothing compared: {summary['nothing_compared']} (--allow-empty "
                   f"accepts it)", err=True)
    echo_chardev(cap)
    echo_warnings(summary["warnings"])
    if output is not None:
        with bad_input(output):
            outcome.timeline.write(output)
    if as_json:
        click.echo(json.dumps(outcome.to_dict(), default=str))
    click.echo(outcome.format(), err=True)
    sys.exit(exit_status(requests=0, exceeded=not outcome.ok,
                         nothing_compared=summary["nothing_compared"], allow_empty=allow_empty,
                         error=str(cap.read_error) if cap.read_error is not None else None))
