#!/usr/bin/env python3
"""Make sample_pcaps/chardev-lo.pcap and chardev-lo-t1000.pcap: loopback captures of the real QEMU
7.2 colo-compare's chardev sockets while it compares the sample pair (primary.pcap / secondary.pcap),
once with compare_timeout=200/expired_scan_cycle=100 and once with 1000/200. Standard library only.

    python3 sample_pcaps/make_chardev.py            (as root: tcpdump, and a private network namespace)

The vnet variant, chardev-lo-vnet.pcap (one run, colo-compare with vnet_hdr_support=on, every
input frame preceded by a 12-byte virtio-net header)::

    python3 sample_pcaps/make_chardev.py --out sample_pcaps/chardev-lo-vnet.pcap \
        --compare-timeout 200 --expired-scan-cycle 100 --vnet-hdr-len 12

What it does, for each run:

1. (Once.) Re-executes itself inside a fresh, private network namespace (``unshare --net``; its
   loopback is brought up and is the only interface), so nothing else on the host can use or see
   ports 9001/9004/9005/9009 and nothing leaves the namespace. ``--host-netns`` skips this.
2. Starts ``tcpdump -i lo -s 0 -U -w OUT 'tcp port 9001 or tcp port 9004 or tcp port 9005 or tcp
   port 9009'`` and waits until it prints "listening on".
3. Listens on 127.0.0.1:9001 (primary_in), :9004 (secondary_in), :9005 (outdev), :9009 (notify_dev)
   and on a unix socket for QMP, then starts QEMU, which connects to each as a **client**
   (``-chardev socket,host=127.0.0.1,port=...,nodelay=on``)::

       qemu-system-x86_64 -machine none -nodefaults -display none -accel tcg
         -chardev socket,id=qmp0,path=$TMP/qmp.sock -mon chardev=qmp0,mode=control
         -chardev socket,id=pri_in,host=127.0.0.1,port=9001,nodelay=on
         -chardev socket,id=sec_in,host=127.0.0.1,port=9004,nodelay=on
         -chardev socket,id=out0,host=127.0.0.1,port=9005,nodelay=on
         -chardev socket,id=notify0,host=127.0.0.1,port=9009,nodelay=on
         -object iothread,id=iothread0
         -object colo-compare,id=comp0,primary_in=pri_in,secondary_in=sec_in,outdev=out0,
                 iothread=iothread0,notify_dev=notify0,compare_timeout=CT,expired_scan_cycle=SCAN
                 [,vnet_hdr_support=on   -- only with --vnet-hdr-len]

4. Xen-style hello on notify_dev: sends COLO_USERSPACE_PROXY_INIT, waits for COLO_COMPARE_GET_XEN_INIT.
5. Replays every frame of primary.pcap into primary_in and of secondary.pcap into secondary_in,
   merged in capture-timestamp order and written at the captured relative times (gaps longer
   than --max-gap-ms are shortened to it). Framing: 4-byte big-endian length + frame (no vnet
   header), one ``sendall`` per frame, TCP_NODELAY.
   With ``--vnet-hdr-len N`` (colo-compare gets ``vnet_hdr_support=on``) each input frame is
   ``u32be length | u32be N | N-byte vnet header + frame``, the length counting the header
   (net_fill_rstate). The header is VNET_HDR_FILL (all zeros; see vnet_header()). Messages *to*
   notify_dev then carry the vnet word too (``u32be len | u32be 0 | msg``: colo-compare parses
   notify_dev with the same flag); messages *from* it never do. outdev carries the vnet word,
   and the released frames keep their vnet header.
6. Meanwhile, like a Xen COLO frame: every DO_CHECKPOINT read on notify_dev is answered with one
   COLO_CHECKPOINT, --checkpoint-ms (20) after it was read (a simulated checkpoint; each request
   gets its own answer, nothing is coalesced). COLO_CHECKPOINT makes colo-compare flush. outdev is
   read and discarded (tcpdump has it).
7. After the last frame: waits until every primary frame came back on outdev, and --tail-ms more
   (so late timeout checkpoints are recorded too), then QMP ``quit``; stops tcpdump.
8. Reads its own pcap back, reassembles the four TCP streams, decodes the chardev framing and
   checks it against what was sent and received; prints frame counts per port and stream.
   With --vnet-hdr-len it also checks every vnet word (N on the inputs and outdev, 0 on the
   notify messages to QEMU) and that outdev holds exactly the primary frames, header included.
   ``--check-only`` repeats the check on an existing file (give the same --vnet-hdr-len).
"""

