"""The command line: a thin click layer over the Python API.

Data goes to stdout (the timeline as JSON Lines when no ``-o`` is given), the summary, progress
and diagnostics to stderr.  Exit codes: 0 clean, 1 divergence or a threshold exceeded, 2 bad
input or usage (one line, no traceback).
"""

from __future__ import annotations

import json
import re
import sys
from contextlib import contextmanager
from decimal import Decimal

import click

from ..engine.constants import MS

EXIT_CLEAN, EXIT_DIVERGED, EXIT_BAD_INPUT = 0, 1, 2

_UNITS = {"ns": 1, "us": 1_000, "µs": 1_000, "ms": MS, "s": 1_000_000_000}


class Duration(click.ParamType):
    """A time span: ``250ms``, ``1.5s``, ``300us``, ``-20ms``; a bare number means milliseconds."""

    name = "duration"

    def convert(self, value, param, ctx):
        if isinstance(value, int):
            return value
        m = re.fullmatch(r"\s*([-+]?\d+(?:\.\d*)?|[-+]?\.\d+)\s*(ns|us|µs|ms|s)?\s*", str(value))
        if not m:
            self.fail(f"{value!r} is not a duration (e.g. 250ms, 1.5s, 300us)", param, ctx)
        number, unit = m.group(1), m.group(2) or "ms"
        return int(round(float(number) * _UNITS[unit]))


DURATION = Duration()


def _fail(message: str) -> None:
    click.echo(f"colo-replay: error: {message}", err=True)
    sys.exit(EXIT_BAD_INPUT)


@contextmanager
def _bad_input(path: str | None = None):
    """Turn what bad input raises into ``_fail``'s one line and exit 2: a capture that cannot be
    read (``CaptureError``, ``ChardevError``), an option QEMU would refuse (``ValueError``), a
    file that cannot be opened or written (``OSError``, named by ``path`` when it has no name)."""
    from ..captures.errors import CaptureError
    from ..offline.chardev import ChardevError
    try:
        yield
    except (CaptureError, ChardevError, ValueError) as exc:
        _fail(str(exc))
    except OSError as exc:
        _fail(f"{exc.filename or path}: {exc.strerror}")


def _time_value(text: str) -> int:
    """A point in time on the replay clock: epoch seconds (decimal) or integer ns with 'ns';
    ValueError otherwise."""
    try:
        if text.endswith("ns"):
            return int(text[:-2])
        return int(Decimal(text) * 1_000_000_000)
    except ArithmeticError:
        raise ValueError(text) from None


def _parse_time(text: str, what: str) -> int:
    try:
        return _time_value(text.strip())
    except ValueError:
        _fail(f"{what} {text!r} is not a time (epoch seconds, or nanoseconds with 'ns')")


def _read_checkpoint_times(path: str) -> list[int]:
    """``--checkpoints-at``: one flush time per line, seconds since the epoch (replay clock) as a
    decimal number, or integer nanoseconds with an ``ns`` suffix; ``#`` starts a comment."""
    times = []
    try:
        with open(path, encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, 1):
                text = line.split("#", 1)[0].strip().rstrip(",")
                if not text:
                    continue
                try:
                    times.append(_time_value(text))
                except ValueError:
                    _fail(f"{path}: line {lineno}: {text!r} is not a time (seconds, or nanoseconds with 'ns')")
    except OSError as exc:
        _fail(f"{path}: {exc.strerror}")
    return times


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="colo-replay")
def main():
    """Replay COLO primary/secondary captures through an exact QEMU colo-compare."""


def _options(*decorators):
    """Apply a shared list of click options (in the order they are listed)."""
    def apply(f):
        for d in reversed(decorators):
            f = d(f)
        return f
    return apply


COMPARE_OPTIONS = _options(
    click.option("--qemu", type=click.Choice(["4.1", "7.2"]), default="7.2", show_default=True,
                 help="QEMU version whose colo-compare to reproduce."),
    click.option("--compare-timeout", type=click.IntRange(min=1),
                 help="compare_timeout, ms (7.2 only; default 3000)."),
    click.option("--expired-scan-cycle", type=click.IntRange(min=1),
                 help="expired_scan_cycle, ms (7.2 only; default 1000)."),
    click.option("--max-queue-size", type=click.IntRange(min=1), help="max_queue_size (7.2 only; default 1024)."),
    click.option("--vnet-hdr-support/--no-vnet-hdr-support", default=False,
                 help="vnet_hdr_support as on colo-compare."),
)

