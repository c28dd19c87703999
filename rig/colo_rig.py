#!/usr/bin/env python3
"""colo_rig: bring up a real QEMU COLO pair on one machine, drive traffic, record everything, tear it down.

    python3 rig/colo_rig.py run --out DIR [--compare-timeout MS] [--expired-scan-cycle MS]
                                [--checkpoint-delay MS] [--traffic det:200,clk:100,...] [--idle S]
                                [--accel auto|kvm|tcg] [--qemu PATH] [--guest DIR] [--port-base N]

Stdlib only. Everything runs on 127.0.0.1. Only the processes this script starts are ever signalled, by pid.
The layout of DIR follows the recorded runs in /work/shared/data/colo-runs/ (see rig/README.md).
Exit status: 0 when the pair stayed in COLO and every request was answered; 1 with a one-line error otherwise.
"""
from __future__ import annotations

import argparse
import fcntl
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_CACHE = HERE / ".cache"
DEFAULT_TRAFFIC = "det:200,clk:100,udp_det:100,udp_clk:50,udp_disk:50,idle:20"
PHASE_KINDS = ("det", "clk", "udp_det", "udp_clk", "udp_disk", "idle")
GUEST_MAC = "52:54:00:12:34:56"


class RigError(Exception):
    pass


# --------------------------------------------------------------------------------------------- helpers

def now() -> float:
    return time.time()


class JsonlLog:
    """Append-only JSON-lines file, thread-safe, flushed per line."""

    def __init__(self, path: Path):
        self.path = path
        self.f = open(path, "a", buffering=1)
        self.lock = threading.Lock()

    def write(self, obj: dict) -> None:
        line = json.dumps(obj)
        with self.lock:
            self.f.write(line + "\n")

    def close(self) -> None:
        with self.lock:
            self.f.close()