from __future__ import annotations

import argparse
import bisect
import collections
import json
import os
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
PORTS = {"primary_in": 9001, "secondary_in": 9004, "outdev": 9005, "notify_dev": 9009}
DO_CHECKPOINT = b"DO_CHECKPOINT"
COLO_CHECKPOINT = b"COLO_CHECKPOINT"
PROXY_INIT = b"COLO_USERSPACE_PROXY_INIT"
XEN_INIT = b"COLO_COMPARE_GET_XEN_INIT"
NETNS_ENV = "COLO_SAMPLE_PRIVATE_NETNS"


# --------------------------------------------------------------------------- pcap reading
def read_pcap(path):
    """Yield (ts_seconds_float, frame_bytes, linktype) from a classic pcap (us/ns, either byte order)."""
    with open(path, "rb") as f:
        gh = f.read(24)
        magic = gh[:4]
        if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
            e = "<"
        elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
            e = ">"
        else:
            raise ValueError(f"{path}: not a classic pcap file")
        div = 1e9 if magic in (b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d") else 1e6
        linktype = struct.unpack(e + "I", gh[20:24])[0] & 0x0FFFFFFF
        while True:
            h = f.read(16)
            if len(h) < 16:
                return
            sec, frac, incl, orig = struct.unpack(e + "IIII", h)
            data = f.read(incl)
            if incl != orig:
                raise ValueError(f"{path}: truncated frame (snaplen); cannot replay it honestly")
            yield sec + frac / div, data, linktype


def vnet_header(n: int) -> bytes:
    """The N-byte vnet header put in front of every input frame with --vnet-hdr-len N.

    All zeros: that is what a Linux guest's virtio_net driver writes (xmit_skb) for a frame like
    the pair's, which has no GSO and a complete checksum (make_pair.sh turns tx offloads off):
    virtio_net_hdr {flags 0, gso_type VIRTIO_NET_HDR_GSO_NONE, hdr_len 0, gso_size 0,
    csum_start 0, csum_offset 0} followed, for N=12 (virtio_net_hdr_mrg_rxbuf), by num_buffers 0,
    which the driver zeroes on transmit; for N=20 (virtio_net_hdr_v1_hash) by zeroed hash fields.
    The same header goes in front of the primary and the secondary frames; colo-compare skips it
    in every comparison, and releases it unchanged on outdev.
    """
    return bytes(n)


def frame_msg(payload: bytes, vnet_len: int | None = None) -> bytes:
    """Chardev framing: ``u32be len | payload``, or ``u32be len | u32be vnet_len | payload`` when
    vnet_len is not None (vnet_hdr_support=on; len counts the payload only, which for a frame
    already includes its vnet header)."""
    if vnet_len is None:
        return struct.pack("!I", len(payload)) + payload
    return struct.pack("!II", len(payload), vnet_len) + payload


def decode_msgs(stream: bytes, vnet: bool = False):
    """Split a chardev byte stream into messages; returns (messages, trailing byte count).

    Without ``vnet`` (4-byte BE length + payload) each message is the payload bytes. With ``vnet``
    (4-byte BE length + 4-byte BE vnet_hdr_len + payload) each one is ``(vnet_hdr_len, payload)``.
    """
    out, i, w = [], 0, 8 if vnet else 4
    while i + w <= len(stream):
        n = struct.unpack("!I", stream[i:i + 4])[0]
        if i + w + n > len(stream):
            break
        if vnet:
            out.append((struct.unpack("!I", stream[i + 4:i + 8])[0], stream[i + 8:i + 8 + n]))
        else:
            out.append(stream[i + 4:i + 4 + n])
        i += w + n
    return out, len(stream) - i


# --------------------------------------------------------------------------- the run
class Run:
    def __init__(self, args, out, compare_timeout, expired_scan_cycle, vnet_hdr_len=None):
        self.args = args
        self.out = out
        self.compare_timeout = compare_timeout
        self.expired_scan_cycle = expired_scan_cycle
        # None: vnet_hdr_support off (no vnet word anywhere). N: on, N-byte header on every frame.
        self.vnet = vnet_hdr_len
        self.vnet_hdr = vnet_header(vnet_hdr_len) if vnet_hdr_len is not None else b""
        # The vnet word on messages to notify_dev (0: they have no vnet header), None when off.
        self.notify_vnet = 0 if vnet_hdr_len is not None else None
        self.tmp = tempfile.mkdtemp(prefix="colo-chardev-")
        self.qemu = None
        self.tcpdump = None
        self.conns = {}
        self.qmp_buf = b""
        self.lock = threading.Lock()
        self.stop_io = threading.Event()
        self.answering = True
        self.out_frames = []          # (monotonic s, frame), or (monotonic s, (vnet_len, frame)) with vnet
        self.notify_in = []           # (monotonic s, msg) read from QEMU
        self.notify_out = []          # (monotonic s, msg) written to QEMU
        self.pending = []             # monotonic due times of COLO_CHECKPOINT answers
        self.io_error = None

    # -- processes
    def start_tcpdump(self):
        flt = " or ".join(f"tcp port {p}" for p in PORTS.values())
        cmd = ["tcpdump", "-i", "lo", "-s", "0", "-U", "-w", self.out, flt]
        if os.geteuid() == 0:
            cmd[1:1] = ["-Z", "root"]
        print("+", " ".join(cmd[:-1]), repr(flt), flush=True)
        self.tcpdump = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.PIPE)
        deadline = time.monotonic() + 10
        line = b""
        while time.monotonic() < deadline:
            r, _, _ = select.select([self.tcpdump.stderr], [], [], 0.1)
            if r:
                line = self.tcpdump.stderr.readline()
                if b"listening on" in line:
                    print("tcpdump:", line.decode().strip(), flush=True)
                    # Keep draining its stderr so it never blocks.
                    threading.Thread(target=self._drain_tcpdump, daemon=True).start()
                    return
                if not line and self.tcpdump.poll() is not None:
                    break
        raise RuntimeError(f"tcpdump did not start: {line!r}")

    def _drain_tcpdump(self):
        self.tcpdump_tail = []
        for line in self.tcpdump.stderr:
            self.tcpdump_tail.append(line.decode().strip())

    def stop_tcpdump(self):
        if self.tcpdump is None:
            return
        if self.tcpdump.poll() is None:
            time.sleep(0.3)
            self.tcpdump.send_signal(signal.SIGINT)
            try:
                self.tcpdump.wait(10)
            except subprocess.TimeoutExpired:
                self.tcpdump.kill()
                self.tcpdump.wait()
        time.sleep(0.1)
        for line in getattr(self, "tcpdump_tail", []):
            print("tcpdump:", line)
        self.tcpdump = None

    def qemu_cmd(self):
        a = self.args
        opts = ("colo-compare,id=comp0,primary_in=pri_in,secondary_in=sec_in,outdev=out0,"
                f"iothread=iothread0,notify_dev=notify0,compare_timeout={self.compare_timeout},"
                f"expired_scan_cycle={self.expired_scan_cycle}")
        if self.vnet is not None:
            opts += ",vnet_hdr_support=on"
        cmd = [a.qemu, "-machine", "none", "-nodefaults", "-display", "none", "-accel", "tcg",
               "-chardev", f"socket,id=qmp0,path={self.tmp}/qmp.sock", "-mon", "chardev=qmp0,mode=control"]
        for cid, name in (("pri_in", "primary_in"), ("sec_in", "secondary_in"), ("out0", "outdev"),
                          ("notify0", "notify_dev")):
            cmd += ["-chardev", f"socket,id={cid},host=127.0.0.1,port={PORTS[name]},nodelay=on"]
        return cmd + ["-object", "iothread,id=iothread0", "-object", opts]

    def start_qemu(self):
        listeners = {}
        for name, port in PORTS.items():
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", port))
            s.listen(1)
            listeners[name] = s
        q = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        q.bind(os.path.join(self.tmp, "qmp.sock"))
        q.listen(1)
        listeners["qmp"] = q
        cmd = self.qemu_cmd()
        print("+", " ".join(cmd), flush=True)
        self.qemu_err = open(os.path.join(self.tmp, "qemu.stderr"), "wb")
        self.qemu = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=self.qemu_err, stderr=self.qemu_err)
        deadline = time.monotonic() + 15
        while len(self.conns) < len(listeners):
            if self.qemu.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("QEMU did not connect: " + self.qemu_stderr())
            r, _, _ = select.select([s for n, s in listeners.items() if n not in self.conns], [], [], 0.05)
            for s in r:
                name = next(n for n, x in listeners.items() if x is s)
                c, _ = s.accept()
                if name != "qmp":
                    c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                self.conns[name] = c
        for s in listeners.values():
            s.close()
        greeting = self.qmp_read()
        assert "QMP" in greeting, greeting
        assert "return" in self.qmp("qmp_capabilities")
        names = ("compare_timeout", "expired_scan_cycle", "max_queue_size")
        if self.vnet is not None:
            names += ("vnet_hdr_support",)
        props = {p: self.qmp("qom-get", path="/objects/comp0", property=p).get("return") for p in names}
        if self.vnet is not None and props["vnet_hdr_support"] is not True:
            raise RuntimeError(f"colo-compare did not take vnet_hdr_support=on: {props}")
        version = self.qmp("query-version").get("return", {}).get("qemu", {})
        print(f"QEMU {version.get('major')}.{version.get('minor')}.{version.get('micro')} up, "
              f"colo-compare properties: {props}", flush=True)

    def qemu_stderr(self):
        try:
            with open(os.path.join(self.tmp, "qemu.stderr"), "rb") as f:
                return f.read().decode("utf-8", "replace")[-2000:]
        except OSError:
            return ""

    def qmp_read(self, timeout=10.0):
        sock = self.conns["qmp"]
        deadline = time.monotonic() + timeout
        while b"\n" not in self.qmp_buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise RuntimeError("QMP timeout")
            r, _, _ = select.select([sock], [], [], left)
            if r:
                chunk = sock.recv(65536)
                if not chunk:
                    raise EOFError("QMP closed")
                self.qmp_buf += chunk
        line, self.qmp_buf = self.qmp_buf.split(b"\n", 1)
        return json.loads(line)

    def qmp(self, cmd, **arguments):
        msg = {"execute": cmd}
        if arguments:
            msg["arguments"] = arguments
        self.conns["qmp"].sendall(json.dumps(msg).encode() + b"\r\n")
        while True:
            reply = self.qmp_read()
            if "event" not in reply:
                return reply

    def stop_qemu(self):
        if self.qemu is None:
            return
        if self.qemu.poll() is None:
            try:
                self.qmp("quit")
            except (OSError, EOFError, RuntimeError, AssertionError):
                pass
            try:
                self.qemu.wait(5)
            except subprocess.TimeoutExpired:
                print("QEMU did not quit; killing pid", self.qemu.pid)
                self.qemu.kill()
                self.qemu.wait()
        print(f"QEMU exited with status {self.qemu.returncode}")
        err = self.qemu_stderr().strip()
        if err:
            print("QEMU stderr:", err)
        self.qemu = None

    # -- notify / outdev loop (its own thread; the only writer of notify_dev after the hello)
    def io_loop(self):
        bufs = {"outdev": b"", "notify_dev": b""}
        socks = {self.conns["outdev"]: "outdev", self.conns["notify_dev"]: "notify_dev"}
        ckpt = self.args.checkpoint_ms / 1000.0
        try:
            while not self.stop_io.is_set():
                now = time.monotonic()
                while self.pending and self.pending[0] <= now:
                    self.pending.pop(0)
                    if self.answering:
                        self.conns["notify_dev"].sendall(frame_msg(COLO_CHECKPOINT, self.notify_vnet))
                        self.notify_out.append((time.monotonic(), COLO_CHECKPOINT))
                timeout = 0.05 if not self.pending else max(0.0, min(0.05, self.pending[0] - now))
                r, _, _ = select.select(list(socks), [], [], timeout)
                for s in r:
                    name = socks[s]
                    chunk = s.recv(1 << 20)
                    t = time.monotonic()
                    if not chunk:
                        return
                    data = bufs[name] + chunk
                    # outdev carries the vnet word with vnet_hdr_support=on; notify_dev from QEMU never.
                    msgs, rest = decode_msgs(data, vnet=name == "outdev" and self.vnet is not None)
                    bufs[name] = data[len(data) - rest:] if rest else b""
                    for m in msgs:
                        if name == "outdev":
                            self.out_frames.append((t, m))
                        else:
                            self.notify_in.append((t, m))
                            if m == DO_CHECKPOINT:
                                self.pending.append(t + ckpt)
        except OSError as e:
            self.io_error = e

    # -- the replay
    def load_frames(self):
        frames = []
        for side, path in ((0, self.args.primary), (1, self.args.secondary)):
            for i, (ts, data, lt) in enumerate(read_pcap(path)):
                if lt != 1:
                    raise ValueError(f"{path}: link type {lt}, expected Ethernet")
                frames.append((ts, side, i, data))
        frames.sort(key=lambda f: (f[0], f[1], f[2]))
        sched, prev_ts, t = [], frames[0][0], 0.0
        max_gap = self.args.max_gap_ms / 1000.0
        compressed = 0
        for ts, side, i, data in frames:
            gap = ts - prev_ts
            if gap > max_gap:
                compressed += 1
                gap = max_gap
            t += gap
            prev_ts = ts
            sched.append((t, side, i, data))
        print(f"replaying {sum(1 for f in sched if f[1] == 0)} primary + "
              f"{sum(1 for f in sched if f[1] == 1)} secondary frames over {sched[-1][0]:.3f} s "
              f"({compressed} gaps shortened to {self.args.max_gap_ms} ms)", flush=True)
        return sched

    def run(self):
        sched = self.load_frames()
        self.sent = {0: [], 1: []}
        self.start_tcpdump()
        self.start_qemu()
        # Xen-style hello (before the io thread owns notify_dev).
        self.conns["notify_dev"].sendall(frame_msg(PROXY_INIT, self.notify_vnet))
        self.notify_out.append((time.monotonic(), PROXY_INIT))
        buf = b""
        deadline = time.monotonic() + 5
        while True:
            msgs, _ = decode_msgs(buf)
            if msgs:
                break
            if time.monotonic() > deadline:
                raise RuntimeError("no answer to COLO_USERSPACE_PROXY_INIT")
            r, _, _ = select.select([self.conns["notify_dev"]], [], [], 0.1)
            if r:
                buf += self.conns["notify_dev"].recv(4096)
        assert msgs == [XEN_INIT] and len(buf) == 4 + len(XEN_INIT), buf
        self.notify_in.append((time.monotonic(), msgs[0]))
        print("notify_dev hello: COLO_USERSPACE_PROXY_INIT -> COLO_COMPARE_GET_XEN_INIT", flush=True)

        io = threading.Thread(target=self.io_loop, daemon=True)
        io.start()
        t0 = time.monotonic() + self.args.lead_in_ms / 1000.0
        late = []
        for t, side, i, data in sched:
            due = t0 + t
            d = due - time.monotonic()
            if d > 0:
                time.sleep(d)
            late.append(time.monotonic() - due)
            if self.vnet is not None:
                data = self.vnet_hdr + data
            self.conns["primary_in" if side == 0 else "secondary_in"].sendall(frame_msg(data, self.vnet))
            self.sent[side].append(data)
        t_last = time.monotonic()
        late.sort()
        print(f"all frames written in {t_last - t0:.3f} s; write lateness median "
              f"{late[len(late) // 2] * 1e3:.3f} ms, max {late[-1] * 1e3:.3f} ms", flush=True)
        n_pri = len(self.sent[0])
        deadline = t_last + self.args.release_wait_ms / 1000.0
        while len(self.out_frames) < n_pri and time.monotonic() < deadline:
            time.sleep(0.05)
        print(f"{len(self.out_frames)} of {n_pri} primary frames released on outdev "
              f"{time.monotonic() - t_last:.3f} s after the last write", flush=True)
        time.sleep(self.args.tail_ms / 1000.0)
        self.answering = False
        t_end = time.monotonic()
        self.stop_qemu()
        self.stop_io.set()
        io.join(5)
        self.t0, self.t_end = t0, t_end
        self.stop_tcpdump()
        if self.io_error:
            raise self.io_error

    def cleanup(self):
        try:
            self.stop_qemu()
        finally:
            self.stop_tcpdump()
            for c in self.conns.values():
                c.close()
            shutil.rmtree(self.tmp, ignore_errors=True)