PORT_OPTIONS = _options(
    click.option("--primary-in-port", type=click.IntRange(1, 65535), default=9001, show_default=True,
                 help="Chardev capture: TCP port of primary_in."),
    click.option("--secondary-in-port", type=click.IntRange(1, 65535), default=9004, show_default=True,
                 help="Chardev capture: TCP port of secondary_in."),
    click.option("--outdev-port", type=click.IntRange(1, 65535), default=9005, show_default=True,
                 help="Chardev capture: TCP port of outdev."),
    click.option("--notify-port", type=click.IntRange(1, 65535), default=9009, show_default=True,
                 help="Chardev capture: TCP port of notify_dev (optional in the capture)."),
)


def _ports(primary_in_port, secondary_in_port, outdev_port, notify_port) -> dict:
    return {"primary_in": primary_in_port, "secondary_in": secondary_in_port, "outdev": outdev_port,
            "notify_dev": notify_port}


def _open_chardev(path, ports, vnet_hdr_support):
    """Read a chardev-stream capture, or exit 2 with one line saying what is wrong and where."""
    from ..offline.chardev import ChardevCapture
    with _bad_input():
        cap = ChardevCapture(path, ports, vnet_hdr_support)
    click.echo(f"colo-replay: chardev capture {path}:\n{cap.describe()}", err=True)
    if cap.read_error is not None:
        click.echo(f"colo-replay: warning: {cap.read_error}: using the {cap.capture_frames} frames before it",
                   err=True)
    for warning in cap.warnings:
        click.echo(f"colo-replay: warning: {warning}", err=True)
    return cap


def _guest_filter(spec: str, primary: str, secondary: str) -> dict:
    """``--guest``: the libpcap filter that keeps the guest's outbound frames (detected on both
    captures for ``auto``), reported on stderr; exit 2 when it cannot be had."""
    from ..captures import open_capture
    from ..offline.guest import detect_guest, guest_bpf
    with _bad_input():
        if spec.strip().lower() != "auto":
            note = {"guest": spec, "filter": guest_bpf(spec), "how": "given"}
        else:
            found = [detect_guest(open_capture(path)) for path in (primary, secondary)]
            macs = sorted({g.mac for g in found})
            filt = " or ".join(f"ether src {m}" for m in macs)
            note = {"guest": " / ".join(macs), "filter": filt if len(macs) == 1 else f"({filt})",
                    "how": "; ".join(f"{side}: {g.describe()}" for side, g in zip(("primary", "secondary"), found))}
    click.echo(f"colo-replay: keeping the guest's outbound frames: {note['filter']} ({note['how']})", err=True)
    return note


def _progress_callback(show: bool, readers=(), paths=()):
    """(bar, callback) for progress on stderr, or (None, None); ``readers`` must be
    ``progress.CountingReader``s over ``paths`` for the bar to show a percentage."""
    if not show:
        return None, None
    from .progress import ProgressBar
    bar = ProgressBar(readers, paths)
    return bar, bar


@main.command()
@click.argument("primary", type=click.Path(dir_okay=False), required=False)
@click.argument("secondary", type=click.Path(dir_okay=False), required=False)
@click.option("--chardev", type=click.Path(dir_okay=False),
              help="Replay a loopback capture of colo-compare's chardev sockets instead of PRIMARY SECONDARY.")
@PORT_OPTIONS
@click.option("--flushes", type=click.Choice(["measured", "model"]), default="measured", show_default=True,
              help="Chardev capture: flush at the captured COLO_CHECKPOINT times, or use the checkpoint model.")
@COMPARE_OPTIONS
@click.option("--vnet-hdr-len", type=click.IntRange(min=0), default=0,
              help="The captured frames start with a vnet header of this many bytes (implies vnet_hdr_support).")
