"""Robustness of ``colo-replay live``, each case checked against the real QEMU 7.2 where QEMU can
be run through it (the same harness and bytes drive both; see ``tests/support``):

* endpoints and usage errors (exit 2, one line, no traceback);
* a peer that disconnects and reconnects, between frames and in the middle of a frame;
* outdev going away (frames released meanwhile are lost, as QEMU loses them);
* a stalled outdev: back-pressure, bounded memory, nothing lost, newest-first send queue (7.2)
  or in-order synchronous sending (4.1);
* garbage frames, an oversized frame, unknown notify messages;
* a zero-length frame (QEMU aborts; live flags it and carries on).
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import threading
import time

import pytest

from colo_replay import NET_BUFSIZE, encode_frame
from colo_replay.live.endpoint import EndpointError, parse_endpoint

from tests.support import frames as F
from tests.support.differential import compare
from tests.support.engine_runner import undefined_events
from tests.support.live_harness import REPO, LiveHarness
from tests.support.qemu_oracle import QemuOracle, is_barrier_frame, zero_length_frame_bytes
from tests.support.scenarios import Scenario


def run_live_cli(*args, timeout=20):
    env = dict(os.environ, PYTHONPATH=REPO)
    return subprocess.run([sys.executable, "-m", "colo_replay.cli", "live", *args], capture_output=True, text=True,
                          timeout=timeout, env=env)


# ---------------------------------------------------------------------- endpoints and usage
def test_endpoint_specs_spelled_as_qemu():
    e = parse_endpoint("socket,path=/run/x.sock")
    assert (e.kind, e.path, e.server, e.wait, e.reconnect) == ("unix", "/run/x.sock", False, True, 0.0)
    e = parse_endpoint("socket,id=compare0,host=127.0.0.1,port=9001,server=on,wait=off")
    assert (e.kind, e.host, e.port, e.server, e.wait) == ("tcp", "127.0.0.1", 9001, True, False)
    e = parse_endpoint("socket,host=localhost,port=9004,server,nowait")          # legacy spelling
    assert e.server and not e.wait
    e = parse_endpoint("socket,host=127.0.0.1,port=9005,reconnect=2")
    assert not e.server and e.reconnect == 2.0
    e = parse_endpoint("socket,host=::1,port=9005,server=on,nodelay=on")
    assert e.server and e.nodelay
    for bad, why in [("file,path=/x", "only socket"), ("socket", "needs path"),
                     ("socket,path=/x,host=1.2.3.4,port=1", "either path"),
                     ("socket,path=/x,server=maybe", "on/off"), ("socket,path=/x,bogus=1", "unknown option"),
                     ("socket,path=/x,server=on,reconnect=1", "incompatible"),
                     ("socket,host=127.0.0.1,port=99999", "out of range"),
                     ("socket,host=10.1.2.3,port=9001,server=on", "--allow-remote"),
                     ("socket,port=9001,server=on", "--allow-remote")]:
        with pytest.raises(EndpointError, match=why):
            parse_endpoint(bad)
    assert parse_endpoint("socket,host=10.1.2.3,port=9001,server=on", allow_remote=True).host == "10.1.2.3"
    assert parse_endpoint("socket,host=10.1.2.3,port=9001").host == "10.1.2.3"     # connecting out is fine


@pytest.mark.parametrize("args,msg", [
    (["--primary-in", "socket,path=/nonexistent/p.sock", "--secondary-in", "socket,path=/nonexistent/s.sock",
      "--outdev", "socket,path=/nonexistent/o.sock"],
     "cannot open --primary-in socket,path=/nonexistent/p.sock: No such file or directory"),
    (["--primary-in", "socket,host=192.0.2.1,port=9001,server=on", "--secondary-in", "socket,path=/x/s",
      "--outdev", "socket,path=/x/o"], "--allow-remote"),
    (["--primary-in", "socket,path=/x/p", "--secondary-in", "socket,path=/x/p", "--outdev", "socket,path=/x/o"],
     "same socket"),
    (["--primary-in", "socket,path=/x/p", "--secondary-in", "socket,path=/x/s", "--outdev", "socket,path=/x/o",
      "--compare-timeout", "0"], "compare_timeout"),
    (["--qemu", "4.1", "--primary-in", "socket,path=/x/p", "--secondary-in", "socket,path=/x/s",
      "--outdev", "socket,path=/x/o", "--compare-timeout", "100"], "compare_timeout"),
    (["--primary-in", "socket,path=/x/p", "--secondary-in", "socket,path=/x/s", "--outdev", "socket,path=/x/o",
      "--notify-dev", "socket,path=/x/n", "--flush-on-request", "100ms"], "flush-on-request"),
    (["--primary-in", "socket,path=/x/p", "--secondary-in", "socket,path=/x/s", "--outdev", "socket,path=/x/o",
      "-o", "timeline.txt"], "unknown timeline format"),
], ids=["connect-fails", "remote-listen", "same-socket", "timeout-0", "4.1-knob", "flush-with-notify", "bad-o"])
def test_bad_usage_exits_2_with_one_line(args, msg):
    r = run_live_cli(*args)
    assert r.returncode == 2, (r.returncode, r.stderr)
    err_lines = [l for l in r.stderr.splitlines() if "error" in l]
    assert len(err_lines) == 1 and msg in err_lines[0], r.stderr
    assert "Traceback" not in r.stderr and r.stdout == ""


# ---------------------------------------------------------------------- both programs, same bytes
def both(proc, **kw):
    """Run ``proc(harness)`` against QEMU and against colo-replay live; returns both results and
    live's (exit status, stderr)."""
    with QemuOracle(**{k: v for k, v in kw.items() if k != "extra_args"}) as q:
        qres = proc(q)
        qerr = q.stderr_text()
    with LiveHarness(**kw) as h:
        lres = proc(h)
        rc, lerr = h.stop()
    return qres, lres, qerr, rc, lerr


