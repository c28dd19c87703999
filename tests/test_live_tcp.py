"""``colo-replay live`` on TCP chardevs (``socket,host=127.0.0.1,port=N``), both ways round:
colo-replay listening (``server=on``, as QEMU's COLO documentation sets colo-compare up) and
colo-replay connecting (``server=off``, with ``reconnect``), plus the refusal to listen on a
non-loopback address without ``--allow-remote``.  Loopback only."""

from __future__ import annotations

import os
import socket
import struct
import subprocess
import sys
import time

from colo_replay import encode_frame
from colo_replay.engine.framing import COLO_CHECKPOINT, DO_CHECKPOINT, encode_notify_to_compare
from tests.support import frames as F

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def _live(*args):
    return subprocess.Popen([sys.executable, "-m", "colo_replay.cli", "live", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=dict(os.environ, PYTHONPATH=REPO))


def _connect(port, deadline=10.0):
    end = time.monotonic() + deadline
    while True:
        try:
            return socket.create_connection(("127.0.0.1", port), timeout=5)
        except OSError:
            if time.monotonic() > end:
                raise
            time.sleep(0.05)


def _read_frames(sock, n, timeout=10.0, what=None):
    sock.settimeout(timeout)
    buf = b""
    out = []
    while len(out) < n:
        chunk = sock.recv(65536)
        if not chunk and what is not None:
            what.wait(10)
            raise AssertionError("outdev closed early: " + what.stderr.read().decode())
        assert chunk, "outdev closed early"
        buf += chunk
        while len(buf) >= 4 and len(buf) >= 4 + struct.unpack_from("!I", buf)[0]:
            size = struct.unpack_from("!I", buf)[0]
            out.append(buf[4:4 + size])
            buf = buf[4 + size:]
    return out


def test_listening_on_tcp_loopback_like_qemus_colo_docs():
    pri, sec, out, notify = _free_ports(4)
    ep = lambda port: f"socket,host=127.0.0.1,port={port},server=on,wait=off"
    proc = _live("--primary-in", ep(pri), "--secondary-in", ep(sec), "--outdev", ep(out),
                 "--notify-dev", ep(notify), "--duration", "3s")
    try:
        o = _connect(out)
        n = _connect(notify)
        p = _connect(pri)
        s = _connect(sec)
        same = [F.udp(b"tcp chardev %d" % i, sport=3000 + i) for i in range(20)]
        p.sendall(b"".join(encode_frame(f) for f in same))
        s.sendall(b"".join(encode_frame(f) for f in same))
        assert _read_frames(o, 20) == same
        # a divergence: DO_CHECKPOINT on notify_dev; COLO_CHECKPOINT flushes the primary out
        p.sendall(encode_frame(F.udp(b"mine", sport=9)))
        s.sendall(encode_frame(F.udp(b"MINE", sport=9)))
        n.settimeout(10)
        msg = n.recv(100)
        assert msg == struct.pack("!I", len(DO_CHECKPOINT)) + DO_CHECKPOINT
        n.sendall(encode_notify_to_compare(COLO_CHECKPOINT))
        assert _read_frames(o, 1) == [F.udp(b"mine", sport=9)]
    finally:
        outs, errs = proc.communicate(timeout=20)
    assert proc.returncode == 1, errs          # a checkpoint was requested
    assert b"Traceback" not in errs


def test_connecting_with_reconnect_to_tcp_listeners():
    listeners = {}
    for name in ("p", "s", "o"):
        ls = socket.socket()
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        ls.bind(("127.0.0.1", 0))
        ls.listen(1)
        listeners[name] = ls
    ep = lambda name: f"socket,host=127.0.0.1,port={listeners[name].getsockname()[1]},reconnect=1"
    proc = _live("--primary-in", ep("p"), "--secondary-in", ep("s"), "--outdev", ep("o"), "--duration", "8s")
    try:
        conns = {}
        for name, ls in listeners.items():
            conns[name] = ls.accept()[0]
        f1 = F.udp(b"before", sport=1)
        conns["p"].sendall(encode_frame(f1))
        conns["s"].sendall(encode_frame(f1))
        assert _read_frames(conns["o"], 1, what=proc) == [f1]
        # the secondary's peer goes away; colo-replay reconnects after reconnect=1 s
        conns["s"].close()
        conns["s"] = listeners["s"].accept()[0]
        f2 = F.udp(b"after", sport=2)
        conns["p"].sendall(encode_frame(f2))
        conns["s"].sendall(encode_frame(f2))
        got = _read_frames(conns["o"], 1, what=proc)
        assert got == [f2]
    finally:
        outs, errs = proc.communicate(timeout=20)
    assert proc.returncode == 0, errs
    assert b"Traceback" not in errs


def test_listening_beyond_loopback_needs_allow_remote():
    (port,) = _free_ports(1)
    proc = _live("--primary-in", f"socket,host=0.0.0.0,port={port},server=on,wait=off",
                 "--secondary-in", "socket,path=/tmp/colo-replay-never.sock,server=on,wait=off",
                 "--outdev", "socket,path=/tmp/colo-replay-never-out.sock,server=on,wait=off", "--duration", "1s")
    outs, errs = proc.communicate(timeout=20)
    assert proc.returncode == 2
    assert errs.decode().count("\n") == 1 and b"--allow-remote" in errs