# --------------------------------------------------------------------------- sanity check
def has_vnet_word(sport, dport, vnet):
    """Whether a direction carries the vnet word when colo-compare has vnet_hdr_support=on:
    everything the script writes to QEMU (primary_in, secondary_in, notify_dev; the script is the
    listener, so its source port is the chardev port) and outdev; not notify_dev from QEMU."""
    return bool(vnet) and (sport in PORTS.values() or dport == PORTS["outdev"])


def reassemble(path, vnet=False):
    """Per-port frame counts, and per direction the chardev messages with the capture time of the
    segment that completed each one: {(sport, dport): [(ts, payload, vnet_word), ...]} plus
    trailing bytes. vnet_word is None on a direction without it (all of them unless ``vnet``)."""
    per_port = collections.Counter()
    per_port_bytes = collections.Counter()
    segs = collections.defaultdict(list)   # (sport, dport) -> [(seq, ts, payload)]
    isn = {}
    n, first, last = 0, None, None
    for ts, fr, lt in read_pcap(path):
        n += 1
        first = ts if first is None else first
        last = ts
        if lt == 1:
            ip = fr[14:]
        elif lt == 113:   # Linux cooked
            ip = fr[16:]
        else:
            raise ValueError(f"unexpected link type {lt}")
        ihl = (ip[0] & 0x0F) * 4
        tcp = ip[ihl:]
        sport, dport, seq, _ack, off = struct.unpack("!HHIIH", tcp[:14])
        port = next(p for p in (sport, dport) if p in PORTS.values())
        per_port[port] += 1
        per_port_bytes[port] += len(fr)
        if off & 0x02:
            isn[(sport, dport)] = seq
        payload = tcp[(off >> 12) * 4:]
        if payload:
            segs[(sport, dport)].append((seq, ts, payload))
    streams = {}
    for key, lst in segs.items():
        base = isn.get(key, min(x[0] for x in lst) - 1)
        buf, pos, msgs = bytearray(), 0, []
        w = 8 if has_vnet_word(*key, vnet) else 4      # length word [+ vnet word]
        for seq, ts, p in sorted(lst, key=lambda x: (x[0] - base) & 0xFFFFFFFF):
            rel = ((seq - base) & 0xFFFFFFFF) - 1
            if rel + len(p) <= len(buf):
                continue                      # retransmission
            buf[rel:rel + len(p)] = p
            while pos + w <= len(buf):
                ln = struct.unpack("!I", buf[pos:pos + 4])[0]
                if pos + w + ln > len(buf):
                    break
                vw = struct.unpack("!I", buf[pos + 4:pos + 8])[0] if w == 8 else None
                msgs.append((ts, bytes(buf[pos + w:pos + w + ln]), vw))
                pos += w + ln
        streams[key] = (msgs, len(buf) - pos, len(buf))
    return n, (last - first if n else 0.0), per_port, per_port_bytes, streams


