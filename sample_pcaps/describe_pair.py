#!/usr/bin/env python3
"""Summarise a primary/secondary capture pair (standard library only, tiny struct-based pcap reader).

    python3 describe_pair.py primary.pcap secondary.pcap

Prints, per side, frame counts by kind, and, per flow, how the two sides differ: TCP ISNs and ACK
bases, whether the reassembled TCP payload streams are byte-identical (and which lines differ),
and which UDP/ICMP payloads differ (compared after the IP header, as colo-compare does).
"""

from __future__ import annotations

import collections
import struct
import sys


def read_pcap(path):
    """Yield (ts_seconds_float, frame_bytes, orig_len) from a classic pcap (us/ns, either byte order)."""
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
        if linktype != 1:
            raise ValueError(f"{path}: link type {linktype}, expected Ethernet (1)")
        while True:
            h = f.read(16)
            if len(h) < 16:
                return
            sec, frac, incl, orig = struct.unpack(e + "IIII", h)
            yield sec + frac / div, f.read(incl), orig


def parse(frame):
    """-> dict with kind, flow key, payload info."""
    d = {"len": len(frame)}
    et = struct.unpack("!H", frame[12:14])[0]
    if et == 0x0806:
        op = struct.unpack("!H", frame[20:22])[0]
        d.update(kind="ARP " + ("request" if op == 1 else "reply"), flow=("arp",), l4=frame[14:])
        return d
    if et != 0x0800:
        d.update(kind="ethertype 0x%04x" % et, flow=("other", et), l4=frame[14:])
        return d
    ihl = (frame[14] & 0x0F) * 4
    proto = frame[23]
    ipid = struct.unpack("!H", frame[18:20])[0]
    l4 = frame[14 + ihl:]
    d["ipid"] = ipid
    if proto == 6:
        sport, dport, seq, ack, off_flags = struct.unpack("!HHIIH", l4[:14])
        hl = (off_flags >> 12) * 4
        flags = off_flags & 0x3F
        payload = l4[hl:]
        names = "".join(n for b, n in ((2, "S"), (1, "F"), (4, "R"), (16, "."), (8, "P")) if flags & b)
        if flags & 2:
            kind = "TCP SYN-ACK"
        elif flags & 4:
            kind = "TCP RST"
        elif payload:
            kind = "TCP data" + (" +FIN" if flags & 1 else "")
        elif flags & 1:
            kind = "TCP FIN (no data)"
        else:
            kind = "TCP pure ACK"
        d.update(kind=kind, flow=("tcp", sport, dport), seq=seq, ack=ack, flags=names, payload=payload)
    elif proto == 17:
        sport, dport = struct.unpack("!HH", l4[:4])
        d.update(kind="UDP %d" % sport, flow=("udp", sport, dport), l4=l4)
    elif proto == 1:
        ident = struct.unpack("!H", l4[4:6])[0]
        d.update(kind="ICMP type %d" % l4[0], flow=("icmp", ident), l4=l4)
    else:
        d.update(kind="IP proto %d" % proto, flow=("ip", proto), l4=frame[14:])
    return d


def load(path):
    frames = []
    for ts, fr, orig in read_pcap(path):
        d = parse(fr)
        d["ts"] = ts
        d["truncated"] = orig != len(fr)
        frames.append(d)
    return frames


def tcp_stream(frames, flow):
    """Reassembled payload (relative to ISN+1) and the ISN / first ACK of a server->client flow."""
    segs = [f for f in frames if f["flow"] == flow]
    syn = next((f for f in segs if "S" in f["flags"]), None)
    isn = syn["seq"] if syn else min(f["seq"] for f in segs) - 1
    ackbase = syn["ack"] if syn else None
    buf = bytearray()
    for f in sorted(segs, key=lambda f: (f["seq"] - isn - 1) & 0xFFFFFFFF):
        if not f["payload"]:
            continue
        rel = (f["seq"] - isn - 1) & 0xFFFFFFFF
        end = rel + len(f["payload"])
        if end > len(buf):
            buf[rel:end] = f["payload"]
    return isn, ackbase, bytes(buf)


def main(argv):
    pri, sec = load(argv[1]), load(argv[2])
    sides = (("primary", argv[1], pri), ("secondary", argv[2], sec))
    for name, path, frames in sides:
        kinds = collections.Counter(f["kind"] for f in frames)
        print(f"{name}: {path}: {len(frames)} frames, {frames[-1]['ts'] - frames[0]['ts']:.3f} s, "
              f"{sum(f['len'] for f in frames)} bytes of frames, largest {max(f['len'] for f in frames)}, "
              f"truncated {sum(f['truncated'] for f in frames)}")
        for k, n in sorted(kinds.items()):
            print(f"    {k:22s} {n}")
    print(f"start skew (secondary - primary first frame): {(sec[0]['ts'] - pri[0]['ts']) * 1e3:.3f} ms")

    flows = sorted({f["flow"] for f in pri} | {f["flow"] for f in sec}, key=str)
    dts = []
    for flow in flows:
        p = [f for f in pri if f["flow"] == flow]
        s = [f for f in sec if f["flow"] == flow]
        for a, b in zip(p, s):
            dts.append(abs(a["ts"] - b["ts"]))
        line = f"{' '.join(map(str, flow)):18s} frames {len(p):3d} / {len(s):3d}"
        if flow[0] == "tcp":
            pi, pa, pb = tcp_stream(pri, flow)
            si, sa, sb = tcp_stream(sec, flow)
            d = (si - pi) & 0xFFFFFFFF
            d = d - (1 << 32) if d >= 1 << 31 else d
            line += (f"  ISN {pi:#010x} / {si:#010x} (sec-pri {d:+d})"
                     f"  client ISN+1 {pa:#010x} / {sa:#010x}"
                     f"  payload {len(pb)} / {len(sb)} bytes, {'identical' if pb == sb else 'DIFFERENT'}")
            print(line)
            if pb != sb:
                pl, sl = pb.split(b"\r\n"), sb.split(b"\r\n")
                for x, y in zip(pl, sl):
                    if x != y:
                        print(f"      {x[:70]!r}\n   vs {y[:70]!r}")
        else:
            diffs = [i for i, (a, b) in enumerate(zip(p, s)) if a["l4"] != b["l4"]]
            line += f"  payload differs in {len(diffs)} of {min(len(p), len(s))} paired frames"
            print(line)
            for i in diffs:
                print(f"      #{i}: {p[i]['l4'][8:70]!r}\n       vs {s[i]['l4'][8:70]!r}")
    dts.sort()
    if dts:
        print(f"paired-frame time offset |t_sec - t_pri|: median {dts[len(dts) // 2] * 1e3:.3f} ms, "
              f"max {dts[-1] * 1e3:.3f} ms over {len(dts)} pairs (n-th frame of each flow on both sides)")


if __name__ == "__main__":
    main(sys.argv)
