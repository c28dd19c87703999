"""``colo-replay explain``: replay (the same options as ``replay``), then explain the root
divergences: one call to ``api.explain``, the text (or ``--json``) on stdout, exit 0/1/2.

The replay options are ``replay``'s own click parameters, reused (so the two commands never
drift apart), minus what only concerns the timeline file and thresholds."""

from __future__ import annotations

import json
import sys

import click

from .options import bad_input, check_outputs, epilog, fail, ports, take_settings, trace_inputs
from .replay import replay as _replay_command

# replay's parameters that explain has no use for
_NOT_HERE = {"output", "summary_json", "max_checkpoints", "max_held_p99", "progress"}


@click.command(epilog=epilog())
@click.option("--json", "as_json", is_flag=True, help="Write the explanation as JSON (schema colo-replay/explain/1).")
@click.option("--request", "request_n", type=click.IntRange(min=1),
              help="Explain the divergence that checkpoint request N (1 = the first) belongs to.")
@click.option("--frame", "frame_sel", metavar="P#N|S#N",
              help="Explain the divergence whose request involves this primary (P#N) or secondary (S#N) frame.")
@click.option("--flow", "flow_sel", metavar="WORDS",
              help="Only divergences whose flow text contains all these words, e.g. 'udp :53' or '10.0.0.5'.")
@click.option("--limit", type=click.IntRange(min=0), help="At most this many divergences (earliest first).")
@click.option("--evidence", type=click.Path(dir_okay=False),
              help="Write the frames involved (both sides, replay order, a comment on each) to this pcapng.")
@click.option("--tshark/--no-tshark", "use_tshark", default=True, show_default=True,
              help="Name application fields with one tshark run over the frames involved.")
@click.option("--other-profile/--no-other-profile", default=True, show_default=True,
              help="Replay again with the other QEMU profile (4.1 <-> 7.2), beside the first replay, and note "
                   "where it decides differently (left out, and said so, past 2.5x the first replay's time).")
@click.option("--hex/--no-hex", "show_hex", default=True, show_default=True, help="Text: show the hex windows.")
def explain(as_json, request_n, frame_sel, flow_sel, limit, evidence, use_tshark, other_profile, show_hex, **kw):
    """Why did PRIMARY and SECONDARY (or one --chardev capture) diverge: replay them, then
    explain each root divergence (the first checkpoint request of each episode, and the first
    request of another connection in the same episode): flow, frames, the first differing byte,
    the fields covering it, a hex window; then the divergence classes with hints.

    """
    chardev, primary, secondary = kw.pop("chardev"), kw.pop("primary"), kw.pop("secondary")
    port_args = (kw.pop("primary_in_port"), kw.pop("secondary_in_port"), kw.pop("outdev_port"), kw.pop("notify_port"))
    allow_empty = kw.pop("allow_empty")
    checkpoints_file = kw.get("checkpoints_at")          # (Settings keeps the times it holds)
    traces = trace_inputs(kw)
    settings = take_settings(kw)
    if chardev is not None:
        if primary is not None or secondary is not None:
            fail("give either PRIMARY SECONDARY or --chardev CAPTURE, not both")
    elif primary is None or secondary is None:
        fail("missing PRIMARY and SECONDARY captures (or --chardev CAPTURE)")
    check_outputs({"--evidence": evidence}, {"primary capture": primary, "secondary capture": secondary,
                                             "chardev capture": chardev, "--checkpoints-at file": checkpoints_file, **traces})
    from .. import api
    with bad_input(evidence):
        result = api.explain(primary, secondary, chardev=chardev, ports=ports(*port_args) if chardev else None,
                             flushes=kw.pop("flushes"), request=request_n, frame=frame_sel, flow=flow_sel,
                             limit=limit, other_profile=other_profile, tshark=use_tshark, evidence=evidence,
                             settings=settings)
    if use_tshark and result.app_fields != "tshark":
        click.echo(f"colo-replay: {result.app_fields}; the L2-L4 fields are still named", err=True)
    if as_json:
        json.dump(result.to_dict(), sys.stdout, indent=2, default=str)
        sys.stdout.write("\n")
    else:
        click.echo(result.format(hex_window=show_hex))
    tl = result.timeline
    if tl.error is not None:
        click.echo(f"colo-replay: error: {tl.error} (explained up to it)", err=True)
    elif tl.summary["nothing_compared"] and not allow_empty:
        click.echo(f"colo-replay: error: nothing was compared: {tl.summary['nothing_compared']} "
                   f"(--allow-empty accepts it)", err=True)
    sys.exit(tl.exit_status(allow_empty=allow_empty))


explain.params[0:0] = [p for p in _replay_command.params if p.name not in _NOT_HERE]
