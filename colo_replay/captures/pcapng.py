"""pcapng files: any number of sections (each with its own byte order), several Interface
Description Blocks per section with their own link type, snaplen, ``if_tsresol`` (base 10
or base 2) and ``if_tsoffset``; frames from Enhanced Packet Blocks, Simple Packet Blocks
and obsolete Packet Blocks.  Every other block type is skipped.

Interface ids are section-local in the file; the reader yields a global id instead
(interfaces numbered in file order across sections, so an id names one interface of the
file; tshark 4.0 prints the section-local one), and lists them in ``reader.interfaces``.

Timestamps are converted exactly, in integers: ``floor(ts * 1e9 / units_per_second)``
plus the interface's offset.  (Wireshark agrees for every resolution up to 1 ns; beyond
that its own integer arithmetic is inexact for base-2 resolutions.)
"""

from __future__ import annotations

from math import gcd
from struct import Struct
from typing import Iterator

from . import linktypes
from .base import MAX_ORIG_LEN, Batch, CaptureReader, Interface
from .errors import CaptureError
from .source import ChunkSource

SHB = 0x0A0D0D0A        # palindromic, so readable before the byte order is known
IDB = 0x00000001
PB = 0x00000002         # obsolete Packet Block
SPB = 0x00000003
EPB = 0x00000006
PACKET_BLOCKS = (EPB, SPB, PB)
# Blocks that are not frames but that Wireshark (4.0) shows as numbered records: custom
# blocks, systemd journal entries and sysdig events.  Skipped, but they take up a frame number.
NUMBERED_RECORDS = frozenset({0x00000BAD, 0x40000BAD, 0x00000009,
                              0x00000204, 0x00000208, 0x00000216, 0x00000217,
                              0x00000221, 0x00000222})
BLOCK_NAMES = {SHB: "Section Header Block", IDB: "Interface Description Block",
               PB: "Packet Block", SPB: "Simple Packet Block", EPB: "Enhanced Packet Block"}
MIN_LEN = {SHB: 28, IDB: 20, PB: 32, SPB: 16, EPB: 32}

BOM_LE = b"\x4d\x3c\x2b\x1a"     # byte-order magic 0x1A2B3C4D as a little-endian writer wrote it
BOM_BE = b"\x1a\x2b\x3c\x4d"
MAGIC = b"\x0a\x0d\x0d\x0a"

# No block we care about is larger than a packet block with a MAX_CAPLEN frame; other
# blocks (name resolution, decryption secrets) this large mean the length is garbage.
MAX_BLOCK = 16 << 20

OPT_ENDOFOPT = 0
IF_NAME = 2
IF_TSRESOL = 9
IF_TSOFFSET = 14

NS = 1_000_000_000


class _Order:
    """The unpackers of one byte order (rebound whenever a section changes it)."""

    def __init__(self, endian: str):
        self.endian = endian
        self.u32x2 = Struct(endian + "II").unpack_from
        self.u32 = Struct(endian + "I").unpack_from
        self.epb = Struct(endian + "IIIII").unpack_from
        self.pb = Struct(endian + "HHIIII").unpack_from
        self.shb = Struct(endian + "HHq").unpack_from
        self.idb = Struct(endian + "HHI").unpack_from
        self.opt = Struct(endian + "HH").unpack_from
        self.i64 = Struct(endian + "q").unpack_from


_ORDERS = {BOM_LE: _Order("<"), BOM_BE: _Order(">")}


def _straddle(rest: bytes, chunk: bytes, u32x2) -> int:
    """How many bytes of ``chunk`` complete the block begun by ``rest``; 0 when that cannot
    be told cheaply (header incomplete, a section header, a bad length, a short chunk)."""
    need = 8 - len(rest)
    if need > 0:
        if len(chunk) < need:
            return 0
        btype, blen = u32x2(rest + chunk[:need], 0)
    else:
        btype, blen = u32x2(rest, 0)
    if btype == SHB or blen < 12 or blen & 3 or blen > MAX_BLOCK:
        return 0
    k = blen - len(rest)
    return k if 0 < k <= len(chunk) else 0


