"""Run the real QEMU 7.2 colo-compare, headless, as a test oracle (standard library only).

See shared/reference/qemu-oracle.md.  ``QemuOracle`` listens on five unix sockets in a private
temporary folder (qmp, pri, sec, out, notify), starts::

    qemu-system-x86_64 -machine none -nodefaults -display none -accel tcg \\
        -chardev socket,id=qmp0,path=$D/qmp.sock -mon chardev=qmp0,mode=control \\
        -chardev socket,id=pri_in,path=$D/pri.sock -chardev socket,id=sec_in,path=$D/sec.sock \\
        -chardev socket,id=out0,path=$D/out.sock -chardev socket,id=notify0,path=$D/notify.sock \\
        -object iothread,id=iothread0 \\
        -object colo-compare,id=comp0,primary_in=pri_in,secondary_in=sec_in,outdev=out0,\\
                iothread=iothread0,notify_dev=notify0[,compare_timeout=..][,expired_scan_cycle=..]\\
                [,max_queue_size=..][,vnet_hdr_support=on]

accepts QEMU's five connections and performs the QMP handshake.  Everything QEMU writes on outdev
and notify_dev is collected by one ``select`` loop (``_pump``) in the calling thread, with host
timestamps (``time.monotonic_ns``).

Ordering (qemu-oracle.md, "the one trap"): QEMU reads primary_in, secondary_in and notify_dev
independently, so every step is followed by a **barrier**:

1. one identical UDP frame on a private flow no scenario uses (10.99.99.1:9999 -> 10.99.99.2:9999,
   payload unique per step) is written to primary_in *and* secondary_in; QEMU releases it on outdev
   only once it has handled everything written earlier on both sockets;
2. then ``COLO_USERSPACE_PROXY_INIT`` is written to notify_dev and we wait for
   ``COLO_COMPARE_GET_XEN_INIT``: everything written to notify_dev before it (a ``COLO_CHECKPOINT``
   flush) has been handled, and every ``DO_CHECKPOINT`` QEMU wrote before it has been read;
3. outdev is drained once more without waiting: a flush runs in the iothread *before* the init
   reply is queued and QEMU writes synchronously to an unblocked socket, so frames flushed after
   the barrier frame are already in our receive buffer when the reply has arrived.  This holds
   only while outdev never fills up: after a burst of more than ``SETTLE_BYTES`` in one step the
   barrier also waits until outdev has been quiet for ``SETTLE_QUIET_S`` (QEMU's send coroutine
   then drains its queue newest-first, so such a step's release order is not compare order).

Everything collected from the start of the step up to that point belongs to the step; barrier
frames are filtered out (``StepCapture``).

A FLUSH step (``COLO_CHECKPOINT``) is synchronised with its own init round-trip *before* the
barrier frames are written.  Otherwise the flush may be handled between the two barrier copies:
it releases the queued primary copy (so the barrier looks complete) and the secondary copy stays
queued for good, after which every barrier whose primary copy arrives first requests a checkpoint
(this was observed: one spurious DO_CHECKPOINT per step after a flush, in about 1 run out of 10).

If the QEMU binary is missing or fails to start, ``QemuError`` is raised: callers must fail, not
skip.

The socket side (listeners, barrier, step protocol, collection) lives in ``ChardevHarness`` and
does not care what connects to it: ``QemuOracle`` starts QEMU (plus its QMP monitor), and
``tests/support/live_harness.py`` starts ``colo-replay live`` the same way, so the very same
scenario steps and barriers drive both.
"""

from __future__ import annotations

import json
import os
import resource
import select
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import time
from dataclasses import dataclass, field

from colo_replay.engine.framing import (
    COLO_CHECKPOINT, COLO_COMPARE_GET_XEN_INIT, COLO_USERSPACE_PROXY_INIT, DO_CHECKPOINT,
    FrameDecoder, encode_frame, encode_notify_to_compare,
)

from . import frames as F
from .steps import parse_step

