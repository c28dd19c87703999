"""What every command shares: exit codes, the ``Duration`` option type, shared option lists and
the one bad-input handler (one line on stderr, exit 2, no traceback).

Nothing here imports pandas or the replay machinery: ``colo-replay --help`` stays quick.
"""

from __future__ import annotations

import re
import sys
from contextlib import contextmanager

import click

from ..engine.constants import MS

# The exit-code contract lives in output/verdict.py (the API's live runs use it too); its numbers
# and its --help text, for the commands:
from ..output.verdict import (EXIT_BAD_INPUT, EXIT_CLEAN, EXIT_CODES_HELP, EXIT_DIVERGED,  # noqa: E402,F401
                              EXIT_INTERRUPTED, exit_status)

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


def one_line(text) -> str:
    """``text`` fit for one line of stderr: line ends and other control characters (a file's
    content, a saved run's strings) escaped as Python writes them (``\\n``, ``\\x1b``)."""
    text = str(text)
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def fail(message: str, prog: str = "colo-replay") -> None:
    """One line on stderr, exit 2."""
    click.echo(f"{prog}: error: {one_line(message)}", err=True)
    sys.exit(EXIT_BAD_INPUT)


@contextmanager
def bad_input(path: str | None = None, prog: str = "colo-replay"):
    """Turn what bad input raises into ``fail``'s one line and exit 2: a capture that cannot be
    read (``CaptureError``, ``ChardevError``), an option QEMU would refuse or an API argument
    that makes no sense (``ValueError``, ``EndpointError`` is one), a file that cannot be opened
    or written (``OSError``, named by ``path`` when it has no name)."""
    from ..captures.errors import CaptureError
    from ..offline.chardev import ChardevError
    try:
        yield
    except (CaptureError, ChardevError, ValueError) as exc:
        fail(str(exc), prog)
    except OSError as exc:
        fail(describe_oserror(exc, path), prog)


def describe_oserror(exc: OSError, path: str | None = None) -> str:
    """``<file>: <reason>`` for an OSError, never ``None``: the file the error names, else
    ``path``, else standard output; the reason from errno, else the message, else the type."""
    import os

    name = exc.filename if exc.filename is not None else (path if path is not None else "standard output")
    reason = exc.strerror or (os.strerror(exc.errno) if exc.errno else None)
    if not reason:
        text = " ".join(str(a) for a in exc.args if a is not None and str(a) != "None")
        reason = text or type(exc).__name__
    return f"{os.fspath(name)}: {reason}"


def check_writable(path: str | None, what: str, prog: str = "colo-replay") -> None:
    """Refuse, before any frame is read, an output file that cannot be written: its directory
    missing or not writable, the path a directory, or a file we may not write."""
    import os

    if path is None or path == "-":
        return
    directory = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        fail(f"{path}: is a directory ({what})", prog)
    if not os.path.isdir(directory):
        fail(f"{path}: directory {os.path.dirname(path) or '.'} does not exist ({what})", prog)
    if (os.path.exists(path) and not os.access(path, os.W_OK)) or not os.access(directory, os.W_OK):
        fail(f"{path}: not writable: {os.strerror(13)} ({what})", prog)


def epilog(extra: str = "") -> str:
    """The --help epilog of every command: the exit-code contract (README: Exit codes and bad input)."""
    return EXIT_CODES_HELP + (" " + extra if extra else "")


def options(*decorators):
    """Apply a shared list of click options (in the order they are listed)."""
    def apply(f):
        for d in reversed(decorators):
            f = d(f)
        return f
    return apply


QEMU_OPTION = click.option(
    "--qemu", metavar="RELEASE", default="7.2", show_default=True,
    help="QEMU release whose colo-compare to reproduce: an upstream release (6.2.0, 8.2.2, 10.2.0), what "
         "`qemu-system-x86_64 --version` prints, a Debian/Ubuntu package version (1:8.2.2+ds-0ubuntu1.4, "
         "1:7.2+dfsg-7+deb12u18), 'auto' (ask the local qemu-system-x86_64, or $COLO_REPLAY_QEMU), or a "
         "row pin row:A .. row:K for a distro-patched build.  Each maps to one of eleven behaviour rows "
         "(`colo-replay qemu-releases`).  A bare 8.2 / 9.0 / 9.1 spans two rows and is refused; 4.1 and 7.2 "
         "keep their old meaning as profile names: 4.1 = 4.1.0 (row A), 7.2 = 7.2.15+ (row K).")
VNET_OPTION = click.option("--vnet-hdr-support/--no-vnet-hdr-support", default=False,
                           help="vnet_hdr_support as on colo-compare.")

COMPARE_OPTIONS = options(
    QEMU_OPTION,
    click.option("--compare-timeout", type=click.IntRange(min=1),
                 help="compare_timeout, ms (a property from QEMU 5.0; default 3000)."),
    click.option("--expired-scan-cycle", type=click.IntRange(min=1),
                 help="expired_scan_cycle, ms (a property from QEMU 5.0; default 1000, 3000 before 5.2)."),
    click.option("--max-queue-size", type=click.IntRange(min=1),
                 help="max_queue_size (a property from QEMU 5.1; default 1024)."),
    VNET_OPTION,
)

