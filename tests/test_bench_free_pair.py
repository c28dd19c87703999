"""bench/make_free_pair.py: deterministic, parseable, and its truth.json is the truth.

A 5,000-frame pair: the same seed gives the same bytes; every planted divergence differs at the
stated frames and offsets; every other frame has its twin (same flow, same IP id) byte-identical
on the other side, except TCP segments the two sides cut differently, whose byte streams are
equal per connection.
"""

from __future__ import annotations

import importlib.util
import json
import os
import struct

import dpkt
import pytest

BENCH = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "bench", "make_free_pair.py")
FRAMES = 5000


def _module():
    spec = importlib.util.spec_from_file_location("make_free_pair", BENCH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def gen(tmp_path_factory):
    mod = _module()
    base = tmp_path_factory.mktemp("free_pair")
    mod.main(["--frames", str(FRAMES), "--seed", "7", "--out", str(base / "a")])
    return mod, base


def _read(path):
    """Frame number (1-based) -> bytes; every frame parsed by dpkt down to L4."""
    frames = {}
    with open(path, "rb") as f:
        for n, (_ts, buf) in enumerate(dpkt.pcap.Reader(f), 1):
            eth = dpkt.ethernet.Ethernet(buf)
            ip = eth.data
            assert isinstance(ip, dpkt.ip.IP) and ip.len == len(buf) - 14, n
            assert isinstance(ip.data, (dpkt.tcp.TCP, dpkt.udp.UDP, dpkt.icmp.ICMP)), n
            frames[n] = buf
    return frames


def _key(frame: bytes):
    """A frame's twin on the other side has the same flow and IP id."""
    proto = frame[23]
    ports = frame[34:38] if proto in (6, 17) else b""
    return proto, frame[30:34], ports, frame[18:20]


def test_same_seed_same_bytes(gen, tmp_path):
    mod, base = gen
    mod.main(["--frames", str(FRAMES), "--seed", "7", "--out", str(tmp_path / "b")])
    mod.main(["--frames", str(FRAMES), "--seed", "8", "--out", str(tmp_path / "c")])
    for name in ("primary.pcap", "secondary.pcap", "truth.json"):
        a = (base / "a" / name).read_bytes()
        assert a == (tmp_path / "b" / name).read_bytes(), name
        assert a != (tmp_path / "c" / name).read_bytes(), name


def test_truth_matches_the_files(gen):
    _, base = gen
    truth = json.loads((base / "a" / "truth.json").read_text())
    prim = _read(base / "a" / "primary.pcap")
    sec = _read(base / "a" / "secondary.pcap")
    counts = truth["counts"]
    assert counts["primary_frames"] == len(prim) == FRAMES
    assert counts["secondary_frames"] == len(sec)
    planted = truth["planted"]
    assert {e["kind"] for e in planted} == set(_module().KINDS)      # every kind at least once

    p_keys = {_key(f): n for n, f in prim.items()}
    s_keys = {_key(f): n for n, f in sec.items()}
    assert len(p_keys) == len(prim) and len(s_keys) == len(sec)        # keys are unique per side
    p_planted, s_planted = {}, {}
    for e in planted:
        pn, sn = e["primary_frame"], e["secondary_frame"]
        if e["kind"] == "missing_secondary":
            assert sn is None and _key(prim[pn]) not in s_keys
        elif e["kind"] == "missing_primary":
            assert pn is None and _key(sec[sn]) not in p_keys
        else:
            p, s = prim[pn], sec[sn]
            assert _key(p) == _key(s) and p != s, e
            raw = e["raw_offset"]
            assert p[:raw] == s[:raw] and (raw >= min(len(p), len(s)) or p[raw] != s[raw]), e
            if e["kind"] == "tcp_ack_only":
                assert e["offset"] is None and raw == 48                     # the window
            else:
                off = e["offset"]
                assert off >= 34 and (off >= min(len(p), len(s)) or p[off] != s[off]), e
                if e["kind"] != "size":
                    assert len(p) == len(s)
                    diff = [i for i in range(len(p)) if p[i] != s[i]]
                    # besides the planted bytes only checksums differ (IP header never does)
                    assert all(i >= 34 for i in diff) and off in diff, e
        if pn is not None:
            p_planted[pn] = e
        if sn is not None:
            s_planted[sn] = e

    # everything else: the twin is identical, or both are TCP data the sides segmented differently
    resegmented = set()
    for key, pn in p_keys.items():
        sn = s_keys.get(key)
        if pn in p_planted or sn in s_planted:
            continue
        if sn is None:
            assert prim[pn][23] == 6 and len(prim[pn]) > 54, pn
            resegmented.add(key[:3])
            continue
        p, s = prim[pn], sec[sn]
        if p != s:
            assert p[23] == 6 and len(p) != len(s) and p[38:42] == s[38:42], (pn, sn)   # same seq
            resegmented.add(key[:3])
    for key, sn in s_keys.items():
        if key not in p_keys and sn not in s_planted:
            assert sec[sn][23] == 6 and len(sec[sn]) > 54, sn
            resegmented.add(key[:3])
    assert resegmented, "no response was segmented differently"

    # ... and those connections carry the same byte stream on both sides
    def streams(frames, conns):
        out = {c: {} for c in conns}
        for f in frames.values():
            k = _key(f)[:3]
            if k in out and len(f) > 54:
                out[k][struct.unpack_from("!I", f, 38)[0]] = f[54:]
        return {c: b"".join(v for _, v in sorted(d.items())) for c, d in out.items()}

    planted_conns = {_key(prim[e["primary_frame"]])[:3] for e in planted
                     if e["primary_frame"] and prim[e["primary_frame"]][23] == 6}
    ps, ss = streams(prim, resegmented), streams(sec, resegmented)
    for c in resegmented - planted_conns:
        assert ps[c] == ss[c] and ps[c], c
