"""Estimate the clock skew between the primary's and the secondary's capture (``--align auto``).

Frames that the two VMs produced identically are the anchors: a frame's *content key* is what
colo-compare would compare — the TCP payload (when there is one), or everything after the IP
header for UDP/ICMP — together with the IP protocol.  Keys seen exactly once on each side pair
up; the offset to add to the secondary's timestamps is the median of (primary time - secondary
time) over those pairs, and the residual is the spread around it.  Header fields (IP ID, TTL,
TCP sequence numbers, which differ with the ISNs) are deliberately left out of the key.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import compress
from operator import getitem
from typing import NamedTuple

import numpy as np

from . import framecols


@dataclass
class Alignment:
    offset_ns: int          # add this to every secondary timestamp
    anchors: int            # frame pairs used
    residual_p50_ns: int    # median |diff - offset|
    residual_p95_ns: int

    def describe(self) -> str:
        return (f"secondary offset {self.offset_ns / 1e6:+.3f} ms from {self.anchors} matching frames, "
                f"residual p50 {self.residual_p50_ns / 1e6:.3f} ms / p95 {self.residual_p95_ns / 1e6:.3f} ms")


def content_key(frame: bytes, vnet: int = 0) -> bytes | None:
    """The bytes colo-compare would compare for this frame, or None when it has none worth
    anchoring on (non-IPv4, pure ACKs, truncated headers)."""
    d = vnet
    if len(frame) < d + 34 or frame[d + 12:d + 14] != b"\x08\x00":
        return None
    ip = d + 14
    ihl = (frame[ip] & 0x0F) * 4
    proto = frame[ip + 9]
    total = int.from_bytes(frame[ip + 2:ip + 4], "big")
    end = min(len(frame), ip + total) if total >= ihl else len(frame)   # drop Ethernet padding
    l4 = ip + ihl
    if proto == 6:
        if l4 + 13 > len(frame):
            return None
        body = frame[l4 + (frame[l4 + 12] >> 4) * 4:end]
        return b"\x06" + body if len(body) >= 8 else None      # short payloads repeat too often
    if proto in (1, 17):
        body = frame[l4:end]
        return bytes((proto,)) + body if body else None
    return None


class _Keyed(NamedTuple):
    """The primary's frames that have a content key, in columns: the key is ``proto`` followed
    by ``bufs[part][start:end]``; ``fp`` is a fingerprint of the key (equal keys, equal
    fingerprints), ``ts`` the frame's timestamp."""

    bufs: list
    part: np.ndarray
    proto: np.ndarray
    start: np.ndarray
    end: np.ndarray
    fp: np.ndarray
    ts: np.ndarray

    def key(self, i: int) -> bytes:
        return bytes((int(self.proto[i]),)) + self.bufs[int(self.part[i])][int(self.start[i]):int(self.end[i])]


_M1, _M2, _M3 = np.uint64(0x9E3779B97F4A7C15), np.uint64(0xC2B2AE3D27D4EB4F), np.uint64(0x165667B19E3779F9)
_EIGHT = np.arange(8, dtype=np.int64)


_KEYED_PROTO = np.zeros(256, dtype=bool)           # the protocols that have a content key
_KEYED_PROTO[[1, 6, 17]] = True


def _key_extents(cols: framecols.Columns, vnet: int):
    """``(rows, proto, start, end)`` of the batch's frames that have a content key: what
    ``content_key`` computes, for all frames at once (positions are in ``cols.buf``;
    ``a[k:][at]`` is ``a[at + k]``).  A byte past a frame's end may be gathered (from the next
    frame, or clipped to the buffer) but is used only where ``content_key`` would have read it."""
    a = cols.a
    rows = np.flatnonzero(cols.caps >= vnet + 34)
    eth = cols.starts[rows] + vnet
    proto = a[23:][eth]
    keep = (a[12:][eth] == 0x08) & (a[13:][eth] == 0x00) & _KEYED_PROTO[proto]
    if not keep.all():
        rows, eth, proto = rows[keep], eth[keep], proto[keep]
    flen = cols.ends[rows]
    ip = eth + 14
    ihl = (a[14:][eth] & 0x0F).astype(np.int64) << 2
    total = (a[16:][eth].astype(np.int64) << 8) | a[17:][eth]
    end = np.where(total >= ihl, np.minimum(flen, ip + total), flen)     # drop Ethernet padding
    l4 = ip + ihl
    tcp = proto == 6
    has_off = tcp & (l4 + 13 <= flen)                   # the TCP data offset is in the frame
    start = l4 + np.where(has_off, np.take(a, l4 + 12, mode="clip") >> 4, 0).astype(np.int64) * 4
    size = end - start                                  # <= 0: an empty slice
    keep = np.where(tcp, has_off & (size >= 8), size > 0)
    return rows[keep], proto[keep], start[keep], end[keep]


