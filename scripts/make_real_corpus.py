#!/usr/bin/env python3
"""Make the real-software corpus: pairs of captures of real servers, and a truth file per pair.

    sudo python scripts/make_real_corpus.py [--out tests/data/real-corpus] [CASE ...]

Each pair is made the way a COLO pair looks: the *same* real server (nginx, Python's
http.server, openssl s_server, dnsmasq, chronyd, dropbear) runs twice, once in each of two
network namespaces this script creates (``colo-rc-p`` and ``colo-rc-s``, deleted at the end),
each with the guest address 10.77.0.1 and the client address 10.77.0.2 on its loopback (no
other interface, no other address).  One client process (this one) opens its sockets in both
namespaces (``setns``) and sends the same bytes to both, from the same source port, so both
sides see the same flows; ``tcpdump -i lo`` in each namespace writes ``primary.pcap`` and
``secondary.pcap`` with both directions (``--guest 10.77.0.1`` selects the server's frames).

Then the **truth** (``truth.json``) is decided from the bytes, without ``explain``: the
guest's frames of each flow are paired in order (TCP: by stream position, each side from its
own initial sequence number), the first differing byte of each pair is found, and tshark (both
directions, TCP reassembly on) names the innermost field covering that byte, which must be the
field the case expects (the generation fails otherwise).  The first differing frame of a flow
is its root; a later differing frame of the same connection after a TLS or SSH key exchange
that diverged is a consequence of it (its bytes are encrypted under different keys), and so is
a later differing byte of the same server that lies inside the session id a root's Set-Cookie
set (carried in a later response).  A control must have no differing
byte at all.

Needs root, ``ip``, ``tcpdump``, ``tshark`` and the Debian packages nginx-light, dnsmasq-base,
chrony, dropbear-bin, openssl, ethtool (installed with apt-get when missing).
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

NS = ("colo-rc-p", "colo-rc-s")
GUEST, CLIENT = "10.77.0.1", "10.77.0.2"
PACKAGES = {"nginx": "nginx-light", "dnsmasq": "dnsmasq-base", "chronyd": "chrony", "dropbear": "dropbear-bin",
            "dropbearkey": "dropbear-bin", "openssl": "openssl", "ethtool": "ethtool"}
CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


# ------------------------------------------------------------------ namespaces and processes

def sh(*cmd, check=True, **kw):
    return subprocess.run(cmd, check=check, **kw)


def make_namespaces(mtu: int | None = None) -> None:
    """``mtu``: the loopback's (1500: segments of an Ethernet's size, so a PDU spans several)."""
    for ns in NS:
        sh("ip", "netns", "del", ns, check=False, stderr=subprocess.DEVNULL)
        sh("ip", "netns", "add", ns)
        sh("ip", "-n", ns, "link", "set", "lo", "up", *(("mtu", str(mtu)) if mtu else ()))
        if mtu:                  # and no segmentation offload: tcpdump sees the segments themselves
            sh("ip", "netns", "exec", ns, "ethtool", "-K", "lo", "tso", "off", "gso", "off")
        for addr in (GUEST, CLIENT):
            sh("ip", "-n", ns, "addr", "add", f"{addr}/32", "dev", "lo")


def drop_namespaces() -> None:
    for ns in NS:
        sh("ip", "netns", "del", ns, check=False)


class InNs:
    """Run this thread in a namespace for the ``with`` block (sockets made there stay there)."""

    def __init__(self, ns: str):
        self.ns = ns

    def __enter__(self):
        self.home = os.open("/proc/self/ns/net", os.O_RDONLY)
        fd = os.open(f"/run/netns/{self.ns}", os.O_RDONLY)
        try:
            if _libc.setns(fd, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), f"setns {self.ns}")
        finally:
            os.close(fd)

    def __exit__(self, *exc):
        _libc.setns(self.home, CLONE_NEWNET)
        os.close(self.home)


def start(ns: str, cmd: list, log: Path) -> subprocess.Popen:
    f = open(log, "ab")
    return subprocess.Popen(["ip", "netns", "exec", ns, *cmd], stdout=f, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, start_new_session=True)


def stop(procs: list) -> None:
    """End the processes this script started (by their own process group), gently first."""
    for p in procs:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGINT)
    deadline = time.time() + 5
    for p in procs:
        try:
            p.wait(max(0.1, deadline - time.time()))
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()


def wait_port(ns: str, port: int, proto: str = "tcp", timeout: float = 10.0) -> None:
    flag = "-tln" if proto == "tcp" else "-uln"
    end = time.time() + timeout
    while time.time() < end:
        out = sh("ip", "netns", "exec", ns, "ss", flag, capture_output=True, text=True).stdout
        if f"{GUEST}:{port} " in out or f"*:{port} " in out or f"0.0.0.0:{port} " in out:
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {proto} {port} in {ns}")


# ------------------------------------------------------------------ the client: same bytes to both

def tcp_pair(port: int, sport: int) -> list:
    """Connected sockets to the server of each namespace, from the same source port."""
    out = []
    for ns in NS:
        with InNs(ns):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((CLIENT, sport))
        s.settimeout(5)
        s.connect((GUEST, port))
        out.append(s)
    return out


def udp_pair(sport: int) -> list:
    out = []
    for ns in NS:
        with InNs(ns):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind((CLIENT, sport))
        s.settimeout(5)
        out.append(s)
    return out


def recv_all(s: socket.socket, quiet: float = 0.3) -> bytes:
    """Read until the peer closes or is quiet for ``quiet`` seconds."""
    data = b""
    s.settimeout(quiet)
    while True:
        try:
            chunk = s.recv(65536)
        except socket.timeout:
            return data
        if not chunk:
            return data
        data += chunk


def near_second_boundary(before: bool) -> None:
    """Sleep until 30 ms before a wall-clock second boundary (``before``) or 100 ms after one."""
    while True:
        frac = time.time() % 1.0
        if before and 0.955 <= frac < 0.97:
            return
        if not before and 0.1 <= frac < 0.3:
            return
        time.sleep(0.003)


# ------------------------------------------------------------------ the cases

STATIC = b"<html><body>colo-replay real corpus: a static page.</body></html>\n"


def nginx_conf(work: Path, side: int) -> Path:
    prefix = work / f"nginx{side}"
    (prefix / "logs").mkdir(parents=True, exist_ok=True)
    conf = prefix / "nginx.conf"
    conf.write_text(f"""daemon off; master_process off; pid {prefix}/nginx.pid; error_log {prefix}/logs/error.log;