@pytest.mark.qemu
def test_peer_reconnects_between_frames():
    """primary_in as a server chardev; its peer leaves and comes back between frames: nothing is
    lost, compare goes on (QEMU accepts the next client on a server chardev)."""
    a, b = F.udp(b"before-reconnect", sport=1111), F.udp(b"after-reconnect", sport=2222)

    def proc(h):
        out = [h.step(("P", a))]
        h.reconnect("pri")
        out += [h.step(("P", b)), h.step(("S", a)), h.step(("S", b))]
        return [(s.releases, s.checkpoints) for s in out]

    qres, lres, _, rc, lerr = both(proc, server_sockets=("pri",))
    assert qres == lres == [([], 0), ([], 0), ([(a, 0)], 0), ([(b, 0)], 0)]
    assert rc == 0 and "connection=2" in lerr


@pytest.mark.qemu
def test_peer_reconnects_mid_frame():
    """The primary_in peer leaves in the middle of a frame.  QEMU 7.2 (binary): its SocketReadState
    is not reset, so the next connection's bytes complete the half-read frame.  Here frame X's
    length word and 6 bytes arrive, the peer reconnects and writes a whole frame C whose 4+len(C)
    bytes are exactly what X still needs: both programs then see one frame X' = X[:6] + the
    framed C (not IPv4 -> passed through at once), and C itself is never seen."""
    c = F.udp(b"after-reconnect", sport=3333)
    x = bytes(range(256))[:len(c) + 4 + 6]
    wire_x = encode_frame(x)
    x_prime = x[:6] + encode_frame(c)

    def proc(h):
        out = [h.step(("P", F.udp(b"warm-up", sport=4444)))]
        h.send_raw("pri", wire_x[:10])
        time.sleep(0.1)
        h.reconnect("pri")
        h.send_raw("pri", encode_frame(c))
        out.append(h.barrier())
        out.append(h.step(("S", c)))            # C never reached compare: no release
        return [(s.releases, s.checkpoints) for s in out]

    qres, lres, _, rc, lerr = both(proc, server_sockets=("pri",))
    assert qres == lres, (qres, lres)
    assert qres[1] == ([(x_prime, 0)], 0)
    assert qres[2] == ([], 0)
    assert "reconnect_mid_frame" in lerr and "partial_bytes=6" in lerr, lerr


