"""The compiled core and the interpreted one: the same engine, proven equal by the same tests.

The main test run uses whichever core Python loads (the compiled modules when they are built).
The other core's run is a step of ``scripts/test``, not a test here: after the full suite on
the compiled core, it installs the package again into a second virtual environment without
Cython and with ``CC=false`` (the install a machine without a C compiler gets), runs the
equivalence suites there (the QEMU differential corpus, the randomized fast-path tests, the
replay tests, the profile switches, the pcap reader's columnar batches, the warning heuristics)
and checks that the README's sample replay writes ``reports/sample-timeline.parquet`` exactly.
The tests below are the cheap ones: which core loaded and how it says so, the core switch, and
both cores of this install on the sample replay.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import colo_replay
from colo_replay.engine import compare, core_info

ROOT = Path(__file__).resolve().parent.parent


def _run(args, env_extra, cwd=ROOT, pythonpath=ROOT):
    """``python args...`` in a fresh interpreter, with colo_replay from ``pythonpath``."""
    env = dict(os.environ, PYTHONPATH=str(pythonpath), **env_extra)
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=cwd, env=env)


def test_the_loaded_core_is_reported():
    cores = core_info.module_cores()
    assert set(cores) == set(colo_replay.COMPILED_MODULES)
    expected = "interpreted" if compare.__file__.endswith(".py") else "compiled"
    assert cores["colo_replay.engine.compare"] == expected
    assert core_info.core() in ("compiled", "interpreted")      # never a mix of the two
    assert core_info.describe().startswith(f"core: {core_info.core()}")


def test_compiled_modules_are_not_older_than_their_source():
    """An in-place build (python setup.py build_ext --inplace, pip install -e) left behind by an
    edit of the .py would test yesterday's code: rebuild then."""
    stale = []
    for name in colo_replay.COMPILED_MODULES:
        base = ROOT / Path(*name.split("."))
        for ext in base.parent.glob(base.name + ".*.so"):
            newest = max(p.stat().st_mtime for p in (base.with_suffix(".py"), base.with_suffix(".pxd"))
                         if p.exists())
            if ext.stat().st_mtime < newest:
                stale.append(str(ext.relative_to(ROOT)))
    assert stale == [], "stale compiled modules; run: python setup.py build_ext --inplace"


def _built_here() -> int:
    """How many modules of the core have a compiled build in this tree."""
    return sum(any((ROOT / Path(*name.split("."))).parent.glob(name.rpartition(".")[2] + ".*.so"))
               for name in colo_replay.COMPILED_MODULES)


def test_version_says_which_core_runs():
    auto = _run(["-m", "colo_replay.cli", "--version"], {"COLO_REPLAY_CORE": ""})
    assert auto.returncode == 0, auto.stderr
    n = len(colo_replay.COMPILED_MODULES)
    built = _built_here()
    assert built in (0, n)           # all or nothing
    assert auto.stdout.splitlines()[-1] == (f"core: compiled (Cython, {n} modules)" if built else "core: interpreted")
    forced = _run(["-m", "colo_replay.cli", "--version"], {"COLO_REPLAY_CORE": "interpreted"})
    assert forced.returncode == 0, forced.stderr
    assert forced.stdout.splitlines()[-1] == "core: interpreted (COLO_REPLAY_CORE=interpreted)"


def test_interpreted_switch_loads_the_sources():
    code = ("import colo_replay.engine.compare as c, colo_replay.offline.driver as d, "
            "colo_replay.output.timeline as t, colo_replay.captures.pcap as p; "
            "print(c.__file__, d.__file__, t.__file__, p.__file__)")
    proc = _run(["-c", code], {"COLO_REPLAY_CORE": "interpreted"})
    assert proc.returncode == 0, proc.stderr
    assert all(f.endswith(".py") for f in proc.stdout.split())


def test_an_unknown_core_choice_is_refused():
    """An unknown COLO_REPLAY_CORE: importing the engine raises ImportError saying so; the
    command line says it in one line and exits 2 (a bad option), for every command."""
    message = "COLO_REPLAY_CORE='fast': use compiled, interpreted or auto"
    proc = _run(["-c", "import colo_replay.engine"], {"COLO_REPLAY_CORE": "fast"})
    assert proc.returncode != 0
    assert f"ImportError: {message}" in proc.stderr
    for args in (["--version"], ["replay", "sample_pcaps/primary.pcap", "sample_pcaps/secondary.pcap"], []):
        cli = _run(["-m", "colo_replay.cli", *args], {"COLO_REPLAY_CORE": "fast"})
        assert (cli.returncode, cli.stdout, cli.stderr) == (2, "", f"colo-replay: error: {message}\n"), args


def test_both_cores_write_the_reference_sample_timeline(tmp_path):
    """README's sample replay gives reports/sample-timeline.parquet, row for row, on either core."""
    import pandas as pd
    reference = pd.read_parquet(ROOT / "reports" / "sample-timeline.parquet")
    for choice in ("", "interpreted"):
        out = tmp_path / f"timeline-{choice or 'auto'}.parquet"
        proc = _run(["-m", "colo_replay.cli", "replay", "sample_pcaps/primary.pcap", "sample_pcaps/secondary.pcap",
                     "--filter-rewriter", "-o", str(out), "--no-progress"], {"COLO_REPLAY_CORE": choice})
        assert proc.returncode in (0, 1), proc.stderr
        assert pd.read_parquet(out).equals(reference), choice or "auto"


def test_without_a_c_compiler_the_build_says_so_and_stays_interpreted(tmp_path):
    """CC=false: setup.py's compiler probe fails, one line says so, nothing is compiled, and the
    package runs on the interpreted core.  A stand-in ``Cython`` package gets the build past the
    "is Cython there" check whether or not Cython is installed here (pip builds with Cython in an
    isolated build environment, so the test extra does not install it); its ``cythonize`` fails
    the build if called."""
    for name in ("setup.py", "pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, tmp_path / name)
    shutil.copytree(ROOT / "colo_replay", tmp_path / "colo_replay",
                    ignore=shutil.ignore_patterns("*.so", "*.c", "__pycache__"))
    fake = tmp_path / "fake-cython" / "Cython"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("")
    (fake / "Build.py").write_text("def cythonize(*args, **kwargs):\n"
                                   "    raise SystemExit('cythonize called although CC=false')\n")
    proc = _run(["setup.py", "build_ext", "--inplace"], {"CC": "false"}, cwd=tmp_path,
                pythonpath=f"{tmp_path}{os.pathsep}{fake.parent}")
    assert proc.returncode == 0, proc.stderr
    notices = [ln for ln in proc.stderr.splitlines() if ln.startswith("colo-replay:")]
    assert notices == ["colo-replay: no working C compiler; installing the interpreted core (same results, slower)"]
    assert list(tmp_path.rglob("*.so")) == []
    version = _run(["-m", "colo_replay.cli", "--version"], {"COLO_REPLAY_CORE": ""}, cwd=tmp_path,
                   pythonpath=tmp_path)
    assert version.stdout.splitlines()[-1] == "core: interpreted", version.stdout + version.stderr
