"""Classic libpcap files: microsecond (magic a1b2c3d4) and nanosecond (a1b23c4d)
resolution, either byte order.

The hot loop is the reason this module exists.  A chunk (256 KiB) is read whole and stays
whole: a batch is the chunk plus columns (``array('q')``) of each frame's timestamp, offset,
captured length and original length, so no Python object is made per frame.  Compiled (this
module is in the compiled core), the record headers are read through a C pointer into the
chunk and the columns written through typed memoryviews; interpreted, the same source indexes
the ``bytes`` and the arrays.  The chunk ends at the last complete record: the rest is handed
back to the source (``ChunkSource.unread``) and begins the next chunk, so that every frame of a
batch lies in the batch's one buffer.
"""

from __future__ import annotations

from array import array
from operator import add
from struct import Struct
from typing import Iterator

try:
    import cython
except ImportError:                 # Cython absent: the decorators below are no-ops
    from ..engine import _cython_shim as cython

from . import linktypes
from .base import MAX_ORIG_LEN, Batch, CaptureReader, Interface
from .source import ChunkSource

HEADER_LEN = 24
RECORD_HEADER_LEN = 16

# magic as it appears in the file -> (struct byte order, ns per fraction unit)
MAGICS = {
    b"\xd4\xc3\xb2\xa1": ("<", 1000),   # microseconds, little-endian writer
    b"\xa1\xb2\xc3\xd4": (">", 1000),   # microseconds, big-endian writer
    b"\x4d\x3c\xb2\xa1": ("<", 1),      # nanoseconds, little-endian writer
    b"\xa1\xb2\x3c\x4d": (">", 1),      # nanoseconds, big-endian writer
}
# Alexey Kuznetzov's "modified" pcap has longer record headers; recognised only to say so.
MODIFIED_MAGICS = (b"\x34\xcd\xb2\xa1", b"\xa1\xb2\xcd\x34")

# The upper bits of the header's link-type field carry FCS information (pcap spec); the
# link type proper is the low 26 bits (libpcap's LT_LINKTYPE).
_LINKTYPE_MASK = 0x03FFFFFF


