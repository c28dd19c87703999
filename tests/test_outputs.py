"""No output replaces an input, and no output is left half written (issue 24, item 1).

Every command checks, before any work, that no output path resolves (symlinks followed) to one
of its inputs or to another of its outputs: one line, exit 2, the input byte for byte as it was.
Files are written beside their target and renamed into place once complete, so a run that dies
while writing leaves the file that was there.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from colo_replay import api
from colo_replay.output import files
from tests.support.polling import wait_until

REPO = Path(__file__).resolve().parent.parent
P, S = REPO / "sample_pcaps/primary.pcap", REPO / "sample_pcaps/secondary.pcap"
CHARDEV = REPO / "sample_pcaps/chardev-lo.pcap"


def cli(*args, cwd, timeout=300):
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-m", "colo_replay.cli", *map(str, args)], capture_output=True,
                          text=True, timeout=timeout, env=env, cwd=cwd)


def digest(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@pytest.fixture
def work(tmp_path):
    """Copies of the samples (some under names an output option would take), a saved run, a
    baseline and a checkpoint file, in a directory of their own."""
    shutil.copy(P, tmp_path / "p.pcap")
    shutil.copy(S, tmp_path / "s.pcap")
    shutil.copy(P, tmp_path / "p.jsonl")          # a capture is known by its magic, not its name
    shutil.copy(CHARDEV, tmp_path / "lo.csv")
    (tmp_path / "c.txt").write_text("1795653490.5\n")
    r = cli("replay", "p.pcap", "s.pcap", "--filter-rewriter", "-o", "t.parquet", "--summary-json", "t.json",
            cwd=tmp_path)
    assert r.returncode == 1, r.stderr
    r = cli("report", "p.pcap", "s.pcap", "--filter-rewriter", "--json", "b.json", cwd=tmp_path)
    assert r.returncode == 1, r.stderr
    os.symlink(tmp_path / "p.pcap", tmp_path / "link.html")
    return tmp_path


# (command line, the input it must not destroy, what the line says)
CASES = [
    (["report", "p.pcap", "s.pcap", "-o", "p.pcap"], "p.pcap", "-o p.pcap is the primary capture p.pcap"),
    (["report", "p.pcap", "s.pcap", "-o", "link.html"], "p.pcap", "-o link.html is the primary capture p.pcap"),
    (["report", "p.pcap", "s.pcap", "--markdown", "s.pcap"], "s.pcap", "--markdown s.pcap is the secondary capture"),
    (["report", "p.pcap", "s.pcap", "--json", "b.json", "--baseline", "b.json"], "b.json",
     "--json b.json is the baseline b.json"),
    (["report", "--timeline", "t.parquet", "--summary", "t.json", "-o", "t.parquet"], "t.parquet",
     "-o t.parquet is the saved timeline t.parquet"),
    (["report", "--timeline", "t.parquet", "--summary", "t.json", "--json", "t.json"], "t.json",
     "--json t.json is the summary t.json"),
    (["replay", "p.pcap", "s.pcap", "--summary-json", "p.pcap"], "p.pcap",
     "--summary-json p.pcap is the primary capture p.pcap"),
    (["replay", "p.jsonl", "s.pcap", "-o", "p.jsonl"], "p.jsonl", "-o p.jsonl is the primary capture p.jsonl"),
    (["replay", "p.pcap", "s.pcap", "--checkpoints-at", "c.txt", "--summary-json", "c.txt"], "c.txt",
     "--summary-json c.txt is the --checkpoints-at file c.txt"),
    (["replay", "--chardev", "lo.csv", "-o", "lo.csv"], "lo.csv", "-o lo.csv is the chardev capture lo.csv"),
    (["verify", "lo.csv", "-o", "lo.csv"], "lo.csv", "-o lo.csv is the capture lo.csv"),
    (["explain", "p.pcap", "s.pcap", "--evidence", "s.pcap", "--no-tshark"], "s.pcap",
     "--evidence s.pcap is the secondary capture s.pcap"),
    (["replay", "p.pcap", "s.pcap", "-o", "x.jsonl", "--summary-json", "x.jsonl"], None,
     "-o and --summary-json name the same file (x.jsonl)"),
]


@pytest.mark.parametrize("args, kept, says", CASES, ids=[" ".join(c[0][:1] + c[0][-2:]) for c in CASES])
def test_no_output_replaces_an_input(work, args, kept, says):
    before = {p.name: digest(p) for p in work.iterdir() if p.is_file() and not p.is_symlink()}
    r = cli(*args, cwd=work)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("colo-replay: error: ") and says in lines[0], r.stderr
    after = {p.name: digest(p) for p in work.iterdir() if p.is_file() and not p.is_symlink()}
    assert after == before                              # nothing written, nothing replaced
    if kept:
        assert digest(work / kept) == before[kept]


def test_the_api_refuses_it_too(work):
    with pytest.raises(ValueError, match="output .*p.jsonl is the primary capture"):
        api.replay(work / "p.jsonl", work / "s.pcap", output=work / "p.jsonl")
    with pytest.raises(ValueError, match="--evidence .*p.pcap is the primary capture"):
        api.explain(work / "p.pcap", work / "s.pcap", evidence=str(work / "p.pcap"), tshark=False)
    with pytest.raises(ValueError, match="output .*lo.csv is the chardev capture"):
        api.replay_chardev(work / "lo.csv", output=work / "lo.csv")


def test_a_failed_write_leaves_the_file_that_was_there(tmp_path, monkeypatch):
    """The timeline writers write beside the target: an error in the middle (here the JSON
    Lines writer raising after the first block) leaves the old file whole and no temporary."""
    import colo_replay.output.timeline as tl_mod

    old = tmp_path / "t.jsonl"
    old.write_text("the good one\n")
    tl = api.replay(P, S, filter_rewriter=True)
    real = tl_mod._write_jsonl
    calls = []

    def failing(df, fh):
        calls.append(1)
        real(df, fh)
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(tl_mod, "_write_jsonl", failing)
    with pytest.raises(OSError) as exc:
        tl.write(old)
    assert exc.value.filename == str(old) and calls
    assert old.read_text() == "the good one\n"
    assert [p.name for p in tmp_path.iterdir()] == ["t.jsonl"]


def test_files_replacing_keeps_the_old_file_on_any_exception(tmp_path):
    target = tmp_path / "x.html"
    target.write_text("old")
    with pytest.raises(KeyboardInterrupt):
        with files.replacing(target) as fh:
            fh.write("half a new one")
            raise KeyboardInterrupt
    assert target.read_text() == "old" and len(list(tmp_path.iterdir())) == 1
    with files.replacing(target) as fh:
        fh.write("new")
    assert target.read_text() == "new" and len(list(tmp_path.iterdir())) == 1
    assert oct(target.stat().st_mode & 0o777) == oct(0o666 & ~_umask())


def _umask() -> int:
    m = os.umask(0)
    os.umask(m)
    return m


def test_a_killed_replay_leaves_the_timeline_that_was_there(tmp_path):
    """SIGKILL while the Parquet timeline is being streamed: the old file is untouched (the new
    one was a temporary file beside it)."""
    made = subprocess.run([sys.executable, str(REPO / "bench/make_bench_pair.py"), "--frames", "400000", "--dir",
                           str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert made.returncode == 0, made.stderr
    p, s = sorted(tmp_path.glob("*_primary.pcap"))[0], sorted(tmp_path.glob("*_secondary.pcap"))[0]
    out = tmp_path / "t.parquet"
    r = cli("replay", P, S, "-o", out, cwd=tmp_path)
    assert r.returncode in (0, 1), r.stderr
    good = digest(out)
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen([sys.executable, "-m", "colo_replay.cli", "replay", str(p), str(s), "-o", str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, cwd=tmp_path)
    try:
        # the first row group is on its way: a temporary file beside the timeline
        wait_until(lambda: [n for n in tmp_path.iterdir() if n.name.startswith(".t.parquet.")],
                   "the timeline's temporary file", timeout=120)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL         # killed while writing, not finished first
    assert digest(out) == good


def test_devices_and_symlinks_are_written_through(tmp_path):
    """A device (/dev/full, /dev/stdout) or a FIFO is written in place, never renamed over (that
    would replace the device node itself); a symlink to a file stays a symlink, its file replaced."""
    import stat

    r = cli("replay", P, S, "--summary-json", "/dev/full", cwd=tmp_path)
    assert r.returncode == 2 and "/dev/full: No space left on device" in r.stderr, r.stderr
    assert stat.S_ISCHR(os.stat("/dev/full").st_mode)
    real = tmp_path / "real.jsonl"
    real.write_text("old\n")
    os.symlink(real, tmp_path / "link.jsonl")
    api.replay(P, S, filter_rewriter=True).write(tmp_path / "link.jsonl")
    assert (tmp_path / "link.jsonl").is_symlink() and real.read_text().count("\n") > 100
    fifo = tmp_path / "f.jsonl"
    os.mkfifo(fifo)
    reader = subprocess.Popen(["cat", str(fifo)], stdout=subprocess.PIPE)
    api.replay(P, S, filter_rewriter=True).write(fifo)
    out, _ = reader.communicate(timeout=60)
    assert out.count(b"\n") > 100 and stat.S_ISFIFO(os.stat(fifo).st_mode)


def test_summary_json_dash_is_stdout_when_stdout_is_free(tmp_path):
    import json

    r = cli("replay", P, S, "--filter-rewriter", "-o", "t.parquet", "--summary-json", "-", cwd=tmp_path)
    assert r.returncode == 1, r.stderr
    assert json.loads(r.stdout)["checkpoint_requests"] == 10
    for out in ([], ["-o", "-"]):
        r = cli("replay", P, S, *out, "--summary-json", "-", cwd=tmp_path)
        assert r.returncode == 2 and r.stdout == "" and len(r.stderr.splitlines()) == 1, r.stderr
        assert "cannot both go to stdout" in r.stderr
