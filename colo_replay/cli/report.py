"""``colo-replay report``: replay a pair (or a chardev capture), or read a saved timeline and
summary, and write the report: HTML (``-o``), Markdown (``--markdown``), JSON (``--json``);
``--baseline`` gates on an earlier report's JSON.

The replay options are the ``replay`` command's own parameter objects (same names, types, help
and defaults), copied by name, so the two commands cannot drift apart on what an option means.
"""

from __future__ import annotations

import sys

import click

from .options import EXIT_BAD_INPUT, bad_input, check_outputs, fail, one_line, ports, take_settings, trace_inputs
from .replay import replay as _replay_command

# replay's parameters that a report does not take (its outputs and thresholds are the report's own)
_NOT_HERE = {"output", "summary_json", "max_checkpoints", "max_held_p99"}


def _write(path: str, content: str) -> None:
    if path == "-":
        sys.stdout.write(content)
        sys.stdout.flush()
        return
    from ..output.files import replacing
    with bad_input(path):
        with replacing(path, "w", encoding="utf-8") as fh:
            fh.write(content)


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-o", "--output", type=click.Path(dir_okay=False, allow_dash=True),
              help="The HTML report (one self-contained file; '-': stdout).")
@click.option("--markdown", "markdown_path", type=click.Path(dir_okay=False, allow_dash=True),
              help="Also write a short GitHub-flavoured Markdown report here ('-': stdout), for a PR comment.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, allow_dash=True),
              help="Also write the report's data as JSON here ('-': stdout); schema colo-replay-report/1.")
@click.option("--timeline", "timeline_path", type=click.Path(dir_okay=False),
              help="Report a saved run instead of replaying: the timeline written by replay -o / live -o.")
@click.option("--summary", "summary_path", type=click.Path(dir_okay=False),
              help="With --timeline: the summary JSON written by --summary-json (profile, options, captures).")
@click.option("--baseline", type=click.Path(dir_okay=False),
              help="An earlier report's --json: add a regression section; exit 1 iff the run regressed.")
@click.option("--tolerance", multiple=True, metavar="RULE",
              help="With --baseline: NAME=+N, NAME=+N%, NAME=any (repeatable or comma-separated), e.g. "
                   "checkpoints=+0 held_p99=+10%. Defaults: checkpoints, checkpoint_requests, roots, new_classes, "
                   "qemu_crashes =+0; held_p99=+10%.")
@click.option("--sweep", "sweep_path", type=click.Path(dir_okay=False),
              help="Include a sweep (the JSON of sweep -o sweep.json): its table, plot and recommendation.")
@click.option("--top", type=click.IntRange(min=1), default=20, show_default=True,
              help="Rows of long tables (connections, divergences, notes, sweep pairs); the totals are always given.")