@click.option("--primary-offset", type=DURATION, default=0, help="Added to every primary timestamp (ms or 12ms/1.5s).")
@click.option("--secondary-offset", type=DURATION, default=0, help="Added to every secondary timestamp (clock skew).")
@click.option("--align", type=click.Choice(["none", "auto"]), default="none", show_default=True,
              help="auto: estimate the secondary's clock offset from frames with the same content on both sides.")
@click.option("--primary-delay", type=DURATION, default=0, help="Transport delay primary -> colo-compare.")
@click.option("--secondary-delay", type=DURATION, default=0, help="Transport delay secondary -> colo-compare.")
@click.option("--scan-phase", type=DURATION, default=0,
              help="Start of the expiry-scan tick grid, after the first arrival.")
@click.option("--checkpoint-duration", type=DURATION, default="100ms", show_default=True,
              help="How long a modelled checkpoint stops the VM before compare is flushed.")
@click.option("--checkpoint-delay", type=DURATION, default=None,
              help="x-checkpoint-delay: periodic checkpoint this long after the last one (default 20000 ms; 0 = off).")
@click.option("--checkpoints-at", type=click.Path(dir_okay=False),
              help="Measured flush times (one per line, epoch seconds) replacing the checkpoint model.")
@click.option("--until", "until",
              help="Keep the clock running to this time after the last frame (epoch seconds, or "
                   "nanoseconds with 'ns'): the expiry scans and flushes up to then happen too.")
@click.option("--filter", "bpf_filter", help="Keep only frames matching this BPF expression (libpcap syntax).")
@click.option("--guest", help="Keep only the guest's outbound frames when the captures hold both directions: "
                              "its MAC, its IP address, or 'auto' (detected and reported).")
@click.option("--filter-rewriter", is_flag=True,
              help="Shift the secondary's TCP sequence numbers as QEMU's filter-rewriter does (raw pair captures).")
@click.option("--peer-isn", is_flag=True,
              help="With --filter-rewriter: also align the secondary's ACK numbers (pairs captured with two "
                   "separate clients instead of mirrored input).")
@click.option("-o", "--output", type=click.Path(dir_okay=False),
              help="Timeline file: .parquet, .csv or .jsonl (default: JSON Lines on stdout).")