def _fingerprints(a: np.ndarray, proto, start, end) -> np.ndarray:
    """A 64-bit function of each key (its protocol, length, first and last 8 bytes): frames with
    different fingerprints have different keys; equal fingerprints are checked byte by byte."""
    size = end - start
    first = np.take(a, start[:, None] + _EIGHT, mode="clip")
    last = np.take(a, end[:, None] - 8 + _EIGHT, mode="clip")
    short = size < 8                                    # UDP/ICMP only: zeros outside the body
    if short.any():
        first[short] *= _EIGHT < size[short, None]
        last[short] *= _EIGHT >= 8 - size[short, None]
    meta = (size.astype(np.uint64) << np.uint64(8)) | proto
    return first.view(np.uint64).ravel() * _M1 ^ last.view(np.uint64).ravel() * _M2 ^ meta * _M3


def _keyed_batches(reader, vnet: int):
    """Per batch with keyed frames: ``(buf, proto, start, end, fingerprint, timestamps)`` of them."""
    for batch in reader.batches():
        if not len(batch):
            continue
        cols = framecols.columns(batch)
        rows, proto, start, end = _key_extents(cols, vnet)
        if rows.size:
            yield cols.buf, proto, start, end, _fingerprints(cols.a, proto, start, end), \
                _times(batch.timestamps)[rows]


def _keyed(reader, vnet: int) -> _Keyed:
    """The frames of a capture that have a content key (``content_key``), as ``_Keyed``."""
    bufs, parts, cols = [], [], ([], [], [], [], [])
    for buf, *columns in _keyed_batches(reader, vnet):
        parts.append(np.full(columns[0].size, len(bufs), dtype=np.int64))
        bufs.append(buf)
        for col, values in zip(cols, columns):
            col.append(values)
    if not bufs:
        empty = np.zeros(0, dtype=np.int64)
        return _Keyed([], empty, empty.astype(np.uint8), empty, empty, empty.astype(np.uint64), empty)
    return _Keyed(bufs, *(np.concatenate(c) for c in (parts, *cols[:4], _same_type(cols[4]))))


def _times(timestamps) -> np.ndarray:
    """A batch's timestamps as int64, or as Python ints (object) when one does not fit."""
    try:
        return np.asarray(timestamps, dtype=np.int64)
    except OverflowError:
        return np.asarray(list(timestamps), dtype=object)


def _same_type(times: list) -> list:
    """Timestamp columns all int64, or all Python ints when one is."""
    if any(t.dtype == object for t in times):
        return [t.astype(object) for t in times]
    return times


class _Groups:
    """The primary's keyed frames grouped by fingerprint, and which of them carry a key that no
    other primary frame has (only those can be anchors)."""

    def __init__(self, p: _Keyed):
        self.p = p
        n = p.fp.size
        order = np.argsort(p.fp, kind="stable")
        fp = p.fp[order]
        first = np.ones(n, dtype=bool)
        first[1:] = fp[1:] != fp[:-1]
        begin = np.flatnonzero(first)
        self.fps = fp[begin]                                   # sorted, distinct
        self.count = count = np.diff(np.append(begin, n))
        self.rep = order[begin]                                # a group's first frame
        # A group of several frames is nearly always one frame repeated (one key: no anchor).
        # Compare every member with the group's first, all groups at once; a group where some
        # differ holds several keys, sorted out by the keys themselves.
        multi = np.flatnonzero(count > 1)
        firsts = np.repeat(self.rep[multi], count[multi] - 1)
        others = order[~first]                  # the members after the first, group by group
        same = _equal(p, firsts, p.proto[others],
                      _slices(list(map(memoryview, p.bufs)), p.part[others], p.start[others], p.end[others]),
                      p.end[others] - p.start[others])
        mixed = np.unique(np.repeat(multi, count[multi] - 1)[~same]).tolist()
        self.live = {g: self._singles(order[begin[g]:begin[g] + count[g]].tolist()) for g in mixed}

    def find(self, fp: np.ndarray) -> np.ndarray:
        """Each fingerprint's group, -1 where the primary has none."""
        if not self.fps.size:
            return np.full(fp.size, -1, dtype=np.int64)
        g = np.minimum(np.searchsorted(self.fps, fp), self.fps.size - 1)
        return np.where(self.fps[g] == fp, g, -1)

    def _singles(self, members: list) -> list:
        """The members whose key no other member has."""
        p = self.p
        seen: dict = {}
        for i in members:
            seen.setdefault(p.key(i), []).append(i)
        return [rows[0] for rows in seen.values() if len(rows) == 1]