def check_pcap(path, sent=None, out_frames=None, notify_in=None, notify_out=None, vnet=None):
    """Print frame counts per chardev port and the decoded streams; compare them with what the
    script wrote and read when given. Returns True when everything matched.

    ``vnet`` = N: the capture was made with vnet_hdr_support=on and an N-byte vnet header (``sent``
    then holds the frames with their header, ``out_frames`` (vnet word, frame) pairs). Also checks
    every vnet word (N on the inputs and outdev, 0 on notify messages to QEMU) and, given ``sent``,
    that outdev released exactly the primary frames with their header (as a multiset)."""
    n, dur, per_port, per_port_bytes, streams = reassemble(path, vnet is not None)
    names = {v: k for k, v in PORTS.items()}
    print(f"\n== sanity check of {path}: {n} frames over {dur:.3f} s, {os.path.getsize(path)} bytes")
    ok = True
    for port in sorted(per_port):
        print(f"  tcp port {port} ({names[port]:12s}): {per_port[port]:4d} frames, {per_port_bytes[port]:6d} bytes")
    inputs, ckpts = [], []
    for (sport, dport), (msgs, rest, nbytes) in sorted(streams.items()):
        port = sport if sport in names else dport
        to_qemu = sport in names          # the script listens on the chardev ports; QEMU is the client
        payloads = [m for _, m, _ in msgs]
        words = [vw for _, _, vw in msgs]
        what = collections.Counter(m if port == PORTS["notify_dev"] else b"frame" for m in payloads)
        desc = ", ".join(f"{v} x {k.decode()}" for k, v in sorted(what.items()))
        print(f"  {names[port]:12s} {'script -> QEMU' if to_qemu else 'QEMU -> script'}: "
              f"{nbytes} stream bytes, {len(msgs)} messages ({desc}), {rest} trailing bytes")
        if port in (PORTS["primary_in"], PORTS["secondary_in"]):
            inputs += [t for t, _, _ in msgs]
        if port == PORTS["notify_dev"] and not to_qemu:
            ckpts = [t for t, m, _ in msgs if m == DO_CHECKPOINT]
        if vnet is not None:
            # The vnet word: N before every frame (inputs, outdev), 0 before notify messages to
            # QEMU (they have no header), none at all on notify messages from QEMU.
            want = (None if not has_vnet_word(sport, dport, True)
                    else 0 if port == PORTS["notify_dev"] else vnet)
            seen = collections.Counter(words)
            good = set(seen) <= {want} and rest == 0
            ok &= good
            shown = ", ".join(f"{c} x {'none' if k is None else k}" for k, c in sorted(
                seen.items(), key=lambda kv: -1 if kv[0] is None else kv[0]))
            print(f"      vnet words: {shown or '-'} ({'as expected' if good else 'UNEXPECTED'}: "
                  f"{'none' if want is None else want})")
            if want:
                hdr = vnet_header(vnet)
                odd = sum(not m.startswith(hdr) for m in payloads)
                ok &= odd == 0
                print(f"      vnet header: {'every frame starts with it' if not odd else f'{odd} frames DO NOT start with it'}"
                      f" ({hdr.hex() or 'empty'})")
            if port == PORTS["outdev"] and sent is not None:
                same = collections.Counter(payloads) == collections.Counter(sent[0])
                ok &= same
                print(f"      {'=' if same else 'DIFFERS FROM'} the {len(sent[0])} primary frames with their vnet "
                      f"header, as a multiset ({sum(a == b for a, b in zip(payloads, sent[0]))} of them at the "
                      f"same position as on primary_in)")
        expect = None
        if port == PORTS["primary_in"] and sent is not None:
            expect = sent[0]
        elif port == PORTS["secondary_in"] and sent is not None:
            expect = sent[1]
        elif port == PORTS["outdev"] and out_frames is not None:
            expect = [m for _, m in out_frames]
            if vnet is not None:           # (vnet word, frame) pairs, as io_loop decoded them
                payloads = list(zip(words, payloads))
        elif port == PORTS["notify_dev"] and notify_in is not None:
            expect = [m for _, m in (notify_out if to_qemu else notify_in)]
        if expect is not None:
            same = payloads == expect and rest == 0
            ok &= same
            print(f"      {'matches' if same else 'DOES NOT MATCH'} what the script "
                  f"{'wrote' if to_qemu else 'read'} ({len(expect)} messages)")
    # Heuristic, for orientation only: a DO_CHECKPOINT within 5 ms after a frame was written to an
    # input was most likely requested by a comparison; the others by the expiry scan (timeouts).
    inputs.sort()
    near = 0
    for t in ckpts:
        i = bisect.bisect_right(inputs, t)
        near += i > 0 and t - inputs[i - 1] < 0.005
    print(f"  DO_CHECKPOINT: {len(ckpts)}; {near} within 5 ms after an input frame (likely "
          f"compare-triggered), {len(ckpts) - near} not (likely expiry-scan timeouts) [heuristic]")
    return ok


