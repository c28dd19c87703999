"""Operations of ``colo-replay live``: the ``--stats`` line, structured (JSON) logs, the timeline
(``-o``) and a clean summary on SIGINT / SIGTERM with the documented exit status."""

from __future__ import annotations

import json
import signal

import pandas as pd
import pytest

from tests.support import frames as F
from tests.support.live_harness import LiveHarness, live_on_unix_listeners
from tests.support.polling import wait_until


def json_records(text: str, event: str) -> list[dict]:
    """The complete JSON log records of ``event`` in ``text`` (a line still being written is
    left out)."""
    out = []
    for line in text.splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if isinstance(rec, dict) and rec.get("event") == event:
            out.append(rec)
    return out


@pytest.mark.parametrize("loop", ["uvloop", "asyncio"])
def test_stats_json_logs_timeline_and_sigint_summary(tmp_path, loop):
    """The same run on either event loop (--event-loop), which the summary names."""
    tl = tmp_path / "t.parquet"
    with LiveHarness(extra_args=("--stats", "0.1", "--log-format", "json", "-o", str(tl), "--event-loop", loop)) as h:
        h.step(("P", F.udp(b"a")))
        h.step(("S", F.udp(b"a")))
        h.step(("P", F.udp(b"b", sport=2)))
        h.step(("S", F.udp(b"B", sport=2)))      # mismatch: one DO_CHECKPOINT
        h.step(("FLUSH",))
        # --stats 0.1: wait for two stats records, one of them after the mismatch (not 0.35 s)
        wait_until(lambda: (lambda st: len(st) >= 2 and st[-1]["checkpoint_requests"] == 1)(
            json_records(h.stderr_text(), "stats")), "two stats records, the last one after the request")
        rc, err = h.stop(sig=signal.SIGINT)
    recs = [json.loads(line) for line in err.splitlines() if line.strip()]
    assert all({"ts", "level", "event"} <= set(r) for r in recs), err
    stats = [r for r in recs if r["event"] == "stats"]
    assert len(stats) >= 2
    assert {"frames_in_primary", "frames_in_secondary", "released", "queued_primary", "checkpoint_requests",
            "drops", "bytes_in_primary", "bytes_out"} <= set(stats[-1])
    assert stats[-1]["frames_in_primary"] >= 3 and stats[-1]["checkpoint_requests"] == 1
    summary = [r for r in recs if r["event"] == "summary"]
    assert len(summary) == 1 and summary[0]["stop_reason"] == "SIGINT" and summary[0]["exit_status"] == 1
    assert summary[0]["event_loop"] == loop
    assert summary[0]["released"] == summary[0]["frames_in"][0]       # barrier frames included
    assert rc == 1
    df = pd.read_parquet(tl)
    kinds = df["kind"].astype(str)
    assert (kinds == "checkpoint_request").sum() == 1 and (kinds == "release").sum() >= 3
    assert (kinds == "checkpoint_end").sum() == 1          # the COLO_CHECKPOINT flush


def test_text_stats_line_and_clean_exit_0():
    with LiveHarness(extra_args=("--stats", "0.1")) as h:
        h.step(("P", F.udp(b"a")))
        h.step(("S", F.udp(b"a")))
        wait_until(lambda: any(" stats " in ln and "released=" in ln for ln in h.stderr_text().splitlines()),
                   "a --stats line")
        rc, err = h.stop()
    lines = [l for l in err.splitlines() if " stats " in l]
    assert lines and "in=pri:" in lines[-1] and "released=" in lines[-1] and "checkpoint_requests=0" in lines[-1]
    assert "colo-replay live summary" in err and "stopped by SIGTERM" in err
    assert "uvloop event loop" in err           # --event-loop auto: uvloop, a dependency, is installed
    assert rc == 0, err


def test_event_loop_choice():
    """auto is uvloop when it is installed (it is a dependency); a name that is not a loop is a
    ValueError (the CLI's click.Choice refuses it with exit 2 before that)."""
    import asyncio

    import uvloop

    from colo_replay.live.session import event_loop_factory
    assert event_loop_factory("auto") == (uvloop.new_event_loop, "uvloop")
    assert event_loop_factory("asyncio") == (asyncio.new_event_loop, "asyncio")
    with pytest.raises(ValueError, match="one of auto, uvloop, asyncio"):
        event_loop_factory("trio")


def test_live_async_names_the_callers_loop():
    """api.live_async runs in the caller's loop (it takes no event_loop): its summary names it."""
    import asyncio

    from colo_replay.live.session import event_loop_factory, running_loop_name

    async def name():
        return running_loop_name()
    for loop in ("uvloop", "asyncio"):
        factory, _ = event_loop_factory(loop)
        with asyncio.Runner(loop_factory=factory) as runner:
            assert runner.run(name()) == loop


def test_timeline_on_stdout_keeps_stdout_data_only(tmp_path):
    """``-o -``: JSON Lines on stdout, nothing else there (logs are on stderr)."""
    proc, conns = live_on_unix_listeners(tmp_path, "-o", "-", "--duration", "600ms")
    from colo_replay import encode_frame
    conns["p"].sendall(encode_frame(F.udp(b"x")))
    conns["s"].sendall(encode_frame(F.udp(b"x")))
    out, err = proc.communicate(timeout=20)
    rows = [json.loads(l) for l in out.decode().splitlines()]
    assert proc.returncode == 0, err
    assert [r["kind"] for r in rows if r["kind"] == "release"] == ["release"]
    assert b"stopped by duration" in err


@pytest.mark.parametrize("allow_empty", [False, True])
def test_nothing_compared_is_exit_2_unless_allow_empty(tmp_path, allow_empty):
    """A live run in which secondary_in never sent a frame compared nothing: exit 2 and one line
    saying so (the contract of every command), unless --allow-empty."""
    extra = ["--allow-empty"] if allow_empty else []
    proc, conns = live_on_unix_listeners(tmp_path, "--duration", "400ms", *extra)
    from colo_replay import encode_frame
    conns["p"].sendall(encode_frame(F.udp(b"only the primary speaks")))
    _, err = proc.communicate(timeout=20)
    if allow_empty:
        assert proc.returncode == 0, err
        assert b"nothing compared" not in err
    else:
        assert proc.returncode == 2, err
        assert b"error: nothing compared: no frame arrived on secondary_in" in err
