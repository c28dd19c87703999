"""The ``colo-replay`` click group and the registration of its commands, nothing else.

Each command lives in its own module (``replay``, ``verify``, ``live``, ``explain``, ``releases`` for
``qemu-releases``): it parses its options,
makes one call to ``colo_replay.api`` and prints.  What they share (exit codes, the duration
type, option lists, the bad-input handler) is in ``options``.  Data goes to stdout (the
timeline as JSON Lines when no ``-o`` is given), the summary, progress and diagnostics to
stderr.  Exit codes: one contract for every command, in ``colo_replay.output.verdict`` (0 no
checkpoint request, 1 requests or a threshold exceeded, 2 bad input, usage or nothing compared,
130 interrupted).
"""

from __future__ import annotations

import os
import sys

# numpy's OpenBLAS starts a thread per core that spins for a while: CPU time for nothing, as no
# command does linear algebra.  (Before numpy is first imported; a user's setting wins.)
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
# pyarrow's default pool (mimalloc) takes fresh huge pages for the Parquet writer's buffers and the
# kernel zeroes each one (4-8% of a replay's CPU in clear_page); the C library's malloc reuses what
# the last row group freed: on the 1M+1M bench pair 0.14 s less CPU and 18 MiB less peak RSS
# (bench/README.md, "Compiled core").  (Read when pyarrow first allocates; a user's setting wins.)
os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "system")

import click  # noqa: E402

from ..engine.core_info import describe as _describe_core
from .explain import explain
from .live import live
from .releases import qemu_releases
from .replay import replay
from .report import report
from .sweep import sweep
from .verify import verify


class _Group(click.Group):
    """click's group, with the project's contract for bad usage too: one line on stderr, exit 2
    (click's own usage errors print the usage, a hint and the error on three lines), and an
    interrupt outside a command's own handling exits 130."""

    def main(self, args=None, prog_name=None, **extra):
        extra["standalone_mode"] = False
        try:
            status = super().main(args, prog_name, **extra)
        except click.UsageError as exc:
            where = exc.ctx.command_path if exc.ctx is not None else "colo-replay"
            click.echo(f"colo-replay: error: {exc.format_message()} (see {where} --help)", err=True)
            sys.exit(exc.exit_code)
        except click.Abort:
            click.echo("colo-replay: interrupted", err=True)
            sys.exit(130)
        except click.ClickException as exc:
            exc.show()
            sys.exit(exc.exit_code)
        sys.exit(status if isinstance(status, int) else 0)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="colo-replay",
                      message=f"%(prog)s, version %(version)s\n{_describe_core()}")
def main():
    """Replay COLO primary/secondary captures through an exact QEMU colo-compare."""


main.add_command(replay)
main.add_command(verify)
main.add_command(live)
main.add_command(explain)
main.add_command(sweep)
main.add_command(report)
main.add_command(qemu_releases)


if __name__ == "__main__":
    main()