# The default runs: the same input, two timeout settings.
DEFAULT_RUNS = (
    ("chardev-lo.pcap", 200, 100),        # short timeout: some frames time out (expiry-scan checkpoints)
    ("chardev-lo-t1000.pcap", 1000, 200),  # compare_timeout=1000: in this traffic nothing gets that old
)


def one_run(args, out, ct, scan, vnet=None):
    print(f"\n######## {os.path.basename(out)}: compare_timeout={ct} expired_scan_cycle={scan}"
          + (f" vnet_hdr_support=on, {vnet}-byte vnet header" if vnet is not None else ""), flush=True)
    run = Run(args, out, ct, scan, vnet)
    try:
        run.run()
    finally:
        run.cleanup()
    do_ckpt = [t for t, m in run.notify_in if m == DO_CHECKPOINT]
    answers = [t for t, m in run.notify_out if m == COLO_CHECKPOINT]
    print(f"\nDO_CHECKPOINT read: {len(do_ckpt)}; COLO_CHECKPOINT written: {len(answers)}; "
          f"outdev frames read: {len(run.out_frames)} of {len(run.sent[0])} primary frames written; "
          f"secondary frames written: {len(run.sent[1])}")
    if do_ckpt:
        rel = [(t - run.t0) for t in do_ckpt]
        print("DO_CHECKPOINT times (s after the first frame was due):",
              " ".join(f"{x:.3f}" for x in rel))
    ok = check_pcap(out, run.sent, run.out_frames, run.notify_in, run.notify_out, vnet)
    print(f"\nsanity check of {os.path.basename(out)}:", "OK" if ok else "FAILED", flush=True)
    return ok


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--primary", default=os.path.join(HERE, "primary.pcap"))
    ap.add_argument("--secondary", default=os.path.join(HERE, "secondary.pcap"))
    ap.add_argument("--out", help="one run into this file (default: the two DEFAULT_RUNS into this folder; "
                                  "with --vnet-hdr-len, chardev-lo-vnet.pcap in this folder)")
    ap.add_argument("--qemu", default="qemu-system-x86_64")
    ap.add_argument("--compare-timeout", type=int, help="ms, with --out (default 200)")
    ap.add_argument("--expired-scan-cycle", type=int, help="ms, with --out (default 100)")
    ap.add_argument("--checkpoint-ms", type=float, default=20.0,
                    help="simulated checkpoint duration before each COLO_CHECKPOINT (default 20)")
    ap.add_argument("--max-gap-ms", type=float, default=1500.0,
                    help="longer gaps between captured frames are shortened to this (default 1500)")
    ap.add_argument("--lead-in-ms", type=float, default=500.0, help="idle time before the first frame")
    ap.add_argument("--release-wait-ms", type=float, default=5000.0,
                    help="after the last frame, wait up to this long for all primaries on outdev")
    ap.add_argument("--tail-ms", type=float, default=1500.0,
                    help="then keep running (and answering checkpoints) this long before quit")
    ap.add_argument("--vnet-hdr-len", type=int, metavar="N",
                    help="one run with vnet_hdr_support=on: every input frame gets the vnet word N and an "
                         "N-byte vnet header (zeros; 12 = virtio_net_hdr_mrg_rxbuf); with --check-only, "
                         "decode the file that way (default: off, no vnet word anywhere)")
    ap.add_argument("--host-netns", action="store_true",
                    help="do not re-execute in a private network namespace (use the host's lo)")
    ap.add_argument("--check-only", action="store_true",
                    help="only run the sanity check on the output file(s) (inputs compared with the pair)")
    args = ap.parse_args()
    vnet = args.vnet_hdr_len
    if vnet is not None:
        if vnet < 0:
            ap.error("--vnet-hdr-len must be 0 or more")
        if vnet > 20:
            print(f"note: QEMU 7.2 rejects frames with vnet_hdr_len {vnet} > 20 in parse_packet_early "
                  f"(primaries passed through at once, secondaries dropped)", flush=True)
    if args.out or args.compare_timeout or args.expired_scan_cycle or vnet is not None:
        default_out = "chardev-lo.pcap" if vnet is None else "chardev-lo-vnet.pcap"
        runs = [(os.path.abspath(args.out or os.path.join(HERE, default_out)),
                 args.compare_timeout or 200, args.expired_scan_cycle or 100)]
    else:
        runs = [(os.path.join(HERE, name), ct, scan) for name, ct, scan in DEFAULT_RUNS]

    if args.check_only:
        hdr = vnet_header(vnet) if vnet is not None else b""
        sent = {side: [hdr + d for _, d, _ in read_pcap(path)]
                for side, path in ((0, args.primary), (1, args.secondary))}
        ok = all([check_pcap(out, sent, vnet=vnet) for out, _, _ in runs])
        return 0 if ok else 1
    if not args.host_netns and os.environ.get(NETNS_ENV) != "1":
        if os.geteuid() != 0:
            sys.exit("make_chardev.py: run as root (or pass --host-netns and have tcpdump rights)")
        env = dict(os.environ, **{NETNS_ENV: "1"})
        cmd = ["unshare", "--net", "--", sys.executable, os.path.abspath(__file__)] + sys.argv[1:]
        print("+", " ".join(cmd), flush=True)
        return subprocess.call(cmd, env=env)
    if os.environ.get(NETNS_ENV) == "1":
        subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
        links = subprocess.run(["ip", "-o", "link"], check=True, capture_output=True, text=True).stdout
        print("private network namespace, interfaces:", [l.split(":")[1].strip() for l in links.splitlines()])
    ok = all([one_run(args, out, ct, scan, vnet) for out, ct, scan in runs])
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