@pytest.mark.qemu
def test_outdev_disconnected_loses_releases_like_qemu():
    """outdev (server chardev) loses its peer; a pair matched meanwhile is released into the void
    (QEMU 7.2: write to a disconnected socket chardev = -EIO, the frame is gone).  Live counts it
    as lost.  After the peer is back, releases flow again."""
    a, b = F.udp(b"while-away", sport=5555), F.udp(b"back-again", sport=6666)

    def proc(h):
        h.step(("P", F.udp(b"warm", sport=7777)))
        h.disconnect("out")
        time.sleep(0.1)
        h.send_frame("pri", a)
        h.send_frame("sec", a)
        time.sleep(0.3)
        h.reconnect("out")
        h.out_frames = []
        h._out_dec = type(h._out_dec)(vnet_hdr=h.vnet)
        caps = [h.barrier(), h.step(("P", b)), h.step(("S", b))]
        return [(s.releases, s.checkpoints) for s in caps]

    qres, lres, _, rc, lerr = both(proc, server_sockets=("out",))
    assert qres == lres == [([], 0), ([], 0), ([(b, 0)], 0)], (qres, lres)
    assert "outdev_lost" in lerr and "lost on outdev 1" in lerr, lerr


@pytest.mark.qemu
def test_unknown_notify_messages_are_ignored():
    """Unknown notify_dev messages: QEMU logs "COLO compare got unsupported instruction" and goes
    on; so does live (a zero-length notify message included: it is no frame for compare)."""
    def proc(h):
        for msg in (b"HELLO", b"COLO_CHECKPOINTX", b"DO_CHECKPOINT", b"x" * 100):
            h.send_notify(msg)
        h.notify_sync()
        caps = [h.step(("P", F.udp(b"q"))), h.step(("S", F.udp(b"q")))]
        return [(s.releases, s.checkpoints, s.other_notify) for s in caps]

    qres, lres, qerr, rc, lerr = both(proc)
    assert qres == lres == [([], 0, []), ([(F.udp(b"q"), 0)], 0, [])]
    assert qerr.count("unsupported instruction") == 4, qerr
    assert lerr.count("unsupported_instruction") == 4 and rc == 0, lerr


@pytest.mark.qemu
def test_garbage_frames_agree_with_qemu():
    """Seeded random bytes as frames (any length 1..200, random content, some with an IPv4
    ethertype) on both inputs, plus a flush: every step agrees with QEMU.  Frames whose handling
    reads past their end in QEMU (undefined there) are redrawn, as in the scenario generator."""
    rng = random.Random(0xBAD5EED)
    steps = []
    while len(steps) < 60:
        n = rng.randint(1, 200)
        fr = bytearray(rng.randbytes(n))
        if n >= 14 and rng.random() < 0.5:
            fr[12:14] = b"\x08\x00"
            if n > 14:
                fr[14] = 0x45
            if n > 23:
                fr[23] = rng.choice([1, 6, 17, 47])
            if n > 33:
                fr[26:34] = F.ip4(F.A) + F.ip4(F.B)
        st = (rng.choice("PS"), bytes(fr))
        if undefined_events(Scenario("probe", steps + [st])):
            continue
        steps.append(st)
    steps.append(("FLUSH",))
    sc = Scenario("garbage", steps)
    qres, lres, _, rc, lerr = both(lambda h: h.run(sc.steps))
    assert not compare(sc, qres, lres)
    assert sum(len(s.releases) for s in qres) > 10
    assert "Traceback" not in lerr


@pytest.mark.qemu
def test_oversized_frame_disables_that_input_only():
    """A frame over NET_BUFSIZE on primary_in: both programs stop reading primary_in for good
    (the ARP behind it is never passed through) but still read secondary_in and notify_dev."""
    p = F.udp(b"queued-first", sport=8888)
    oversized = F.pad(F.udp(b"too-long"), NET_BUFSIZE + 1)
    arp = F.arp_reply()

    def proc(h):
        h.step(("P", p))
        h.send_raw("pri", encode_frame(oversized) + encode_frame(arp))
        h.collect_for(0.3)
        h.send_frame("sec", p)            # secondary_in still read: releases the queued primary
        h.collect_for(0.3)
        h.notify_sync()                   # notify_dev still read and answered
        return [d for _, d, _ in h.out_frames if not is_barrier_frame(d)]

    qres, lres, qerr, rc, lerr = both(proc)
    assert qres == lres == [p]
    assert "primary_in error" in qerr
    assert "colo-compare primary_in error" in lerr and "oversized packet" in lerr and "input_disabled" in lerr


