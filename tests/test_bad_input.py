"""Every case of issue 10's "What we found", through the real command line: its exit status
(the one contract: 0 / 1 / 2 / 130) and its one line on stderr (what and where: file, frame,
byte offset, endpoint), never a traceback, never ``None``.

Each case starts from ``sample_pcaps/`` (mutated copies written here) and is one row of a table.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import struct
import subprocess
import sys

import pytest

from colo_replay.cli.options import describe_oserror
from colo_replay.live.session import session_exit_status
from tests.support.tools import require

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
P, S = os.path.join(REPO, "sample_pcaps/primary.pcap"), os.path.join(REPO, "sample_pcaps/secondary.pcap")
CHARDEV = os.path.join(REPO, "sample_pcaps/chardev-lo.pcap")
DAY = 86_400
LAST_NS = 1795653491744828000          # the sample primary's last frame


def cli(*args, timeout=120, **kw):
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-m", "colo_replay.cli", *map(str, args)], capture_output=True,
                          text=True, timeout=timeout, env=env, cwd=REPO, **kw)


def records(path):
    """The sample's pcap (little-endian, microseconds): its file header and [sec, usec, caplen,
    orig, data, offset] per record."""
    data = open(path, "rb").read()
    out, pos = [], 24
    while pos < len(data):
        sec, usec, caplen, orig = struct.unpack_from("<IIII", data, pos)
        out.append([sec, usec, caplen, orig, data[pos + 16:pos + 16 + caplen], pos])
        pos += 16 + caplen
    return data[:24], out


def write(path, header, recs):
    with open(path, "wb") as fh:
        fh.write(header)
        for sec, usec, caplen, orig, data, _ in recs:
            fh.write(struct.pack("<IIII", sec, usec, caplen, orig) + data)
    return str(path)


def mutated(tmp, name, change, source=P):
    header, recs = records(source)
    change(recs)
    return write(tmp / name, header, recs)


def first_line(r) -> str:
    return r.stderr.splitlines()[0] if r.stderr else ""


# ------------------------------------------------------------------------------ the table
# (id, args(tmp) -> list, expected exit status, text of stderr's first line, text anywhere on stderr)

def _jump(seconds, frame=50):
    def args(tmp):
        def change(recs):
            recs[frame - 1][0] += seconds
        return [mutated(tmp, "p.pcap", change), S]
    return args


def _offset_of(frame):
    return records(P)[1][frame - 1][5]


def _empty_secondary(tmp):
    header, _ = records(S)
    return [P, write(tmp / "s.pcap", header, [])]


def _inbound_primary(tmp):
    def change(recs):
        for r in recs:
            d = r[4]
            r[4] = d[6:12] + d[0:6] + d[12:]        # the peer's frames: MACs swapped
    return [mutated(tmp, "p.pcap", change), S, "--guest", "auto"]


def _bad_usec(tmp):
    def change(recs):
        recs[9][1] = 1_000_000
    return [mutated(tmp, "p.pcap", change), S]


def _huge_orig(tmp):
    def change(recs):
        recs[4][3] = 2 ** 31 + 5
    return [mutated(tmp, "p.pcap", change), S, "-o", tmp / "t.csv"]


def _ckpts(text):
    def args(tmp):
        (tmp / "c.txt").write_text(text)
        return [P, S, "--checkpoints-at", tmp / "c.txt"]
    return args


CASES = [
    # unbounded time and memory
    ("frame-years-ahead", _jump(5 * 365 * DAY), 2, ["p.pcap: frame 50 at byte offset", "jumps forward"], []),
    ("frame-133-days-ahead", _jump(133 * DAY), 2, [f"frame 50 at byte offset {_offset_of(50)}"], []),
    ("frame-goes-back-a-year", _jump(-365 * DAY), 2, ["frame 50", "goes back"], []),
    ("until-absurd", lambda tmp: [P, S, "--until", "99999999999"], 2, ["--until", "after the last frame",
                                                                        "--allow-gaps"], []),
    ("until-ns-without-suffix", lambda tmp: [P, S, "--until", str(LAST_NS + 10**9)], 2, ["gap threshold"], []),
    ("checkpoint-delay-1ns", lambda tmp: [P, S, "--checkpoint-delay", "1ns"], 2,
     ["--checkpoint-delay 1 ns", "whole number of milliseconds"], []),
    ("ts-usec-out-of-range", _bad_usec, 2, ["p.pcap: frame 10 at byte offset", "ts_usec 1000000"], []),
    # tracebacks
    ("orig-len-2-31", _huge_orig, 1, ["warning"], ["verdict"]),
    ("summary-json-missing-dir", lambda tmp: [P, S, "--summary-json", tmp / "no/such/s.json"], 2,
     ["s.json: directory", "does not exist", "--summary-json"], []),
    # exit 0 when nothing was compared
    ("empty-secondary", _empty_secondary, 2, ["nothing compared", "s.pcap holds no frames"], []),
    ("filter-matches-nothing", lambda tmp: [P, S, "--filter", "udp port 9"], 2,
     ["nothing compared", "filtered out"], []),
    ("guest-matches-nothing", lambda tmp: [P, S, "--guest", "52:54:00:99:99:99"], 2,
     ["nothing compared", "filtered out by --filter/--guest"], []),
    ("guest-auto-inbound-only", _inbound_primary, 2, ["--guest auto found a different guest"], []),
    ("secondary-offset-3600s", lambda tmp: [P, S, "--secondary-offset", "3600s"], 2,
     ["nothing compared", "ever met a secondary"], ["periodic"]),
    # exit codes mean one thing
    ("expiries-only-are-requests", lambda tmp: _empty_secondary(tmp) + ["--allow-empty"], 1, [],
     ["CHECKPOINT REQUESTED", "expired"]),
    # errors come early and are clear
    ("output-dir-missing-checked-first", lambda tmp: [tmp / "nope.pcap", S, "-o", tmp / "no/t.parquet"], 2,
     ["t.parquet: directory", "does not exist", "-o"], []),
    ("output-is-a-directory", lambda tmp: [P, S, "-o", tmp / "d.csv"], 2, [], ["d.csv' is a directory"]),
    # (a full disk shows only when written, after the summary: its line ends stderr)
    ("summary-json-no-space", lambda tmp: [P, S, "--summary-json", "/dev/full"], 2,
     [], ["colo-replay: error: /dev/full: No space left on device\n"]),
    # silent surprises
    ("checkpoints-at-negative", _ckpts("1795653482\n-5\n"), 2, ["c.txt: line 2: negative time"], []),
    ("checkpoints-at-unsorted", _ckpts("1795653485\n1795653482\n"), 2, ["c.txt: line 2", "before the time above"],
     []),
    # (an empty file is valid: a recorded run without a checkpoint; no flush at all, issue 19)
    ("checkpoints-at-empty", _ckpts("# nothing\n\n"), 1, [], ["checkpoints    0 performed (none)"]),
    ("max-queue-size-truncated", lambda tmp: [P, S, "--max-queue-size", "99999999999"], 1,
     ["warning: --max-queue-size 99999999999", "truncates it to 1215752191"], []),
    ("until-in-the-past", lambda tmp: [P, S, "--until", "1795653000"], 2, ["--until", "before the last frame"], []),
    ("max-held-p99-nan", lambda tmp: [P, S, "--max-held-p99", "nan"], 2, ["--max-held-p99 nan"], []),
    ("same-file-twice", lambda tmp: [P, P], 0, ["warning: the same file is given as both captures"], []),
    ("isns-differ", lambda tmp: [P, S], 1, [], ["initial sequence numbers differ", "--filter-rewriter"]),
    ("far-fewer-frames", lambda tmp: [P, mutated(tmp, "s.pcap", lambda r: r.__delitem__(slice(30, None)), S),
                                      "--allow-empty"], 1, [], ["far fewer frames"]),
    ("traffic-never-compared", lambda tmp: [P, S], 1, [], ["never compared by colo-compare", "not_ipv4"]),
    ("clock-skew", lambda tmp: [P, mutated(tmp, "s.pcap", lambda recs: [r.__setitem__(0, r[0] + 5) for r in recs],
                                           S), "--allow-empty"], 1, [], ["clocks seem skewed", "--align auto"]),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input_case(tmp_path, case):
    _id, make_args, status, first, anywhere = case
    (tmp_path / "d.csv").mkdir()
    # Bounded whatever the timestamps say: an absurd jump is refused at its frame (the status and
    # the line below), never replayed; ``cli``'s timeout only catches a hang, generously.
    r = cli("replay", *make_args(tmp_path), timeout=600)
    assert r.returncode == status, r.stderr
    assert "Traceback" not in r.stderr and "None" not in r.stderr
    line = first_line(r)
    for text in first:
        assert text in line, r.stderr
    for text in anywhere:
        assert text in r.stderr, r.stderr
    if status == 2 and first:
        assert line.startswith("colo-replay: error: ")


def test_orig_len_beyond_int32_is_kept_in_the_timeline(tmp_path):
    """The record's original length as the file says it (it was clamped to 2^31 - 1), with the
    reader's warning naming the frame (tests/test_edge_inputs.py checks the warning itself)."""
    r = cli("replay", *_huge_orig(tmp_path))
    import pandas as pd
    df = pd.read_csv(tmp_path / "t.csv")
    row = df[df.kind == "uncomparable"]
    assert len(row) == 1 and row["size"].iloc[0] == 2 ** 31 + 5 and row["primary_frame"].iloc[0] == 5
    assert f"p.pcap: frame 5 at byte offset {_offset_of(5)}: record header declares an original length" in r.stderr
    assert r.returncode == 1


