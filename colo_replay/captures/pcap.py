"""Classic libpcap files: microsecond (magic a1b2c3d4) and nanosecond (a1b23c4d)
resolution, either byte order.

The hot loop is the reason this module exists: one ``unpack_from`` of the 16-byte record
header over a chunk (256 KiB), one ``bytes`` slice for the frame, three list appends.  No
object per frame.
"""

from __future__ import annotations

from struct import Struct
from typing import Iterator

try:
    import cython
except ImportError:                 # Cython absent: @cython.locals below is a no-op
    from ..engine import _cython_shim as cython

from . import linktypes
from .base import Batch, CaptureReader, Interface
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
        self._pending = head[HEADER_LEN:]

    # compiled core: C integers for the offsets of the record loop; a no-op interpreted
    @cython.locals(pos=cython.Py_ssize_t, end=cython.Py_ssize_t, last_header=cython.Py_ssize_t,
                   start=cython.Py_ssize_t, pos_next=cython.Py_ssize_t, caplen=cython.Py_ssize_t,
                   maxcap=cython.Py_ssize_t)
    def _batches(self) -> Iterator[Batch]:
        unpack = Struct(self.byte_order + "IIII").unpack_from
        frac_ns = self._frac_ns
        frac_lim = 1_000_000_000 // frac_ns     # ts_usec < 10^6, ts_nsec < 10^9
        snaplen = self.snaplen
        # snaplen 0 is written by some tools for "unlimited"
        maxcap = min(snaplen, self.max_caplen) if snaplen else self.max_caplen
        convert, delta = self._link.convert, self._link.delta
        read = self._source.read
        chunk = self._pending      # the first chunk: what followed the file header
        self._pending = b""
        chunk_off = HEADER_LEN     # stream offset of chunk[0]
        rest = b""                 # an incomplete record left at the end of the last chunk
        number = 1                 # frame number of the next record
        while True:
            timestamps: list[int] = []
            frames: list[bytes] = []
            orig_lens: list[int] = []
            ts_append = timestamps.append
            fr_append = frames.append
            ol_append = orig_lens.append
            truncated = 0
            err = None
            buf = chunk
            base = chunk_off       # stream offset of buf[0]
            pos = 0
            if rest:
                # Complete the record that straddles the chunk boundary from the head of
                # the new chunk, rather than copying the whole chunk behind it.
                k = self._straddle(rest, chunk, maxcap, unpack, frac_lim)
                if k:
                    head = rest + chunk[:k]
                    sec, frac, caplen, orig = unpack(head, 0)
                    ts_append(sec * 1_000_000_000 + frac * frac_ns)
                    fr_append(head[16:])
                    ol_append(orig)
                    if caplen < orig:
                        truncated += 1
                    pos = k
                else:              # tiny chunks, or a bad record: the plain way
                    buf = rest + chunk
                    base = chunk_off - len(rest)
            end = len(buf)
            last_header = end - RECORD_HEADER_LEN
            while pos <= last_header:
                sec, frac, caplen, orig = unpack(buf, pos)
                if caplen > maxcap or frac >= frac_lim:
                    err = (self._caplen_error(caplen, number + len(frames), base + pos) if caplen > maxcap
                           else self._frac_error(frac, number + len(frames), base + pos))
                    break
                start = pos + 16
                pos_next = start + caplen
                if pos_next > end:
                    break
                ts_append(sec * 1_000_000_000 + frac * frac_ns)
                fr_append(buf[start:pos_next])
                ol_append(orig)
                if caplen < orig:
                    truncated += 1
                pos = pos_next
            n = len(frames)
            if n:
                if convert is not None:
                    frames = list(map(convert, frames))
                    if delta:
                        orig_lens = [o + delta for o in orig_lens]
                    self.synthesised_ethernet = True
                self.frames_read += n
                self.truncated_frames += truncated
                yield Batch(number, timestamps, frames, orig_lens, [0] * n,
                            truncated=truncated if convert is None else None)
                number += n
            if err is not None:
                raise self._check_stream(err)
            rest = buf[pos:]
            rest_off = base + pos
            chunk = read()
            if not chunk:
                if self._source.error is not None:
                    raise self._gzip_error(number, rest_off + len(rest))
                if rest:
                    raise self._eof_error(rest, number, rest_off)
                return
            chunk_off = rest_off + len(rest)

    @staticmethod
    def _straddle(rest: bytes, chunk: bytes, maxcap: int, unpack, frac_lim: int) -> int:
        """How many bytes of ``chunk`` complete the record begun by ``rest``; 0 when the
        chunk is too short or the record header is bad (the main loop then handles it)."""
        need = RECORD_HEADER_LEN - len(rest)
        if need > 0:
            if len(chunk) < need:
                return 0
            _sec, frac, caplen, _orig = unpack(rest + chunk[:need], 0)
        else:
            _sec, frac, caplen, _orig = unpack(rest, 0)
        if caplen > maxcap or frac >= frac_lim:
            return 0
        k = RECORD_HEADER_LEN + caplen - len(rest)
        return k if k <= len(chunk) else 0

    def _caplen_error(self, caplen: int, number: int, offset: int):
        if self.snaplen and caplen > self.snaplen and caplen <= self.max_caplen:
            why = f"more than the file's snaplen {self.snaplen}"
        else:
            why = f"more than the {self.max_caplen} bytes any frame can have"
        return self._error(f"record header declares {caplen} captured bytes, {why}",
                           number, offset)

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