QEMU_BINARY = os.environ.get("COLO_REPLAY_QEMU", "/usr/bin/qemu-system-x86_64")

# The private barrier flow (no scenario may use these addresses/ports).
BARRIER_SRC = "10.99.99.1"
BARRIER_DST = "10.99.99.2"
BARRIER_PORT = 9999
BARRIER_TAG = b"colo-replay-barrier:"

# Above this many outdev bytes in one step, the barrier also waits for outdev to go quiet
# (a flush of ~700+ frames was seen to back-pressure the socket).  No scenario comes close.
SETTLE_BYTES = 16 * 1024
SETTLE_QUIET_S = 0.2

STARTUP_TIMEOUT_S = 15.0
BARRIER_TIMEOUT_S = 10.0


class QemuError(RuntimeError):
    """QEMU could not be started, died, or did not answer in time."""


def barrier_frame(n: int) -> bytes:
    """The barrier frame of step ``n`` (identical on both inputs, unique per step)."""
    payload = BARRIER_TAG + b"%010d" % n
    return F.udp(payload, sport=BARRIER_PORT, dport=BARRIER_PORT, src=BARRIER_SRC, dst=BARRIER_DST)


def is_barrier_frame(data: bytes) -> bool:
    """True for any barrier frame (vnet_len 0 is always used for them, so no vnet header)."""
    return (len(data) > 42 and data[12:14] == b"\x08\x00" and data[23] == 17
            and data[26:30] == F.ip4(BARRIER_SRC) and data[30:34] == F.ip4(BARRIER_DST)
            and data[42:42 + len(BARRIER_TAG)] == BARRIER_TAG)


@dataclass
class StepCapture:
    """What QEMU did during one step: released frames in outdev order (barrier frames removed)
    as ``(bytes, vnet_hdr_len)``, the number of DO_CHECKPOINT, and any other notify message."""

    releases: list = field(default_factory=list)
    checkpoints: int = 0
    checkpoint_times_ns: list = field(default_factory=list)
    other_notify: list = field(default_factory=list)
    start_ns: int = 0
    end_ns: int = 0
    settled: bool = False
    """True when the step's output was large enough that the barrier also waited for outdev to
    go quiet; the release order may then be QEMU's newest-first send-queue order (spec 3.2 #4)."""