events {{ worker_connections 64; }}
http {{ access_log off; server_tokens off; etag off;
  client_body_temp_path {prefix}/b; proxy_temp_path {prefix}/p; fastcgi_temp_path {prefix}/f;
  uwsgi_temp_path {prefix}/u; scgi_temp_path {prefix}/s;
  server {{ listen {GUEST}:80; root {work}/www; location / {{ default_type text/html; }} }} }}
""")
    return conf


def case_nginx(work: Path, procs: list, diverge: bool, method: str = "GET") -> None:
    """nginx static file; ``diverge``: the two requests straddle a second boundary (Date);
    ``method`` HEAD: the response announces the file's length and has no body."""
    (work / "www").mkdir(exist_ok=True)
    page = work / "www" / "index.html"
    page.write_bytes(STATIC)
    os.utime(page, (1_700_000_000, 1_700_000_000))     # the same Last-Modified on both
    for side, ns in enumerate(NS):
        procs.append(start(ns, ["nginx", "-c", str(nginx_conf(work, side))], work / f"nginx{side}.log"))
    for ns in NS:
        wait_port(ns, 80)
    socks = tcp_pair(80, 41001)
    req = method.encode() + b" /index.html HTTP/1.1\r\nHost: guest\r\nConnection: close\r\n\r\n"
    near_second_boundary(before=diverge)
    socks[0].sendall(req)
    if diverge:
        time.sleep(0.06)                                # the secondary answers in the next second
    socks[1].sendall(req)
    for s in socks:
        recv_all(s)
        s.close()


def serve_python(work: Path, procs: list, name: str, source: str, port: int) -> None:
    """Run the server program ``source`` (its address is argv[1]) as the guest in both
    namespaces, logging to ``work/<name><side>.log``, and wait until both listen on ``port``."""
    src = work / f"{name}.py"
    src.write_text(source)
    for side, ns in enumerate(NS):
        procs.append(start(ns, [sys.executable, str(src), GUEST], work / f"{name}{side}.log"))
    for ns in NS:
        wait_port(ns, port)


JSON_SERVER = r'''
import http.server, json, sys, uuid
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"
    server_version = "corpus-api/1"
    sys_version = ""
    def do_GET(self):
        body = json.dumps({"status": "ok", "request_id": str(uuid.uuid4()), "items": [1, 2, 3]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.flush()            # the headers leave in their own segment, the body in the next
        self.wfile.write(body)
    def log_message(self, *a):
        pass
http.server.HTTPServer((sys.argv[1], 8080), H).serve_forever()
'''


def case_json(work: Path, procs: list) -> None:
    """Python's http.server answering a JSON body with a random request id (uuid4), the body in
    its own TCP segment; both requests in the same second (the Date headers are equal)."""
    serve_python(work, procs, "api", JSON_SERVER, 8080)
    socks = tcp_pair(8080, 41002)
    for s in socks:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    near_second_boundary(before=False)
    req = b"GET /api/status HTTP/1.0\r\nHost: guest\r\n\r\n"
    for s in socks:
        s.sendall(req)
    for s in socks:
        recv_all(s)
        s.close()