class PcapReader(CaptureReader):
    """Reader for classic pcap; construct through ``open_capture``.

    Extra attributes: ``byte_order`` (``"<"`` or ``">"``), ``nanosecond`` (bool),
    ``snaplen``, ``linktype``, ``version`` ((major, minor)).
    """

    format = "pcap"

    def __init__(self, path, source: ChunkSource, head: bytes, **kw):
        super().__init__(path, source, **kw)
        self.byte_order, self._frac_ns = MAGICS[head[:4]]
        self.nanosecond = self._frac_ns == 1
        if len(head) < HEADER_LEN:
            raise self._error(f"file ends after {len(head)} bytes, inside the "
                              f"{HEADER_LEN}-byte pcap file header", None, len(head))
        major, minor, _thiszone, _sigfigs, snaplen, network = Struct(
            self.byte_order + "HHiIII").unpack_from(head, 4)
        if major != 2:
            raise self._error(f"unsupported pcap version {major}.{minor}", None, 4)
        self.version = (major, minor)
        self.snaplen = snaplen
        self.linktype = network & _LINKTYPE_MASK
        self.linktypes.add(self.linktype)
        self._link = linktypes.lookup(self.linktype)
        if self._link is None:
            raise self._error(f"{linktypes.name(self.linktype)} is not supported (Ethernet, "
                              f"Linux cooked SLL/SLL2 and raw IP are)", None, 20)
        self.interfaces.append(Interface(0, self.linktype, snaplen, None,
                                         10**9 if self.nanosecond else 10**6, 0, 0))
        self._pending = head
        # With note_offsets: (first frame number, byte offset of its record, frames, bytes of
        # their records) of every batch read so far, where a later look-up by number reads
        # (batch_at; captures.pick).  Off by default: a replay's memory must not grow with the
        # capture, however little.
        self.note_offsets = False
        self.batch_offsets: list = []

    @property
    def random_access(self) -> bool:
        """``batch_at`` works: the capture is an uncompressed regular file."""
        return self._source.seekable

    def batch_at(self, offset: int, number: int, size: int) -> Batch:
        """The batch whose records, frame ``number`` first, are the ``size`` bytes at byte
        ``offset`` (as ``batch_offsets`` noted them): one read, for fetching a few frames by
        number without walking the capture from its start (``captures.pick.FramePicker``).
        Not for the replay: no gap or warning checks are made (the first pass made them)."""
        buf = self._source.read_at(offset, size)
        big = self.byte_order == ">"
        n, _end, _bad = _count(buf, 0, big, self.max_caplen, 1_000_000_000 // self._frac_ns,
                               Struct(self.byte_order + "II").unpack_from)
        if not n:
            raise self._error("no whole record where the capture's index says one begins", number, offset)
        cols = self._columns(buf, 0, n, big, Struct(self.byte_order + "IIII").unpack_from)
        return self._batch(number, buf, *cols[:7])

    def _columns(self, buf: bytes, pos: int, n: int, big: bool, unpack4) -> tuple:
        """The ``n`` records counted at ``pos`` in ``buf`` as columns: ``(timestamps, starts, caps,
        orig_lens, truncated frames, ts_min, ts_max, index of the first impossible original
        length or -1)``."""
        ts = array("q", bytes(8 * n))
        starts = array("q", ts)
        caps = array("q", ts)
        origs = array("q", ts)
        truncated, ts_min, ts_max, odd = _fill(buf, pos, n, big, self._frac_ns, MAX_ORIG_LEN, ts, starts, caps,
                                               origs, unpack4)
        return ts, starts, caps, origs, truncated, ts_min, ts_max, odd

    def _batch(self, number: int, buf: bytes, ts, starts, caps, origs, truncated: int, ts_min, ts_max) -> Batch:
        """A batch of those columns, its first frame ``number``: the chunk and its columns, or
        for a link type made Ethernet (``linktypes``) the converted frames."""
        convert, delta = self._link.convert, self._link.delta
        if convert is None:
            return PcapBatch(number, ts, None, origs, [0] * len(ts), None, truncated, buf=buf, starts=starts,
                             caps=caps, ts_min=ts_min, ts_max=ts_max)
        frames = [convert(buf[s:s + c]) for s, c in zip(starts, caps)]
        if delta:
            origs = array("q", [o + delta for o in origs])
        return Batch(number, ts, frames, origs, [0] * len(ts), ts_min=ts_min, ts_max=ts_max)

    def _batches(self) -> Iterator[Batch]:
        big = self.byte_order == ">"
        frac_ns = self._frac_ns
        frac_lim = 1_000_000_000 // frac_ns     # ts_usec < 10^6, ts_nsec < 10^9
        snaplen = self.snaplen
        # snaplen 0 is written by some tools for "unlimited".  A record above the snaplen (but not
        # above max_caplen) is read in full after one warning (_over_snaplen), as Wireshark does.
        maxcap = min(snaplen, self.max_caplen) if snaplen else self.max_caplen
        convert = self._link.convert
        unpack2 = Struct(self.byte_order + "II").unpack_from      # the interpreted loops' readers
        unpack4 = Struct(self.byte_order + "IIII").unpack_from
        source = self._source
        chunk_size = source.chunk_size
        buf = self._pending        # the first chunk: the file header and what followed it
        self._pending = b""
        pos = HEADER_LEN           # where the next record starts in buf
        base = 0                   # stream offset of buf[0]
        number = 1                 # frame number of the next record
        while True:
            n, end, bad = _count(buf, pos, big, maxcap, frac_lim, unpack2)
            if n:
                ts, starts, caps, origs, truncated, ts_min, ts_max, odd = self._columns(buf, pos, n, big, unpack4)
                if odd >= 0:
                    self._impossible_orig_lens(odd, number, base, starts, caps, origs)
                self.frames_read += n
                self.truncated_frames += truncated
                if self.note_offsets:
                    self.batch_offsets.append((number, base + pos, n, end - pos))
                if convert is not None:
                    self.synthesised_ethernet = True
                yield self._batch(number, buf, ts, starts, caps, origs, truncated, ts_min, ts_max)
                number += n
            if bad:
                at = base + end
                if bad == _BAD_CAPLEN:
                    caplen = _u32(buf, end + 8, big)
                    if maxcap < caplen <= self.max_caplen:
                        # above the file's snaplen only: said once, then every frame up to
                        # max_caplen is read (the loop's check stays one comparison)
                        self._over_snaplen(caplen, number, at)
                        maxcap = self.max_caplen
                        pos = end
                        continue
                    err = self._caplen_error(caplen, number, at)
                else:
                    err = self._frac_error(_u32(buf, end + 4, big), number, at)
                raise self._check_stream(err)
            left = len(buf) - end    # an incomplete record at the end of buf
            if left:
                # Start the next chunk at this record, and make it hold the whole record.
                need = RECORD_HEADER_LEN
                if left >= RECORD_HEADER_LEN:
                    need += _u32(buf, end + 8, big)
                source.unread(buf[end:])
                chunk = source.read(max(chunk_size, need))
            else:
                chunk = source.read(chunk_size)
            if len(chunk) <= left:   # nothing more came: the end of the data
                if source.error is not None:
                    raise self._gzip_error(number, base + end + len(chunk))
                if chunk:
                    raise self._eof_error(chunk, number, base + end)
                return
            base += end
            buf = chunk
            pos = 0

    def _impossible_orig_lens(self, first: int, number: int, base: int, starts, caps, origs) -> None:
        """A warning for each frame of the batch from index ``first`` on whose original length is
        above ``MAX_ORIG_LEN`` (``_fill`` found the first; the batch's first frame is ``number``,
        ``base`` the stream offset of its buffer)."""
        for i in range(first, len(origs)):
            if caps[i] < origs[i] and origs[i] > MAX_ORIG_LEN:
                self._impossible_orig_len(origs[i], number + i, base + starts[i] - RECORD_HEADER_LEN,
                                          "record header")

    def _over_snaplen(self, caplen: int, number: int, offset: int) -> None:
        """A record holds more bytes than the file header's snaplen (a writer that put a wrong
        snaplen there): valid, Wireshark reads such frames whole and so does this reader (libpcap
        cuts them to the snaplen).  One warning, at the first of them."""
        self._warn("snaplen", f"record header declares {caplen} captured bytes, more than the file's snaplen "
                              f"{self.snaplen}: read in full, as Wireshark does (this frame and any other up to "
                              f"{self.max_caplen} bytes)", number, offset, "frames above the snaplen")

    def _caplen_error(self, caplen: int, number: int, offset: int):
        return self._error(f"record header declares {caplen} captured bytes, more than the "
                           f"{self.max_caplen} bytes any frame can have", number, offset)

    def _record_offset(self, number: int) -> int | None:
        from .locate import pcap_record_offset
        return pcap_record_offset(self.path, number)

    def _frac_error(self, frac: int, number: int, offset: int):
        unit = "ts_usec" if self._frac_ns == 1000 else "ts_nsec"
        return self._error(f"invalid timestamp: {unit} {frac} is not below {1_000_000_000 // self._frac_ns}",
                           number, offset)

    def _eof_error(self, rest: bytes, number: int, offset: int):
        if len(rest) < RECORD_HEADER_LEN:
            return self._error(f"partial record header: file ends after {len(rest)} of its "
                               f"{RECORD_HEADER_LEN} bytes", number, offset)
        caplen = Struct(self.byte_order + "I").unpack_from(rest, 8)[0]
        return self._error(f"record header declares {caplen} captured bytes, file ends after "
                           f"{len(rest) - RECORD_HEADER_LEN}", number, offset)


