"""``colo-replay report``: replay a pair (or a chardev capture), or read a saved timeline and
summary, and write the report: HTML (``-o``), Markdown (``--markdown``), JSON (``--json``);
``--baseline`` gates on an earlier report's JSON.

The replay options are the ``replay`` command's own parameter objects (same names, types, help
and defaults), copied by name, so the two commands cannot drift apart on what an option means.
"""

from __future__ import annotations

import sys

import click

from .options import bad_input, fail, ports
from .replay import replay as _replay_command

# replay's parameters that a report takes too (its outputs and thresholds are the report's own)
_REPLAY_PARAMS = ("primary", "secondary", "chardev", "primary_in_port", "secondary_in_port", "outdev_port",
                  "notify_port", "flushes", "qemu", "compare_timeout", "expired_scan_cycle", "max_queue_size",
                  "vnet_hdr_support", "vnet_hdr_len", "primary_offset", "secondary_offset", "align",
                  "primary_delay", "secondary_delay", "scan_phase", "checkpoint_duration", "checkpoint_delay",
                  "checkpoints_at", "until", "allow_gaps", "allow_empty", "after_checkpoint", "bpf_filter", "guest",
                  "filter_rewriter", "peer_isn", "progress")

# as ``replay`` refuses them with --chardev
_NOT_WITH_CHARDEV = ("primary_offset", "secondary_offset", "primary_delay", "secondary_delay", "vnet_hdr_len",
                     "align", "filter_rewriter", "peer_isn", "guest")


def _replay_options(kw: dict) -> dict:
    """The ``api.report`` keywords for the replay (as ``colo-replay replay`` passes them)."""
    g = kw.get
    common = dict(qemu=g("qemu"), compare_timeout=g("compare_timeout"), expired_scan_cycle=g("expired_scan_cycle"),
                  max_queue_size=g("max_queue_size"), vnet_hdr_support=g("vnet_hdr_support") or False,
                  scan_phase_ns=g("scan_phase") or 0, checkpoint_duration_ns=g("checkpoint_duration"),
                  checkpoint_delay_ns=g("checkpoint_delay"), checkpoints_at=g("checkpoints_at"), end_ns=g("until"),
                  bpf_filter=g("bpf_filter"), allow_gaps=g("allow_gaps") or False)
    if g("chardev") is not None:
        return dict(common, ports=ports(g("primary_in_port"), g("secondary_in_port"), g("outdev_port"),
                                        g("notify_port")), flushes=g("flushes"))
    return dict(common, filter_rewriter=g("filter_rewriter") or False, peer_isn=g("peer_isn") or False,
                guest=g("guest"), align=g("align"), vnet_hdr_len=g("vnet_hdr_len") or 0,
                after_checkpoint=g("after_checkpoint"),
                primary_offset_ns=g("primary_offset") or 0, secondary_offset_ns=g("secondary_offset") or 0,
                primary_delay_ns=g("primary_delay") or 0, secondary_delay_ns=g("secondary_delay") or 0)


def _write(path: str, content: str) -> None:
    if path == "-":
        sys.stdout.write(content)
        sys.stdout.flush()
        return
    with bad_input(path):
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(content)


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="The HTML report (one self-contained file).")
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
              help="Rows of long tables (connections, divergences, notes); the totals are always given.")
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
    if [markdown_path, json_path].count("-") > 1:
        fail("--markdown - and --json - cannot both go to stdout")
    if summary_path is not None and timeline_path is None:
        fail("--summary goes with --timeline (the saved run's summary JSON)")
    if tolerance and baseline is None:
        fail("--tolerance goes with --baseline")
    from click.core import ParameterSource
    if baseline is not None:          # refused before a replay that may take minutes
        from ..analysis.report.baseline import load_baseline, parse_rules
        with bad_input(baseline):
            load_baseline(baseline)
            parse_rules(tolerance)
    if sweep_path is not None:        # likewise
        from ..analysis.sweep import read_json
        with bad_input(sweep_path):
            read_json(sweep_path)
    bar = None
    if timeline_path is not None:
        given = [p.opts[0] if p.opts else p.name for p in ctx.command.params
                 if p.name in _REPLAY_PARAMS and p.name != "progress"
                 and ctx.get_parameter_source(p.name) == ParameterSource.COMMANDLINE]
        if given:
            fail(f"{', '.join(given)} not applicable with --timeline: the saved run is reported as it was replayed")
        call = dict(timeline=timeline_path, summary=summary_path)
    else:
        if kw.get("chardev") is not None:
            given = [p.opts[0] for p in ctx.command.params if p.name in _NOT_WITH_CHARDEV
                     and ctx.get_parameter_source(p.name) == ParameterSource.COMMANDLINE]
            if kw.get("after_checkpoint") == "resync":
                given.append("--after-checkpoint resync")
            if given:
                fail(f"{', '.join(given)} not applicable with --chardev: its streams are on colo-compare's own "
                     f"clock and carry their vnet lengths (and its input is already rewritten and outbound only)")
        call = dict(primary=kw.get("primary"), secondary=kw.get("secondary"), chardev=kw.get("chardev"),
                    **_replay_options(kw))
        progress = kw.get("progress")
        if sys.stderr.isatty() if progress is None else progress:
            from .progress import ProgressBar
            bar = call["progress"] = ProgressBar()
    from .. import api
    try:
        with bad_input():
            rep = api.report(baseline=baseline, tolerance=tolerance, top=top, sweep=sweep_path, **call)
    finally:
        if bar is not None:
            bar.close()
    if output:
        _write(output, rep.html())
    if markdown_path:
        _write(markdown_path, rep.markdown())
    if json_path:
        _write(json_path, rep.json())
    click.echo(f"colo-replay: {rep.data['verdict']['text']}", err=True)
    if rep.regressed is not None:
        click.echo(f"colo-replay: baseline {baseline}: {rep.data['baseline']['text']}", err=True)
    if rep.data["verdict"]["status"] == "partial":
        click.echo("colo-replay: error: the replay stopped at a read error (the report is partial)", err=True)
    sys.exit(rep.exit_code(allow_empty=bool(kw.get("allow_empty"))))


_by_name = {p.name: p for p in _replay_command.params}
report.params.extend(_by_name[n] for n in _REPLAY_PARAMS if n in _by_name)
