"""Drive ``colo-replay live`` exactly as ``QemuOracle`` drives QEMU.

``LiveHarness`` listens on the same four unix sockets (pri, sec, out, notify) and starts::

    python3 -m colo_replay.cli live --primary-in socket,path=$D/pri.sock \\
        --secondary-in socket,path=$D/sec.sock --outdev socket,path=$D/out.sock \\
        --notify-dev socket,path=$D/notify.sock [--compare-timeout ..] [...]

which connects to them as clients, like QEMU's client chardevs.  Steps, barriers and the
collection of outdev / notify_dev output are ``ChardevHarness``'s, shared with the QEMU oracle,
so a scenario drives both programs through the very same bytes.  ``close()`` sends SIGTERM
(colo-replay live then prints its summary and exits 0 or 1).
"""

from __future__ import annotations

import os
import signal
import sys

from .qemu_oracle import ChardevHarness

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class LiveHarness(ChardevHarness):
    SOCKETS = ("pri", "sec", "out", "notify")
    LABEL = "colo-replay live"

    def __init__(self, compare_timeout=None, expired_scan_cycle=None, max_queue_size=None,
                 vnet_hdr_support=False, extra_args=(), qemu_profile="7.2", notify=True,
                 server_sockets=()):
        super().__init__(compare_timeout, expired_scan_cycle, max_queue_size, vnet_hdr_support,
                         sys.executable, extra_args, server_sockets)
        self.qemu_profile = qemu_profile
        if not notify:
            self.SOCKETS = ("pri", "sec", "out")

    def command_line(self) -> list[str]:
        cmd = [self.binary, "-m", "colo_replay.cli", "live", "--qemu", self.qemu_profile,
               "--primary-in", self._chardev("pri"),
               "--secondary-in", self._chardev("sec"),
               "--outdev", self._chardev("out")]
        if "notify" in self.SOCKETS:
            cmd += ["--notify-dev", self._chardev("notify")]
        if self.compare_timeout is not None:
            cmd += ["--compare-timeout", str(self.compare_timeout)]
        if self.expired_scan_cycle is not None:
            cmd += ["--expired-scan-cycle", str(self.expired_scan_cycle)]
        if self.max_queue_size is not None:
            cmd += ["--max-queue-size", str(self.max_queue_size)]
        if self.vnet:
            cmd.append("--vnet-hdr-support")
        return cmd + list(self.extra_args)

    def _chardev(self, name: str) -> str:
        spec = f"socket,path={self.chardev_path(name)}"
        return spec + ",server=on,wait=off" if name in self.server_sockets else spec

    def start(self):
        # The child must import this checkout's colo_replay whatever the cwd (the temp folder).
        path = os.environ.get("PYTHONPATH", "")
        os.environ["PYTHONPATH"] = REPO + (os.pathsep + path if path else "")
        try:
            return super().start()
        finally:
            if path:
                os.environ["PYTHONPATH"] = path
            else:
                os.environ.pop("PYTHONPATH", None)

    def stop(self, timeout: float = 10.0, sig=signal.SIGTERM) -> tuple[int | None, str]:
        """Send ``sig`` (SIGTERM), wait, and return (exit status, stderr text) before the temp
        dir goes."""
        rc = self.close_keep_stderr(timeout, sig)
        return rc, self._final_stderr

    def close_keep_stderr(self, timeout: float = 10.0, sig=signal.SIGTERM):
        text_before = None
        try:
            if self.proc is not None and self.proc.poll() is None:
                self.proc.send_signal(sig)
                try:
                    self.proc.wait(timeout=timeout)
                except Exception:
                    pass
            text_before = self.stderr_text()
        finally:
            self._final_stderr = text_before or ""
            rc = self.close()
        return rc


def live_on_unix_listeners(tmp_path, *args: str):
    """A real ``colo-replay live *args`` connecting to three unix sockets it does not own:
    ``p.sock``, ``s.sock`` and ``o.sock`` in ``tmp_path``, listened on here (as a rig's QEMU
    would).  Returns the process (stdout and stderr piped) and the accepted connections by name
    (``p``, ``s``, ``o``)."""
    import socket
    import subprocess

    listeners = {}
    for n in ("p", "s", "o"):
        ls = socket.socket(socket.AF_UNIX)
        ls.bind(str(tmp_path / f"{n}.sock"))
        ls.listen(1)
        listeners[n] = ls
    proc = subprocess.Popen([sys.executable, "-m", "colo_replay.cli", "live",
                             "--primary-in", f"socket,path={tmp_path}/p.sock",
                             "--secondary-in", f"socket,path={tmp_path}/s.sock",
                             "--outdev", f"socket,path={tmp_path}/o.sock", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=dict(os.environ, PYTHONPATH=REPO))
    conns = {n: ls.accept()[0] for n, ls in listeners.items()}
    for ls in listeners.values():
        ls.close()
    return proc, conns
