"""Live mode's lean input loop: the frames of one read through the engine when only releases
matter (no timeline, no recording: the engine runs with ``compact_pairs``).

``LiveCompare._input`` calls ``feed_frames`` once per group of frames of a read.  The module is
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