def cpu_seconds(pid: int) -> float | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return round((int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK"), 2)
    except (OSError, IndexError, ValueError):
        return None


def pct(values: list[float], p: float) -> float | None:
    if not values:
        return None
    v = sorted(values)
    k = (len(v) - 1) * p / 100.0
    lo = int(k)
    hi = min(lo + 1, len(v) - 1)
    return v[lo] + (v[hi] - v[lo]) * (k - lo)


def stats(values: list[float], nd: int = 2) -> dict:
    if not values:
        return {"n": 0}
    return {"n": len(values), "min": round(min(values), nd), "p50": round(pct(values, 50), nd),
            "p95": round(pct(values, 95), nd), "max": round(max(values), nd),
            "mean": round(sum(values) / len(values), nd)}


def port_free(port: int, kind: int) -> bool:
    s = socket.socket(socket.AF_INET, kind)
    try:
        if kind == socket.SOCK_STREAM:  # as QEMU does: TIME_WAIT leftovers of a previous run do not count
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        s.close()


# --------------------------------------------------------------------------------------------- accel probe

def probe_kvm() -> tuple[bool, str]:
    """Is /dev/kvm usable for this rig? Opens it and creates a VM (KVM_GET_API_VERSION, KVM_CREATE_VM).
    A nested hypervisor (the 'hypervisor' CPU flag) counts as unusable for 'auto': nested KVM was ~100x slow
    and failed with emulation errors on the reference machine. --accel kvm skips that last check."""
    try:
        fd = os.open("/dev/kvm", os.O_RDWR | os.O_CLOEXEC)
    except OSError as e:
        return False, f"/dev/kvm: {e.strerror}"
    try:
        api = fcntl.ioctl(fd, 0xAE00)  # KVM_GET_API_VERSION
        if api != 12:
            return False, f"KVM API version {api}"
        vmfd = fcntl.ioctl(fd, 0xAE01, 0)  # KVM_CREATE_VM
        os.close(vmfd)
    except OSError as e:
        return False, f"KVM ioctl failed: {e.strerror}"
    finally:
        os.close(fd)
    try:
        if re.search(r"^flags\s*:.*\bhypervisor\b", Path("/proc/cpuinfo").read_text(), re.M):
            return False, "nested (host CPU has the 'hypervisor' flag): KVM works but is not trusted here"
    except OSError:
        pass
    return True, "ok"


# --------------------------------------------------------------------------------------------- QMP

class Qmp:
    """A QMP client on a unix socket; logs every greeting, command, reply and event to qmp.jsonl."""

    def __init__(self, side: str, path: Path, log: JsonlLog):
        self.side, self.path, self.log = side, path, log
        self.sock: socket.socket | None = None
        self.replies: list[dict] = []
        self.events: list[dict] = []
        self.cv = threading.Condition()
        self.closed = False
        self.broken: str | None = None  # set when a command timed out: later replies could not be matched
        self.lock = threading.Lock()  # one command at a time

    def connect(self, timeout: float, alive) -> None:
        deadline = now() + timeout
        while True:
            try:
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                s.connect(str(self.path))
                break
            except OSError:
                s.close()
                if not alive():
                    raise RigError(f"{self.side} QEMU exited before its QMP socket came up")
                if now() > deadline:
                    raise RigError(f"{self.side} QMP socket {self.path} did not come up in {timeout:.0f} s")
                time.sleep(0.05)
        self.sock = s
        self.rfile = s.makefile("rb")
        greeting = json.loads(self.rfile.readline())
        self.log.write({"t": now(), "side": self.side, "kind": "greeting", "msg": greeting})
        threading.Thread(target=self._reader, daemon=True, name=f"qmp-{self.side}").start()
        self.cmd("qmp_capabilities")

    def _reader(self) -> None:
        try:
            for line in self.rfile:
                msg = json.loads(line)
                t = now()
                if "event" in msg:
                    self.log.write({"t": t, "side": self.side, "kind": "event", "msg": msg})
                    with self.cv:
                        self.events.append(msg)
                        self.cv.notify_all()
                else:
                    self.log.write({"t": t, "side": self.side, "kind": "reply", "msg": msg})
                    with self.cv:
                        self.replies.append(msg)
                        self.cv.notify_all()
        except (OSError, ValueError):
            pass
        with self.cv:
            self.closed = True
            self.cv.notify_all()

    def cmd(self, execute: str, timeout: float = 30.0, **arguments):
        msg: dict = {"execute": execute}
        if arguments:
            msg["arguments"] = arguments
        with self.lock:
            if self.sock is None:
                raise RigError(f"{self.side} QMP not connected")
            if self.broken:
                raise RigError(self.broken)
            self.log.write({"t": now(), "side": self.side, "kind": "cmd", "msg": msg})
            try:
                self.sock.sendall(json.dumps(msg).encode() + b"\n")
            except OSError as e:
                raise RigError(f"{self.side} QMP {execute}: {e}") from None
            deadline = now() + timeout
            with self.cv:
                while not self.replies:
                    if self.closed:
                        raise RigError(f"{self.side} QMP closed during {execute}")
                    left = deadline - now()
                    if left <= 0:
                        self.broken = f"{self.side} QMP {execute}: no reply in {timeout:.0f} s"
                        raise RigError(self.broken)
                    self.cv.wait(left)
                reply = self.replies.pop(0)
        if "error" in reply:
            raise RigError(f"{self.side} QMP {execute}: {reply['error'].get('desc', reply['error'])}")
        return reply.get("return")

    def has_event(self, name: str) -> bool:
        with self.cv:
            return any(e.get("event") == name for e in self.events)

    def close(self) -> None:
        try:
            if self.sock:
                self.sock.shutdown(socket.SHUT_RDWR)
                self.sock.close()
        except OSError:
            pass


# --------------------------------------------------------------------------------------------- processes

def _die_with_parent() -> None:
    """In the child before exec: get SIGKILL if the rig itself dies (even by SIGKILL), so no QEMU or tcpdump
    of ours outlives it holding the ports. Linux only; harmless elsewhere."""
    try:
        import ctypes
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


class Procs:
    """The processes this run started. Teardown signals them by pid only: SIGTERM (or SIGINT for tcpdump),
    then SIGKILL after a timeout; a hung QEMU (deadlocked COLO thread) is killed the same way."""

    def __init__(self, events: JsonlLog):
        self.items: list[tuple[str, subprocess.Popen, int]] = []
        self.events = events

    def start(self, name: str, argv: list[str], stdout, stderr=subprocess.STDOUT,
              stop_signal: int = signal.SIGTERM) -> subprocess.Popen:
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr,
                             start_new_session=True,  # our own session: a terminal's ^C reaches only us
                             preexec_fn=_die_with_parent)
        self.items.append((name, p, stop_signal))
        return p

    def stop(self, name: str, grace: float = 10.0) -> int | None:
        for n, p, sig in self.items:
            if n == name:
                return self._stop_one(n, p, sig, grace)
        return None

    def _stop_one(self, name, p: subprocess.Popen, sig: int, grace: float) -> int | None:
        if p.poll() is not None:
            return p.returncode
        for s, wait in ((sig, grace), (signal.SIGKILL, 5.0)):
            try:
                os.kill(p.pid, s)
            except ProcessLookupError:
                break
            try:
                p.wait(wait)
                break
            except subprocess.TimeoutExpired:
                self.events.write({"t": now(), "what": "stop-timeout", "proc": name, "pid": p.pid,
                                   "signal": int(s)})
        try:
            return p.wait(1)
        except subprocess.TimeoutExpired:
            return None

    def stop_all(self, grace: float = 5.0) -> None:
        for n, p, sig in reversed(self.items):
            self._stop_one(n, p, sig, grace)


# --------------------------------------------------------------------------------------------- traffic

def tcp_request(port: int, path: str, timeout: float) -> str:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.settimeout(timeout)
        s.sendall(f"GET {path} HTTP/1.0\r\n\r\n".encode())
        chunks = []
        while True:
            b = s.recv(4096)
            if not b:
                break
            chunks.append(b)
    return b"".join(chunks).decode("latin-1")


def udp_request(port: int, payload: str, timeout: float) -> str:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
        u.settimeout(timeout)
        u.bind(("127.0.0.1", 0))
        u.sendto(payload.encode(), ("127.0.0.1", port))
        data, _ = u.recvfrom(4096)
    return data.decode("latin-1")


def parse_traffic(spec: str) -> list[tuple[str, float]]:
    phases = []
    for item in filter(None, (x.strip() for x in spec.split(","))):
        kind, _, n = item.partition(":")
        if kind not in PHASE_KINDS or not n:
            raise RigError(f"bad traffic item {item!r}: want KIND:N with KIND in {', '.join(PHASE_KINDS)}")
        try:
            val = float(n) if kind == "idle" else int(n)
        except ValueError:
            raise RigError(f"bad traffic count in {item!r}") from None
        phases.append((kind, val))
    return phases


# --------------------------------------------------------------------------------------------- trace parsing

# Lines on a guest console that mean the guest kernel is in trouble (a secondary with corrupted memory oopses
# or reports broken virtqueues, e.g. "id N is not a head!").
CONSOLE_BAD = re.compile(r"Oops|BUG:|Kernel panic|general protection|is not a head|segfault|Call Trace|"
                         r"invalid opcode|Unable to handle|watchdog: BUG|rcu_sched self-detected")


def console_trouble(path: Path) -> str | None:
    try:
        for line in path.read_text(errors="replace").splitlines():
            if CONSOLE_BAD.search(line):
                return line.strip()[:160]
    except OSError:
        pass
    return None


TRACE_RE = re.compile(r"(\d+)@(\d+\.\d+):(\w+)(.*)")


def parse_trace(path: Path) -> list[tuple[float, str, str]]:
    out = []
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return out
    for line in text.splitlines():
        m = TRACE_RE.match(line)
        if m:
            out.append((float(m.group(2)), m.group(3), m.group(4).strip()))
    return out


def derive_checkpoints(primary: list, delay_ms: int) -> tuple[list[dict], dict | None]:
    """Per checkpoint, from the primary's COLO thread trace: t_request, t_stop, t_ram_sent ('vmstate-size':
    RAM and the device-state buffer are sent, the checkpoint flush follows), t_received, t_loaded, t_run; plus
    gap_s since the previous request, the trigger inferred from the compare events just before the request,
    pause_ms (stop..run) and total_ms (request..run)."""
    cps: list[dict] = []
    cur: dict | None = None
    compare: list[tuple[float, str, str]] = []
    for t, ev, args in primary:
        if ev.startswith("colo_compare") or ev == "colo_old_packet_check_found":
            compare.append((t, ev, args))
        elif ev == "colo_send_message" and "'checkpoint-request'" in args:
            if cur is not None:
                cps.append(cur)  # never completed
            cur = {"t_request": t, "t_stop": None, "t_ram_sent": None, "t_received": None,
                   "t_loaded": None, "t_run": None}
        elif cur is None:
            continue
        elif ev == "colo_vm_state_change" and "'run' => 'stop'" in args:
            cur["t_stop"] = t
        elif ev == "colo_send_message" and "'vmstate-size'" in args:
            cur["t_ram_sent"] = t
        elif ev == "colo_receive_message" and "'vmstate-received'" in args:
            cur["t_received"] = t
        elif ev == "colo_receive_message" and "'vmstate-loaded'" in args:
            cur["t_loaded"] = t
        elif ev == "colo_vm_state_change" and "'stop' => 'run'" in args:
            cur["t_run"] = t
            cps.append(cur)
            cur = None
    incomplete = None
    if cur is not None:
        incomplete = {k: v for k, v in cur.items() if v is not None}
    # COLO start: the primary's first stop=>run (after 'checkpoint-ready')
    colo_start = next((t for t, ev, a in primary if ev == "colo_vm_state_change" and "'stop' => 'run'" in a), None)
    done = [c for c in cps if c["t_run"] is not None]
    ci = 0
    prev_req, prev_run = colo_start, colo_start
    for c in done:
        t_req = c["t_request"]
        c["gap_s"] = round(t_req - prev_req, 4) if prev_req is not None else None
        lo = max(prev_run or 0.0, t_req - 0.05)
        while ci < len(compare) and compare[ci][0] < lo:
            ci += 1
        window = []
        j = ci
        while j < len(compare) and compare[j][0] <= t_req:
            window.append(compare[j])
            j += 1
        evs = {e for _, e, _ in window}
        different = any(e == "colo_compare_main" and "packet different" in a for _, e, a in window)
        if "colo_old_packet_check_found" in evs:
            trig = "compare_timeout"
        elif evs & {"colo_compare_udp_miscompare", "colo_compare_icmp_miscompare"} or different:
            trig = "miscompare(udp/icmp/other)"
        elif evs & {"colo_compare_tcp_info", "colo_compare_ip_info"}:
            trig = "miscompare(tcp)"
        elif c["gap_s"] is not None and abs(c["gap_s"] * 1000 - delay_ms) < 50:
            trig = "periodic(x-checkpoint-delay)"
        else:
            trig = "unknown"
        c["trigger"] = trig
        c["pause_ms"] = round((c["t_run"] - c["t_stop"]) * 1000, 2) if c["t_stop"] else None
        c["total_ms"] = round((c["t_run"] - t_req) * 1000, 2)
        prev_req, prev_run = t_req, c["t_run"]
    return done, incomplete


def secondary_flushes(secondary: list) -> tuple[list[int], list[float]]:
    pages, ms = [], []
    begin = None
    for t, ev, args in secondary:
        if ev == "colo_flush_ram_cache_begin":
            m = re.search(r"dirty_pages (\d+)", args)
            if m:
                pages.append(int(m.group(1)))
            begin = t
        elif ev == "colo_flush_ram_cache_end" and begin is not None:
            ms.append(round((t - begin) * 1000, 2))
            begin = None
    return pages, ms


# --------------------------------------------------------------------------------------------- the run

class Rig:
    def __init__(self, a: argparse.Namespace):
        self.a = a
        self.out = Path(a.out).resolve()
        b = a.port_base
        self.ports = {"compare0": b + 1, "mirror": b + 3, "compare1": b + 4, "compare_out": b + 5,
                      "migrate": b + 998, "nbd": b + 999}
        self.client = {"tcp80": b + 9080, "tcp81": b + 9081, "udp7": b + 9007, "udp8": b + 9008,
                       "udp9": b + 9009}
        self.t0 = now()
        self.error: str | None = None
        self.phase_tag = "start"
        self.phase_rows: list[dict] = []
        self.cpu_marks: list[tuple[float, dict]] = []
        self.stop_status = threading.Event()
        self.meta: dict = {}
        self.q: dict[str, Qmp] = {}
        self.p: dict[str, subprocess.Popen] = {}

    # ---- setup
    def resolve(self) -> None:
        a = self.a
        if a.accel == "auto":
            ok, why = probe_kvm()
            self.accel = "kvm" if ok else "tcg"
        elif a.accel == "kvm":
            ok, why = probe_kvm()
            if not ok and not why.startswith("nested"):
                raise RigError(f"--accel kvm: {why}")
            self.accel = "kvm"
        else:
            ok, why = False, "not probed (--accel tcg)"
            self.accel = "tcg"
        self.kvm_probe = why
        if a.qemu:
            self.qemu = str(Path(a.qemu).resolve())
        elif self.accel == "kvm" and shutil.which("qemu-system-x86_64"):
            self.qemu = shutil.which("qemu-system-x86_64")  # stock QEMU is the normal case with KVM
        else:
            cands = sorted(Path(a.cache).glob("qemu-*/qemu-system-x86_64"), key=lambda p: p.stat().st_mtime)
            if not cands:
                raise RigError(f"no rig QEMU in {a.cache}: run rig/build-qemu.sh (or pass --qemu)")
            self.qemu = str(cands[-1])
        if a.guest:
            g = Path(a.guest).resolve()
        else:
            cands = sorted(Path(a.cache).glob("guest-*/initrd.gz"), key=lambda p: p.stat().st_mtime)
            if not cands:
                raise RigError(f"no rig guest in {a.cache}: run rig/build-guest.sh (or pass --guest)")
            g = cands[-1].parent
        self.kernel, self.initrd = g / "vmlinuz", g / "initrd.gz"
        if not self.kernel.exists() or not self.initrd.exists():
            raise RigError(f"guest dir {g} lacks vmlinuz/initrd.gz")
        self.qemu_img = shutil.which("qemu-img")
        if not self.qemu_img:
            raise RigError("qemu-img not found (apt-get install qemu-utils)")
        self.tcpdump = None if a.no_tcpdump else shutil.which("tcpdump")
        if not a.no_tcpdump and not self.tcpdump:
            raise RigError("tcpdump not found (apt-get install tcpdump, or --no-tcpdump)")
        busy = [p for p in self.ports.values() if not port_free(p, socket.SOCK_STREAM)]
        busy += [self.client[k] for k in ("tcp80", "tcp81") if not port_free(self.client[k], socket.SOCK_STREAM)]
        busy += [self.client[k] for k in ("udp7", "udp8", "udp9") if not port_free(self.client[k], socket.SOCK_DGRAM)]
        if busy:
            raise RigError(f"ports in use on 127.0.0.1: {busy} (another run? use --port-base)")
        self.phases = parse_traffic(a.traffic)

    def cmdlines(self) -> tuple[list[str], list[str]]:
        a, o, P, C = self.a, self.out, self.ports, self.client
        common_head = [self.qemu]
        accel = ["-accel", self.accel, "-cpu", a.cpu]
        firmware = ["-L", "/usr/share/qemu", "-L", "/usr/share/seabios"]

        def base(name):
            return common_head + ["-name", name] + accel + firmware + [
                "-m", str(a.mem), "-smp", "1", "-nodefaults", "-display", "none", "-vga", "none",
                "-serial", f"file:{o}/{name}-console.log",
                "-qmp", f"unix:{o}/{name}-qmp.sock,server=on,wait=off",
                "-msg", "timestamp=on", "-trace", "enable=colo_*", "-D", f"{o}/{name}-trace.log",
                "-kernel", str(self.kernel), "-initrd", str(self.initrd),
                "-append", "console=ttyS0 panic=-1 quiet"]

        nic = ["-device", f"e1000,id=e0,netdev=hn0,mac={GUEST_MAC},romfile="]
        hostfwd = (f"hostfwd=tcp:127.0.0.1:{C['tcp80']}-:80,hostfwd=tcp:127.0.0.1:{C['tcp81']}-:81,"
                   f"hostfwd=udp:127.0.0.1:{C['udp7']}-:7,hostfwd=udp:127.0.0.1:{C['udp8']}-:8,"
                   f"hostfwd=udp:127.0.0.1:{C['udp9']}-:9")
        comp = "colo-compare,id=comp0,primary_in=compare0-0,secondary_in=compare1,outdev=compare_out0,iothread=iothread1"
        if a.compare_timeout is not None:
            comp += f",compare_timeout={a.compare_timeout}"
        if a.expired_scan_cycle is not None:
            comp += f",expired_scan_cycle={a.expired_scan_cycle}"
        h = "host=127.0.0.1"
        primary = base("primary") + [
            "-netdev", f"user,id=hn0,{hostfwd}"] + nic + [
            "-chardev", f"socket,id=mirror0,{h},port={P['mirror']},server=on,wait=off",
            "-chardev", f"socket,id=compare1,{h},port={P['compare1']},server=on,wait=on",
            "-chardev", f"socket,id=compare0,{h},port={P['compare0']},server=on,wait=off",
            "-chardev", f"socket,id=compare0-0,{h},port={P['compare0']}",
            "-chardev", f"socket,id=compare_out,{h},port={P['compare_out']},server=on,wait=off",
            "-chardev", f"socket,id=compare_out0,{h},port={P['compare_out']}",
            "-object", "filter-mirror,id=m0,netdev=hn0,queue=tx,outdev=mirror0",
            "-object", "filter-redirector,netdev=hn0,id=redire0,queue=rx,indev=compare_out",
            "-object", "filter-redirector,netdev=hn0,id=redire1,queue=rx,outdev=compare0",
            "-object", f"filter-dump,id=dump0,netdev=hn0,queue=all,file={o}/primary-hn0.pcap",
            "-object", "iothread,id=iothread1",
            "-object", comp,
            "-drive", "if=none,id=colo-disk0,driver=quorum,read-pattern=fifo,vote-threshold=1,"
                      f"children.0.file.filename={o}/primary.qcow2,children.0.driver=qcow2",
            "-device", "virtio-blk-pci,id=vd0,drive=colo-disk0",
            "-S"]
        secondary = base("secondary") + [
            "-netdev", "user,id=hn0,restrict=on"] + nic + [
            "-chardev", f"socket,id=red0,{h},port={P['mirror']},reconnect=1",
            "-chardev", f"socket,id=red1,{h},port={P['compare1']},reconnect=1",
            "-object", "filter-redirector,id=f1,netdev=hn0,queue=tx,indev=red0",
            "-object", "filter-redirector,id=f2,netdev=hn0,queue=rx,outdev=red1",
            "-object", f"filter-dump,id=dump1,netdev=hn0,queue=all,file={o}/secondary-hn0.pcap",
            "-object", "filter-rewriter,id=rew0,netdev=hn0,queue=all",
            "-incoming", f"tcp:127.0.0.1:{P['migrate']}",
            "-drive", f"if=none,id=parent0,file.filename={o}/secondary-parent.qcow2,driver=qcow2",
            "-drive", "if=none,id=childs0,driver=replication,mode=secondary,file.driver=qcow2,top-id=colo-disk0,"
                      f"file.file.filename={o}/secondary-active.qcow2,file.backing.driver=qcow2,"
                      f"file.backing.file.filename={o}/secondary-hidden.qcow2,file.backing.backing=parent0",
            "-drive", "if=none,id=colo-disk0,driver=quorum,read-pattern=fifo,vote-threshold=1,children.0=childs0",
            "-device", "virtio-blk-pci,id=vd0,drive=colo-disk0"]
        return primary, secondary

    def ev(self, what: str, **kw) -> None:
        self.events.write({"t": now(), "what": what, **kw})

    def alive(self, side: str) -> bool:
        p = self.p.get(side)
        return p is not None and p.poll() is None

    def cpu(self) -> dict:
        return {s: cpu_seconds(self.p[s].pid) for s in ("primary", "secondary") if s in self.p}

    def check_pair(self) -> None:
        for s in ("primary", "secondary"):
            if not self.alive(s):
                raise RigError(f"{s} QEMU exited (rc {self.p[s].returncode}); see {s}.out")
            if self.q[s].has_event("COLO_EXIT"):
                raise RigError(f"{s} left COLO (COLO_EXIT event); see qmp.jsonl")

    def status(self, tag: str) -> dict:
        rec: dict = {"t": now(), "tag": tag}
        try:
            rec["primary_migrate"] = self.q["primary"].cmd("query-migrate", timeout=10)
            rec["primary_colo"] = self.q["primary"].cmd("query-colo-status", timeout=10)
            rec["secondary_colo"] = self.q["secondary"].cmd("query-colo-status", timeout=10)
        except RigError as e:
            rec["error"] = str(e)
        rec["cpu_s"] = self.cpu()
        self.statusf.write(rec)
        return rec

    def status_loop(self) -> None:
        while not self.stop_status.wait(5.0):
            rec = self.status(self.phase_tag)
            st = (rec.get("primary_migrate") or {}).get("status")
            if self.error is None:
                if rec.get("error"):  # e.g. a QEMU whose main loop hangs (a deadlocked COLO thread holds the BQL)
                    self.error = f"QEMU not answering QMP: {rec['error']}"
                elif st is not None and st != "colo":
                    self.error = f"primary migration status {st!r}, not 'colo'"

    def check_consoles(self) -> None:
        for s in ("primary", "secondary"):
            bad = console_trouble(self.out / f"{s}-console.log")
            if bad:
                raise RigError(f"{s} guest kernel trouble on its console: {bad!r}")

    def start_tcpdump(self) -> None:
        if not self.tcpdump:
            return
        err = open(self.out / "tcpdump.err", "ab")
        P, C = self.ports, self.client
        chard = " or ".join(f"port {P[k]}" for k in ("compare0", "mirror", "compare1", "compare_out"))
        cli = " or ".join(f"port {p}" for p in C.values())
        for name, flt in (("lo-chardevs.pcap", f"tcp and ({chard})"), ("lo-client.pcap", f"({cli})")):
            # as root, -Z root: tcpdump would otherwise drop to its own user and may not write into DIR;
            # --immediate-mode: each packet written as it comes (libpcap's ring otherwise hands them over
            # a block at a time, and the last block was lost at SIGINT under load: a run's capture ended
            # before its traffic did).  Immediate mode gives every packet a ring slot of the snaplen:
            # with -s 0 (256 KiB) and the default 2 MiB buffer that is 8 slots, and a loaded run
            # dropped 91 packets; lo's largest frame is 65536 + 14 bytes, and -B 65536 (KiB) gives
            # ~1000 slots.
            z = ["-Z", "root"] if os.geteuid() == 0 else []
            self.procs.start(f"tcpdump-{name}", [self.tcpdump, "-i", "lo", "-n", "-U", "--immediate-mode", "-B", "65536",
                                                 "-s", "65550", *z,
                                                 "-w", str(self.out / name), flt],
                             stdout=subprocess.DEVNULL, stderr=err, stop_signal=signal.SIGINT)
        deadline = now() + 10
        while now() < deadline:  # both print "listening on lo"
            if (self.out / "tcpdump.err").read_bytes().count(b"listening on") >= 2:
                return
            time.sleep(0.05)
        raise RigError("tcpdump did not start in 10 s; see tcpdump.err")

    def wait_console(self, side: str, needle: str, deadline: float) -> bool:
        path = self.out / f"{side}-console.log"
        next_ping = now() + 5
        while now() < deadline:
            try:
                if needle in path.read_text(errors="replace"):
                    return True
            except OSError:
                pass
            self.check_pair()
            if now() > next_ping:  # a hung QEMU (e.g. deadlocked at the first checkpoint) stops answering QMP
                for s in ("primary", "secondary"):
                    try:
                        self.q[s].cmd("query-status", timeout=10)
                    except RigError as e:
                        raise RigError(f"QEMU not answering QMP while the guest boots: {e}") from None
                next_ping = now() + 5
            time.sleep(0.1)
        return False

    def run(self) -> int:
        a = self.a
        self.out.mkdir(parents=True, exist_ok=True)
        for f in ("events.jsonl", "qmp.jsonl", "status.jsonl", "traffic.jsonl", "traffic.out", "tcpdump.err"):
            (self.out / f).unlink(missing_ok=True)
        self.events = JsonlLog(self.out / "events.jsonl")
        self.qmplog = JsonlLog(self.out / "qmp.jsonl")
        self.statusf = JsonlLog(self.out / "status.jsonl")
        self.procs = Procs(self.events)
        wall0 = now()
        exit_codes: dict = {}
        final: dict = {}
        try:
            self.resolve()
            self.meta = {"args": {
                "run_dir": str(self.out), "accel": self.accel, "qemu": self.qemu, "cpu": a.cpu, "mem": a.mem,
                "nic": "e1000", "kernel": str(self.kernel), "initrd": str(self.initrd), "start": "paused",
                "checkpoint_delay": a.checkpoint_delay, "compare_timeout": a.compare_timeout,
                "scan_cycle": a.expired_scan_cycle, "trace": "colo_*", "disk": "virtio", "idle": a.idle,
                "traffic": a.traffic, "no_tcpdump": a.no_tcpdump, "keep_disks": a.keep_disks,
                "port_base": a.port_base, "ports": self.ports, "client_ports": self.client,
                "accel_requested": a.accel, "kvm_probe": self.kvm_probe},
                "run_dir": str(self.out)}
            for info, key in ((Path(self.qemu).parent / "build-info.json", "qemu_build"),
                              (self.initrd.parent / "build-info.json", "guest_build")):
                if info.exists():
                    self.meta[key] = json.loads(info.read_text())
            v = subprocess.run([self.qemu, "--version"], capture_output=True, text=True, timeout=30)
            self.meta["qemu"] = v.stdout.splitlines()[0] if v.stdout else v.stderr.strip()
            for d in ("primary.qcow2", "secondary-parent.qcow2", "secondary-active.qcow2",
                      "secondary-hidden.qcow2"):
                subprocess.run([self.qemu_img, "create", "-q", "-f", "qcow2", str(self.out / d), a.disk_size],
                               check=True, timeout=60)
            pcmd, scmd = self.cmdlines()
            with open(self.out / "cmdlines.txt", "w") as f:
                for name, cmd in (("primary", pcmd), ("secondary", scmd)):
                    f.write(f"# {name}\n" + " \\\n  ".join(cmd) + "\n\n")
            self.start_tcpdump()
            self.p["primary"] = self.procs.start("primary", pcmd, stdout=open(self.out / "primary.out", "wb"))
            self.ev("start-primary", pid=self.p["primary"].pid)
            time.sleep(0.5)
            self.p["secondary"] = self.procs.start("secondary", scmd, stdout=open(self.out / "secondary.out", "wb"))
            self.ev("start-secondary", pid=self.p["secondary"].pid)
            self.q["secondary"] = Qmp("secondary", self.out / "secondary-qmp.sock", self.qmplog)
            self.q["primary"] = Qmp("primary", self.out / "primary-qmp.sock", self.qmplog)
            self.q["secondary"].connect(30, lambda: self.alive("secondary"))
            self.q["primary"].connect(30, lambda: self.alive("primary"))
            self.ev("qmp-connected")
            kvm = {s: self.q[s].cmd("query-kvm") for s in ("primary", "secondary")}
            self.meta["kvm"] = kvm
            qs, qp = self.q["secondary"], self.q["primary"]
            qs.cmd("nbd-server-start", addr={"type": "inet", "data": {"host": "127.0.0.1",
                                                                         "port": str(self.ports["nbd"])}})
            qs.cmd("nbd-server-add", device="parent0", writable=True)
            self.ev("secondary-nbd-ready")
            qp.cmd("human-monitor-command", **{"command-line":
                   "drive_add -n buddy driver=replication,mode=primary,file.driver=nbd,file.host=127.0.0.1,"
                   f"file.port={self.ports['nbd']},file.export=parent0,node-name=replication0"})
            qp.cmd("x-blockdev-change", parent="colo-disk0", node="replication0")
            qp.cmd("migrate-set-capabilities", capabilities=[{"capability": "x-colo", "state": True}])
            if a.checkpoint_delay is not None:
                qp.cmd("migrate-set-parameters", **{"x-checkpoint-delay": a.checkpoint_delay})
            self.meta["migrate_parameters"] = qp.cmd("query-migrate-parameters")
            self.delay_ms = int(self.meta["migrate_parameters"].get("x-checkpoint-delay", 20000))
            t_mig = now()
            self.ev("migrate")
            qp.cmd("migrate", uri=f"tcp:127.0.0.1:{self.ports['migrate']}")
            st = None
            while now() - t_mig < a.migrate_timeout:
                st = qp.cmd("query-migrate")
                if st.get("status") == "colo":
                    break
                if st.get("status") in ("failed", "cancelled", "completed"):
                    raise RigError(f"migration ended {st.get('status')!r} instead of entering COLO: "
                                   f"{st.get('error-desc', '')}".rstrip(": "))
                self.check_pair()
                time.sleep(0.1)
            else:
                raise RigError(f"not in COLO {a.migrate_timeout:.0f} s after migrate (status {st})")
            t_colo = now()
            self.meta["first_query_migrate"] = st
            self.ev("migrate-status", status="colo", secs=t_colo - t_mig)
            self.meta["colo_status_start"] = {s: self.q[s].cmd("query-colo-status") for s in ("primary", "secondary")}
            self.migrate_to_colo_s = t_colo - t_mig
            # The guest boots under COLO (the primary was started with -S).
            if not self.wait_console("primary", "guestsrv: listening", t_colo + a.boot_timeout):
                raise RigError(f"guest did not come up on the primary in {a.boot_timeout:.0f} s under COLO")
            self.boot_s = now() - t_colo
            self.ev("primary-ready-under-colo", boot_s=self.boot_s)
            seen = self.wait_console("secondary", "guestsrv: listening", now() + 10)
            self.ev("secondary-console-ready", seen=seen)
            self.phase_tag = "colo-up"
            self.status("colo-up")
            threading.Thread(target=self.status_loop, daemon=True, name="status").start()
            self.drive()
            self.check_pair()
            self.check_consoles()
        except RigError as e:
            self.error = self.error or str(e)
        except KeyboardInterrupt:
            self.error = self.error or "interrupted"
        except Exception as e:  # noqa: BLE001 - report, then tear down
            self.error = self.error or f"{type(e).__name__}: {e}"
        finally:
            # no second interrupt in the middle of teardown
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            self.stop_status.set()
            try:
                if self.q.get("primary") and self.alive("primary") and self.alive("secondary"):
                    rec = self.status("end")
                    final = {"primary_migrate": rec.get("primary_migrate"),
                             "primary_colo": rec.get("primary_colo"),
                             "secondary_colo": rec.get("secondary_colo")}
            except Exception:  # noqa: BLE001
                pass
            alive = {s: self.alive(s) for s in ("primary", "secondary") if s in self.p}
            cpu_total = self.cpu()
            self.ev("shutdown")
            exit_codes = self.teardown()
            self.meta.update({"final": final, "alive": alive, "cpu_s_total": cpu_total,
                              "wall_s": now() - wall0, "exit": exit_codes, "error": self.error})
            (self.out / "meta.json").write_text(json.dumps(self.meta, indent=1) + "\n")
            try:
                self.write_checkpoints_and_summary(final, alive, cpu_total, now() - wall0)
            except Exception as e:  # noqa: BLE001
                self.error = self.error or f"summary failed: {type(e).__name__}: {e}"
            self.events.close()
            self.qmplog.close()
            self.statusf.close()
        if self.error:
            print(f"colo-rig: error: {self.error}", file=sys.stderr)
            return 1
        return 0

    # ---- traffic
    def drive(self) -> None:
        a = self.a
        self.phase_tag = "idle"
        self.ev("idle-begin", secs=a.idle)
        self.cpu_marks.append((now(), self.cpu()))
        self.sleep_checked(a.idle)
        self.ev("idle-end")
        self.phase_rows.append({"phase": "idle(pre-traffic)", "t0": self.cpu_marks[-1][0], "t1": now(),
                                "cpu0": self.cpu_marks[-1][1], "cpu1": self.cpu(), "lat": [], "n": 0, "ok": 0})
        self.ev("traffic-begin", phases=a.traffic)
        tlog = JsonlLog(self.out / "traffic.jsonl")
        tout = open(self.out / "traffic.out", "w", buffering=1)
        C = self.client
        summary = []
        fails = 0
        completed = False
        try:
            for kind, n in self.phases:
                self.phase_tag = "traffic"
                t0, cpu0 = now(), self.cpu()
                if kind == "idle":
                    self.ev("phase-begin:idle", n=n)
                    self.sleep_checked(n)
                    self.ev("phase-end:idle")
                    summary.append({"phase": "idle", "secs": n})
                    self.phase_rows.append({"phase": "idle", "t0": t0, "t1": now(), "cpu0": cpu0,
                                            "cpu1": self.cpu(), "lat": [], "n": 0, "ok": 0})
                    continue
                self.ev(f"phase-begin:{kind}", n=n)
                lats, ok_n, consecutive_fail = [], 0, 0
                for i in range(n):
                    self.check_pair()
                    if self.error:
                        raise RigError(self.error)
                    if consecutive_fail >= 5:
                        raise RigError(f"{kind}: 5 requests in a row failed; see traffic.jsonl")
                    t_send = now()
                    rec = {"phase": kind, "i": i, "t_send": t_send}
                    try:
                        if kind == "det":
                            reply = tcp_request(C["tcp80"], f"/det/{i}", a.request_timeout)
                            ok = reply.startswith("HTTP/1.0 200") and "det ok" in reply
                        elif kind == "clk":
                            reply = tcp_request(C["tcp81"], f"/clk/{i}", a.request_timeout)
                            ok = reply.startswith("HTTP/1.0 200") and "clk req" in reply
                        elif kind == "udp_det":
                            reply = udp_request(C["udp7"], f"udp_det-{i}", a.request_timeout)
                            ok = reply.startswith("ECHO ")
                        elif kind == "udp_clk":
                            reply = udp_request(C["udp8"], f"udp_clk-{i}", a.request_timeout)
                            ok = reply.startswith("STAT ")
                        else:
                            reply = udp_request(C["udp9"], f"udp_disk-{i}", a.request_timeout)
                            ok = reply.startswith("DISK ") and " ok " in reply
                        rec.update(latency_s=now() - t_send, ok=ok, reply=reply)
                    except OSError as e:
                        rec.update(latency_s=now() - t_send, ok=False, error=f"{type(e).__name__}: {e}")
                    tlog.write(rec)
                    if rec["ok"]:
                        ok_n += 1
                        consecutive_fail = 0
                        lats.append(rec["latency_s"] * 1000)
                    else:
                        consecutive_fail += 1
                secs = now() - t0
                row = {"phase": kind, "n": n, "ok": ok_n, "fail": n - ok_n, "secs": round(secs, 3),
                       "p50_ms": round(pct(lats, 50), 2) if lats else None,
                       "p95_ms": round(pct(lats, 95), 2) if lats else None,
                       "max_ms": round(max(lats), 2) if lats else None}
                fails += n - ok_n
                self.ev(f"phase-end:{kind}", **row)
                tout.write(json.dumps(row) + "\n")
                summary.append(row)
                self.phase_rows.append({"phase": kind, "t0": t0, "t1": now(), "cpu0": cpu0, "cpu1": self.cpu(),
                                        "lat": lats, "n": n, "ok": ok_n})
            tout.write(json.dumps({"summary": summary}) + "\n")
            completed = True
        finally:
            tlog.close()
            tout.close()
            self.ev("traffic-end", rc=0 if completed and not fails else 1)
        self.phase_tag = "end"
        if fails:
            raise RigError(f"{fails} of {sum(n for k, n in self.phases if k != 'idle')} requests failed; "
                           "see traffic.jsonl")

    def sleep_checked(self, secs: float) -> None:
        end = now() + secs
        while now() < end:
            self.check_pair()
            if self.error:
                raise RigError(self.error)
            time.sleep(min(0.5, max(0.0, end - now())))

    # ---- teardown
    def teardown(self) -> dict:
        codes = {}
        for side in ("primary", "secondary"):
            if side not in self.p:
                continue
            if self.alive(side) and side in self.q and self.q[side].sock is not None and not self.q[side].broken:
                try:
                    self.q[side].cmd("quit", timeout=5)
                except RigError:
                    pass
                try:
                    self.p[side].wait(self.a.quit_timeout)
                except subprocess.TimeoutExpired:
                    pass
            # still there (hung QEMU, e.g. a deadlocked COLO thread): SIGTERM, then SIGKILL, by pid
            codes[side] = self.procs.stop(side, grace=5.0)
        for q in self.q.values():
            q.close()
        for name in ("tcpdump-lo-chardevs.pcap", "tcpdump-lo-client.pcap"):
            self.procs.stop(name, grace=5.0)
        self.procs.stop_all()
        for s in ("primary", "secondary"):
            (self.out / f"{s}-qmp.sock").unlink(missing_ok=True)
        if not self.a.keep_disks:
            for d in ("primary.qcow2", "secondary-parent.qcow2", "secondary-active.qcow2", "secondary-hidden.qcow2"):
                (self.out / d).unlink(missing_ok=True)
        return codes

    # ---- derived records
    def write_checkpoints_and_summary(self, final, alive, cpu_total, wall) -> None:
        prim = parse_trace(self.out / "primary-trace.log")
        sec = parse_trace(self.out / "secondary-trace.log")
        delay = getattr(self, "delay_ms", 20000)
        cps, incomplete = derive_checkpoints(prim, delay)
        with open(self.out / "checkpoints.jsonl", "w") as f:
            for c in cps:
                f.write(json.dumps(c) + "\n")
        trig: dict[str, int] = {}
        for c in cps:
            trig[c["trigger"]] = trig.get(c["trigger"], 0) + 1
        pages, flush_ms = secondary_flushes(sec)
        compare_events: dict[str, int] = {}
        different = 0
        for t, ev, args in prim:
            if ev.startswith("colo_compare") or ev == "colo_old_packet_check_found":
                compare_events[ev] = compare_events.get(ev, 0) + 1
                if ev == "colo_compare_main" and "packet different" in args:
                    different += 1
        phases = []
        for r in self.phase_rows:
            secs = r["t1"] - r["t0"]
            inside = [c for c in cps if r["t0"] <= c["t_request"] < r["t1"]]
            tr: dict[str, int] = {}
            for c in inside:
                tr[c["trigger"]] = tr.get(c["trigger"], 0) + 1
            cpu_pct = {}
            for s in ("primary", "secondary"):
                c0, c1 = (r["cpu0"] or {}).get(s), (r["cpu1"] or {}).get(s)
                cpu_pct[s] = round((c1 - c0) / secs * 100, 1) if c0 is not None and c1 is not None and secs > 0 else None
            phases.append({"phase": r["phase"], "secs": round(secs, 2), "checkpoints": len(inside),
                           "checkpoints_per_min": round(len(inside) / secs * 60, 1) if secs > 0 else None,
                           "triggers": tr, "requests": r["n"], "ok": r["ok"],
                           "lat_p50_ms": round(pct(r["lat"], 50), 1) if r["lat"] else None,
                           "lat_p95_ms": round(pct(r["lat"], 95), 1) if r["lat"] else None,
                           "cpu_pct_approx": cpu_pct})
        a = self.a
        summary = {
            "run_dir": str(self.out),
            "settings": {"accel": getattr(self, "accel", None), "qemu": getattr(self, "qemu", None),
                         "start": "paused", "disk": "virtio", "checkpoint_delay": a.checkpoint_delay,
                         "compare_timeout": a.compare_timeout, "scan_cycle": a.expired_scan_cycle, "mem": a.mem,
                         "traffic": a.traffic, "idle": a.idle, "port_base": a.port_base},
            "kvm": self.meta.get("kvm"),
            "error": self.error,
            "alive_at_end": alive,
            "migrate_to_colo_s": getattr(self, "migrate_to_colo_s", None),
            "boot_to_ready_s": getattr(self, "boot_s", None),
            "checkpoints": len(cps),
            "incomplete_checkpoint": incomplete,
            "checkpoint_triggers": trig,
            "checkpoint_total_ms": stats([c["total_ms"] for c in cps]),
            "checkpoint_vm_paused_ms": stats([c["pause_ms"] for c in cps if c["pause_ms"] is not None]),
            "secondary_flush_dirty_pages": stats(pages, 0),
            "secondary_flush_ms": stats(flush_ms),
            "compare_events": compare_events,
            "compare_packet_different": different,
            "phases": phases,
            "final_query_migrate_status": (final.get("primary_migrate") or {}).get("status"),
            "final_dirty_sync_count": ((final.get("primary_migrate") or {}).get("ram") or {}).get("dirty-sync-count"),
            "final_colo_status": {k: final.get(k) for k in ("primary_colo", "secondary_colo")},
            "cpu_s_total": cpu_total,
            "wall_s": wall,
        }
        (self.out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")


def redact(run_dir: Path, prefixes: list[str]) -> int:
    """Replace machine paths by <tmp> in a run's text files, as in the reference's recorded runs."""
    run_dir = run_dir.resolve()
    pairs = {str(Path(p).resolve()): "<tmp>" for p in prefixes}
    try:  # where the run was recorded, if it has been moved since
        recorded = json.loads((run_dir / "meta.json").read_text()).get("run_dir")
        if recorded and recorded != "<tmp>" and not recorded.startswith("<tmp>/"):
            pairs[recorded] = "<tmp>/" + Path(recorded).name
    except (OSError, ValueError):
        pass
    prefixes = sorted(pairs, key=len, reverse=True)
    changed = 0
    for f in sorted(run_dir.iterdir()):
        if f.suffix == ".pcap" or not f.is_file():
            continue
        text = f.read_text(errors="surrogateescape")
        new = text
        for p in prefixes:
            new = new.replace(p, pairs[p])
        if new != text:
            f.write_text(new, errors="surrogateescape")
            changed += 1
    print(f"redacted {changed} files in {run_dir} ({', '.join(prefixes)} -> <tmp>)")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="colo_rig.py", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="one recorded run of a COLO pair")
    r.add_argument("--out", required=True, help="run directory (created; files in it are overwritten)")
    r.add_argument("--compare-timeout", type=int, default=None, metavar="MS",
                   help="colo-compare compare_timeout (QEMU default 3000)")
    r.add_argument("--expired-scan-cycle", type=int, default=None, metavar="MS",
                   help="colo-compare expired_scan_cycle (QEMU default 3000)")
    r.add_argument("--checkpoint-delay", type=int, default=None, metavar="MS",
                   help="migration parameter x-checkpoint-delay (QEMU default 20000)")
    r.add_argument("--traffic", default=DEFAULT_TRAFFIC,
                   help=f"phases KIND:N in order, KIND one of {', '.join(PHASE_KINDS)} (idle:N = N seconds); "
                        f"default {DEFAULT_TRAFFIC}")
    r.add_argument("--idle", type=float, default=20.0, metavar="S", help="idle seconds before the traffic")
    r.add_argument("--accel", choices=("auto", "kvm", "tcg"), default="auto")
    r.add_argument("--qemu", help="qemu-system-x86_64 (default: the newest in the cache; stock QEMU with KVM)")
    r.add_argument("--guest", help="dir with vmlinuz and initrd.gz (default: the newest in the cache)")
    r.add_argument("--cache", default=os.environ.get("RIG_CACHE", str(DEFAULT_CACHE)))
    r.add_argument("--port-base", type=int, default=9000,
                   help="ports used: BASE+1,+3,+4,+5 (chardevs), +998 (migration), +999 (NBD), "
                        "+9080,+9081 (TCP), +9007,+9008,+9009 (UDP); default 9000 as the reference")
    r.add_argument("--cpu", default="qemu64")
    r.add_argument("--mem", type=int, default=256, metavar="MiB")
    r.add_argument("--disk-size", default="64M")
    r.add_argument("--boot-timeout", type=float, default=120.0)
    r.add_argument("--migrate-timeout", type=float, default=60.0)
    r.add_argument("--request-timeout", type=float, default=10.0)
    r.add_argument("--quit-timeout", type=float, default=10.0)
    r.add_argument("--no-tcpdump", action="store_true")
    r.add_argument("--keep-disks", action="store_true")
    rd = sub.add_parser("redact", help="replace machine paths by <tmp> in a run's text files (for sharing)")
    rd.add_argument("dir")
    rd.add_argument("--prefix", action="append", default=None,
                    help="path to replace (repeatable); default: the run dir's parent, this checkout, "
                         "the rig cache")
    a = ap.parse_args(argv)
    if a.cmd == "redact":
        d = Path(a.dir)
        return redact(d, a.prefix or [str(d.resolve().parent), str(HERE.parent),
                                      os.environ.get("RIG_CACHE", str(DEFAULT_CACHE))])
    if a.port_base < 1 or a.port_base + 9999 > 65535:
        ap.error("--port-base out of range")
    rig = Rig(a)

    def on_signal(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    return rig.run()


if __name__ == "__main__":
    sys.exit(main())