_BAD_CAPLEN = 1
_BAD_FRAC = 2


def _u32(buf: bytes, at: int, big: bool) -> int:
    """The unsigned 32-bit field at ``buf[at:at + 4]`` (for messages and the odd record)."""
    return int.from_bytes(buf[at:at + 4], "big" if big else "little")


# The record loops.  Compiled, a 32-bit field is assembled byte by byte: p[i] is a C byte read
# through the pointer into the chunk (and the shifts are on long long locals, so a high byte
# cannot overflow a C int).  Interpreted, eight byte reads per field pair would cost ~1 µs a frame
# (2.6x the reading time of struct), so the interpreted core reads the same fields with one
# ``struct`` call instead (``cython.compiled`` is a constant: the compiled module has no such
# branch).  Everything else, the checks, the offsets and the columns, is one code for both.
# 16 is RECORD_HEADER_LEN written out: a module global would be a Python object in the compiled
# loop.

@cython.locals(v=cython.longlong)
def _field(p, q: int, big: bool) -> int:
    """The unsigned 32-bit record-header field at ``p[q:q + 4]`` in the file's byte order, read
    byte by byte (compiled core: an inline C function over the chunk pointer; the shifts are on a
    long long, so a high byte cannot overflow a C int)."""
    if big:
        v = p[q]
        return ((v << 8 | p[q + 1]) << 8 | p[q + 2]) << 8 | p[q + 3]
    v = p[q + 3]
    return ((v << 8 | p[q + 2]) << 8 | p[q + 1]) << 8 | p[q]


@cython.boundscheck(False)
@cython.wraparound(False)
@cython.locals(p=cython.p_uchar, pos=cython.Py_ssize_t, end=cython.Py_ssize_t, n=cython.Py_ssize_t,
               q=cython.Py_ssize_t, caplen=cython.longlong, frac=cython.longlong,
               maxcap=cython.longlong, frac_lim=cython.longlong, big=cython.bint)
