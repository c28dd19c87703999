"""``colo-replay sweep``: parse the grid and the replay options, one call to ``api.sweep``, write
the table, print the recommendation, exit 0/1/2/130.

Every swept knob takes a list (``100,300,1000``) or a range (``100:3000:x2`` geometric,
``100:1000:+300`` arithmetic); the settings are their cartesian product.  Exit status: 0 no
setting of any pair led to a checkpoint request; 1 some did, or ``--max-held-p99`` was given and
no setting of some pair meets it; 2 bad input (a bad grid, an unreadable capture or manifest, a
capture ending in a read error: its rows are written, marked partial); 130 interrupted (the rows
finished so far are written, the file marked partial as a timeline is).

Bounds, checked before any capture is read: ``--max-settings`` (settings x pairs, default
``analysis.sweep.MAX_SETTINGS``), ``-j`` at most one worker per core (a warning says so),
every manifest row's settings and captures; ``--dask`` gives up after
``analysis.sweep.DASK_TIMEOUT_S`` with one line.
"""

from __future__ import annotations

import sys

import click

from ..analysis.sweep import MAX_SETTINGS        # (light: no pandas, no replay machinery)
from .options import (AFTER_CHECKPOINT_OPTION, ALLOW_GAPS_OPTION, CHECKPOINTS_AT_OPTION, EXIT_BAD_INPUT,
                      EXIT_INTERRUPTED, INPUT_CLOCK_OPTIONS, PAIR_SELECTION_OPTIONS, QEMU_OPTION, QEMU_TRACE_OPTION,
                      UNTIL_OPTION, VNET_OPTION, bad_input, check_outputs, check_threshold, check_writable,
                      echo_source, epilog, fail, take_settings, trace_inputs)

_GRID = "grid_"       # the grid's parameters (knob specs, not settings): grid_compare_timeout, ...


def _grid_option(name: str, what: str):
    return click.option(f"--{name}", _GRID + name.replace("-", "_"),
                        help=f"{what}: a list (a,b,c) or a range (start:stop:xF / start:stop:+step).")


@click.command(epilog=epilog())
@click.argument("primary", type=click.Path(dir_okay=False), required=False)
@click.argument("secondary", type=click.Path(dir_okay=False), required=False)
@click.option("--pairs", "manifest", type=click.Path(dir_okay=False),
              help="Sweep every pair of this manifest (CSV or TOML: name, primary, secondary, per-pair options).")
@_grid_option("compare-timeout", "compare_timeout values, ms (a property from QEMU 5.0)")
@_grid_option("expired-scan-cycle", "expired_scan_cycle values, ms (a property from QEMU 5.0)")
@_grid_option("max-queue-size", "max_queue_size values (a property from QEMU 5.1)")
@_grid_option("checkpoint-duration", "Modelled checkpoint durations (ms, or 50ms / 1.5s)")
@_grid_option("checkpoint-delay", "x-checkpoint-delay values (ms, or 20s; 0 = no periodic checkpoints)")
@QEMU_OPTION
@VNET_OPTION
@INPUT_CLOCK_OPTIONS
@CHECKPOINTS_AT_OPTION
@QEMU_TRACE_OPTION
@UNTIL_OPTION
@ALLOW_GAPS_OPTION
@AFTER_CHECKPOINT_OPTION
@PAIR_SELECTION_OPTIONS
@click.option("-o", "--output", type=click.Path(dir_okay=False, allow_dash=True),
              help="The table: .csv, .parquet or .json (rows + recommendations + the grid); - or none: CSV on stdout.")
@click.option("--plot", type=click.Path(dir_okay=False), help="Draw checkpoints/min vs held p99: .svg or .png.")
@click.option("--max-held-p99", type=float,
              help="Recommend the fewest checkpoints/min whose held p99 stays at most this many ms.")
@click.option("-j", "--jobs", type=click.IntRange(min=1),
              help="Worker processes (default: every core; at most one per core, never more than the replays).")
@click.option("--max-settings", type=click.IntRange(min=1),
              help=f"Refuse, before any work, a sweep of more than this many replays (settings x pairs; "
                   f"default {MAX_SETTINGS}).")
@click.option("--dask", "dask_address", metavar="SCHEDULER",
              help="Run the settings on a dask.distributed cluster (tcp://host:8786) instead of local processes.")