SESSION_SERVER = r'''
import http.server, json, sys, uuid
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"          # one connection, two requests
    server_version = "corpus-session/1"
    sys_version = ""
    sid = None
    def do_GET(self):
        if self.path == "/login":
            self.sid = str(uuid.uuid4())   # the session this connection holds from now on
            body = b"welcome\n"
            extra = [("Set-Cookie", f"sid={self.sid}; Path=/")]
        else:
            body = json.dumps({"user": "guest", "session": self.sid}).encode()
            extra = [("Content-Type", "application/json")]
        self.send_response(200)
        for k, v in extra:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
http.server.HTTPServer((sys.argv[1], 8081), H).serve_forever()
'''


def case_session(work: Path, procs: list) -> None:
    """Python's http.server with a session: ``/login`` sets a random session id (Set-Cookie),
    ``/me`` on the same connection answers JSON carrying it; the same requests to both (the
    client sends no cookie), in the same second."""
    serve_python(work, procs, "session", SESSION_SERVER, 8081)
    socks = tcp_pair(8081, 41008)
    near_second_boundary(before=False)
    for path in ("/login", "/me"):
        req = f"GET {path} HTTP/1.1\r\nHost: guest\r\n\r\n".encode()
        for s in socks:
            s.sendall(req)
        for s in socks:
            recv_all(s, 0.15)
    for s in socks:
        s.close()


LARGE_SERVER = r'''
import http.server, json, sys, uuid
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"
    server_version = "corpus-api/1"
    sys_version = ""
    def do_GET(self):
        items = [{"id": i, "name": f"item-{i:04d}", "tags": ["a", "b", "c"]} for i in range(60)]
        body = json.dumps({"items": items, "request_id": str(uuid.uuid4())}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
http.server.HTTPServer((sys.argv[1], 8082), H).serve_forever()
'''


def case_json_large(work: Path, procs: list) -> None:
    """A JSON body of ~3.4 KB over several 1448-byte segments (loopback MTU 1500), its random
    ``request_id`` in the last one: the response is one PDU reassembled from all of them."""
    serve_python(work, procs, "large", LARGE_SERVER, 8082)
    socks = tcp_pair(8082, 41009)
    near_second_boundary(before=False)
    for s in socks:
        s.sendall(b"GET /api/items HTTP/1.0\r\nHost: guest\r\n\r\n")
    for s in socks:
        recv_all(s)
        s.close()


