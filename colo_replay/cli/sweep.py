"""``colo-replay sweep``: parse the grid and the replay options, one call to ``api.sweep``, write
the table, print the recommendation, exit 0/1/2/130.

Every swept knob takes a list (``100,300,1000``) or a range (``100:3000:x2`` geometric,
``100:1000:+300`` arithmetic); the settings are their cartesian product.  Exit status: 0 no
setting of any pair led to a checkpoint request; 1 some did, or ``--max-held-p99`` was given and
no setting of some pair meets it; 2 bad input (a bad grid, an unreadable capture or manifest, a
capture ending in a read error: its rows are written, marked partial); 130 interrupted.
"""

from __future__ import annotations

import sys

import click

from .options import (AFTER_CHECKPOINT_OPTION, EXIT_BAD_INPUT, EXIT_INTERRUPTED,
                      INPUT_CLOCK_OPTIONS, PAIR_SELECTION_OPTIONS, QEMU_OPTION, VNET_OPTION,
                      bad_input, echo_source, epilog, fail)


def _grid_option(name: str, what: str):
    return click.option(f"--{name}", help=f"{what}: a list (a,b,c) or a range (start:stop:xF / start:stop:+step).")


@click.command(epilog=epilog())
@click.argument("primary", type=click.Path(dir_okay=False), required=False)
@click.argument("secondary", type=click.Path(dir_okay=False), required=False)
@click.option("--pairs", "manifest", type=click.Path(dir_okay=False),
              help="Sweep every pair of this manifest (CSV or TOML: name, primary, secondary, per-pair options).")
@_grid_option("compare-timeout", "compare_timeout values, ms (7.2)")
@_grid_option("expired-scan-cycle", "expired_scan_cycle values, ms (7.2)")
@_grid_option("max-queue-size", "max_queue_size values (7.2)")
@_grid_option("checkpoint-duration", "Modelled checkpoint durations (ms, or 50ms / 1.5s)")
@_grid_option("checkpoint-delay", "x-checkpoint-delay values (ms, or 20s; 0 = no periodic checkpoints)")
@QEMU_OPTION
@VNET_OPTION
@INPUT_CLOCK_OPTIONS
@click.option("--checkpoints-at", type=click.Path(dir_okay=False),
              help="Measured flush times (one per line, epoch seconds) replacing the checkpoint model.")
@click.option("--until", "until", help="Keep the clock running to this time after the last frame.")
@click.option("--allow-gaps", is_flag=True,
              help="Accept timestamps that jump forward (or back) by more than a day (as replay --allow-gaps).")
@AFTER_CHECKPOINT_OPTION
@PAIR_SELECTION_OPTIONS
@click.option("-o", "--output", type=click.Path(dir_okay=False),
              help="The table: .csv, .parquet or .json (rows + recommendations + the grid). Default: CSV on stdout.")
@click.option("--plot", type=click.Path(dir_okay=False), help="Draw checkpoints/min vs held p99: .svg or .png.")
@click.option("--max-held-p99", type=float,
              help="Recommend the fewest checkpoints/min whose held p99 stays at most this many ms.")
@click.option("-j", "--jobs", type=click.IntRange(min=1), help="Worker processes (default: every core).")
@click.option("--dask", "dask_address", metavar="SCHEDULER",
              help="Run the settings on a dask.distributed cluster (tcp://host:8786) instead of local processes.")
def sweep(primary, secondary, manifest, compare_timeout, expired_scan_cycle, max_queue_size, checkpoint_duration,
          checkpoint_delay, qemu, vnet_hdr_support, vnet_hdr_len, primary_offset, secondary_offset, align,
          primary_delay, secondary_delay, scan_phase, checkpoints_at, until, allow_gaps, after_checkpoint, bpf_filter,
          guest, filter_rewriter, peer_isn, output, plot, max_held_p99, jobs, dask_address):
    """Replay PRIMARY and SECONDARY (or every pair of --pairs) under each setting of a grid,
    parsing the captures once; one row per pair and setting, the Pareto front of checkpoints
    per minute vs held p99, and a recommendation with its rule on stderr.

    Exit status: 0 no setting requested a checkpoint, 1 some did (or no setting meets
    --max-held-p99), 2 bad input or a capture read error, 130 interrupted.
    """
    from ..analysis.sweep import check_path, describe, read_manifest

    if manifest is None and (primary is None or secondary is None):
        fail("missing PRIMARY and SECONDARY captures (or --pairs MANIFEST)")
    if manifest is not None and (primary is not None or secondary is not None):
        fail("give either PRIMARY SECONDARY or --pairs MANIFEST, not both")
    grid = {"compare_timeout": compare_timeout, "expired_scan_cycle": expired_scan_cycle,
            "max_queue_size": max_queue_size, "checkpoint_duration": checkpoint_duration,
            "checkpoint_delay": checkpoint_delay}
    grid = {k: v for k, v in grid.items() if v is not None}
    with bad_input():
        if output not in (None, "-"):
            check_path(output)
        if plot is not None and not plot.lower().endswith((".svg", ".png")):
            raise ValueError(f"{plot}: the plot is written as .svg or .png")
        pairs = read_manifest(manifest) if manifest is not None else None
    options = dict(qemu=qemu, vnet_hdr_support=vnet_hdr_support, vnet_hdr_len=vnet_hdr_len,
                   primary_offset_ns=primary_offset, secondary_offset_ns=secondary_offset,
                   primary_delay_ns=primary_delay, secondary_delay_ns=secondary_delay, scan_phase_ns=scan_phase,
                   checkpoints_at=checkpoints_at, end_ns=until, bpf_filter=bpf_filter, guest=guest, align=align,
                   filter_rewriter=filter_rewriter, peer_isn=peer_isn, allow_gaps=allow_gaps,
                   after_checkpoint=after_checkpoint)
    from .. import api
    try:
        with bad_input():
            result = api.sweep(primary, secondary, grid=grid, pairs=pairs, jobs=jobs, dask=dask_address,
                               max_held_p99=max_held_p99, **options)
    except KeyboardInterrupt:
        click.echo("colo-replay: interrupted", err=True)
        sys.exit(EXIT_INTERRUPTED)
    with bad_input(output):
        if output in (None, "-"):
            result.frame.to_csv(sys.stdout, index=False)
        else:
            result.write(output)
    with bad_input(plot):
        if plot is not None:
            result.plot(plot)
    for pair in result.pairs:
        echo_source(pair.get("source") or {}, pair["name"])
    n = len(result.settings)
    click.echo(f"colo-replay: sweep of {n} setting{'s' * (n != 1)} x {len(result.pairs)} "
               f"pair{'s' * (len(result.pairs) != 1)}: {sum(r['pareto'] for r in result.rows)} on the Pareto front "
               f"(checkpoints/min vs held p99)", err=True)
    for rec in result.recommendations:
        click.echo(f"colo-replay: {describe(rec)}", err=True)
    for r in result.rows:
        if r["error"]:
            click.echo(f"colo-replay: error: {r['pair']}: {r['error']} (its rows are partial)", err=True)
            sys.exit(EXIT_BAD_INPUT)
    sys.exit(result.exit_status)