@click.option("--summary-json", type=click.Path(dir_okay=False), help="Also write the summary as JSON here.")
@click.option("--max-checkpoints", type=click.IntRange(min=0), help="Exit 1 when more checkpoints were performed.")
@click.option("--max-held-p99", type=float, help="Exit 1 when the p99 held time exceeds this many ms.")
@click.option("--progress/--no-progress", default=None, help="Progress bar on stderr (default: when a terminal).")
def replay(primary, secondary, chardev, primary_in_port, secondary_in_port, outdev_port, notify_port, flushes,
           qemu, compare_timeout, expired_scan_cycle, max_queue_size, vnet_hdr_support,
           vnet_hdr_len, primary_offset, secondary_offset, align, primary_delay, secondary_delay, scan_phase,
           checkpoint_duration, checkpoint_delay, checkpoints_at, until, bpf_filter, guest, filter_rewriter, peer_isn,
           output, summary_json, max_checkpoints, max_held_p99, progress):
    """Replay PRIMARY and SECONDARY captures (or one --chardev capture); write the timeline,
    print the summary.

    Exit status: 0 nothing diverged, 1 divergence (or a --max-* threshold exceeded), 2 bad input.
    """
    if chardev is not None:
        if primary is not None or secondary is not None:
            _fail("give either PRIMARY SECONDARY or --chardev CAPTURE, not both")
        clock_opts = {"--primary-offset": primary_offset, "--secondary-offset": secondary_offset,
                      "--primary-delay": primary_delay, "--secondary-delay": secondary_delay,
                      "--vnet-hdr-len": vnet_hdr_len, "--align auto": align == "auto",
                      "--filter-rewriter": filter_rewriter, "--peer-isn": peer_isn, "--guest": guest}
        bad = [name for name, value in clock_opts.items() if value]
        if bad:
            _fail(f"{', '.join(bad)} not applicable with --chardev: its streams are on colo-compare's own clock "
                  f"and carry their vnet lengths (and colo-compare's input is already rewritten and outbound only)")
    elif primary is None or secondary is None:
        _fail("missing PRIMARY and SECONDARY captures (or --chardev CAPTURE)")
    from ..captures import open_capture
    from ..api import Timeline
    from ..offline.driver import ReplayOptions, replay_partial
    from ..output.timeline import check_timeline_path

    if output is not None:
        with _bad_input():
            check_timeline_path(output)
    opts = ReplayOptions(
        qemu=qemu, compare_timeout=compare_timeout, expired_scan_cycle=expired_scan_cycle,
        max_queue_size=max_queue_size, vnet_hdr_support=vnet_hdr_support, vnet_hdr_len=vnet_hdr_len,
        primary_offset_ns=primary_offset, secondary_offset_ns=secondary_offset,
        primary_delay_ns=primary_delay, secondary_delay_ns=secondary_delay, scan_phase_ns=scan_phase,
        checkpoint_duration_ns=checkpoint_duration, checkpoint_delay_ns=checkpoint_delay,
        checkpoints_at=_read_checkpoint_times(checkpoints_at) if checkpoints_at else None,
        end_ns=_parse_time(until, "--until") if until else None,
        bpf_filter=bpf_filter)
    if checkpoint_duration < 0 or (checkpoint_delay is not None and checkpoint_delay < 0):
        _fail("--checkpoint-duration and --checkpoint-delay must not be negative")
    guest_note = None
    if guest is not None and chardev is None:
        guest_note = _guest_filter(guest, primary, secondary)
        opts.bpf_filter = (f"({bpf_filter}) and ({guest_note['filter']})" if bpf_filter
                           else guest_note["filter"])
    if align == "auto":
        if secondary_offset:
            _fail("--align auto estimates the secondary offset: do not give --secondary-offset too")
        from ..offline.align import estimate_alignment
        with _bad_input():
            found = estimate_alignment(open_capture(primary), open_capture(secondary), vnet_hdr_len)
        opts.secondary_offset_ns = found.offset_ns
        opts.alignment = "auto: " + found.describe()
    show = sys.stderr.isatty() if progress is None else progress
    if chardev is not None:
        from ..api import replay_chardev
        cap = _open_chardev(chardev, _ports(primary_in_port, secondary_in_port, outdev_port, notify_port),
                            vnet_hdr_support)
        bar, callback = _progress_callback(show)
        try:
            with _bad_input():
                timeline = replay_chardev(cap, progress=callback, flushes=flushes, **vars(opts))
        finally:
            if bar is not None:
                bar.close()
        error = timeline.error
    else:
        with _bad_input():
            prd = open_capture(primary)
            srd = open_capture(secondary)
        rewriter = None
        if filter_rewriter or peer_isn:
            from ..offline.rewriter import rewrite_secondary
            if not filter_rewriter:
                _fail("--peer-isn goes with --filter-rewriter")
            with _bad_input():
                srd = rewriter = rewrite_secondary(srd, primary, vnet_hdr_len, peer_isn)
        if show:
            from .progress import CountingReader
            prd, srd = CountingReader(prd), CountingReader(srd)
        bar, callback = _progress_callback(show, (prd, srd) if show else (), (primary, secondary))
        try:
            with _bad_input():
                result, error = replay_partial(prd, srd, opts, callback)
        finally:
            if bar is not None:
                bar.close()
        if rewriter is not None:
            result.source = {"filter_rewriter": rewriter.stats.as_dict()}
            st = rewriter.stats
            click.echo(f"colo-replay: filter-rewriter: {st.connections} accepted connections paired, "
                       f"{st.frames_rewritten} secondary segments shifted"
                       + (", ACK numbers aligned" if st.peer_isn else "")
                       + (f"; {st.unpaired} secondary SYN|ACKs without a primary one (left as captured)"
                          if st.unpaired else ""), err=True)
        if guest_note is not None:
            result.source = {**getattr(result, "source", {}), "guest": guest_note}
        timeline = Timeline(result)
    with _bad_input(output):
        timeline.write(output, sys.stdout)
    summary = timeline.summary
    click.echo(timeline.format_summary(), err=True)
    if summary_json:
        with open(summary_json, "w", encoding="utf-8") as fh:
            json.dump(summary, fh, indent=2, default=str)
    if error is not None:
        click.echo(f"colo-replay: error: {error} (timeline is partial)", err=True)
        sys.exit(EXIT_BAD_INPUT)
    code = EXIT_DIVERGED if summary["divergences"] else EXIT_CLEAN
    if max_checkpoints is not None and summary["checkpoints"] > max_checkpoints:
        click.echo(f"colo-replay: {summary['checkpoints']} checkpoints > --max-checkpoints {max_checkpoints}",
                   err=True)
        code = EXIT_DIVERGED
    held = summary["held_ms"]
    if max_held_p99 is not None and held and held["p99"] > max_held_p99:
        click.echo(f"colo-replay: held p99 {held['p99']:.3f} ms > --max-held-p99 {max_held_p99}", err=True)
        code = EXIT_DIVERGED
    sys.exit(code)