class PcapngReader(CaptureReader):
    """Reader for pcapng; construct through ``open_capture``.

    Extra attributes: ``sections`` (how many Section Header Blocks were read) and
    ``byte_orders`` (the byte order of each section, ``"<"`` or ``">"``).
    """

    format = "pcapng"

    def __init__(self, path, source: ChunkSource, head: bytes, **kw):
        super().__init__(path, source, **kw)
        if len(head) < 12:
            raise self._error(f"file ends after {len(head)} bytes, inside the first pcapng "
                              f"Section Header Block", None, len(head))
        if head[8:12] not in _ORDERS:
            raise self._error(f"unknown pcapng byte-order magic {head[8:12].hex()}", None, 8)
        self.sections = 0
        self.byte_orders: list[str] = []
        self._pending = head

    def _batches(self) -> Iterator[Batch]:
        read = self._source.read
        buf = self._pending        # the first chunk
        self._pending = b""
        base = 0                   # stream offset of buf[0]
        pos = 0                    # where parsing resumes in buf
        queued = None              # (chunk, its offset, k): parse chunk from k after buf
        number = 1                 # frame number of the next packet block
        order = _ORDERS[buf[8:12]]
        u32x2, u32, epb_hdr = order.u32x2, order.u32, order.epb
        # Per section-local interface id: (global id, mul, div, offset ns, convert, delta,
        # maxcap); timestamp ns = t * mul // div + offset.  maxcap -1 marks an unsupported
        # link type, so the hot loop's caplen check catches it at no extra cost.
        ifaces: list[tuple] = []
        cur = -1
        gid = mul = div = off = delta = maxcap = 0
        convert = None
        while True:
            gap = False            # stopped at a numbered non-packet record, not for data
            timestamps: list[int] = []
            frames: list[bytes] = []
            orig_lens: list[int] = []
            iface_ids: list[int] = []
            ts_append = timestamps.append
            fr_append = frames.append
            ol_append = orig_lens.append
            if_append = iface_ids.append
            truncated = untimestamped = 0
            synthesised = False
            err = None
            end = len(buf)
            while end - pos >= 12:
                btype, blen = u32x2(buf, pos)
                if btype == EPB and 32 <= blen <= MAX_BLOCK and not blen & 3:
                    # The hot path: one Enhanced Packet Block.
                    pos_next = pos + blen
                    if pos_next > end:
                        break
                    if u32(buf, pos_next - 4)[0] != blen:
                        err = self._trailer_error(buf, pos, blen, u32, number + len(frames), base)
                        break
                    iid, hi, lo, caplen, olen = epb_hdr(buf, pos + 8)
                    if iid != cur:
                        if iid >= len(ifaces):
                            err = self._undefined_iface(iid, len(ifaces), number + len(frames),
                                                        base + pos)
                            break
                        gid, mul, div, off, convert, delta, maxcap = ifaces[iid]
                        cur = iid
                    if caplen > maxcap or caplen > blen - 32:
                        if not self._over_snaplen(caplen, blen - 32, ifaces, iid, EPB,
                                                  number + len(frames), base + pos):
                            err = self._caplen_error(caplen, blen - 32, ifaces[iid], EPB,
                                                     number + len(frames), base + pos)
                            break
                        maxcap = ifaces[iid][6]
                    t = ((hi << 32) | lo) * mul
                    ts_append((t if div == 1 else t // div) + off)
                    data = buf[pos + 28:pos + 28 + caplen]
                    if caplen < olen:
                        truncated += 1
                        if olen > MAX_ORIG_LEN:         # (only a cut frame can claim that much)
                            self._impossible_orig_len(olen, number + len(frames), base + pos,
                                                      BLOCK_NAMES[EPB])
                    if convert is not None:
                        data = convert(data)
                        olen += delta
                        synthesised = True
                    fr_append(data)
                    ol_append(olen)
                    if_append(gid)
                    pos = pos_next
                    continue

                # Everything else: rarer blocks, and all the error checks.
                frame_no = number + len(frames) if btype in PACKET_BLOCKS else None
                if btype == SHB:
                    bom = buf[pos + 8:pos + 12]
                    order = _ORDERS.get(bom)
                    if order is None:
                        err = self._error(f"unknown pcapng byte-order magic {bom.hex()} in "
                                          f"Section Header Block", None, base + pos + 8)
                        break
                    u32x2, u32, epb_hdr = order.u32x2, order.u32, order.epb
                    btype, blen = u32x2(buf, pos)
                if blen & 3 or blen < MIN_LEN.get(btype, 12) or blen > MAX_BLOCK:
                    err = self._length_error(btype, blen, frame_no, base + pos)
                    break
                pos_next = pos + blen
                if pos_next > end:
                    break
                if u32(buf, pos_next - 4)[0] != blen:
                    err = self._trailer_error(buf, pos, blen, u32, frame_no, base)
                    break
                try:
                    if btype == SHB:
                        self._section(buf, pos, order, base)
                        ifaces = []
                        cur = -1
                    elif btype == IDB:
                        ifaces.append(self._interface(buf, pos, blen, order, base))
                    elif btype == SPB or btype == PB:
                        if btype == SPB:
                            # Simple Packet Block: interface 0, no timestamp, and the
                            # captured length is implied by the block length.
                            iid = 0
                            olen = u32(buf, pos + 8)[0]
                            caplen = min(olen, blen - 16)
                            start = pos + 12
                            ts = None
                        else:
                            iid, _drops, hi, lo, caplen, olen = order.pb(buf, pos + 8)
                            start = pos + 28
                            ts = (hi << 32) | lo
                        if iid >= len(ifaces):
                            err = self._undefined_iface(iid, len(ifaces), frame_no, base + pos)
                            break
                        info = ifaces[iid]
                        if btype == SPB:
                            snaplen = self.interfaces[info[0]].snaplen
                            if snaplen:
                                caplen = min(caplen, snaplen)   # ... and by the snaplen
                        room = blen - (start - pos) - 4
                        if caplen > info[6] or caplen > room:
                            if not self._over_snaplen(caplen, room, ifaces, iid, btype, frame_no,
                                                      base + pos):
                                err = self._caplen_error(caplen, room, info, btype, frame_no,
                                                         base + pos)
                                break
                            info = ifaces[iid]
                            if iid == cur:
                                maxcap = info[6]
                        if ts is None:
                            ts_append(0)
                            untimestamped += 1
                        else:
                            ts_append(ts * info[1] // info[2] + info[3])
                        data = buf[start:start + caplen]
                        if caplen < olen:
                            truncated += 1
                            if olen > MAX_ORIG_LEN:
                                self._impossible_orig_len(olen, frame_no, base + pos, BLOCK_NAMES[btype])
                        if info[4] is not None:
                            data = info[4](data)
                            olen += info[5]
                            synthesised = True
                        fr_append(data)
                        ol_append(olen)
                        if_append(info[0])
                    elif btype in NUMBERED_RECORDS:
                        # Not a frame, but Wireshark gives it a frame number: end the batch
                        # here so frame numbers stay in step with Wireshark's.
                        pos = pos_next
                        gap = True
                        break
                    # any other block type: skipped
                except CaptureError as exc:
                    err = exc
                    break
                pos = pos_next

            n = len(frames)
            if n:
                self.frames_read += n
                self.truncated_frames += truncated
                self.untimestamped_frames += untimestamped
                if synthesised:
                    self.synthesised_ethernet = True
                yield Batch(number, timestamps, frames, orig_lens, iface_ids,
                            truncated=None if synthesised else truncated)
                number += n
            if err is not None:
                raise self._check_stream(err)
            if gap:
                number += 1
                self.non_packet_records += 1
                continue
            rest = buf[pos:]
            rest_off = base + pos
            if queued is not None:
                chunk, base, pos = queued
                queued = None
                if rest:           # cannot happen (buf held one whole block), but be exact
                    buf = rest + chunk[pos:]
                    base = rest_off
                    pos = 0
                else:
                    buf = chunk
                continue
            chunk = read()
            if not chunk:
                if self._source.error is not None:
                    raise self._gzip_error(number, rest_off + len(rest))
                if rest:
                    raise self._eof_error(rest, u32x2, number, rest_off)
                return
            base = rest_off
            pos = 0
            if not rest:
                buf = chunk
                continue
            # A block straddles the chunk boundary: parse it alone, from the rest plus the
            # head of the new chunk, rather than copying the whole chunk behind the rest.
            k = _straddle(rest, chunk, u32x2)
            if k:
                buf = rest + chunk[:k]
                queued = (chunk, rest_off + len(rest), k)
            else:              # tiny chunks, a section header or a bad length: the plain way
                buf = rest + chunk

    # -- cold paths: non-packet blocks

    def _section(self, buf: bytes, pos: int, order: _Order, base: int) -> None:
        major, minor, _section_len = order.shb(buf, pos + 12)
        if major != 1:
            raise self._error(f"unsupported pcapng version {major}.{minor}", None, base + pos + 12)
        self.sections += 1
        self.byte_orders.append(order.endian)

    def _interface(self, buf: bytes, pos: int, blen: int, order: _Order, base: int) -> tuple:
        if self.sections == 0:
            raise self._error("Interface Description Block before any Section Header Block",
                              None, base + pos)
        linktype, _reserved, snaplen = order.idb(buf, pos + 8)
        name = None
        units = 10**6            # pcapng default resolution: microseconds
        tsoffset = 0
        for code, value in self._options(buf, pos + 16, pos + blen - 4, order, base):
            if code == IF_TSRESOL and value:
                exp = value[0] & 0x7F
                units = 2**exp if value[0] & 0x80 else 10**exp
                if units > 1 << 64:
                    # Finer than any clock and than a 64-bit count of units per second (10^-19,
                    # 2^-64): every timestamp of the interface reads as about 0 s.  Wireshark reads
                    # it so too; say it, since the replay's clock then means nothing.
                    res = f"2^-{exp}" if value[0] & 0x80 else f"10^-{exp}"
                    self._warn("tsresol", f"Interface Description Block {len(self.interfaces)} says "
                                          f"if_tsresol {res} s, finer than any clock: its timestamps "
                                          f"read as about 0 s (as in Wireshark)", None, base + pos,
                               "interfaces with an absurd if_tsresol")
            elif code == IF_TSOFFSET and len(value) >= 8:
                tsoffset = order.i64(value, 0)[0]
            elif code == IF_NAME:
                name = value.rstrip(b"\0").decode("utf-8", "replace")
        gid = len(self.interfaces)
        self.interfaces.append(Interface(gid, linktype, snaplen, name, units, tsoffset,
                                         self.sections - 1))
        self.linktypes.add(linktype)
        link = linktypes.lookup(linktype)
        g = gcd(NS, units)
        if link is None:
            maxcap, convert, delta = -1, None, 0
        else:
            maxcap = min(snaplen, self.max_caplen) if snaplen else self.max_caplen
            convert, delta = link.convert, link.delta
        return (gid, NS // g, units // g, tsoffset * NS, convert, delta, maxcap)

    def _options(self, buf: bytes, start: int, stop: int, order: _Order, base: int):
        opt = order.opt
        while start + 4 <= stop:
            code, length = opt(buf, start)
            if code == OPT_ENDOFOPT:
                return
            value_end = start + 4 + length
            if value_end > stop:
                raise self._error(f"option {code} of {length} bytes runs past the end of its "
                                  f"block", None, base + start)
            yield code, buf[start + 4:value_end]
            start = value_end + (-length & 3)

    # -- error messages

    def _record_offset(self, number: int) -> int | None:
        from .locate import pcapng_record_offset
        return pcapng_record_offset(self.path, number, SHB, PACKET_BLOCKS, NUMBERED_RECORDS)

    def _length_error(self, btype: int, blen: int, frame_no, offset: int) -> CaptureError:
        what = BLOCK_NAMES.get(btype, f"block of type 0x{btype:08x}")
        if blen & 3:
            why = "not a multiple of 4"
        elif blen > MAX_BLOCK:
            why = f"absurd (more than {MAX_BLOCK})"
        else:
            why = f"too short (minimum {MIN_LEN.get(btype, 12)})"
        return self._error(f"bad block length {blen} for {what}: {why}", frame_no, offset)

    def _trailer_error(self, buf, pos, blen, u32, frame_no, base) -> CaptureError:
        btype = u32(buf, pos)[0]
        what = BLOCK_NAMES.get(btype, f"block of type 0x{btype:08x}")
        trailer = u32(buf, pos + blen - 4)[0]
        return self._error(f"block length mismatch in {what}: header says {blen}, trailer "
                           f"says {trailer}", frame_no, base + pos)

    def _undefined_iface(self, iid: int, defined: int, frame_no, offset: int) -> CaptureError:
        return self._error(f"packet block references interface {iid}, but its section "
                           f"defines {defined} interface(s)", frame_no, offset)

    def _over_snaplen(self, caplen, room, ifaces, iid, btype, frame_no, offset) -> bool:
        """A packet block holding more bytes than its interface's snaplen (``if_snaplen`` in the
        IDB) but no more than its block and ``max_caplen``: valid, Wireshark reads it whole, and
        so does this reader (libpcap refuses it), after one warning per interface: its limit is
        raised to ``max_caplen`` (``ifaces[iid]``).  False when that is not the case (an error)."""
        info = ifaces[iid]
        if info[6] < 0 or caplen > room or caplen > self.max_caplen:
            return False
        iface = self.interfaces[info[0]]
        self._warn("snaplen", f"{BLOCK_NAMES[btype]} declares {caplen} captured bytes, more than interface "
                              f"{iface.interface_id}'s snaplen {iface.snaplen}: read in full, as Wireshark does "
                              f"(this frame and any other of the interface up to {self.max_caplen} bytes)",
                   frame_no, offset, "interfaces with frames above their snaplen")
        ifaces[iid] = info[:6] + (self.max_caplen,)
        return True

    def _caplen_error(self, caplen, room, info, btype, frame_no, offset) -> CaptureError:
        iface = self.interfaces[info[0]]
        if info[6] < 0:
            why = (f"interface {iface.interface_id} has {linktypes.name(iface.linktype)}, "
                   f"which is not supported (Ethernet, Linux cooked SLL/SLL2 and raw IP are)")
            return self._error(why, frame_no, offset)
        what = BLOCK_NAMES[btype]
        if caplen > room:
            why = f"{what} declares {caplen} captured bytes, but the block holds only {room}"
        else:
            why = (f"{what} declares {caplen} captured bytes, more than the "
                   f"{self.max_caplen} bytes any frame can have")
        return self._error(why, frame_no, offset)

    def _eof_error(self, rest: bytes, u32x2, number: int, offset: int) -> CaptureError:
        if len(rest) < 8:
            return self._error(f"partial block header: file ends after {len(rest)} bytes of it",
                               None, offset)
        btype, blen = u32x2(rest, 0)
        what = BLOCK_NAMES.get(btype, f"block of type 0x{btype:08x}")
        frame_no = number if btype in PACKET_BLOCKS else None
        return self._error(f"{what} declares {blen} bytes, file ends after {len(rest)}",
                           frame_no, offset)
