"""colo-compare's chardev framing, sans-I/O (QEMU net/net.c ``net_fill_rstate``, colo-compare.c
``compare_chr_send``).

On every socket a frame is::

    uint32_be length | [uint32_be vnet_hdr_len  -- only with vnet_hdr_support=on] | length bytes

``FrameDecoder`` reproduces QEMU's reader exactly, including its odd corners:

* a frame longer than ``NET_BUFSIZE`` (69632) fails when the bytes past the limit arrive; the rest
  of that read is discarded and QEMU never reads that chardev again (``disabled``);
* a zero-length frame is delivered only when at least one more byte is fed after its length
  word(s), because QEMU's loop runs ``while (size > 0)``;
* the vnet length word is not checked against anything here (parse_packet_early does that).

The notify channel uses the same framing.  Quirk (spec Q21): with vnet_hdr_support=on, the
messages *sent to* colo-compare must carry the vnet word, while the ones colo-compare *sends*
never do.
"""

from __future__ import annotations

from dataclasses import dataclass
from struct import Struct

NET_BUFSIZE = 4096 + 65536   # include/net/net.h; compare_chr_can_read() returns it too

DO_CHECKPOINT = b"DO_CHECKPOINT"                           # compare -> frame: request a checkpoint
COLO_CHECKPOINT = b"COLO_CHECKPOINT"                       # frame -> compare: checkpoint done, flush
COLO_USERSPACE_PROXY_INIT = b"COLO_USERSPACE_PROXY_INIT"   # frame -> compare: hello
COLO_COMPARE_GET_XEN_INIT = b"COLO_COMPARE_GET_XEN_INIT"   # compare -> frame: reply to the hello
NOTIFY_MESSAGES = (DO_CHECKPOINT, COLO_CHECKPOINT, COLO_USERSPACE_PROXY_INIT, COLO_COMPARE_GET_XEN_INIT)

OVERSIZE_LOG = "serious error: oversized packet received,connection terminated."  # net_fill_rstate's text

_be32 = Struct("!I")
_be32x2 = Struct("!II")
_u32 = _be32.unpack_from
_u32x2 = _be32x2.unpack_from
_pack32 = _be32.pack
_pack32x2 = _be32x2.pack


@dataclass(frozen=True, slots=True)
class Frame:
    """One decoded frame: its bytes (vnet header included), the vnet length word (0 without
    vnet_hdr_support) and the stream offset of its length word."""

    data: bytes
    vnet_hdr_len: int
    offset: int


@dataclass(frozen=True, slots=True)
class Oversized:
    """QEMU's reaction to a frame longer than NET_BUFSIZE: the input is dead from here on."""

    declared_len: int
    offset: int
    discarded: int   # bytes of the failing read that were thrown away

    def message(self) -> str:
        return (f"{OVERSIZE_LOG} (frame of {self.declared_len} bytes declared at stream offset "
                f"{self.offset}, limit {NET_BUFSIZE})")


class FrameDecoder:
    """QEMU's SocketReadState + net_fill_rstate.  Feed it what one read() returned.

    ``feed`` returns the ``Frame`` objects finalised by this read, followed by one ``Oversized``
    if the read hit the limit.  After that the decoder is ``disabled`` (QEMU removes the
    chardev's read handler) and further input is only counted in ``ignored``.
    """

    def __init__(self, vnet_hdr: bool = False, limit: int = NET_BUFSIZE):
        self.vnet_hdr = vnet_hdr
        self.limit = limit
        self.state = 0            # 0: length word, 1: vnet word, 2: payload
        self._hdr = b""           # partial length/vnet word
        self._parts: list = []    # partial payload
        self.index = 0            # payload bytes collected so far
        self.packet_len = 0
        self.vnet_hdr_len = 0
        self.consumed = 0         # stream bytes fed so far (for offsets)
        self._frame_start = 0
        self.disabled = False
        self.ignored = 0

    @property
    def mid_frame(self) -> bool:
        """True while a frame has been started but not finished (for reconnect diagnostics)."""
        return self.state != 0 or bool(self._hdr)

    def feed(self, chunk: bytes) -> list:
        out: list = []
        n = len(chunk)
        if self.disabled:
            self.ignored += n
            return out
        base = self.consumed
        self.consumed += n
        pos = 0
        vnet = self.vnet_hdr
        limit = self.limit
        while pos < n:                       # while (size > 0)
            state = self.state
            if state == 2:
                need = self.packet_len - self.index
                l = need if need < n - pos else n - pos
                if self.index + l > limit:
                    out.append(Oversized(self.packet_len, self._frame_start, n - pos))
                    self.disabled = True
                    self.ignored += n - pos
                    self.state = 0
                    self.index = 0
                    self._parts = []
                    return out
                if l:
                    self._parts.append(chunk[pos:pos + l])
                    self.index += l
                    pos += l
                if self.index >= self.packet_len:
                    parts = self._parts
                    data = parts[0] if len(parts) == 1 else b"".join(parts)
                    out.append(Frame(bytes(data), self.vnet_hdr_len, self._frame_start))
                    self._parts = []
                    self.index = 0
                    self.state = 0
                continue
            # states 0 and 1: a 4-byte big-endian word.  Fast path: whole header(s) in this chunk.
            if state == 0 and not self._hdr:
                self._frame_start = base + pos
                if vnet and n - pos >= 8:
                    self.packet_len, self.vnet_hdr_len = _u32x2(chunk, pos)
                    pos += 8
                    self.state = 2
                    continue
                if not vnet and n - pos >= 4:
                    (self.packet_len,) = _u32(chunk, pos)
                    self.vnet_hdr_len = 0
                    pos += 4
                    self.state = 2
                    continue
            take = 4 - len(self._hdr)
            piece = chunk[pos:pos + take]
            pos += len(piece)
            self._hdr += piece
            if len(self._hdr) == 4:
                (word,) = _u32(self._hdr, 0)
                self._hdr = b""
                if state == 0:
                    self.packet_len = word
                    if vnet:
                        self.state = 1
                    else:
                        self.vnet_hdr_len = 0
                        self.state = 2
                else:
                    self.vnet_hdr_len = word
                    self.state = 2
        return out


def encode_frame(data: bytes, vnet_hdr_len: int = 0, vnet_hdr: bool = False) -> bytes:
    """One frame as colo-compare writes it to outdev (and as filter-redirector writes it to
    primary_in / secondary_in).  A zero-size frame writes nothing, as compare_chr_send does."""
    if not data:
        return b""
    if vnet_hdr:
        return _pack32x2(len(data), vnet_hdr_len) + data
    return _pack32(len(data)) + data


def encode_notify_to_compare(msg: bytes, vnet_hdr: bool = False) -> bytes:
    """A notify_dev message *to* colo-compare: carries the vnet word when vnet_hdr_support=on."""
    if vnet_hdr:
        return _pack32x2(len(msg), 0) + msg
    return _pack32(len(msg)) + msg


def encode_notify_from_compare(msg: bytes) -> bytes:
    """A notify_dev message *from* colo-compare: never a vnet word (compare_chr_send, notify)."""
    return _pack32(len(msg)) + msg


def classify_notify(payload: bytes) -> bytes | None:
    """Which notify message ``payload`` is (packet_matches_str: same length and bytes), or None
    for what QEMU reports as "COLO compare got unsupported instruction"."""
    for msg in NOTIFY_MESSAGES:
        if payload == msg:
            return msg
    return None
