"""Live mode's lean input loop: the frames of one read through the engine when only releases
matter (no timeline, no recording: the engine runs with ``compact_pairs``).

``LiveCompare._input`` calls ``feed_chunk`` with the read itself when its decoder stands at a
frame boundary and there is no vnet word (nearly every read): the whole frames are found and fed
where they lie in the read, with no slice, tuple or list made per frame (bench/README.md: the
Python of ``FastDecoder.feed`` was a good part of a one-pair read's latency).  What is left
(a frame cut by the read's end, a zero-length or oversized one, vnet frames) goes through the
exact decoder and ``feed_frames``, once per group of frames.  The module is
part of the compiled core (``colo_replay.COMPILED_MODULES``): the per-frame loop and its call
into ``Engine._feed_at`` are then C, with nothing made per frame but the released frame's
length word.  Interpreted it is the same loop in Python.
"""

from __future__ import annotations

from struct import Struct

try:
    import cython
except ImportError:                 # Cython absent: @cython.locals below is a no-op
    from ..engine import _cython_shim as cython

from ..engine.compare import Engine
from ..engine.framing import NET_BUFSIZE

FLUSH_FRAMES = 256      # frames of one read between two outdev writes (LiveCompare._after_step)
_FLUSH = cython.declare(cython.Py_ssize_t, FLUSH_FRAMES)        # C values in the compiled core
_MAX_LEN = cython.declare(cython.Py_ssize_t, NET_BUFSIZE)
_u32 = Struct("!I").unpack_from

_pack1 = Struct("!I").pack          # outdev's length word (vnet_hdr_support off)
_pack2 = Struct("!II").pack         # length and vnet length words (on)


@cython.locals(engine=Engine, i=cython.Py_ssize_t, lo=cython.Py_ssize_t, hi=cython.Py_ssize_t,
               pairs=cython.Py_ssize_t, n=cython.longlong, side=cython.longlong, t=cython.longlong)
def feed_frames(engine, side: int, frames: list, lo: int, hi: int, t: int, n: int, vnet_on: bool,
                out: list, handle) -> tuple[int, int]:
    """Feed ``frames[lo:hi]`` (``(data, vnet_hdr_len)`` items of side ``side``, read at ``t``;
    their idents count on from ``n``) as ``Engine.feed`` would, one by one.  A pair matched on
    arrival (its released primary's ``bytes``) goes to ``out`` as outdev's ``(header, data)``;
    any other event goes to ``handle((event,), t)`` at once, in order.  Returns ``(n, pairs)``:
    the last ident given and the pairs released."""
    pairs = 0
    for i in range(lo, hi):
        data, vnet = frames[i]
        n += 1
        if vnet:
            evs = engine.feed(side, data, t, vnet, n)
        else:
            # feed() without its new list a frame: _out is reused while it stays empty
            if engine._out:
                engine._out = []
            engine._feed_at(side, data, 0, len(data), t, n)
            evs = engine._out
        if evs:
            for ev in evs:
                if ev.__class__ is bytes:
                    out.append((_pack2(len(ev), 0) if vnet_on else _pack1(len(ev)), ev))
                    pairs += 1
                else:
                    handle((ev,), t)
    return n, pairs


@cython.locals(engine=Engine, hp=cython.p_uchar, pos=cython.Py_ssize_t, end=cython.Py_ssize_t,
               size=cython.Py_ssize_t, ln=cython.Py_ssize_t, count=cython.Py_ssize_t, pairs=cython.Py_ssize_t,
               n=cython.longlong, side=cython.longlong, t=cython.longlong)
def feed_chunk(engine, side: int, chunk: bytes, t: int, n: int, out: list, handle, flush) -> tuple:
    """Feed the whole frames at the head of ``chunk`` (side ``side``, read at ``t``, idents on
    from ``n``; the decoder is at a frame boundary and frames carry no vnet word) in place, as
    ``FastDecoder.feed`` + ``feed_frames`` would: releases to ``out``, other events to
    ``handle``, and between every FLUSH_FRAMES frames ``out = flush()`` (the runtime writes
    ``out`` and gives the list to fill next).  Stops before the first frame
    that is not whole and ordinary (length 0 or above NET_BUFSIZE, or cut by the chunk's end):
    the exact decoder takes the rest.  Returns ``(bytes used, last ident, frames, pairs)``."""
    size = len(chunk)
    pos = 0
    count = 0
    pairs = 0
    while pos + 4 <= size:
        if cython.compiled:
            hp = chunk
            hp += pos
            ln = hp[0]
            ln = ln << 24 | hp[1] << 16 | hp[2] << 8 | hp[3]
        else:
            (ln,) = _u32(chunk, pos)
        end = pos + 4 + ln
        if ln == 0 or ln > _MAX_LEN or end > size:
            break
        if count and count % _FLUSH == 0:
            out = flush()           # the releases so far leave; a new list for the next ones
        n += 1
        count += 1
        if engine._out:
            engine._out = []
        engine._feed_at(side, chunk, pos + 4, ln, t, n)
        evs = engine._out
        if evs:
            for ev in evs:
                if ev.__class__ is bytes:
                    out.append((_pack1(len(ev)), ev))
                    pairs += 1
                else:
                    handle((ev,), t)
        pos = end
    return pos, n, count, pairs