def test_zero_length_frame_is_flagged_not_fatal(tmp_path):
    """QEMU 7.2 aborts on a zero-length frame (tests/test_differential_qemu.py shows it); live
    logs a flagged event, counts it, carries on, and exits 1."""
    summary = tmp_path / "summary.json"
    with LiveHarness(extra_args=("--summary-json", str(summary))) as h:
        h.step(("P", F.udp(b"before")))
        h.send_raw("pri", zero_length_frame_bytes()[:-1])
        h.send_raw("sec", zero_length_frame_bytes()[:-1])
        after = [h.step(("S", F.udp(b"before"))), h.step(("P", F.udp(b"after"))), h.step(("S", F.udp(b"after")))]
        rc, err = h.stop()
    # the "one more byte" of zero_length_frame_bytes is the next frame's first length byte here
    assert [s.releases for s in after] == [[(F.udp(b"before"), 0)], [], [(F.udp(b"after"), 0)]]
    assert rc == 1 and err.count("qemu_would_crash") == 2 and "SIGABRT_ASSERT_DATA" in err, err
    s = json.loads(summary.read_text())
    assert s["qemu_crash_events"] == 2 and s["released"] >= 2


# ---------------------------------------------------------------------- stalled outdev
N_STALL = 3000


def _stall(h, n=N_STALL, stall_s=1.0):
    """Write n matching UDP pairs (one flow each) from a thread while outdev is not read for
    ``stall_s``; then read outdev until every frame is there.  Returns the release order (indices)."""
    frames = [F.udp(b"%06d" % i + b"." * 994, sport=10000 + i // 60000, dport=1 + i % 60000) for i in range(n)]
    index = {f: i for i, f in enumerate(frames)}
    done = threading.Event()

    def writer():
        for k in range(0, n, 100):
            chunk = frames[k:k + 100]
            h.conns["pri"].sendall(b"".join(encode_frame(f) for f in chunk))
            h.conns["sec"].sendall(b"".join(encode_frame(f) for f in chunk))
        done.set()

    t = threading.Thread(target=writer, daemon=True)
    t.start()
    time.sleep(stall_s)
    got = []
    deadline = time.monotonic() + 60
    while len(got) < n and time.monotonic() < deadline:
        h._pump(0.2)
        got += [index[d] for _, d, _ in h.out_frames]
        h.out_frames = []
    t.join(10)
    assert done.is_set()
    return got


def _descents(order):
    return sum(1 for x, y in zip(order, order[1:]) if y < x)


@pytest.mark.qemu
def test_stalled_outdev_qemu_reference():
    """Reference: QEMU 7.2 with an unread outdev keeps reading its inputs and queues in its send
    coroutine; nothing is lost here (one flow per pair, so no queue overflows) and the backlog
    leaves newest-first (spec RUN72 s6)."""
    with QemuOracle() as q:
        order = _stall(q)
    assert sorted(order) == list(range(N_STALL))
    assert _descents(order) > 0


@pytest.mark.parametrize("profile", ["7.2", "4.1"])
def test_stalled_outdev_backpressure(tmp_path, profile):
    """Live with a stalled outdev: the send queue stays bounded (--max-send-buffer 256 KiB: the
    inputs are paused, their writers stall), nothing is lost, and the backlog leaves newest-first
    under 7.2 (send_queue_lifo) and strictly in order under 4.1 (synchronous send)."""
    summary = tmp_path / "s.json"
    limit = 256 * 1024
    with LiveHarness(qemu_profile=profile, extra_args=("--max-send-buffer", str(limit),
                                                       "--summary-json", str(summary))) as h:
        order = _stall(h)
        rc, err = h.stop()
    s = json.loads(summary.read_text())
    assert sorted(order) == list(range(N_STALL)), "frames lost or duplicated"
    assert s["released"] == N_STALL and s["outdev_lost"] == 0 and s["queue_full_drops"] == 0
    assert s["input_pauses"] >= 1, s
    assert s["max_send_queue_bytes"] <= limit + 4 * 256 * 1024, s
    if profile == "7.2":
        assert _descents(order) > 0, "no newest-first segment although outdev pushed back"
    else:
        assert order == list(range(N_STALL))
    assert rc == 0, err