def _slices(views: list, part: np.ndarray, start: np.ndarray, end: np.ndarray):
    """``views[part[i]][start[i]:end[i]]`` for each i (memoryviews: no copy), lazily."""
    return map(getitem, map(views.__getitem__, part.tolist()), map(slice, start.tolist(), end.tolist()))


def _equal(p: _Keyed, rows: np.ndarray, proto: np.ndarray, bodies, size: np.ndarray) -> np.ndarray:
    """Whether the primary frames ``rows`` carry the keys ``(proto, bodies)``: ``bodies`` are
    bytes-like, in order, and ``size`` their lengths."""
    ok = (p.end[rows] - p.start[rows] == size) & (p.proto[rows] == proto)
    pick = rows
    if not ok.all():
        pick = rows[ok]
        bodies = compress(bodies, ok.tolist())
    # the one step per pair: the bodies compared in place (startswith on equal lengths: a memcmp)
    ok[ok] = np.fromiter(map(bytes.startswith, map(p.bufs.__getitem__, p.part[pick].tolist()), bodies,
                             p.start[pick].tolist()), dtype=bool, count=pick.size)
    return ok


def _matches(groups: _Groups, reader, vnet: int):
    """Read the secondary: ``(rows, times)``, for every secondary frame whose key some primary
    frame has alone in its capture, that primary frame and the secondary frame's timestamp."""
    p = groups.p
    got_rows, got_times = [], []
    for buf, proto, start, end, fp, ts in _keyed_batches(reader, vnet):
        g = groups.find(fp)
        hit = np.flatnonzero(g >= 0)
        if not hit.size:
            continue
        g = g[hit]
        single = groups.count[g] == 1
        # a group of one primary frame: equal protocol, length and bytes make the key equal
        one = hit[single]
        rep = groups.rep[g[single]]
        equal = _equal(p, rep, proto[one], _slices([memoryview(buf)], np.zeros_like(one), start[one], end[one]),
                       end[one] - start[one])
        got_rows.append(rep[equal])
        got_times.append(ts[one[equal]])
        many = hit[~single]
        if groups.live and many.size:
            found = []
            for i, gi in zip(many.tolist(), g[~single].tolist()):
                body = buf[start[i]:end[i]]
                for r in groups.live.get(gi, ()):
                    if p.proto[r] == proto[i] and _body(p, r) == body:
                        found.append((i, r))
                        break
            if found:
                got_rows.append(np.array([r for _i, r in found], dtype=np.int64))
                got_times.append(ts[[i for i, _r in found]])
    if not got_rows:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    return np.concatenate(got_rows), np.concatenate(_same_type(got_times))


def _body(p: _Keyed, i: int) -> bytes:
    return p.bufs[int(p.part[i])][int(p.start[i]):int(p.end[i])]


def _int64_safe(*columns: np.ndarray) -> bool:
    """Whether all times are in [0, 2**62): their differences, and those differences'
    distances from one another, then fit in int64."""
    return all(ts.dtype != object and (not ts.size or (int(ts.min()) >= 0 and int(ts.max()) < 1 << 62))
               for ts in columns)


def estimate_alignment(primary_reader, secondary_reader, vnet: int = 0) -> Alignment:
    """Read both captures once and estimate the secondary's clock offset.  Raises ValueError
    when no frame matches on both sides.

    The anchors are the content keys seen exactly once on each side (``content_key``), found
    without a ``bytes`` key per frame: the primary's keyed frames are kept in place (their
    batches' buffers) and grouped by a fingerprint of the key; each secondary frame whose
    fingerprint the primary has is compared byte for byte with the primary frame(s) that carry
    a key of their own; a primary frame met by exactly one secondary frame is an anchor."""
    p = _keyed(primary_reader, vnet)
    rows, s_ts = _matches(_Groups(p), secondary_reader, vnet)
    met, at, times = np.unique(rows, return_index=True, return_counts=True)
    once = times == 1
    pt, st = p.ts[met[once]], s_ts[at[once]]
    if not _int64_safe(pt, st):
        # a time difference, or its distance from the median, could overflow int64: Python ints
        pt, st = pt.astype(object), st.astype(object)
    diffs = pt - st
    if not diffs.size:
        raise ValueError("--align auto: no frame has the same content in both captures")
    n = diffs.size
    diffs.sort()
    offset = diffs[n // 2]
    res = np.abs(diffs - offset)
    res.sort()
    return Alignment(int(offset), n, int(res[n // 2]), int(res[min(n - 1, (n * 95) // 100)]))
