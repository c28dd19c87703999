#!/usr/bin/env python3
"""The client of the sample pair (standard library only; needs root for the raw ICMP socket).

make_pair.sh runs two copies at once, one in colo-cli-pri (talking to colo-pri) and one in
colo-cli-sec (talking to colo-sec). Both take the same --start-at (a CLOCK_REALTIME epoch, shared
by all namespaces) and replay the same generated schedule, action by action at start_at + t, so
the two guests get identical requests at (nearly) the same instants, as a COLO primary and its
secondary do. Everything in the requests is fixed: TCP source ports, DNS transaction ids, ICMP
identifier/sequence/payload (the "timestamp" in the ping payload is the scheduled time, identical
for both copies), upload bodies. The client's kernel still picks its own TCP ISNs, so the ACK
numbers in the two guests' frames differ (see README.md).

    python3 pair_client.py --start-at EPOCH [--print-schedule]
"""

from __future__ import annotations

import argparse
import hashlib
import socket
import struct
import subprocess
import sys
import time

CLIENT_IP = "10.200.0.1"
CLIENT_IP2 = "10.200.0.3"   # second address on the client's eth0
GUEST_IP = "10.200.0.2"
HOST = b"10.200.0.2"
ICMP_ID = 0x434F  # "CO"


def schedule():
    """Yield (t_seconds, action, *args) in time order. The single source of both clients' input."""
    ka = b"Connection: keep-alive\r\n"
    close = b"Connection: close\r\n"
    ims = b"If-Modified-Since: Tue, 14 Nov 2023 22:13:20 GMT\r\n"
    text = close + b"Content-Type: text/plain\r\n"

    def body(n, tag):
        return b"".join(hashlib.sha256(b"%s%d" % (tag, i)).hexdigest().encode() + b"\n"
                        for i in range(n // 65 + 1))[:n]

    steps = [
        (0.10, "dns", 0x1001, "www.colo.test", 1),
        (0.25, "connect", "c1", 41001),
        (0.27, "http", "c1", b"GET", b"/", ka, b""),
        (0.45, "http", "c1", b"GET", b"/style.css", ka, b""),
        (0.60, "udp", 7, b"hello colo 1\n"),
        (0.75, "http", "c1", b"GET", b"/api/now", ka, b""),
        (0.90, "dns", 0x1002, "db.colo.test", 1),
        (1.10, "http", "c1", b"GET", b"/small.txt", ka, b""),
        (1.30, "udp", 7777, b"status q1\n"),
        (1.45, "oneshot", 41002, b"GET", b"/data/report.json", close, b""),
        (1.70, "dns", 0x1003, "cache.colo.test", 1),
        (1.85, "http", "c1", b"GET", b"/api/now?n=2", ka, b""),
        (2.10, "http", "c1", b"GET", b"/data/blob.bin", ka, b""),
        (2.40, "oneshot", 41003, b"POST", b"/upload", text, body(20000, b"upload")),
        (2.80, "dns", 0x1004, "missing.colo.test", 1),
        (3.10, "close", "c1"),
        (3.30, "slow", 41004, b"GET /small.txt HTTP/1.1\r\nHost: 10.200.0.2\r\n",
         b"User-Agent: colo-sample/1\r\nConnection: close\r\n\r\n", 0.120),
        (3.70, "udp", 7777, b"status q2\n"),
        (3.85, "udp", 7, b"hello colo 2\n"),
        (4.00, "oneshot", 41005, b"GET", b"/missing.html", close, b""),
        (4.30, "connect", "c2", 41006),
        (4.32, "http", "c2", b"GET", b"/api/now", ka, b""),
        (4.60, "dns", 0x1005, "www.colo.test", 1),
        (4.70, "arpflush",),
        (4.80, "http", "c2", b"GET", b"/index.html", ka, b""),
        (5.05, "http", "c2", b"GET", b"/data/report.json", ka + ims, b""),
        (5.30, "http", "c2", b"GET", b"/data/", ka, b""),
        (5.55, "http", "c2", b"HEAD", b"/style.css", ka, b""),
        (5.75, "udp", 7777, b"status q3\n"),
        (5.90, "http", "c2", b"GET", b"/api/now?n=3", ka, b""),
        (6.20, "close", "c2"),
        (6.40, "oneshot", 41007, b"GET", b"/data/blob.bin", close, b""),
        # From a second client address the guest has never seen: the guest must ARP for it.
        (6.65, "dns_from", CLIENT_IP2, 0x1009, "db.colo.test", 1),
        (6.80, "udp", 7, bytes(range(256)) * 4),
        (7.00, "dns", 0x1006, "www.colo.test", 28),
        (7.20, "connect", "c3", 41008),
        (7.22, "http", "c3", b"GET", b"/small.txt", ka, b""),
        (7.40, "http", "c3", b"GET", b"/api/now?n=4", ka, b""),
        (7.60, "http", "c3", b"GET", b"/style.css", ka, b""),
        (7.80, "http", "c3", b"GET", b"/api/now?n=5", ka, b""),
        (8.00, "http", "c3", b"GET", b"/index.html", ka, b""),
        (8.30, "oneshot", 41009, b"POST", b"/upload", text, body(8000, b"second")),
        (8.60, "udp", 7777, b"status q4\n"),
        (8.80, "dns", 0x1007, "db.colo.test", 1),
        (9.00, "close", "c3"),
        (9.30, "udp", 7, b"hello colo 3\n"),
        (9.50, "dns", 0x1008, "www.colo.test", 1),
    ]
    # A ping every 250 ms, 40 in all, between the other actions.
    steps += [(0.05 + 0.25 * i, "ping", i + 1) for i in range(40)]
    steps.sort(key=lambda st: st[0])
    yield from steps


def log(msg: str) -> None:
    sys.stderr.write("%.6f %s\n" % (time.time(), msg))


def checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    s = (s >> 16) + (s & 0xFFFF)
    s += s >> 16
    return ~s & 0xFFFF


def ping(start_at: float, t: float, seq: int) -> str:
    sched = start_at + t
    payload = struct.pack("!II", int(sched), int((sched % 1) * 1e6)) + bytes(range(0x10, 0x40)) + b"colo"
    hdr = struct.pack("!BBHHH", 8, 0, 0, ICMP_ID, seq)
    pkt = struct.pack("!BBHHH", 8, 0, checksum(hdr + payload), ICMP_ID, seq) + payload
    with socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP) as s:
        s.settimeout(1.0)
        s.sendto(pkt, (GUEST_IP, 0))
        deadline = time.time() + 1.0
        while time.time() < deadline:
            try:
                data, _ = s.recvfrom(2048)
            except socket.timeout:
                break
            ihl = (data[0] & 0x0F) * 4
            typ, _code, _ck, ident, rseq = struct.unpack("!BBHHH", data[ihl:ihl + 8])
            if typ == 0 and ident == ICMP_ID and rseq == seq:
                return "reply"
    return "no reply"


def dns_query(txid: int, name: str, qtype: int) -> bytes:
    q = struct.pack("!6H", txid, 0x0100, 1, 0, 0, 0)
    for label in name.split("."):
        q += bytes([len(label)]) + label.encode()
    return q + b"\0" + struct.pack("!HH", qtype, 1)


def udp(port: int, payload: bytes, sport: int, src: str = CLIENT_IP) -> str:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((src, sport))
        s.settimeout(1.0)
        s.sendto(payload, (GUEST_IP, port))
        try:
            data, _ = s.recvfrom(4096)
            return "%d bytes" % len(data)
        except socket.timeout:
            return "timeout"


def tcp_connect(sport: int) -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s.settimeout(5.0)
    s.bind((CLIENT_IP, sport))
    s.connect((GUEST_IP, 80))
    return s


def request_bytes(method: bytes, path: bytes, extra: bytes, body: bytes) -> bytes:
    req = (method + b" " + path + b" HTTP/1.1\r\nHost: " + HOST + b"\r\nUser-Agent: colo-sample/1\r\n" + extra)
    if body:
        req += b"Content-Length: %d\r\n" % len(body)
    return req + b"\r\n" + body


def read_response(s: socket.socket, method: bytes, buf: bytearray) -> str:
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(65536)
        if not chunk:
            return "EOF before headers"
        buf += chunk
    head, _, rest = bytes(buf).partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(b":")
        headers[k.strip().lower()] = v.strip()
    if method == b"HEAD" or status in (204, 304) or 100 <= status < 200:
        n = 0
    elif b"content-length" in headers:
        n = int(headers[b"content-length"])
    else:
        n = None
    body = bytearray(rest)
    if n is None:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            body += chunk
        n = len(body)
    while len(body) < n:
        chunk = s.recv(65536)
        if not chunk:
            break
        body += chunk
    del buf[:]
    buf += body[n:]
    return "%d len=%d date=%s" % (status, n, headers.get(b"date", b"-").decode())


def drain_and_close(s: socket.socket) -> None:
    """Close from our side after the peer closed (or right away): read to EOF for a clean FIN exchange."""
    try:
        s.shutdown(socket.SHUT_WR)
        s.settimeout(2.0)
        while s.recv(65536):
            pass
    except OSError:
        pass
    s.close()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--start-at", type=float, required=False)
    ap.add_argument("--print-schedule", action="store_true")
    args = ap.parse_args()
    steps = list(schedule())
    if args.print_schedule:
        for st in steps:
            print(st[0], st[1], *[a if not isinstance(a, bytes) or len(a) < 60 else "<%d bytes>" % len(a)
                                  for a in st[2:]])
        return 0
    start_at = args.start_at if args.start_at is not None else time.time() + 0.5
    conns: dict[str, tuple[socket.socket, bytearray]] = {}
    udp_sport = 52000
    failures = 0
    for st in steps:
        t, action, *a = st
        delay = start_at + t - time.time()
        if delay > 0:
            time.sleep(delay)
        late_ms = (time.time() - start_at - t) * 1000
        try:
            if action == "ping":
                res = ping(start_at, t, a[0])
            elif action == "dns":
                udp_sport += 1
                res = udp(53, dns_query(a[0], a[1], a[2]), udp_sport)
            elif action == "dns_from":
                udp_sport += 1
                res = udp(53, dns_query(a[1], a[2], a[3]), udp_sport, src=a[0])
            elif action == "udp":
                udp_sport += 1
                res = udp(a[0], a[1], udp_sport)
            elif action == "connect":
                conns[a[0]] = (tcp_connect(a[1]), bytearray())
                res = "connected"
            elif action == "http":
                s, buf = conns[a[0]]
                method, path, extra, body = a[1:]
                s.sendall(request_bytes(method, path, extra, body))
                res = read_response(s, method, buf)
            elif action == "close":
                s, _ = conns.pop(a[0])
                drain_and_close(s)
                res = "closed"
            elif action == "oneshot":
                sport, method, path, extra, body = a
                s = tcp_connect(sport)
                s.sendall(request_bytes(method, path, extra, body))
                res = read_response(s, method, bytearray())
                drain_and_close(s)
            elif action == "slow":
                sport, part1, part2, pause = a
                s = tcp_connect(sport)
                s.sendall(part1)
                time.sleep(pause)
                s.sendall(part2)
                res = read_response(s, b"GET", bytearray())
                drain_and_close(s)
            elif action == "arpflush":
                subprocess.run(["ip", "neigh", "flush", "dev", "eth0"], check=True)
                res = "flushed"
            else:
                raise ValueError(action)
        except Exception as e:  # noqa: BLE001 (report and go on; make_pair.sh checks the exit code)
            failures += 1
            res = "FAILED %r" % e
        log("t=%.2f late=%.1fms %s %s -> %s" % (t, late_ms, action,
                                                  " ".join(str(x) for x in a if not isinstance(x, bytes) or len(x) < 40),
                                                  res))
    for s, _ in conns.values():
        s.close()
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