def case_tls(work: Path, procs: list) -> None:
    """openssl s_server (TLS 1.3, the same certificate on both): a handshake, one request and its
    answer.  The ServerHello's random differs, so every later record differs too (other keys)."""
    import ssl
    key, cert = work / "key.pem", work / "cert.pem"
    if not cert.exists():
        sh("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
           "-keyout", str(key), "-out", str(cert), "-days", "3650", "-subj", "/CN=guest",
           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for side, ns in enumerate(NS):
        procs.append(start(ns, ["openssl", "s_server", "-accept", f"{GUEST}:4433", "-cert", str(cert), "-key",
                                str(key), "-www", "-tls1_3", "-naccept", "1", "-quiet"], work / f"tls{side}.log"))
    for ns in NS:
        wait_port(ns, 4433)
    socks = tcp_pair(4433, 41003)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion.TLSv1_3
    # the same client settings on both; a TLS client's own random makes its later bytes differ,
    # which colo-compare never compares (they are the guest's input)
    tls = [ctx.wrap_socket(s, server_hostname="guest") for s in socks]
    for t in tls:
        t.sendall(b"GET / HTTP/1.0\r\n\r\n")
    for t in tls:
        recv_all(t, 0.5)
        t.close()


def dns_query(ident: int, name: str, qtype: int, qclass: int = 1) -> bytes:
    q = b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\x00"
    return struct.pack("!HHHHHH", ident, 0x0100, 1, 0, 0, 0) + q + struct.pack("!HH", qtype, qclass)


def start_dnsmasq(work: Path, procs: list) -> None:
    for side, ns in enumerate(NS):
        procs.append(start(ns, ["dnsmasq", "--no-daemon", "--no-resolv", "--no-hosts", "--conf-file=/dev/null",
                                f"--listen-address={GUEST},127.0.0.1", "--bind-interfaces", "--port=53", "--user=root",
                                f"--pid-file={work}/dnsmasq{side}.pid", "--host-record=www.guest,10.77.0.80",
                                "--local-ttl=60"], work / f"dns{side}.log"))
    for ns in NS:
        wait_port(ns, 53, "udp")


def case_dns_control(work: Path, procs: list) -> None:
    """dnsmasq answering an A record it holds (same id from the same client, same TTL): clean."""
    start_dnsmasq(work, procs)
    socks = udp_pair(41004)
    for ident in (0x1234, 0x1235):
        for s in socks:
            s.sendto(dns_query(ident, "www.guest", 1), (GUEST, 53))
        for s in socks:
            s.recv(512)


def case_dns_hits(work: Path, procs: list) -> None:
    """dnsmasq's CHAOS TXT ``hits.bind``: its answer counts the lookups it answered from its
    data; the primary answered one more lookup before (a process inside that guest only, on its
    loopback), so
    the counter in the TXT answer differs."""
    start_dnsmasq(work, procs)
    with InNs(NS[0]):
        extra = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    extra.settimeout(5)
    # to its loopback address: a lookup the captures of the guest's network do not see
    extra.sendto(dns_query(0x0BAD, "www.guest", 1), ("127.0.0.1", 53))
    extra.recv(512)
    extra.close()
    socks = udp_pair(41005)
    for ident, name, qtype, qclass in ((0x2001, "www.guest", 1, 1), (0x2002, "hits.bind", 16, 3)):
        for s in socks:
            s.sendto(dns_query(ident, name, qtype, qclass), (GUEST, 53))
        for s in socks:
            s.recv(512)


def case_dns_tcp_hits(work: Path, procs: list) -> None:
    """``dns-hits`` over TCP (a two-byte length before each message): the primary answered one
    more lookup before, on its loopback; the TXT answer of ``hits.bind`` differs."""
    start_dnsmasq(work, procs)
    for ns in NS:
        wait_port(ns, 53)
    with InNs(NS[0]):
        extra = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    extra.settimeout(5)
    extra.sendto(dns_query(0x0BAD, "www.guest", 1), ("127.0.0.1", 53))
    extra.recv(512)
    extra.close()
    socks = tcp_pair(53, 41010)
    for ident, name, qtype, qclass in ((0x3001, "www.guest", 1, 1), (0x3002, "hits.bind", 16, 3)):
        q = dns_query(ident, name, qtype, qclass)
        for s in socks:
            s.sendall(struct.pack("!H", len(q)) + q)
        for s in socks:
            n = struct.unpack("!H", s.recv(2))[0]
            s.recv(n)
    for s in socks:
        s.close()


def ntp_request(xmt: int) -> bytes:
    # LI 0, VN 4, mode 3 (client); the transmit timestamp is the client's: the same on both
    return struct.pack("!BBbb", 0x23, 0, 6, -20) + b"\x00" * 36 + struct.pack("!Q", xmt)


def case_ntp(work: Path, procs: list) -> None:
    """chronyd as a local-stratum NTP server (it steers no clock: ``-x``); the same client
    request to both; the replies carry each server's own times."""
    for side, ns in enumerate(NS):
        conf = work / f"chrony{side}.conf"
        conf.write_text(f"local stratum 8\nallow all\nbindaddress {GUEST}\ncmdport 0\n"
                        f"pidfile {work}/chrony{side}.pid\ndriftfile {work}/chrony{side}.drift\n")
        procs.append(start(ns, ["chronyd", "-d", "-x", "-f", str(conf)], work / f"chrony{side}.log"))
        time.sleep(0.7)                                  # the two servers start at different times
    for ns in NS:
        wait_port(ns, 123, "udp")
    time.sleep(1.0)
    socks = udp_pair(41006)
    xmt = (3_900_000_000 << 32) | 0x12345678
    for s in socks:
        s.sendto(ntp_request(xmt), (GUEST, 123))
    for s in socks:
        s.recv(512)


def ssh_packet(payload: bytes) -> bytes:
    pad = 8 - (len(payload) + 5) % 8
    pad += 8 if pad < 4 else 0
    return struct.pack("!IB", len(payload) + pad + 1, pad) + payload + b"\x00" * pad


def _namelist(s: str) -> bytes:
    return struct.pack("!I", len(s)) + s.encode()


def case_ssh(work: Path, procs: list) -> None:
    """dropbear (the same host key on both): the client sends its banner and one fixed
    KEXINIT; each server answers its banner and its KEXINIT, whose 16-byte cookie is random."""
    hostkey = work / "dropbear_ed25519"
    if not hostkey.exists():
        sh("dropbearkey", "-t", "ed25519", "-f", str(hostkey), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for side, ns in enumerate(NS):
        procs.append(start(ns, ["dropbear", "-F", "-E", "-s", "-r", str(hostkey), "-p", f"{GUEST}:22",
                                "-P", f"{work}/dropbear{side}.pid"], work / f"ssh{side}.log"))
    for ns in NS:
        wait_port(ns, 22)
    socks = tcp_pair(22, 41007)
    kex = bytes([20]) + b"\x11" * 16 + b"".join(_namelist(n) for n in (
        "curve25519-sha256", "ssh-ed25519", "aes128-ctr", "aes128-ctr", "hmac-sha2-256", "hmac-sha2-256",
        "none", "none", "", "")) + b"\x00" + b"\x00\x00\x00\x00"
    for s in socks:
        s.sendall(b"SSH-2.0-corpus_client\r\n")
    time.sleep(0.2)
    for s in socks:
        s.sendall(ssh_packet(kex))
    for s in socks:
        recv_all(s, 0.5)
        s.close()


# name -> (function, kwargs, expected roots: [(field, context or None)], control)
CASES = {
    "nginx-date": (case_nginx, {"diverge": True}, [("http.date", None)]),
    "nginx-control": (case_nginx, {"diverge": False}, []),
    "nginx-head": (case_nginx, {"diverge": True, "method": "HEAD"}, [("http.date", None)]),
    # a HEAD response alone: tshark waits for the body its Content-Length announces
    "nginx-head-outbound-only": (None, {"source": "nginx-head"}, [("http.date", None)]),
    "json-api": (case_json, {}, [("json.value.string", "request_id")]),
    "json-large": (case_json_large, {}, [("json.value.string", "request_id")]),
    "http-session": (case_session, {}, [("http.set_cookie", None)]),
    "tls-handshake": (case_tls, {}, [("tls.handshake.random", None)]),
    "dns-control": (case_dns_control, {}, []),
    "dns-hits": (case_dns_hits, {}, [("dns.txt", None)]),
    "dns-tcp-hits": (case_dns_tcp_hits, {}, [("dns.txt", None)]),
    "dns-tcp-outbound-only": (None, {"source": "dns-tcp-hits"}, [("dns.txt", None)]),
    "ntp-chrony": (case_ntp, {}, [("ntp.reftime", None)]),  # the servers started 0.7 s apart
    "ssh-kexinit": (case_ssh, {}, [("ssh.cookie", None)]),
    # the same pair as captured by a tap on the guest's outbound traffic only: tshark cannot
    # dissect the KEXINIT without the client's side; the truth's field is the two-direction one's
    "ssh-outbound-only": (None, {"source": "ssh-kexinit"}, [("ssh.cookie", None)]),
    # TLS 1.3's server flight alone: tshark dissects the ServerHello without the ClientHello
    "tls-outbound-only": (None, {"source": "tls-handshake"}, [("tls.handshake.random", None)]),
}


MTU = {"json-large": 1500}
"""The cases whose loopback has an Ethernet's MTU (the others keep 65536)."""


def record(name: str, out: Path) -> None:
    fn, kw, _exp = CASES[name]
    dest = out / name
    dest.mkdir(parents=True, exist_ok=True)
    if fn is None:                                       # the guest's direction of another pair
        for side in ("primary.pcap", "secondary.pcap"):
            sh("tcpdump", "-r", str(out / kw["source"] / side), "-w", str(dest / side), f"src host {GUEST}",
               stderr=subprocess.DEVNULL)
        return
    work = Path(tempfile.mkdtemp(prefix=f"colo-rc-{name}-"))
    procs: list = []
    dumps: list = []
    try:
        make_namespaces(MTU.get(name))
        for side, ns in enumerate(NS):
            pc = dest / ("primary.pcap" if side == 0 else "secondary.pcap")
            # --immediate-mode: each packet is handed over as it comes, so none is left in the
            # capture ring when tcpdump is stopped (without it, a short case lost its data)
            dumps.append(start(ns, ["tcpdump", "-i", "lo", "--immediate-mode", "-U", "-s", "0", "-w", str(pc),
                                    f"host {GUEST}"],
                               work / f"tcpdump{side}.log"))
        for side in (0, 1):                              # tcpdump listening on both
            log = work / f"tcpdump{side}.log"
            end = time.time() + 15
            while b"listening on" not in (log.read_bytes() if log.exists() else b""):
                if time.time() > end:
                    raise RuntimeError(f"tcpdump did not start: {log.read_text()}")
                time.sleep(0.05)
        time.sleep(0.2)
        fn(work, procs, **kw)
        time.sleep(0.5)
    finally:
        stop(procs)
        time.sleep(0.3)
        stop(dumps)
        drop_namespaces()
        shutil.rmtree(work, ignore_errors=True)
    for side in ("primary.pcap", "secondary.pcap"):
        payload = [n for n, fr in read_pcap(dest / side)
                   if (h := parse(fr)) and h["src"] == GUEST and h["end"] > h["payload"]]
        if not payload:
            raise SystemExit(f"{name}: {side} holds no frame with data from the guest: record it again")


# ------------------------------------------------------------------ the truth, from the bytes
# (independent of colo_replay: its own pcap reading, its own byte diff, its own reading of
# tshark's PDML)

ETH_LEN = 14


def read_pcap(path: Path) -> list:
    """[(number, bytes)] of a classic little-endian pcap (what tcpdump writes here)."""
    data = path.read_bytes()
    magic = struct.unpack("<I", data[:4])[0]
    assert magic in (0xA1B2C3D4, 0xA1B23C4D), f"{path}: not a little-endian pcap"
    out, off, n = [], 24, 0
    while off + 16 <= len(data):
        _s, _u, incl, _orig = struct.unpack("<IIII", data[off:off + 16])
        n += 1
        out.append((n, data[off + 16:off + 16 + incl]))
        off += 16 + incl
    return out


def parse(frame: bytes) -> dict | None:
    """IPv4 over Ethernet: addresses, protocol, ports, TCP sequence and flags, payload offset."""
    if len(frame) < ETH_LEN + 20 or frame[12:14] != b"\x08\x00":
        return None
    ihl = (frame[ETH_LEN] & 15) * 4
    proto = frame[ETH_LEN + 9]
    src, dst = socket.inet_ntoa(frame[26:30]), socket.inet_ntoa(frame[30:34])
    l4 = ETH_LEN + ihl
    total = ETH_LEN + struct.unpack("!H", frame[ETH_LEN + 2:ETH_LEN + 4])[0]
    sport, dport = struct.unpack("!HH", frame[l4:l4 + 4])
    if proto == 6:
        seq = struct.unpack("!I", frame[l4 + 4:l4 + 8])[0]
        return {"src": src, "dst": dst, "proto": "tcp", "sport": sport, "dport": dport, "seq": seq,
                "syn": bool(frame[l4 + 13] & 2), "l4": l4, "payload": l4 + (frame[l4 + 12] >> 4) * 4,
                "end": total}
    return {"src": src, "dst": dst, "proto": "udp" if proto == 17 else str(proto), "sport": sport,
            "dport": dport, "l4": l4, "payload": l4 + 8, "end": total}


def guest_units(frames: list) -> dict:
    """Flow -> what colo-compare compares of the guest's frames: TCP, the stream as
    [(position from the ISN, number, frame offset, byte)]; UDP, the datagrams
    [(number, compared bytes from the L4 header, their frame offset)]."""
    flows: dict = {}
    isn: dict = {}
    for num, fr in frames:
        h = parse(fr)
        if h is None or h["src"] != GUEST:
            continue
        key = (h["proto"], h["sport"], h["dport"])
        if h["proto"] == "tcp":
            if h["syn"]:
                isn[key] = h["seq"] + 1
            base = isn.get(key)
            if base is None:
                continue
            bytes_ = flows.setdefault(key, [])
            for i in range(h["payload"], h["end"]):
                bytes_.append(((h["seq"] - base + i - h["payload"]) & 0xFFFFFFFF, num, i, fr[i]))
        else:
            flows.setdefault(key, []).append((num, fr[h["l4"]:h["end"]], h["l4"]))
    return flows


def byte_diff(pf: list, sf: list) -> list:
    """Every guest frame of the primary with a differing byte: [{flow, primary_frame,
    secondary_frame, offset, secondary_offset}], in primary frame order; a UDP checksum is
    skipped (it differs because other bytes do)."""
    P, S = guest_units(pf), guest_units(sf)
    out = {}
    for key in sorted(set(P) | set(S)):
        p, s = P.get(key, []), S.get(key, [])
        if key[0] == "tcp":
            spos = {pos: (num, off, b) for pos, num, off, b in s}
            for pos, num, off, b in p:
                o = spos.get(pos)
                if (o is None or o[2] != b) and num not in out:
                    out[num] = {"flow": list(key), "primary_frame": num,
                                "secondary_frame": o[0] if o else None, "offset": off,
                                "secondary_offset": o[1] if o else None}
        else:
            for i, (num, data, l4) in enumerate(p):
                if i >= len(s):
                    out[num] = {"flow": list(key), "primary_frame": num, "secondary_frame": None,
                                "offset": l4, "secondary_offset": None}
                    continue
                snum, sdata, sl4 = s[i]
                diff = [k for k in range(max(len(data), len(sdata)))
                        if k >= min(len(data), len(sdata)) or data[k] != sdata[k]]
                real = [k for k in diff if k not in (6, 7)] or diff
                if real:
                    out[num] = {"flow": list(key), "primary_frame": num, "secondary_frame": snum,
                                "offset": l4 + real[0], "secondary_offset": sl4 + real[0]}
    return [out[k] for k in sorted(out)]


def tshark_fields(path: Path) -> dict:
    """(frame, offset) -> [(name, size, context)] of every field tshark shows, dissecting the
    whole capture (both directions) with TCP reassembly on; a field of a reassembled PDU is put
    at its frames through the segment list, and checked against the bytes."""
    import xml.etree.ElementTree as ET
    frames = dict(read_pcap(path))
    pdml = subprocess.run(["tshark", "-n", "-r", str(path), "-o", "tcp.desegment_tcp_streams:TRUE",
                           "-o", "http.desegment_body:TRUE", "-o", "tcp.analyze_sequence_numbers:FALSE",
                           "-T", "pdml"], capture_output=True, check=True).stdout
    payload_at = {n: parse(b)["payload"] for n, b in frames.items() if parse(b) and parse(b)["proto"] == "tcp"}
    cover: dict = {}
    for pkt in ET.fromstring(pdml).iter("packet"):
        num = int(pkt.find("proto[@name='geninfo']/field[@name='num']").get("show"))
        segs = [(int(f.get("show")), int(f.get("pos")), int(f.get("size"))) for f in pkt.iter("field")
                if f.get("name") == "tcp.segment"]
        reasm = b"".join(frames[n][payload_at[n]:payload_at[n] + size] for n, _p, size in segs)

        def place(pos: int, size: int, value: str):
            """The (frame, offset) of each byte of a field, or None when its bytes are elsewhere."""
            try:
                raw = bytes.fromhex(value) if value else None
            except ValueError:                      # a value tshark shows as text, not bytes
                raw = None
            if raw is not None and len(raw) == size and frames[num][pos:pos + size] == raw:
                return [(num, pos + k) for k in range(size)]
            if segs and raw is not None and len(raw) == size and reasm[pos:pos + size] == raw:
                where = []
                for k in range(pos, pos + size):
                    for n, start, ln in segs:
                        if start <= k < start + ln:
                            where.append((n, payload_at[n] + k - start))
                return where
            return None

        def walk(el, context):
            for f in el.findall("field"):
                name, pos, size = f.get("name", ""), f.get("pos"), f.get("size")
                ctx = context
                if name == "json.member":
                    ctx = f"member {f.get('show')}"
                if name and not name.startswith("_ws.") and f.get("hide") != "yes" and pos and size \
                        and int(size) > 0:
                    where = place(int(pos), int(size), f.get("value", ""))
                    for at in where or ():
                        cover.setdefault(at, []).append((name, int(size), ctx))
                walk(f, ctx)
        for proto in pkt.findall("proto"):
            if proto.get("name") not in ("geninfo", "frame", "eth", "ip", "tcp", "udp"):
                walk(proto, None)
    return cover


def innermost(cover: dict, frame: int, offset: int):
    found = cover.get((frame, offset), [])
    if not found:
        return None, None
    best = min(found, key=lambda t: t[1])           # the smallest; the first (outer) of equal ones...
    ties = [t for t in found if t[1] == best[1]]
    return ties[-1][0], ties[-1][2]                 # ...gives way to the deeper, later one


# a later difference on a connection is a consequence of its root when the root's field changed
# the keys that encrypt what follows
KEYED_ROOTS = ("tls.handshake.random", "ssh.cookie")
# ... or, after a root that set a session id, when the later differing byte is inside the root's
# differing value again (the session id carried in a later response to the same client)
SESSION_ROOTS = ("http.set_cookie",)
# (the value: the token around the root's differing byte, of at least
TOKEN_MIN = 8                            # bytes)
TOKEN_BYTES = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def _token(frame: bytes, offset: int) -> bytes:
    """The run of token bytes (letters, digits, - and _) around ``offset``."""
    lo = hi = offset
    while lo > 0 and frame[lo - 1] in TOKEN_BYTES:
        lo -= 1
    while hi < len(frame) and frame[hi] in TOKEN_BYTES:
        hi += 1
    return frame[lo:hi]


def _inside_token(frame: bytes, offset: int, token: bytes) -> bool:
    if len(token) < TOKEN_MIN:
        return False
    at = frame.find(token)
    while at >= 0:
        if at <= offset < at + len(token):
            return True
        at = frame.find(token, at + 1)
    return False


def _guest_numbers(path: Path) -> dict:
    """Frame number in the guest-only copy of ``path`` -> its number in ``path``."""
    guest = [n for n, fr in read_pcap(path) if (parse(fr) or {}).get("src") == GUEST]
    return {i + 1: n for i, n in enumerate(guest)}


def _renumbered(cover: dict, numbers: dict) -> dict:
    back = {orig: k for k, orig in numbers.items()}
    return {(back[n], off): v for (n, off), v in cover.items() if n in back}


def write_truth(dest: Path, expected: list, control: bool, source: Path | None = None) -> dict:
    """``source``: the two-direction pair ``dest`` is the guest's direction of: tshark names the
    fields there (both directions), and they are renumbered to ``dest``'s frames; a root whose
    field tshark does not name from ``dest`` alone is marked ``likely`` (explain can only guess
    it, and must say that tshark needs the other direction)."""
    pf, sf = read_pcap(dest / "primary.pcap"), read_pcap(dest / "secondary.pcap")
    frames_p = dict(pf)
    diffs = byte_diff(pf, sf)
    if source is None:
        pcover, scover = tshark_fields(dest / "primary.pcap"), tshark_fields(dest / "secondary.pcap")
    else:
        pcover = _renumbered(tshark_fields(source / "primary.pcap"), _guest_numbers(source / "primary.pcap"))
        scover = _renumbered(tshark_fields(source / "secondary.pcap"), _guest_numbers(source / "secondary.pcap"))
    roots, consequences, seen = [], [], {}
    for d in diffs:
        key = tuple(d["flow"])
        d["field"], d["context"] = innermost(pcover, d["primary_frame"], d["offset"])
        if d["secondary_frame"] is not None:
            d["secondary_field"] = innermost(scover, d["secondary_frame"], d["secondary_offset"])[0]
        root = seen.get(key)
        if root is not None and root["field"] in KEYED_ROOTS:
            d["consequence_of"] = {"primary_frame": root["primary_frame"], "field": root["field"]}
            consequences.append(d)
            continue
        echoed = next((r for r in roots if r["flow"][:2] == d["flow"][:2] and r["field"] in SESSION_ROOTS
                       and _inside_token(frames_p[d["primary_frame"]], d["offset"], r["token"])), None)
        if echoed is not None:
            d["consequence_of"] = {"primary_frame": echoed["primary_frame"], "field": echoed["field"],
                                   "echoes": echoed["token"].decode()}
            consequences.append(d)
            continue
        if root is not None:
            raise SystemExit(f"{dest.name}: a second independent difference on flow {key} (P#{d['primary_frame']}): "
                             f"the case is not what it claims")
        seen[key] = d
        d["token"] = _token(frames_p[d["primary_frame"]], d["offset"])
        roots.append(d)
    if control and diffs:
        raise SystemExit(f"{dest.name}: a control with differing bytes: {diffs}")
    if len(roots) != len(expected):
        raise SystemExit(f"{dest.name}: {len(roots)} roots, expected {len(expected)}: {roots}")
    for r, (field, ctx) in zip(roots, expected):
        if field is not None and (r["field"], r["context"]) != (field, ctx and f"member {ctx}"):
            raise SystemExit(f"{dest.name}: P#{r['primary_frame']} offset {r['offset']} is {r['field']} "
                             f"({r['context']}), expected {field} ({ctx})")
        if r["field"] is None or r.get("secondary_field") not in (None, r["field"]):
            raise SystemExit(f"{dest.name}: tshark names no field at P#{r['primary_frame']} offset {r['offset']}")
    for r in roots:
        r.pop("token")
    if source is not None:
        # whether tshark names it from this capture alone; if not, explain can only guess
        alone = tshark_fields(dest / "primary.pcap")
        for r in roots:
            r["likely"] = innermost(alone, r["primary_frame"], r["offset"])[0] != r["field"]
    truth = {"case": dest.name, "guest": GUEST, "control": control, "one_direction": source is not None,
             "roots": roots, "consequences": consequences,
             "decided_by": "scripts/make_real_corpus.py: byte diff of the guest's frames (TCP by stream position "
                           "from each side's ISN, UDP from the L4 header, the UDP checksum skipped) and tshark "
                           "(whole capture, both directions, TCP reassembly on) for the field"}
    (dest / "truth.json").write_text(json.dumps(truth, indent=1) + "\n")
    return truth



def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(REPO / "tests/data/real-corpus"))
    ap.add_argument("--truth-only", action="store_true", help="recompute the truth files from the captures")
    ap.add_argument("cases", nargs="*", help=f"default: all ({', '.join(CASES)})")
    a = ap.parse_args()
    out = Path(a.out)
    names = a.cases or list(CASES)
    if not a.truth_only:
        if os.geteuid() != 0:
            sys.exit("needs root (network namespaces, tcpdump)")
        missing = sorted({pkg for exe, pkg in PACKAGES.items() if not shutil.which(exe)})
        if missing:
            sh("apt-get", "install", "-y", "--no-install-recommends", *missing)
        for n in names:
            print(f"recording {n}", flush=True)
            record(n, out)
    for n in names:
        src = CASES[n][1].get("source") if CASES[n][0] is None else None
        t = write_truth(out / n, CASES[n][2], control=not CASES[n][2], source=out / src if src else None)
        print(f"{n}: {len(t['roots'])} roots, {len(t['consequences'])} consequences "
              + ", ".join(f"{r['field']}@P#{r['primary_frame']}/S#{r['secondary_frame']}" for r in t["roots"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