def test_gaps_are_accepted_with_allow_gaps_and_cost_nothing(tmp_path):
    """Five idle years cost nothing because they are folded, not because a stopwatch says so: the
    ~7.9 million periodic checkpoints are counted, and the timeline holds a few rows for them."""
    import pandas as pd
    args = _jump(5 * 365 * DAY)(tmp_path)
    r = cli("replay", *args, "--allow-gaps", "--summary-json", tmp_path / "s.json", "-o", tmp_path / "t.parquet",
            timeout=600)
    assert r.returncode == 1, r.stderr
    summ = json.loads((tmp_path / "s.json").read_text())
    assert summ["checkpoints_by_cause"]["periodic"] > 5 * 365 * DAY // 20 - 100
    assert os.path.getsize(tmp_path / "t.parquet") < 200_000        # one row for the idle years
    ev = pd.read_parquet(tmp_path / "t.parquet")
    idle = ev[ev["kind"] == "idle_checkpoints"]
    assert len(ev) < 2000 and idle["detail"].sum() > 5 * 365 * DAY // 20 - 200


def test_until_relative_to_the_end(tmp_path):
    r = cli("replay", P, S, "--until", "+5s", "--summary-json", tmp_path / "s.json")
    assert r.returncode == 1, r.stderr
    summ = json.loads((tmp_path / "s.json").read_text())
    assert summ["knobs"]["until_ns"] > LAST_NS + 4 * 10**9
    r = cli("replay", P, S, "--until", "+5 parsecs")
    assert r.returncode == 2 and "+DURATION" in first_line(r)