def _count(buf: bytes, pos: int, big: bool, maxcap: int, frac_lim: int, unpack2):
    """``(n, end, bad)``: the ``n`` complete records from ``buf[pos:]``, the offset ``end``
    after them, and ``bad`` (0, ``_BAD_CAPLEN`` or ``_BAD_FRAC``) when the record at ``end``
    has a header no reader may accept (checked before its completeness, as it always was).
    ``unpack2``: ts fraction and caplen from ``buf`` at an offset (interpreted only)."""
    p = buf
    end = len(buf)
    n = 0
    while pos + 16 <= end:
        q = pos
        if not cython.compiled:
            frac, caplen = unpack2(buf, q + 4)
        else:
            caplen = _field(p, q + 8, big)
            frac = _field(p, q + 4, big)
        if caplen > maxcap:
            return n, pos, _BAD_CAPLEN
        if frac >= frac_lim:
            return n, pos, _BAD_FRAC
        if pos + 16 + caplen > end:
            break
        pos += 16 + caplen
        n += 1
    return n, pos, 0


@cython.boundscheck(False)
@cython.wraparound(False)
@cython.locals(p=cython.p_uchar, pos=cython.Py_ssize_t, n=cython.Py_ssize_t, i=cython.Py_ssize_t,
               q=cython.Py_ssize_t, sec=cython.longlong, frac=cython.longlong, caplen=cython.longlong,
               orig=cython.longlong, t=cython.longlong, lo=cython.longlong, hi=cython.longlong,
               frac_ns=cython.longlong, maxorig=cython.longlong, cut=cython.Py_ssize_t, odd=cython.Py_ssize_t,
               big=cython.bint,
               ts=cython.longlong[::1], starts=cython.longlong[::1], caps=cython.longlong[::1],
               origs=cython.longlong[::1])
def _fill(buf: bytes, pos: int, n: int, big: bool, frac_ns: int, maxorig: int, ts, starts, caps, origs,
          unpack4):
    """Write the ``n`` records from ``buf[pos:]`` (counted by ``_count``) into the columns:
    timestamp (ns), offset of the frame in ``buf``, captured and original length.  Returns
    ``(cut, ts_min, ts_max, odd)``: how many frames a snaplen cut, the smallest and largest time,
    and the index of the first frame whose original length is above ``maxorig`` (-1: none).
    Only frames a snaplen cut are checked (an impossible original length is above any captured
    one): no test at all for a whole frame, one more for a cut one.
    ``unpack4``: the four header fields from ``buf`` at an offset (interpreted only)."""
    p = buf
    cut = 0
    odd = -1
    lo = hi = 0
    for i in range(n):
        q = pos
        if not cython.compiled:
            sec, frac, caplen, orig = unpack4(buf, q)
        else:
            sec = _field(p, q, big)
            frac = _field(p, q + 4, big)
            caplen = _field(p, q + 8, big)
            orig = _field(p, q + 12, big)
        t = sec * 1_000_000_000 + frac * frac_ns
        ts[i] = t
        if i == 0:
            lo = hi = t
        elif t < lo:
            lo = t
        elif t > hi:
            hi = t
        starts[i] = q + 16
        caps[i] = caplen
        origs[i] = orig
        if caplen < orig:
            cut += 1
            if orig > maxorig and odd < 0:
                odd = i
        pos = q + 16 + caplen
    return cut, lo, hi, odd


@cython.boundscheck(False)
@cython.wraparound(False)
@cython.locals(data=bytes, starts=cython.longlong[::1], caps=cython.longlong[::1], i=cython.Py_ssize_t,
               n=cython.Py_ssize_t, s=cython.Py_ssize_t, out=list)
def cut_frames(buf, starts, caps) -> list:
    """``[buf[s:s + c] for s, c in zip(starts, caps)]`` (``PcapBatch.frames``).  Compiled,
    each frame is one bytes object made from C offsets; interpreted, C-level maps."""
    if not cython.compiled or type(buf) is not bytes:
        return list(map(buf.__getitem__, map(slice, starts, map(add, starts, caps))))
    data = buf
    n = len(starts)
    out = [None] * n
    for i in range(n):
        s = starts[i]
        out[i] = data[s:s + caps[i]]
    return out


class PcapBatch(Batch):
    """The pcap reader's columnar ``Batch``: its ``frames`` are cut by ``cut_frames``."""

    __slots__ = ()
    _cut = staticmethod(cut_frames)
