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
    """The primary's content keys that occur exactly once in it (only they can be anchors), in
    columns: the key is ``proto`` followed by ``bufs[part][start:end]``; ``fp`` is a fingerprint
    of the key (equal keys, equal fingerprints), ``ts`` the frame's timestamp."""

    bufs: list
    part: np.ndarray
    proto: np.ndarray
    start: np.ndarray
    end: np.ndarray
    fp: np.ndarray
    ts: np.ndarray


_M1, _M2, _M3 = np.uint64(0x9E3779B97F4A7C15), np.uint64(0xC2B2AE3D27D4EB4F), np.uint64(0x165667B19E3779F9)
_EIGHT = np.arange(8, dtype=np.int64)


# Batch buffers kept whole while reading the primary, at most (then compacted to the bodies of
# their keys): a copy costs more than the buffer's pages, until memory matters
_HELD_WHOLE = 128 << 20

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


def _keyed_columns(cols: framecols.Columns, timestamps, vnet: int):
    """A batch's keyed frames, ``(buf, proto, start, end, fingerprint, timestamps)`` of them, or
    None when it has none."""
    rows, proto, start, end = _key_extents(cols, vnet)
    if not rows.size:
        return None
    return cols.buf, proto, start, end, _fingerprints(cols.a, proto, start, end), _times(timestamps)[rows]


class _Distinct:
    """The distinct content keys of the primary as it is read, and how many frames have each.

    As the old ``{key: time}`` dict and ``dup`` set did, one copy of each distinct key is kept:
    the batch buffers that hold new keys are kept whole up to ``_HELD_WHOLE`` bytes (a warning's
    50,000-frame sample: no copy at all), then the new keys' bodies are copied out of them and
    the buffers let go (a whole capture under ``--align auto``: memory as the keys).  A frame
    whose fingerprint was seen before is compared with the first frame that had it (and, rarely,
    with the later ones that had it under another key): equal, it is a repeat of that key;
    different, a key of its own.  Columns are indexed by a frame's number among the keyed
    frames (its id); ``count`` is 0 for a repeat."""

    def __init__(self):
        self.first_of: dict = {}    # fingerprint -> id of the first frame with it
        self.also: dict = {}        # fingerprint -> ids of later frames with another key under it
        self.bufs: list = []        # batch buffers (whole, or the bodies of their new keys end to end)
        self.whole: list = []       # (part, ids) of the buffers in bufs still whole
        self.held = 0               # their size
        self.n = 0
        self.part = np.zeros(0, dtype=np.int64)
        self.start = np.zeros(0, dtype=np.int64)
        self.end = np.zeros(0, dtype=np.int64)
        self.proto = np.zeros(0, dtype=np.uint8)
        self.count = np.zeros(0, dtype=np.int64)
        self.fps: list = []
        self.times: list = []

    def add(self, buf: bytes, proto, start, end, fp, ts) -> None:
        """One batch's keyed frames (``_keyed_batches``)."""
        n, k = self.n, fp.size
        self.n = top = n + k
        if top > self.part.size:
            grow = max(top, 2 * self.part.size)
            for name in ("part", "start", "end", "proto", "count"):
                old = getattr(self, name)
                new = np.zeros(grow, dtype=old.dtype)
                new[:old.size] = old
                setattr(self, name, new)
        fl = fp.tolist()
        got = np.fromiter(map(self.first_of.setdefault, fl, range(n, top)), dtype=np.int64, count=k)
        new = got == np.arange(n, top)
        self.start[n:top] = start
        self.end[n:top] = end
        self.proto[n:top] = proto
        self.count[n:top] = new
        if new.any():
            ids = np.flatnonzero(new) + n
            self.part[ids] = len(self.bufs)
            self.whole.append((len(self.bufs), ids))
            self.bufs.append(buf)
            self.held += len(buf)
        i = np.flatnonzero(~new)
        if i.size:
            first = got[i]
            ok = (self.end[first] - self.start[first] == end[i] - start[i]) & (self.proto[first] == proto[i])
            m = int(ok.sum())
            view = memoryview(buf)
            # the one step per repeat: its body compared in place with the first's (a memcmp)
            ok[ok] = np.fromiter(map(bytes.startswith, map(self.bufs.__getitem__, self.part[first[ok]].tolist()),
                                     _slices([view], np.zeros(m, dtype=np.int64), start[i[ok]], end[i[ok]]),
                                     self.start[first[ok]].tolist()), dtype=bool, count=m)
            np.add.at(self.count, first[ok], 1)
            for j in i[~ok].tolist():       # another key under a known fingerprint (rare)
                self._another(fl[j], n + j, bytes(view[start[j]:end[j]]))
        if self.held > _HELD_WHOLE:
            self._compact()
        self.fps.append(fp)
        self.times.append(ts)

    def _another(self, fp: int, me: int, body: bytes) -> None:
        """Frame ``me`` has a fingerprint seen before but not the key of its first frame: a
        repeat of one of the other keys under that fingerprint, or a new key (kept on its own)."""
        for r in self.also.get(fp, ()):
            if self.proto[r] == self.proto[me] and self.bufs[self.part[r]][self.start[r]:self.end[r]] == body:
                self.count[r] += 1
                return
        self.part[me], self.start[me], self.end[me], self.count[me] = len(self.bufs), 0, len(body), 1
        self.bufs.append(body)
        self.also.setdefault(fp, []).append(me)

    def _compact(self) -> None:
        """Replace the whole buffers by the bodies of their new keys, end to end."""
        for part, ids in self.whole:
            buf = self.bufs[part]
            start, end = self.start[ids], self.end[ids]
            self.bufs[part] = b"".join(map(buf.__getitem__, map(slice, start.tolist(), end.tolist())))
            size = end - start
            at = np.zeros(size.size, dtype=np.int64)
            np.cumsum(size[:-1], out=at[1:])
            self.start[ids], self.end[ids] = at, at + size
        self.whole.clear()
        self.held = 0

    def once(self) -> _Keyed:
        """The keys that occurred exactly once."""
        live = np.flatnonzero(self.count[:self.n] == 1)
        if not live.size:
            empty = np.zeros(0, dtype=np.int64)
            return _Keyed([], empty, empty.astype(np.uint8), empty, empty, empty.astype(np.uint64), empty)
        return _Keyed(self.bufs, self.part[live], self.proto[live], self.start[live], self.end[live],
                      np.concatenate(self.fps)[live], np.concatenate(_same_type(self.times))[live])


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
    """The primary's keys that occur once, grouped by fingerprint (a group of several: distinct
    keys that share a fingerprint, rare)."""

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
        self.rep = order[begin]                                # a group's first key
        # group -> its keys, for the groups of several
        self.live = {g: order[begin[g]:begin[g] + count[g]].tolist()
                     for g in np.flatnonzero(count > 1).tolist()}

    def find(self, fp: np.ndarray) -> np.ndarray:
        """Each fingerprint's group, -1 where the primary has none."""
        if not self.fps.size:
            return np.full(fp.size, -1, dtype=np.int64)
        g = np.minimum(np.searchsorted(self.fps, fp), self.fps.size - 1)
        return np.where(self.fps[g] == fp, g, -1)


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