def test_stdout_full_names_standard_output():
    env = dict(os.environ, PYTHONPATH=REPO)
    with open("/dev/full", "wb") as full:
        p = subprocess.run([sys.executable, "-m", "colo_replay.cli", "replay", P, S], stdout=full,
                           stderr=subprocess.PIPE, text=True, env=env, cwd=REPO)
    assert p.returncode == 2 and "standard output: No space left on device" in p.stderr, p.stderr
    assert "None" not in p.stderr and "Traceback" not in p.stderr


def test_oserror_lines_never_say_none():
    assert describe_oserror(OSError(28, "No space left on device"), None) == \
        "standard output: No space left on device"
    assert describe_oserror(OSError(), "t.parquet") == "t.parquet: OSError"
    assert describe_oserror(OSError(None, None), "t.parquet") == "t.parquet: OSError"
    assert describe_oserror(OSError("disk quota"), "t.parquet") == "t.parquet: disk quota"


def _truncated_primary(tmp):
    data = open(P, "rb").read()
    path = tmp / "cut.pcap"
    path.write_bytes(data[:_offset_of(100) + 10])       # inside record 100's header
    return str(path)


@pytest.mark.parametrize("ext", ["parquet", "csv", "jsonl"])
def test_partial_timeline_is_marked_in_the_file_and_the_error_comes_first(tmp_path, ext):
    out = tmp_path / f"t.{ext}"
    r = cli("replay", _truncated_primary(tmp_path), S, "-o", out)
    assert r.returncode == 2
    line = first_line(r)
    assert line.startswith("colo-replay: error: ") and "cut.pcap: frame 100 at byte offset" in line
    assert "(timeline is partial)" in line and "colo-replay summary (PARTIAL" in r.stderr
    if ext == "parquet":
        import pyarrow.parquet as pq
        meta = pq.read_schema(out).metadata
        assert meta[b"colo_replay.partial"] == b"true" and b"frame 100" in meta[b"colo_replay.error"]
    else:
        assert "frame 100" in (tmp_path / f"t.{ext}.partial").read_text()
    # a complete run afterwards removes the stale marker
    r = cli("replay", P, S, "-o", out)
    assert r.returncode == 1 and not (tmp_path / f"t.{ext}.partial").exists()
    if ext == "parquet":
        import pyarrow.parquet as pq
        assert b"colo_replay.partial" not in (pq.read_schema(out).metadata or {})


