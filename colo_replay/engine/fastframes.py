"""A fast front for ``colo_replay.framing.FrameDecoder`` on the live hot path.

``FrameDecoder`` is QEMU's ``net_fill_rstate`` to the byte, corner cases included, but builds a
``Frame`` object per frame.  On a socket most reads hold many whole frames, so this front slices
every *complete, ordinary* frame (length 1..NET_BUFSIZE, fully inside the chunk, decoder idle
at a frame boundary) straight out of the chunk with ``struct.unpack_from``, and hands the rest
of the chunk (a partial frame, a zero-length frame, an oversized one) to the exact decoder.  The
frames, their order and every error case are therefore exactly ``FrameDecoder``'s; a test feeds
both the same streams cut at every offset.
"""

from __future__ import annotations

from struct import Struct

from .framing import NET_BUFSIZE, Frame, FrameDecoder

_u32 = Struct("!I").unpack_from
_u32x2 = Struct("!II").unpack_from


class FastDecoder:
    """``feed(chunk)`` -> (frames as [(data, vnet_hdr_len)], error or None)."""

    def __init__(self, vnet_hdr: bool = False):
        self.exact = FrameDecoder(vnet_hdr)
        self.vnet = vnet_hdr

    @property
    def mid_frame(self) -> bool:
        return self.exact.mid_frame

    @property
    def index(self) -> int:
        return self.exact.index

    @property
    def packet_len(self) -> int:
        return self.exact.packet_len

    @property
    def disabled(self) -> bool:
        return self.exact.disabled

    def feed(self, chunk: bytes):
        ex = self.exact
        out = []
        append = out.append
        err = None
        pos = 0
        n = len(chunk)
        vnet = self.vnet
        while pos < n:
            if ex.disabled:
                ex.feed(chunk[pos:])          # counted as ignored, as QEMU never reads them
                break
            if ex.state == 0 and not ex._hdr:
                start = pos
                if vnet:
                    while pos + 8 <= n:
                        ln, vl = _u32x2(chunk, pos)
                        end = pos + 8 + ln
                        if ln == 0 or ln > NET_BUFSIZE or end > n:
                            break
                        append((chunk[pos + 8:end], vl))
                        pos = end
                else:
                    while pos + 4 <= n:
                        (ln,) = _u32(chunk, pos)
                        end = pos + 4 + ln
                        if ln == 0 or ln > NET_BUFSIZE or end > n:
                            break
                        append((chunk[pos + 4:end], 0))
                        pos = end
                ex.consumed += pos - start
                if pos >= n:
                    break
            # One step of the exact decoder: the rest of a length/vnet word, or of a frame
            # (a zero-length frame needs one more byte; an oversized one gets the whole rest
            # of the read, so the error and the discarded bytes are exactly QEMU's).
            if ex.state == 2 and ex.packet_len > NET_BUFSIZE:
                k = n - pos
            elif ex.state == 2:
                k = max(1, ex.packet_len - ex.index)
            else:
                k = 4 - len(ex._hdr)
            piece = chunk[pos:pos + k] if (pos or k < n) else chunk
            pos += len(piece)
            for fr in ex.feed(piece):
                if fr.__class__ is Frame:
                    append((fr.data, fr.vnet_hdr_len))
                else:
                    err = fr
        return out, err