AFTER_CHECKPOINT_OPTION = click.option(
    "--after-checkpoint", type=click.Choice(["resync", "raw"]), default=None,
    help="What a modelled checkpoint does to the secondary's stream: resync (the SVM becomes a copy of the "
         "PVM: frames it would not send are superseded, data it had sent ahead is requeued) or raw (the "
         "streams exactly as captured).  Default: resync for pair captures, raw with --checkpoints-at and "
         "for --chardev captures (taken under a real COLO run).")

# The options that say how a pair's captures become colo-compare's input, shared by every command
# that replays a pair (replay, sweep; explain and report take replay's own parameters).  Every
# option of a replay is a field of ``offline.settings.Settings``, and its click parameter has the
# field's name: ``take_settings`` builds the one Settings from them, with no mapping by hand.
INPUT_CLOCK_OPTIONS = options(
    click.option("--vnet-hdr-len", type=click.IntRange(min=0), default=0,
                 help="The captured frames start with a vnet header of this many bytes (implies vnet_hdr_support)."),
    click.option("--primary-offset", "primary_offset_ns", type=DURATION, default=0,
                 help="Added to every primary timestamp (ms or 12ms/1.5s)."),
    click.option("--secondary-offset", "secondary_offset_ns", type=DURATION, default=0,
                 help="Added to every secondary timestamp (clock skew)."),
    click.option("--align", type=click.Choice(["none", "auto"]), default="none", show_default=True,
                 help="auto: estimate the secondary's clock offset from frames with the same content on both sides."),
    click.option("--primary-delay", "primary_delay_ns", type=DURATION, default=0,
                 help="Transport delay primary -> colo-compare."),
    click.option("--secondary-delay", "secondary_delay_ns", type=DURATION, default=0,
                 help="Transport delay secondary -> colo-compare."),
    click.option("--scan-phase", "scan_phase_ns", type=DURATION, default=0,
                 help="Start of the expiry-scan tick grid, after the first arrival."),
)

CHECKPOINTS_AT_OPTION = click.option(
    "--checkpoints-at", type=click.Path(dir_okay=False),
    help="Measured flush times (one per line, epoch seconds) replacing the checkpoint model; an empty file: "
         "a run with no flush.")
QEMU_TRACE_OPTION = click.option(
    "--qemu-trace", multiple=True, type=click.Path(dir_okay=False), callback=lambda _c, _p, v: v or None,
    help="A real COLO run's QEMU trace (-trace enable=colo_* -msg timestamp=on -D FILE), the primary's and/or the "
         "secondary's (repeat the option): its checkpoints are the measured flushes (instead of --checkpoints-at), "
         "its expiry-scan firings pin the scan ticks, and verify judges the replay's checkpoint requests against "
         "its real ones.")
UNTIL_OPTION = click.option(
    "--until", "end_ns",
    help="Keep the clock running to this time after the last frame (epoch seconds, nanoseconds with 'ns', or "
         "+DURATION after the last frame, e.g. +5s): the expiry scans and flushes up to then happen too.  Before "
         "the last frame, or more than a day after it, is an error.")
ALLOW_GAPS_OPTION = click.option(
    "--allow-gaps", is_flag=True,
    help="Accept timestamps that jump forward (or back) by more than a day, and an --until that far after the "
         "last frame (an error otherwise, naming the frame and its byte offset).")


def trace_inputs(kw: dict) -> dict:
    """The ``--qemu-trace`` files among a command's parameters, as ``check_outputs`` takes
    inputs (an output must not overwrite one)."""
    traces = kw.get("qemu_trace") or ()
    return {f"--qemu-trace file {i}" if i else "--qemu-trace file": p for i, p in enumerate(traces)}


def take_settings(kw: dict, prog: str = "colo-replay"):
    """Pop every ``Settings`` field from a command's parameters (``kw``, changed in place) and
    build the one ``Settings``; a value it refuses is one line and exit 2."""
    from ..offline.settings import SETTINGS_FIELDS, Settings

    given = {name: kw.pop(name) for name in list(kw) if name in SETTINGS_FIELDS}
    with bad_input(prog=prog):
        return Settings(**given)


PAIR_SELECTION_OPTIONS = options(
    click.option("--filter", "bpf_filter", help="Keep only frames matching this BPF expression (libpcap syntax)."),
    click.option("--guest", help="Keep only the guest's outbound frames when the captures hold both directions: "
                                 "its MAC, its IP address, or 'auto' (detected and reported)."),
    click.option("--filter-rewriter", is_flag=True,
                 help="Shift the secondary's TCP sequence numbers as QEMU's filter-rewriter does (raw pair captures)."),
    click.option("--peer-isn", is_flag=True,
                 help="With --filter-rewriter: also align the secondary's ACK numbers (pairs captured with two "
                      "separate clients instead of mirrored input)."),
)