class ChardevHarness:
    """Listens on colo-compare's chardev sockets, starts the program under test (which connects
    to them as a client, like QEMU's client chardevs), and drives it step by step with barriers.
    Subclasses give ``command_line()``; ``SOCKETS`` names the sockets to accept.  Use as a
    context manager."""

    SOCKETS = ("pri", "sec", "out", "notify")
    LABEL = "program"

    def __init__(self, compare_timeout: int | None = None, expired_scan_cycle: int | None = None,
                 max_queue_size: int | None = None, vnet_hdr_support: bool = False,
                 binary: str = "", extra_args: tuple = (), server_sockets: tuple = ()):
        self.server_sockets = tuple(server_sockets)   # the program listens on these; we connect
        self.compare_timeout = compare_timeout
        self.expired_scan_cycle = expired_scan_cycle
        self.max_queue_size = max_queue_size
        self.vnet = bool(vnet_hdr_support)
        self.binary = binary
        self.extra_args = tuple(extra_args)
        self.dir: str | None = None
        self.proc: subprocess.Popen | None = None
        self._listeners: dict[str, socket.socket] = {}
        self.conns: dict[str, socket.socket] = {}
        self._stderr_path: str | None = None
        self._out_dec = FrameDecoder(vnet_hdr=self.vnet)
        self._ntf_dec = FrameDecoder(vnet_hdr=False)   # QEMU never writes the vnet word on notify
        self._qmp_buf = b""
        # Collected, not yet attributed to a step: (monotonic ns, payload[, vnet])
        self.out_frames: list = []
        self.notify_msgs: list = []
        self._barrier_n = 0
        self._inits_sent = 0
        self._out_bytes = 0          # bytes read on outdev since the last barrier
        self.started_ns = 0
        self.startup_s = 0.0

    # ------------------------------------------------------------------ lifecycle
    def command_line(self) -> list[str]:
        raise NotImplementedError

    def _check_binary(self) -> None:
        """Raise QemuError when the program cannot be run (tests must fail, not skip)."""

    def _handshake(self, deadline: float) -> None:
        """After every socket is connected (QEMU: the QMP greeting and capabilities)."""

    def _ask_to_exit(self) -> None:
        """Ask the program to exit (QEMU: QMP quit; colo-replay live: SIGTERM)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)

    def start(self) -> "ChardevHarness":
        self._check_binary()
        t0 = time.monotonic()
        self.dir = tempfile.mkdtemp(prefix="colo-oracle-")
        os.chmod(self.dir, 0o700)
        for name in self.SOCKETS:
            if name in self.server_sockets:
                continue
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.bind(os.path.join(self.dir, f"{name}.sock"))
            s.listen(1)
            s.setblocking(False)
            self._listeners[name] = s
        self._stderr_path = os.path.join(self.dir, "qemu.stderr")
        with open(self._stderr_path, "wb") as err:
            try:
                # cwd = the private folder and no core files: the zero-length-frame test aborts QEMU.
                self.proc = subprocess.Popen(self.command_line(), stdin=subprocess.DEVNULL,
                                             stdout=err, stderr=err, close_fds=True, cwd=self.dir,
                                             preexec_fn=_no_core_dumps)
            except OSError as e:
                raise QemuError(f"cannot start {self.LABEL}: {e}") from e
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        pending = dict(self._listeners)
        while pending:
            self._check_alive("during start-up")
            if time.monotonic() > deadline:
                raise QemuError(f"{self.LABEL} did not connect {sorted(pending)} within {STARTUP_TIMEOUT_S} s"
                                + self._stderr_tail())
            ready, _, _ = select.select(list(pending.values()), [], [], 0.05)
            for lst in ready:
                name = next(n for n, s in pending.items() if s is lst)
                try:
                    conn, _ = lst.accept()
                except BlockingIOError:
                    continue
                conn.setblocking(True)
                self.conns[name] = conn
                del pending[name]
        for s in self._listeners.values():
            s.close()
        self._listeners.clear()
        for name in self.server_sockets:
            self.conns[name] = self._connect_to_program(name, deadline)
        self._handshake(deadline)
        self.started_ns = time.monotonic_ns()
        self.startup_s = time.monotonic() - t0
        return self

    def chardev_path(self, name: str) -> str:
        """Where chardev ``name`` lives: our listener, or (server_sockets) the program's."""
        return os.path.join(self.dir, f"{name}-srv.sock" if name in self.server_sockets else f"{name}.sock")

    def _connect_to_program(self, name: str, deadline: float) -> socket.socket:
        while True:
            self._check_alive(f"before it listened on {name}")
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                s.connect(self.chardev_path(name))
                return s
            except (FileNotFoundError, ConnectionRefusedError):
                s.close()
                if time.monotonic() > deadline:
                    raise QemuError(f"{self.LABEL} did not listen on {name}" + self._stderr_tail())
                time.sleep(0.01)

    def disconnect(self, name: str) -> None:
        """Close our connection to a server chardev of the program (a peer going away)."""
        self.conns.pop(name).close()

    def reconnect(self, name: str) -> None:
        """Connect again to a server chardev of the program, and wait until the program has
        taken the connection (not only the kernel's listen queue)."""
        if name in self.conns:
            self.disconnect(name)
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        self.conns[name] = self._connect_to_program(name, deadline)
        self._await_accepted(name, deadline)

    def _await_accepted(self, name: str, deadline: float) -> None:
        """Return once the program uses the new connection to ``name`` (a program that takes it
        at once has nothing to wait for)."""

    def close(self) -> int | None:
        """Ask the program to exit (QEMU: QMP quit), then SIGKILL that one process if it does not
        exit; remove the temp dir.  Returns its exit status (negative = killed by that signal)."""
        rc = None
        try:
            if self.proc is not None and self.proc.poll() is None and self.conns:
                try:
                    self._ask_to_exit()
                except (QemuError, OSError):
                    pass
                # Keep reading outdev / notify_dev while it shuts down: a send coroutine that is
                # blocked on a full socket would otherwise hold up the exit.
                deadline = time.monotonic() + 5.0
                while self.proc.poll() is None and time.monotonic() < deadline:
                    try:
                        if "out" in self.conns and "notify" in self.conns:
                            self._pump(0.02)
                        else:
                            time.sleep(0.01)
                    except (QemuError, OSError):
                        time.sleep(0.01)
            if self.proc is not None and self.proc.poll() is None:
                self.proc.kill()
                try:
                    self.proc.wait(timeout=5.0)
                except subprocess.TimeoutExpired:
                    pass
            if self.proc is not None:
                rc = self.proc.returncode
        finally:
            for s in list(self.conns.values()) + list(self._listeners.values()):
                try:
                    s.close()
                except OSError:
                    pass
            self.conns.clear()
            self._listeners.clear()
            if self.dir is not None:
                shutil.rmtree(self.dir, ignore_errors=True)
                self.dir = None
        return rc

    def __enter__(self) -> "ChardevHarness":
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(self, *exc) -> None:
        self.close()

    def stderr_text(self) -> str:
        if self._stderr_path and os.path.exists(self._stderr_path):
            with open(self._stderr_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        return ""

    def _stderr_tail(self) -> str:
        text = self.stderr_text().strip()
        return f"\n{self.LABEL} stderr:\n{text[-2000:]}" if text else ""

    def _check_alive(self, when: str) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            rc = self.proc.returncode
            sig = ""
            if rc < 0:
                try:
                    sig = f" ({signal.Signals(-rc).name})"
                except ValueError:
                    pass
            raise QemuError(f"{self.LABEL} exited with status {rc}{sig} {when}" + self._stderr_tail())

    def _closed_by_qemu(self, which: str) -> None:
        """The program closed one of our sockets: report its exit status if it is exiting."""
        try:
            self.proc.wait(timeout=2.0)
        except subprocess.TimeoutExpired:
            pass
        self._check_alive(f"(it closed the {which} socket)")
        raise QemuError(f"{self.LABEL} closed the {which} socket" + self._stderr_tail())

    # ------------------------------------------------------------------ raw I/O
    def send_raw(self, which: str, data: bytes) -> None:
        """Write raw bytes to 'pri', 'sec' or 'notify' (no framing added)."""
        self._check_alive(f"before writing to {which}")
        self.conns[which].sendall(data)

    def send_frame(self, which: str, frame: bytes, vnet_hdr_len: int = 0) -> None:
        if not frame:
            raise ValueError("zero-length frames abort QEMU; use send_raw to do that on purpose")
        self.send_raw(which, encode_frame(frame, vnet_hdr_len, self.vnet))

    def send_notify(self, msg: bytes) -> None:
        self.send_raw("notify", encode_notify_to_compare(msg, self.vnet))

    def _pump(self, timeout: float) -> bool:
        """Wait up to ``timeout`` s for data on outdev / notify_dev, read what is there, decode it.
        Returns True if anything was read."""
        socks = [c for c in (self.conns.get("out"), self.conns.get("notify")) if c is not None]
        if not socks:
            time.sleep(max(timeout, 0.0))
            return False
        r, _, _ = select.select(socks, [], [], max(timeout, 0.0))
        got = False
        for s in r:
            try:
                chunk = s.recv(1 << 20)
            except BlockingIOError:
                continue
            now = time.monotonic_ns()
            if not chunk:
                self._closed_by_qemu("outdev" if s is self.conns.get("out") else "notify_dev")
            got = True
            if s is self.conns.get("out"):
                self._out_bytes += len(chunk)
                for fr in self._out_dec.feed(chunk):
                    if not hasattr(fr, "data"):
                        raise QemuError(f"outdev framing error: {fr!r}")
                    self.out_frames.append((now, fr.data, fr.vnet_hdr_len))
            else:
                for fr in self._ntf_dec.feed(chunk):
                    if not hasattr(fr, "data"):
                        raise QemuError(f"notify framing error: {fr!r}")
                    self.notify_msgs.append((now, fr.data))
        return got

    def _settle(self, quiet_s: float = SETTLE_QUIET_S) -> None:
        """Read until nothing has arrived on outdev / notify_dev for ``quiet_s`` seconds."""
        last = time.monotonic()
        while time.monotonic() - last < quiet_s:
            if self._pump(quiet_s / 4):
                last = time.monotonic()
            self._check_alive("while settling")

    def _drain(self) -> None:
        """Read whatever is already buffered, without waiting."""
        while self._pump(0):
            pass

    def collect_for(self, seconds: float) -> None:
        """Keep collecting for ``seconds`` (a WAIT step)."""
        end = time.monotonic() + seconds
        while True:
            left = end - time.monotonic()
            if left <= 0:
                break
            self._pump(left)
            self._check_alive("while waiting")

    def _wait_until(self, pred, what: str, timeout: float = BARRIER_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout
        while not pred():
            self._check_alive(f"while waiting for {what}")
            left = deadline - time.monotonic()
            if left <= 0:
                raise QemuError(f"timed out after {timeout} s waiting for {what}" + self._stderr_tail())
            self._pump(min(left, 0.05))

    # ------------------------------------------------------------------ steps
    def notify_sync(self) -> None:
        """Send COLO_USERSPACE_PROXY_INIT and wait for COLO_COMPARE_GET_XEN_INIT: everything written
        to notify_dev before has been handled, every DO_CHECKPOINT written before has been read,
        and (drained afterwards) every frame a flush wrote to outdev has been read too."""
        self._inits_sent += 1
        want = self._inits_sent
        self.send_notify(COLO_USERSPACE_PROXY_INIT)

        def init_reply() -> bool:
            return sum(m == COLO_COMPARE_GET_XEN_INIT for _, m in self.notify_msgs) >= want

        self._wait_until(init_reply, "COLO_COMPARE_GET_XEN_INIT on notify_dev")
        self._drain()

    def barrier(self, start_ns: int | None = None) -> StepCapture:
        """Make sure everything written so far has been handled, and return what QEMU released and
        requested since the previous barrier (see the module docstring)."""
        self._barrier_n += 1
        bf = barrier_frame(self._barrier_n)
        self.send_frame("pri", bf)
        self.send_frame("sec", bf)
        seen_out = [0]

        def barrier_out() -> bool:
            frames = self.out_frames
            for i in range(seen_out[0], len(frames)):
                if frames[i][1] == bf:
                    return True
            seen_out[0] = len(frames)
            return False

        self._wait_until(barrier_out, f"barrier frame #{self._barrier_n} on outdev")
        self.notify_sync()
        settled = False
        if self._out_bytes > SETTLE_BYTES:
            # A burst this large may have filled the outdev socket: QEMU's send coroutine then
            # waits, its queue is drained newest-first (so the barrier frame can overtake older
            # frames) and the init reply can arrive before them.  Read until outdev is quiet.
            self._settle()
            settled = True
        cap = StepCapture(start_ns=start_ns or 0, end_ns=time.monotonic_ns(), settled=settled)
        self._out_bytes = 0
        barriers = 0
        for _, data, vnet in self.out_frames:
            if is_barrier_frame(data):
                if data != bf:
                    raise QemuError(f"stale barrier frame on outdev at barrier #{self._barrier_n}")
                barriers += 1
                continue
            cap.releases.append((data, vnet))
        if barriers != 1:
            raise QemuError(f"barrier #{self._barrier_n} seen {barriers} times on outdev")
        inits = 0
        for t, m in self.notify_msgs:
            if m == DO_CHECKPOINT:
                cap.checkpoints += 1
                cap.checkpoint_times_ns.append(t)
            elif m == COLO_COMPARE_GET_XEN_INIT:
                inits += 1
            else:
                cap.other_notify.append(m)
        if inits != self._inits_sent:
            raise QemuError(f"{inits} init replies for {self._inits_sent} requests at barrier #{self._barrier_n}")
        self._inits_sent = 0
        self.out_frames = []
        self.notify_msgs = []
        return cap

    def step(self, step: tuple) -> StepCapture:
        """Run one scenario step and its barrier.  Steps: ("P", frame[, vnet_len]),
        ("S", frame[, vnet_len]), ("FLUSH",), ("WAIT", ms)."""
        t0 = time.monotonic_ns()
        st = parse_step(step)
        if st.op in ("P", "S"):
            if st.vnet and not self.vnet:
                raise ValueError("a vnet length needs vnet_hdr_support=on")
            self.send_frame("pri" if st.op == "P" else "sec", st.frame, st.vnet)
        elif st.op == "FLUSH":
            # The flush must be complete before the barrier frames are written: were it handled
            # between the two barrier copies, it would release the primary copy and leave the
            # secondary one queued for good (every later barrier would then request a checkpoint).
            self.send_notify(COLO_CHECKPOINT)
            self.notify_sync()
        else:                                   # WAIT: the host clock runs for real
            self.collect_for(st.ms / 1000.0)
        return self.barrier(t0)

    def run(self, steps) -> list[StepCapture]:
        return [self.step(s) for s in steps]

    def wait_exit(self, timeout: float = 10.0) -> int | None:
        """Wait for QEMU to exit on its own (e.g. after an abort); returns its status or None."""
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None


class QemuOracle(ChardevHarness):
    """One QEMU process running one colo-compare object.  Use as a context manager."""

    SOCKETS = ("qmp", "pri", "sec", "out", "notify")
    LABEL = "QEMU"

    def __init__(self, compare_timeout: int | None = None, expired_scan_cycle: int | None = None,
                 max_queue_size: int | None = None, vnet_hdr_support: bool = False,
                 binary: str = QEMU_BINARY, extra_args: tuple = (), server_sockets: tuple = ()):
        super().__init__(compare_timeout, expired_scan_cycle, max_queue_size, vnet_hdr_support, binary,
                         extra_args, server_sockets)

    CHARDEV_IDS = {"pri": "pri_in", "sec": "sec_in", "out": "out0", "notify": "notify0"}

    def _chardev(self, name: str) -> str:
        spec = f"socket,id={self.CHARDEV_IDS[name]},path={self.chardev_path(name)}"
        return spec + ",server=on,wait=off" if name in self.server_sockets else spec

    def _await_accepted(self, name: str, deadline: float) -> None:
        """QEMU accepts a server chardev's connection in its main loop, some time after our
        connect() returned: a frame it writes before that is lost ("colo send primary packet
        failed").  Its chardev's filename says which: "disconnected:..." until it accepted
        (char-socket.c, tcp_chr_connect / tcp_chr_disconnect)."""
        cid = self.CHARDEV_IDS[name]
        while True:
            devs = {d["label"]: d["filename"] for d in self.qmp("query-chardev")["return"]}
            if not devs[cid].startswith("disconnected:"):
                return
            if time.monotonic() > deadline:
                raise QemuError(f"QEMU did not accept the new connection to {name} ({devs[cid]})"
                                + self._stderr_tail())
            time.sleep(0.005)

    def command_line(self) -> list[str]:
        d = self.dir
        opts = ("colo-compare,id=comp0,primary_in=pri_in,secondary_in=sec_in,outdev=out0,"
                "iothread=iothread0,notify_dev=notify0")
        if self.compare_timeout is not None:
            opts += f",compare_timeout={self.compare_timeout}"
        if self.expired_scan_cycle is not None:
            opts += f",expired_scan_cycle={self.expired_scan_cycle}"
        if self.max_queue_size is not None:
            opts += f",max_queue_size={self.max_queue_size}"
        if self.vnet:
            opts += ",vnet_hdr_support=on"
        return [
            self.binary, "-machine", "none", "-nodefaults", "-display", "none", "-accel", "tcg",
            "-chardev", f"socket,id=qmp0,path={d}/qmp.sock", "-mon", "chardev=qmp0,mode=control",
            "-chardev", self._chardev("pri"),
            "-chardev", self._chardev("sec"),
            "-chardev", self._chardev("out"),
            "-chardev", self._chardev("notify"),
            "-object", "iothread,id=iothread0",
            "-object", opts,
            *self.extra_args,
        ]

    def _check_binary(self) -> None:
        if not (os.path.isfile(self.binary) and os.access(self.binary, os.X_OK)):
            raise QemuError(f"QEMU binary {self.binary!r} not found or not executable "
                            "(apt-get install -y qemu-system-x86); the differential tests need it")

    def _handshake(self, deadline: float) -> None:
        greeting = self._qmp_read(deadline)
        if "QMP" not in greeting:
            raise QemuError(f"unexpected QMP greeting {greeting!r}")
        reply = self.qmp("qmp_capabilities")
        if "return" not in reply:
            raise QemuError(f"qmp_capabilities failed: {reply!r}")

    def _ask_to_exit(self) -> None:
        if "qmp" in self.conns:
            self.qmp("quit", timeout=5.0)

    # ------------------------------------------------------------------ QMP
    def _qmp_read(self, deadline: float) -> dict:
        """One QMP JSON line (events are skipped by ``qmp``)."""
        sock = self.conns["qmp"]
        while b"\n" not in self._qmp_buf:
            self._check_alive("while talking QMP")
            left = deadline - time.monotonic()
            if left <= 0:
                raise QemuError("QMP timeout" + self._stderr_tail())
            r, _, _ = select.select([sock], [], [], min(left, 0.05))
            if r:
                chunk = sock.recv(65536)
                if not chunk:
                    self._closed_by_qemu("QMP")
                self._qmp_buf += chunk
        line, self._qmp_buf = self._qmp_buf.split(b"\n", 1)
        return json.loads(line)

    def qmp(self, command: str, timeout: float = 10.0, **arguments) -> dict:
        msg = {"execute": command}
        if arguments:
            msg["arguments"] = arguments
        self.conns["qmp"].sendall(json.dumps(msg).encode() + b"\r\n")
        deadline = time.monotonic() + timeout
        while True:
            if command == "quit":
                # QEMU may close the socket right after answering.
                try:
                    reply = self._qmp_read(deadline)
                except QemuError:
                    return {"return": {}}
            else:
                reply = self._qmp_read(deadline)
            if "event" in reply:
                continue
            return reply

    def qom_get(self, prop: str, path: str = "/objects/comp0"):
        reply = self.qmp("qom-get", path=path, property=prop)
        if "return" not in reply:
            raise QemuError(f"qom-get {prop} failed: {reply!r}")
        return reply["return"]


def _no_core_dumps() -> None:
    try:
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    except (ValueError, OSError):
        pass


def zero_length_frame_bytes(vnet: bool = False, vnet_hdr_len: int = 0) -> bytes:
    """A zero-length frame on the wire plus one more byte: QEMU's reader finalises a zero-length
    frame only when at least one further byte arrives (net_fill_rstate loops while size > 0).
    With ``vnet`` the frame's vnet length word is ``vnet_hdr_len`` (7.1 tells 0 from > 0)."""
    hdr = struct.pack("!II", 0, vnet_hdr_len) if vnet else struct.pack("!I", 0)
    return hdr + b"\x00"