@main.command()
@click.argument("capture", type=click.Path(dir_okay=False))
@PORT_OPTIONS
@COMPARE_OPTIONS
@click.option("--scan-phase", type=DURATION, default=0,
              help="Shift of the expiry-scan tick grid from the first SYN on the chardev ports.")
@click.option("--request-window", type=float, default=None,
              help="ms within which a DO_CHECKPOINT counts as matched (default expired_scan_cycle + 5).")
@click.option("-o", "--output", type=click.Path(dir_okay=False),
              help="Also write the replay's timeline: .parquet, .csv or .jsonl.")
@click.option("--json", "as_json", is_flag=True, help="Print the verification result as JSON on stdout.")
def verify(capture, primary_in_port, secondary_in_port, outdev_port, notify_port, qemu, compare_timeout,
           expired_scan_cycle, max_queue_size, vnet_hdr_support, scan_phase, request_window, output, as_json):
    """Replay a chardev-stream CAPTURE and check its releases against the captured outdev.

    The replay reads primary_in and secondary_in as colo-compare did and flushes when
    colo-compare was sent COLO_CHECKPOINT; the frames it releases must be those on outdev, byte
    for byte and in order.  Checkpoint requests are compared with DO_CHECKPOINT and reported.
    Use the compare_timeout / expired_scan_cycle / vnet_hdr_support colo-compare ran with.

    Exit status: 0 same releases, 1 the first mismatch is printed, 2 bad input.
    """
    from ..api import replay_chardev
    from ..output.timeline import check_timeline_path
    from ..offline.verify import format_verify, verify_capture

    if output is not None:
        with _bad_input():
            check_timeline_path(output)
    cap = _open_chardev(capture, _ports(primary_in_port, secondary_in_port, outdev_port, notify_port),
                        vnet_hdr_support)
    if not cap.outdev.frames and not cap.outdev.connections:
        _fail(f"{capture}: no outdev stream on port {outdev_port}: nothing to verify against (see --outdev-port)")
    with _bad_input():
        timeline = replay_chardev(cap, qemu=qemu, compare_timeout=compare_timeout,
                                  expired_scan_cycle=expired_scan_cycle, max_queue_size=max_queue_size,
                                  vnet_hdr_support=vnet_hdr_support, scan_phase_ns=scan_phase)
    result = verify_capture(cap, timeline, request_window)
    if output is not None:
        with _bad_input(output):
            timeline.write(output)
    if as_json:
        click.echo(json.dumps(result.as_dict(), default=str))
    click.echo(format_verify(result, cap), err=True)
    if cap.read_error is not None:
        click.echo(f"colo-replay: error: {cap.read_error} (verified up to there only)", err=True)
        sys.exit(EXIT_BAD_INPUT)
    sys.exit(EXIT_CLEAN if result.ok else EXIT_DIVERGED)


from .live import live  # noqa: E402  (colo-replay live: the engine on real sockets)

main.add_command(live)


if __name__ == "__main__":
    main()