def sweep(primary, secondary, manifest, output, plot, max_held_p99, jobs, max_settings, dask_address, **kw):
    """Replay PRIMARY and SECONDARY (or every pair of --pairs) under each setting of a grid,
    each setting reading the captures streamed; one row per pair and setting, the Pareto front of checkpoints
    per minute vs held p99, and a recommendation with its rule on stderr.

    Exit status: 0 no setting requested a checkpoint, 1 some did (or no setting meets
    --max-held-p99), 2 bad input or a capture read error, 130 interrupted (the rows finished
    so far are written, marked partial).
    """
    from ..analysis import sweep as sw
    from ..analysis.sweep import read_manifest
    from .. import api

    if manifest is None and (primary is None or secondary is None):
        fail("missing PRIMARY and SECONDARY captures (or --pairs MANIFEST)")
    if manifest is not None and (primary is not None or secondary is not None):
        fail("give either PRIMARY SECONDARY or --pairs MANIFEST, not both")
    grid = {name[len(_GRID):]: kw.pop(name) for name in list(kw) if name.startswith(_GRID)}
    grid = {k: v for k, v in grid.items() if v is not None}
    checkpoints_file = kw.get("checkpoints_at")          # (Settings keeps the times it holds)
    traces = trace_inputs(kw)
    settings = take_settings(kw)
    if output == "" or plot == "":
        fail(f"{'-o' if output == '' else '--plot'}: an output path must not be empty")
    if dask_address is not None and not dask_address.strip():
        fail("--dask: a scheduler address must not be empty (e.g. tcp://10.0.0.5:8786)")
    check_threshold(max_held_p99, "--max-held-p99")
    with bad_input():
        if output not in (None, "-"):
            sw.check_path(output)
        if plot is not None and not plot.lower().endswith((".svg", ".png")):
            raise ValueError(f"{plot}: the plot is written as .svg or .png")
    check_writable(output, "-o")
    check_writable(plot, "--plot")
    check_outputs({"-o": output, "--plot": plot},
                  {"primary capture": primary, "secondary capture": secondary, "--pairs manifest": manifest,
                   "--checkpoints-at file": checkpoints_file, **traces})
    with bad_input():
        n_settings = sw.grid_size(sw.grid_values(grid))        # (the grid's errors, before the manifest's)
        pairs = (read_manifest(manifest, settings=n_settings, max_settings=max_settings or MAX_SETTINGS)
                 if manifest is not None else None)
    if pairs is not None:               # every file the manifest names is an input too
        check_outputs({"-o": output, "--plot": plot},
                      {"primary capture": [p["primary"] for p in pairs],
                       "secondary capture": [p["secondary"] for p in pairs],
                       "--checkpoints-at file": [p["checkpoints_at"] for p in pairs if p.get("checkpoints_at")]})
    if jobs is not None and jobs > sw.max_jobs() and dask_address is None:
        cores = sw.cores()
        click.echo(f"colo-replay: warning: -j {jobs}: this process may use {cores} core{'s' * (cores != 1)}: "
                   f"at most {sw.max_jobs()} worker processes (the replays are CPU-bound)", err=True)
    try:
        with bad_input():
            result = api.sweep(primary, secondary, grid=grid, settings=settings, pairs=pairs, jobs=jobs,
                               dask=dask_address, max_held_p99=max_held_p99, max_settings=max_settings)
    except KeyboardInterrupt:           # before the sweep could keep anything
        click.echo("colo-replay: interrupted", err=True)
        sys.exit(EXIT_INTERRUPTED)
    if result.interrupted:              # the error line first, then what was finished, marked partial
        marked = "" if output in (None, "-") else " (the table holds them, marked partial)"
        click.echo(f"colo-replay: error: {result.error}{marked}", err=True)
    with bad_input(output):
        result.write(output)            # - or none: CSV on stdout
    with bad_input(plot):
        if plot is not None:
            result.plot(plot)
    for pair in result.pairs:
        echo_source(pair.get("source") or {}, pair["name"])
    n = len(result.settings)
    done = f", interrupted after {len(result.rows)} rows" if result.interrupted else ""
    click.echo(f"colo-replay: sweep of {n} setting{'s' * (n != 1)} x {len(result.pairs)} "
               f"pair{'s' * (len(result.pairs) != 1)}{done}: {sum(r['pareto'] for r in result.rows)} on the Pareto "
               f"front (checkpoints/min vs held p99)", err=True)
    for rec in result.recommendations:
        click.echo(f"colo-replay: {sw.describe(rec)}", err=True)
    if result.interrupted:
        sys.exit(EXIT_INTERRUPTED)
    for r in result.rows:
        if r["error"]:
            click.echo(f"colo-replay: error: {r['pair']}: {r['error']} (its rows are partial)", err=True)
            sys.exit(EXIT_BAD_INPUT)
    sys.exit(result.exit_status)