def _write_big_pair(tmp, n=400_000):
    """Two identical captures of small UDP frames, 10 µs apart: long enough to interrupt."""
    from tests.support.frames import udp
    frames = [udp(i.to_bytes(4, "big"), sport=1000 + (i % 50)) for i in range(256)]
    t0 = 1_700_000_000
    recs = bytearray(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
    for i in range(n):
        f = frames[i & 255]
        us = i * 10
        recs += struct.pack("<IIII", t0 + us // 1_000_000, us % 1_000_000, len(f), len(f)) + f
    p, s = tmp / "bp.pcap", tmp / "bs.pcap"
    p.write_bytes(recs)
    s.write_bytes(recs)
    return p, s


def test_sigint_exits_130_with_summary_and_a_marked_partial_timeline(tmp_path):
    p, s = _write_big_pair(tmp_path)
    out = tmp_path / "t.parquet"
    env = dict(os.environ, PYTHONPATH=REPO)
    proc = subprocess.Popen([sys.executable, "-m", "colo_replay.cli", "replay", p, s, "-o", out, "--progress"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=REPO)
    first = proc.stderr.read(1)          # the progress bar: the replay loop is running
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    err = (first + err).decode()
    assert proc.returncode == 130, err
    assert "colo-replay: error: interrupted (timeline is partial)" in err
    assert "colo-replay summary (INTERRUPTED" in err and "Aborted" not in err and "Traceback" not in err
    import pyarrow.parquet as pq
    table = pq.read_table(out)
    assert table.schema.metadata[b"colo_replay.partial"] == b"true"
    assert 0 < table.num_rows < 2 * 400_000


# ------------------------------------------------------------------------------ verify

def test_verify_request_window_below_zero():
    r = cli("verify", CHARDEV, "--request-window", "-5")
    assert r.returncode == 2 and "--request-window -5.0: must be a number at or above 0" in first_line(r)
    assert r.stderr.count("\n") == 1


def test_verify_output_checked_before_work(tmp_path):
    r = cli("verify", tmp_path / "missing.pcap", "-o", tmp_path / "no/t.csv")
    assert r.returncode == 2 and "t.csv: directory" in first_line(r)


# ------------------------------------------------------------------------------ live

def _free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_live_endpoint_failures_name_the_endpoint(tmp_path):
    missing = tmp_path / "nope.sock"
    r = cli("live", "--primary-in", f"socket,path={missing}", "--secondary-in", f"socket,path={tmp_path}/s.sock",
            "--outdev", f"socket,path={tmp_path}/o.sock", timeout=30)
    assert r.returncode == 2 and r.stderr.count("\n") == 1
    assert f"cannot open --primary-in socket,path={missing}: No such file or directory" in r.stderr
    port = _free_port()
    r = cli("live", "--primary-in", f"socket,host=127.0.0.1,port={port}", "--secondary-in",
            f"socket,path={tmp_path}/s.sock", "--outdev", f"socket,path={tmp_path}/o.sock", timeout=30)
    assert r.returncode == 2
    assert f"cannot open --primary-in socket,host=127.0.0.1,port={port}: Connection refused" in r.stderr
    assert "(" not in r.stderr.split("Connection refused")[1]


def test_live_summary_json_checked_before_any_socket(tmp_path):
    r = cli("live", "--primary-in", "socket,path=/nonexistent/p", "--secondary-in", "socket,path=/nonexistent/s",
            "--outdev", "socket,path=/nonexistent/o", "--summary-json", tmp_path / "no/s.json", timeout=30)
    assert r.returncode == 2 and "s.json: directory" in first_line(r)


def test_one_contract_for_every_command():
    from colo_replay.output.verdict import exit_status

    assert exit_status(requests=3) == 1 == exit_status(exceeded=True)
    assert exit_status(nothing_compared="x") == 2 and exit_status(nothing_compared="x", allow_empty=True) == 0
    assert exit_status(requests=1, error="read error") == 2 and exit_status(interrupted=True, requests=5) == 130

    class LC:
        stop_reason = "SIGINT"
    ok = {"checkpoint_requests": 0, "qemu_crash_events": 0, "nothing_compared": None}
    assert session_exit_status(LC, dict(ok, checkpoint_requests=1)) == 1
    assert session_exit_status(LC, ok) == 0
    silent = dict(ok, nothing_compared="no frame arrived on secondary_in")
    assert session_exit_status(LC, silent) == 2 and session_exit_status(LC, silent, allow_empty=True) == 0
    LC.stop_reason = "internal error"
    assert session_exit_status(LC, ok) == 2
    for cmd in ("replay", "verify", "live"):
        r = cli(cmd, "--help")
        assert "130 interrupted" in " ".join(r.stdout.split()), cmd


@pytest.mark.wireshark
def test_pcapng_jump_names_the_packet_block_offset(tmp_path):
    """The same jump in a pcapng file (converted by Wireshark's editcap): the offset is that of
    frame 50's Enhanced Packet Block."""
    pcap = _jump(200 * DAY)(tmp_path)[0]
    ng = tmp_path / "p.pcapng"
    subprocess.run([require("editcap"), "-F", "pcapng", pcap, str(ng)], check=True)
    r = cli("replay", ng, S)
    assert r.returncode == 2
    line = first_line(r)
    off = int(line.split("frame 50 at byte offset ")[1].split(":")[0])
    data = ng.read_bytes()
    pos, epbs = 0, 0
    while pos < off:
        btype, blen = struct.unpack_from("<II", data, pos)
        epbs += btype == 6
        pos += blen
    assert pos == off and struct.unpack_from("<I", data, off)[0] == 6 and epbs == 49


def test_warnings_are_in_the_result_for_api_users():
    from colo_replay import api
    tl = api.replay(P, P, max_queue_size=2**32 + 7)
    w = tl.summary["warnings"]
    assert any("same file" in x for x in w) and any("truncates it to 7" in x for x in w)
    assert tl.exit_status() == 0 and tl.summary["verdict"].startswith("CLEAN")


def test_live_max_queue_size_truncation_is_said(tmp_path):
    r = cli("live", "--primary-in", f"socket,path={tmp_path}/p", "--secondary-in", f"socket,path={tmp_path}/s",
            "--outdev", f"socket,path={tmp_path}/o", "--max-queue-size", "99999999999", timeout=30)
    assert r.returncode == 2
    assert r.stderr.splitlines()[0] == ("colo-replay live: warning: --max-queue-size 99999999999 does not fit "
                                        "QEMU's uint32: QEMU 7.2 truncates it to 1215752191, and so does live")
    assert "cannot open --primary-in" in r.stderr


@pytest.mark.parametrize("args", [
    ("replay", "--compare-timeout", "soon", "a.pcap", "b.pcap"),  # a value click refuses
    ("replay", P, S, "-o", "/tmp"),                             # an output path that is a directory
    ("sweep", "--no-such-option"),                              # an unknown option
    ("no-such-command",),                                       # an unknown command
])
def test_usage_errors_are_one_line_exit_2(args):
    """click's own usage errors follow the contract too: one line, exit 2, no usage block."""
    r = cli(*args)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("colo-replay: error: ") and "--help" in lines[0], r.stderr
    assert "Traceback" not in r.stderr


def test_verify_obeys_allow_gaps(tmp_path):
    """verify reads its capture under the same gap rule as replay: a two-day jump is an error
    naming the frame, and --allow-gaps accepts it."""
    head, recs = records(CHARDEV)
    k = len(recs) // 2
    for r in recs[k:]:
        r[0] += 2 * DAY
    path = tmp_path / "lo.pcap"
    path.write_bytes(head + b"".join(struct.pack("<IIII", *r[:4]) + r[4] for r in recs))
    args = ("verify", path, "--compare-timeout", 200, "--expired-scan-cycle", 100)
    r = cli(*args)
    assert r.returncode == 2 and f"frame {k + 1} at byte offset {recs[k][5]}" in r.stderr.splitlines()[0], r.stderr
    r = cli(*args, "--allow-gaps")
    assert r.returncode in (0, 1) and "jumps forward" not in r.stderr, r.stderr
