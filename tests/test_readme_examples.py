"""Every ``colo-replay replay|verify`` example of README.md runs, and the Python API gives the
same timeline.

The README's fenced ``sh`` blocks are parsed (continuation lines joined, comments dropped,
``&&`` chains split); each ``colo-replay replay`` / ``colo-replay verify`` command is run through
the command line with ``-o`` into ``tmp_path``, then the same options go to ``colo_replay.api``
and the two timelines must be equal row by row (pandas DataFrame equality), the exit status
must be what the API's result says.

Not run, on purpose:

* ``colo-replay live`` examples: they need sockets with peers (a QEMU rig, or the harness of
  ``tests/test_live_*.py``, which covers live mode);
* ``qemu-system-x86_64 ...``, ``jq ...``, ``pip install ...``, ``scripts/test``: set-up and the test suite itself;
* commands whose inputs are not in the repository: ``colo-replay replay rec/primary_in.pcapng
  rec/secondary_in.pcapng ...`` (``rec/`` is what a live ``--record rec/`` run writes;
  ``tests/test_live_record.py`` replays such a recording through the API and the CLI).

They are listed in ``NOT_RUN`` and the test fails if an example is neither run nor listed, so
a new README example cannot slip by.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from colo_replay import api
from colo_replay.offline.settings import SETTINGS_FIELDS, Settings
from colo_replay.cli.replay import replay as replay_command
from colo_replay.cli.verify import verify as verify_command

ROOT = Path(__file__).resolve().parent.parent

# why each kind of README command is not run here (matched on the command's start)
NOT_RUN = {
    "colo-replay report": "tests/test_report.py runs README's report examples",
    "colo-replay live": "needs sockets with peers (QEMU rig); tests/test_live_*.py cover live mode",
    "colo-replay replay rec/": "rec/ is written by a live --record run, not in the repository",
    "qemu-system-x86_64": "a QEMU rig",
    "jq ": "reads rec/manifest.json of a live recording",
    "pip install": "set-up",
    "python3 -m pytest": "the test suite itself",
    "scripts/test": "the test suite itself (set-up, then pytest)",
    "colo-replay explain": "tests/test_explain.py runs README's explain example against reports/explain-sample.txt",
    "colo-replay sweep": "tests/test_sweep.py runs the README's sweeps (test_readme_sweep_examples), against replays",
    "dask ": "starts a Dask cluster (tests/test_sweep.py runs a loopback one)",
    "colo-replay qemu-releases": "tests/test_qemu_releases.py::test_qemu_releases_command runs it",
}


def readme_commands() -> list[list[str]]:
    """The shell commands of README.md's ```sh blocks, each as an argv list."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    commands = []
    for block in re.findall(r"^```sh\n(.*?)^```", text, flags=re.S | re.M):
        joined = re.sub(r"\\\n\s*", " ", block)
        for line in joined.splitlines():
            line = line.split(" #", 1)[0] if not line.lstrip().startswith("#") else ""
            for part in line.split("&&"):
                if part.strip():
                    commands.append(shlex.split(part))
    return commands


def examples() -> list[list[str]]:
    runnable, unlisted = [], []
    for argv in readme_commands():
        text = " ".join(argv)
        if any(text.startswith(prefix) for prefix in NOT_RUN):
            continue
        if argv[:2] in (["colo-replay", "replay"], ["colo-replay", "verify"]):
            runnable.append(argv)
        else:
            unlisted.append(text)
    assert unlisted == [], "README commands neither run nor listed in NOT_RUN"
    return runnable


def test_the_readme_has_examples_to_run():
    cmds = [" ".join(a[:3]) for a in examples()]
    assert "colo-replay replay sample_pcaps/primary.pcap" in cmds
    assert any(c.startswith("colo-replay verify") for c in cmds)


def _with_output(argv: list[str], out: Path) -> list[str]:
    """The example's arguments with its ``-o`` (or a new one) pointing into tmp_path."""
    args = list(argv[2:])
    for flag in ("-o", "--output"):
        if flag in args:
            args[args.index(flag) + 1] = str(out)
            return args
    return args + ["-o", str(out)]


def _api_call(command: str, args: list[str]):
    """The README example's options, parsed by the command's own click declaration, as the
    corresponding ``colo_replay.api`` call: (timeline, exit status it implies)."""
    cmd = replay_command if command == "replay" else verify_command
    p = cmd.make_context(command, list(args)).params
    ports = {"primary_in": p["primary_in_port"], "secondary_in": p["secondary_in_port"],
             "outdev": p["outdev_port"], "notify_dev": p["notify_port"]}
    # the command's parameters that are settings are named as the Settings fields: no mapping
    settings = Settings(**{k: v for k, v in p.items() if k in SETTINGS_FIELDS})
    if command == "verify":
        outcome = api.verify(p["capture"], ports, p["request_window"], settings=settings)
        return outcome.timeline, (0 if outcome.ok else 1)
    if p["chardev"] is not None:
        tl = api.replay_chardev(p["chardev"], ports, flushes=p["flushes"], settings=settings)
    else:
        tl = api.replay(p["primary"], p["secondary"], settings=settings)
    return tl, (1 if tl.diverged else 0)


def _env():
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}


@pytest.mark.parametrize("argv", examples(), ids=lambda a: " ".join(a[1:4]))
def test_readme_example_cli_equals_api(argv, tmp_path):
    out = tmp_path / "timeline.parquet"
    args = _with_output(argv, out)
    r = subprocess.run([sys.executable, "-m", "colo_replay.cli", argv[1], *args], cwd=ROOT, env=_env(),
                       capture_output=True, text=True)
    assert r.returncode in (0, 1), r.stderr
    assert "Traceback" not in r.stderr
    from_cli = pd.read_parquet(out)
    cwd = os.getcwd()
    os.chdir(ROOT)                    # the README's paths are relative to the repository
    try:
        timeline, status = _api_call(argv[1], args)
    finally:
        os.chdir(cwd)
    from_api = timeline.events
    assert len(from_api) > 0
    pd.testing.assert_frame_equal(from_cli.reset_index(drop=True), from_api.reset_index(drop=True))
    assert r.returncode == status


def test_peer_isn_without_filter_rewriter_is_refused_alike(tmp_path):
    """The API and the CLI refuse ``peer_isn`` without ``filter_rewriter`` with one message."""
    p, s = str(ROOT / "sample_pcaps/primary.pcap"), str(ROOT / "sample_pcaps/secondary.pcap")
    with pytest.raises(ValueError) as info:
        api.replay(p, s, peer_isn=True)
    r = subprocess.run([sys.executable, "-m", "colo_replay.cli", "replay", p, s, "--peer-isn",
                        "-o", str(tmp_path / "t.parquet")], cwd=ROOT, env=_env(), capture_output=True, text=True)
    assert r.returncode == 2
    assert r.stderr == f"colo-replay: error: {info.value}\n"
    assert "--peer-isn" in str(info.value) and "--filter-rewriter" in str(info.value)