def _match(groups: _Groups, got_rows: list, got_times: list, buf: bytes, proto, start, end, fp, ts) -> None:
    """One secondary batch's keyed frames (``_keyed_columns``): for every frame whose key some
    primary frame has alone in its capture, that primary frame (into ``got_rows``) and the
    secondary frame's timestamp (``got_times``)."""
    p = groups.p
    g = groups.find(fp)
    hit = np.flatnonzero(g >= 0)
    if hit.size:
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
    without a ``bytes`` key per frame: the primary's distinct keys are kept once each
    (``_Distinct``: repeats found by a fingerprint of the key and a byte comparison), those seen
    once grouped by fingerprint; each secondary frame whose fingerprint such a key has is compared
    byte for byte with it; a key met by exactly one secondary frame is an anchor."""
    est = AlignmentEstimator(vnet)
    for add, reader in ((est.primary, primary_reader), (est.secondary, secondary_reader)):
        for batch in reader.batches():
            if len(batch):
                add(framecols.columns(batch), batch.timestamps)
    return est.result()


class AlignmentEstimator:
    """``estimate_alignment`` fed a batch at a time (``framecols.columns`` and the batch's
    timestamps), for a caller that reads the captures for more than this: every batch of the
    primary (``primary``), then the secondary's (``secondary``), then ``result()``."""

    def __init__(self, vnet: int = 0):
        self.vnet = vnet
        self._keys = _Distinct()
        self._groups: _Groups | None = None      # the primary's keys seen once, when it is read
        self._rows: list = []
        self._times: list = []

    def primary(self, cols: framecols.Columns, timestamps) -> None:
        if self._groups is not None:
            raise ValueError("AlignmentEstimator: the primary's batches come before the secondary's")
        keyed = _keyed_columns(cols, timestamps, self.vnet)
        if keyed is not None:
            self._keys.add(*keyed)

    def secondary(self, cols: framecols.Columns, timestamps) -> None:
        keyed = _keyed_columns(cols, timestamps, self.vnet)
        if keyed is not None:
            _match(self._primary_read(), self._rows, self._times, *keyed)

    def _primary_read(self) -> _Groups:
        if self._groups is None:
            self._groups = _Groups(self._keys.once())
            self._keys = None
        return self._groups

    def result(self) -> Alignment:
        """The estimate; ValueError when no frame matches on both sides."""
        p = self._primary_read().p
        if self._rows:
            rows, s_ts = np.concatenate(self._rows), np.concatenate(_same_type(self._times))
        else:
            rows = s_ts = np.zeros(0, dtype=np.int64)
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
