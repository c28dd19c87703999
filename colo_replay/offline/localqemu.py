"""``--qemu auto``: ask the local QEMU binary which release it is.

The binary is ``$COLO_REPLAY_QEMU`` when set (as tests/support/qemu_oracle.py names it), else
``qemu-system-x86_64`` on PATH; its ``--version`` line ("QEMU emulator version 7.2.22 (Debian
1:7.2+dfsg-7+deb12u18+b3)") is mapped like any release string (``engine.releases``).  The answer
is kept per binary for the process: a sweep's settings are validated once per grid point.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess

from ..engine.releases import Release, resolve_release

ENV_VAR = "COLO_REPLAY_QEMU"
DEFAULT_BINARY = "qemu-system-x86_64"

_cache: dict[str, Release] = {}


def local_binary() -> str | None:
    """The binary ``--qemu auto`` asks: ``$COLO_REPLAY_QEMU``, else qemu-system-x86_64 on PATH."""
    named = os.environ.get(ENV_VAR)
    if named:
        return named
    return shutil.which(DEFAULT_BINARY)


def local_release() -> Release:
    """The ``Release`` of the local binary; ValueError (one line naming --qemu auto) when there is
    none, it does not run, or it does not print a version line."""
    path = local_binary()
    if path is None:
        raise ValueError(f"--qemu auto: no {DEFAULT_BINARY} on PATH (set {ENV_VAR} to the binary, or give "
                         f"the release, e.g. --qemu 7.2.15)")
    hit = _cache.get(path)
    if hit is not None:
        return hit
    try:
        run = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=20, check=False)
    except (OSError, subprocess.SubprocessError) as exc:
        raise ValueError(f"--qemu auto: {path} --version failed: {exc}") from None
    line = next((ln.strip() for ln in run.stdout.splitlines() if ln.strip()), "")
    if run.returncode != 0 or "version" not in line.lower():
        raise ValueError(f"--qemu auto: {path} --version printed no QEMU version line "
                         f"(exit {run.returncode}: {line or run.stderr.strip()[:100]!r})")
    try:
        release = resolve_release(line)
    except ValueError as exc:
        raise ValueError(f"--qemu auto ({path}): {exc}") from None
    release = dataclasses.replace(release, binary=path)
    _cache[path] = release
    return release