PORT_OPTIONS = options(
    click.option("--primary-in-port", type=click.IntRange(1, 65535), default=9001, show_default=True,
                 help="Chardev capture: TCP port of primary_in."),
    click.option("--secondary-in-port", type=click.IntRange(1, 65535), default=9004, show_default=True,
                 help="Chardev capture: TCP port of secondary_in."),
    click.option("--outdev-port", type=click.IntRange(1, 65535), default=9005, show_default=True,
                 help="Chardev capture: TCP port of outdev."),
    click.option("--notify-port", type=click.IntRange(1, 65535), default=9009, show_default=True,
                 help="Chardev capture: TCP port of notify_dev (optional in the capture)."),
)


def ports(primary_in_port, secondary_in_port, outdev_port, notify_port) -> dict:
    """The ``PORT_OPTIONS`` values as ``api.replay_chardev`` / ``api.verify`` take them."""
    return {"primary_in": primary_in_port, "secondary_in": secondary_in_port, "outdev": outdev_port,
            "notify_dev": notify_port}


def check_output_path(output: str | None, prog: str = "colo-replay", summary_json: str | None = None) -> None:
    """Refuse an ``-o`` whose extension we cannot write, or any output file (``-o``,
    ``--summary-json``) that cannot be written, before any work is done (``-o -``: stdout)."""
    if output == "":
        fail("-o: an output path must not be empty", prog)
    if summary_json == "":
        fail("--summary-json: an output path must not be empty", prog)
    if summary_json == "-" and (output is None or output == "-") and prog == "colo-replay":
        fail("--summary-json - and the timeline cannot both go to stdout: give -o FILE", prog)
    if summary_json == "-" and output == "-":
        fail("--summary-json - and -o - cannot both go to stdout", prog)
    if output is not None and output != "-":
        from ..output.timeline import check_timeline_path
        with bad_input(prog=prog):
            check_timeline_path(output)
        check_writable(output, "-o", prog)
    check_writable(summary_json, "--summary-json", prog)


def check_outputs(outputs: dict, inputs: dict, prog: str = "colo-replay") -> None:
    """Before any work: no output file may be one of the inputs (symlinks followed) or another
    output (``output.files.check_outputs``); one line, exit 2."""
    from ..output.files import check_outputs as check
    with bad_input(prog=prog):
        check(outputs, inputs)


def check_threshold(value: float | None, name: str, prog: str = "colo-replay") -> None:
    """A threshold must be a number at or above 0 (NaN would make every comparison false)."""
    import math

    if value is not None and (math.isnan(value) or value < 0):
        fail(f"{name} {value}: must be a number at or above 0", prog)


def write_json(path: str, data: dict, newline: bool = True, prog: str = "colo-replay") -> None:
    """``--summary-json`` (``-``: stdout; an OSError is one line, exit 2)."""
    import json

    from ..output.files import replacing
    if path == "-":
        with bad_input(None, prog):
            json.dump(data, sys.stdout, indent=2, default=str)
            sys.stdout.write("\n")
            sys.stdout.flush()
        return
    with bad_input(path, prog):
        with replacing(path, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=2, default=str)
            if newline:
                fh.write("\n")


def echo_warnings(warnings, prog: str = "colo-replay") -> None:
    """The result's warnings (``summary["warnings"]``), one line each on stderr."""
    for w in warnings:
        click.echo(f"{prog}: warning: {w}", err=True)


def echo_source(source: dict, label: str = "") -> None:
    """What the API resolved for a pair on the way (guest selection, filter-rewriter), on stderr;
    ``label`` names the pair when there are several (sweep)."""
    head = f"colo-replay: {label}: " if label else "colo-replay: "
    note = source.get("guest")
    if note is not None:
        click.echo(f"{head}keeping the guest's outbound frames: {note['filter']} ({note['how']})", err=True)
    st = source.get("filter_rewriter")
    if st is not None:
        click.echo(f"{head}filter-rewriter: {st['connections']} accepted connections paired, "
                   f"{st['frames_rewritten']} secondary segments shifted"
                   + (", ACK numbers aligned" if st["peer_isn"] else "")
                   + (f"; {st['unpaired']} secondary SYN|ACKs without a primary one (left as captured)"
                      if st["unpaired"] else ""), err=True)


def echo_chardev(cap) -> None:
    """What a chardev-stream capture held, with its warnings, on stderr."""
    click.echo(f"colo-replay: chardev capture {cap.path}:\n{cap.describe()}", err=True)
    if cap.read_error is not None:
        click.echo(f"colo-replay: warning: {cap.read_error}: using the {cap.capture_frames} frames before it",
                   err=True)
    for warning in cap.warnings:
        click.echo(f"colo-replay: warning: {warning}", err=True)