@click.pass_context
def report(ctx, output, markdown_path, json_path, timeline_path, summary_path, baseline, tolerance, sweep_path, top,
           **kw):
    """Write a regression report of PRIMARY SECONDARY (replayed with the replay command's options),
    of --chardev CAPTURE, or of a saved --timeline (with its --summary).

    Exit status: 0 no checkpoint request, 1 requests; with --baseline: 1 iff the run regressed
    beyond the --tolerance rules, else 0; 2 bad input, a read error or nothing compared (see
    --allow-empty); 130 interrupted.
    """
    if not (output or markdown_path or json_path):
        fail("nothing to write: give -o REPORT.html, --markdown FILE or --json FILE")
    if [output, markdown_path, json_path].count("-") > 1:
        fail("only one of -o, --markdown and --json can go to stdout (-)")
    for flag, path in (("-o", output), ("--markdown", markdown_path), ("--json", json_path)):
        if path == "":
            fail(f"{flag}: an output path must not be empty")
    if summary_path is not None and timeline_path is None:
        fail("--summary goes with --timeline (the saved run's summary JSON)")
    if tolerance and baseline is None:
        fail("--tolerance goes with --baseline")
    check_outputs({"-o": output, "--markdown": markdown_path, "--json": json_path},
                  {"primary capture": kw.get("primary"), "secondary capture": kw.get("secondary"),
                   "chardev capture": kw.get("chardev"), "--checkpoints-at file": kw.get("checkpoints_at"), **trace_inputs(kw),
                   "saved timeline": timeline_path, "summary": summary_path, "baseline": baseline,
                   "sweep": sweep_path})
    if baseline is not None:          # refused before a replay that may take minutes
        from ..analysis.report.baseline import load_baseline, parse_rules
        with bad_input(baseline):
            load_baseline(baseline)
            parse_rules(tolerance)
    if sweep_path is not None:        # likewise
        from ..analysis.sweep import read_json
        with bad_input(sweep_path):
            read_json(sweep_path)
    primary, secondary, chardev = kw.pop("primary"), kw.pop("secondary"), kw.pop("chardev")
    port_args = (kw.pop("primary_in_port"), kw.pop("secondary_in_port"), kw.pop("outdev_port"), kw.pop("notify_port"))
    allow_empty, progress, flushes = kw.pop("allow_empty"), kw.pop("progress"), kw.pop("flushes")
    settings = take_settings(kw)
    bar = None
    if timeline_path is not None:
        # (ports and --flushes given on the command line are refused with the settings)
        from click.core import ParameterSource
        chardev_given = [p.opts[0] for p in ctx.command.params
                         if p.name in ("primary_in_port", "secondary_in_port", "outdev_port", "notify_port", "flushes")
                         and ctx.get_parameter_source(p.name) == ParameterSource.COMMANDLINE]
        if chardev_given:
            fail(f"{', '.join(chardev_given)} not applicable with --timeline: the saved run is reported as it was "
                 f"replayed")
        call = dict(timeline=timeline_path, summary=summary_path)
    else:
        call = dict(primary=primary, secondary=secondary, chardev=chardev, flushes=flushes,
                    ports=ports(*port_args) if chardev is not None else None)
        if sys.stderr.isatty() if progress is None else progress:
            from .progress import ProgressBar
            bar = call["progress"] = ProgressBar()
    from .. import api
    try:
        with bad_input():
            rep = api.report(baseline=baseline, tolerance=tolerance, top=top, sweep=sweep_path, settings=settings,
                             **call)
    finally:
        if bar is not None:
            bar.close()
    if output:
        _write(output, rep.html())
    if markdown_path:
        _write(markdown_path, rep.markdown())
    if json_path:
        _write(json_path, rep.json())
    verdict = rep.data["verdict"]
    click.echo(f"colo-replay: {one_line(verdict['text'])}", err=True)
    if rep.regressed is not None:
        click.echo(f"colo-replay: baseline {baseline}: {rep.data['baseline']['text']}", err=True)
    code = rep.exit_code(allow_empty=allow_empty)
    # exit 2 (or 130): the last line says why, naming the file and place, as replay's does
    of = f" of {timeline_path}" if timeline_path is not None else ""
    if verdict["status"] == "partial":
        error = next((n["messages"][0] for n in rep.data["notes"] if n["kind"] == "read_error"), "a read error")
        click.echo(f"colo-replay: error: {one_line(error)} (the report{of} is partial: results up to it)", err=True)
    elif verdict["status"] == "interrupted":
        what = f"the saved run {timeline_path} was interrupted" if timeline_path is not None else "interrupted"
        click.echo(f"colo-replay: error: {what} (the report is partial: results up to the interruption)", err=True)
    elif verdict["status"] == "empty" and code == EXIT_BAD_INPUT:
        where = f" in {timeline_path}" if timeline_path is not None else ""
        click.echo(f"colo-replay: error: nothing was compared{where}: {one_line(verdict['nothing_compared'])} "
                   f"(--allow-empty accepts it)", err=True)
    sys.exit(code)


report.params.extend(p for p in _replay_command.params if p.name not in _NOT_HERE)
