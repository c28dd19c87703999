#!/usr/bin/env python3
"""The "guest" services of the sample pair (standard library only).

make_pair.sh runs one copy of this in each guest namespace (colo-pri, colo-sec), both serving the
same document root, so the two "VMs" run identical software on identical input:

* TCP 80   http.server (SimpleHTTPRequestHandler, HTTP/1.1 so keep-alive works, threaded), plus
           GET /api/now (a tiny dynamic JSON endpoint: server clock in ns and a random request id,
           as any web application has; a natural divergence between two VMs) and POST /upload
           (reads the body, answers with its length and SHA-256).
* UDP 53   a minimal DNS responder for the zone colo.test (A records; NXDOMAIN otherwise).
* UDP 7    echo (RFC 862).
* UDP 7777 a "stat" service answering with a request counter and the server's clock in ns:
           a natural, always-present divergence between two VMs (like any timestamp or nonce).
* ICMP     echo replies come from the kernel.

    python3 pair_server.py --make-docroot DIR        # write the served files (fixed content, fixed mtime)
    python3 pair_server.py --docroot DIR --ready-file F [--log F]

The ready file is written once every socket is bound.
"""

from __future__ import annotations

import argparse
import hashlib
import http.server
import json
import os
import secrets
import socket
import struct
import sys
import threading
import time

GUEST_IP = "10.200.0.2"
FIXED_MTIME = 1700000000  # 2023-11-14T22:13:20Z: same Last-Modified on both "VMs"

# name -> (path, size). Contents are a deterministic function of the name.
DOCROOT_FILES = {
    "index.html": None,          # written literally below
    "small.txt": 180,
    "style.css": 1200,
    "data/report.json": 3000,
    "data/blob.bin": 9000,
}

DNS_ZONE = {
    "www.colo.test": "10.200.0.80",
    "db.colo.test": "10.200.0.81",
    "cache.colo.test": "10.200.0.82",
}


def make_docroot(root: str) -> None:
    os.makedirs(os.path.join(root, "data"), exist_ok=True)
    index = (b"<!DOCTYPE html>\n<html><head><title>colo-replay sample</title>"
             b"<link rel=\"stylesheet\" href=\"/style.css\"></head>\n"
             b"<body><h1>colo-replay sample guest</h1>\n"
             b"<p>Served by python3 http.server in two network namespaces.</p>\n"
             b"<ul><li><a href=\"/small.txt\">small.txt</a></li>"
             b"<li><a href=\"/data/report.json\">report.json</a></li></ul>\n</body></html>\n")
    for name, size in DOCROOT_FILES.items():
        path = os.path.join(root, name)
        if size is None:
            data = index
        else:
            seed = hashlib.sha256(name.encode()).digest()
            chunks, ctr = [], 0
            while sum(map(len, chunks)) < size:
                chunks.append(hashlib.sha256(seed + ctr.to_bytes(4, "big")).hexdigest().encode() + b"\n")
                ctr += 1
            data = b"".join(chunks)[:size]
            if name.endswith(".bin"):
                data = bytes(b ^ 0x5A for b in data)
        with open(path, "wb") as f:
            f.write(data)
        os.chmod(path, 0o644)
        os.utime(path, (FIXED_MTIME, FIXED_MTIME))
    for d in (os.path.join(root, "data"), root):
        os.chmod(d, 0o755)
        os.utime(d, (FIXED_MTIME, FIXED_MTIME))


class Handler(http.server.SimpleHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):  # noqa: N802 (http.server naming)
        if self.path.split("?")[0] != "/api/now":
            super().do_GET()
            return
        body = json.dumps({"time_ns": time.time_ns(), "request_id": secrets.token_hex(8)}).encode() + b"\n"
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Cache-Control", "no-store")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):  # noqa: N802 (http.server naming)
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length) if length else b""
        if self.path != "/upload":
            self.send_error(404, "Not Found")
            return
        reply = json.dumps({"received": len(body), "sha256": hashlib.sha256(body).hexdigest()}).encode() + b"\n"
        self.send_response(201)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, fmt, *args):
        sys.stderr.write("http %s %s\n" % (self.address_string(), fmt % args))


def dns_answer(query: bytes) -> bytes | None:
    if len(query) < 12:
        return None
    txid, flags, qd, _an, _ns, _ar = struct.unpack("!6H", query[:12])
    if flags & 0x8000 or qd != 1:
        return None
    i, labels = 12, []
    while i < len(query) and query[i]:
        n = query[i]
        labels.append(query[i + 1:i + 1 + n].decode("ascii", "replace"))
        i += 1 + n
    i += 1
    if i + 4 > len(query):
        return None
    qtype, qclass = struct.unpack("!HH", query[i:i + 4])
    question = query[12:i + 4]
    name = ".".join(labels).lower()
    rd = flags & 0x0100
    answers = b""
    rcode = 0
    if name in DNS_ZONE:
        if qtype == 1 and qclass == 1:
            answers = (b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 300, 4)
                       + socket.inet_aton(DNS_ZONE[name]))
    else:
        rcode = 3  # NXDOMAIN
    rflags = 0x8000 | 0x0400 | rd | rcode  # QR, AA, RD copied, rcode
    return struct.pack("!6H", txid, rflags, 1, 1 if answers else 0, 0, 0) + question + answers


def udp_loop(sock: socket.socket, kind: str) -> None:
    served = 0
    while True:
        data, addr = sock.recvfrom(2048)
        served += 1
        if kind == "dns":
            reply = dns_answer(data)
        elif kind == "echo":
            reply = data
        else:  # stat
            reply = b"stat served=%d time_ns=%d query=%s\n" % (served, time.time_ns(), data.strip()[:64])
        if reply is not None:
            sock.sendto(reply, addr)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--make-docroot")
    ap.add_argument("--docroot")
    ap.add_argument("--ready-file")
    ap.add_argument("--bind", default=GUEST_IP)
    args = ap.parse_args()
    if args.make_docroot:
        make_docroot(args.make_docroot)
        return 0
    if not args.docroot:
        ap.error("--docroot is required")

    def handler(*a, **kw):
        return Handler(*a, directory=args.docroot, **kw)

    httpd = http.server.ThreadingHTTPServer((args.bind, 80), handler)
    httpd.daemon_threads = True
    threads = [threading.Thread(target=httpd.serve_forever, daemon=True)]
    for port, kind in ((53, "dns"), (7, "echo"), (7777, "stat")):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind((args.bind, port))
        threads.append(threading.Thread(target=udp_loop, args=(s, kind), daemon=True))
    for t in threads:
        t.start()
    if args.ready_file:
        with open(args.ready_file, "w") as f:
            f.write("%d\n" % os.getpid())
    sys.stderr.write("pair_server ready pid=%d\n" % os.getpid())
    sys.stderr.flush()
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
