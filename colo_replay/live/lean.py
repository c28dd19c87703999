"""Live mode's lean input path: the frames of one read through the engine when only releases
matter (no timeline, no recording: the engine runs with ``compact_pairs``) and frames carry no
vnet word.

``FastInput`` is then each input channel's reader callback: it receives, finds and feeds the
read's whole frames where they lie in it (no slice, tuple or list made per frame), keeps the
counters and writes the releases to outdev, with no Python function of the runtime in between
(bench/README.md: on a 2-core host, a pair's Python on the per-read path added straight to
the latency at 10k pairs/s, cache misses above all).  What it does not take (a frame cut by the
read's end, a zero-length or oversized one, a decoder in the middle of a frame, an outdev with
a backlog, checkpoint messages) goes to ``LiveCompare``'s exact path (``_input``,
``_input_rest``, ``_after_step``), which also uses ``FastInput.feed`` for a read's whole frames
and ``feed_frames`` for decoded ones (vnet words).  The module is part of the compiled core
(``colo_replay.COMPILED_MODULES``): the per-frame loop, its call into ``Engine._feed_at`` and
the socket calls are then C (lean.pxd).  Interpreted it is the same path in Python.
"""

from __future__ import annotations

from struct import Struct

try:
    import cython
except ImportError:                 # Cython absent: @cython.locals below is a no-op
    from ..engine import _cython_shim as cython

from os import strerror as _strerror
from time import monotonic_ns as _monotonic_ns, time_ns as _time_ns

from ..engine.compare import Engine
from ..engine.constants import MS, NEVER as _NEVER
from ..engine.framing import NET_BUFSIZE
from .channel import IOV_MAX, READ_SIZE

FLUSH_FRAMES = 256      # frames of one read between two outdev writes (LiveCompare._after_step)
_FLUSH = cython.declare(cython.Py_ssize_t, FLUSH_FRAMES)        # C values in the compiled core
_MAX_LEN = cython.declare(cython.Py_ssize_t, NET_BUFSIZE)
_IOV_HALF = cython.declare(cython.Py_ssize_t, IOV_MAX // 2)     # Channel.send's one-sendmsg limit
# After a read of more than this, the next one goes straight into its own bytes object; after a
# smaller one, into FastInput's buffer and then copied (no large allocation for a small read)
_COPY_MAX = cython.declare(cython.Py_ssize_t, 8192)
_u32 = Struct("!I").unpack_from
SIDE_NAMES = ("primary_in", "secondary_in")

# Reads are sized to hold about READ_FRAMES frames of the size seen so far (between these
# bounds): a read of thousands of small frames, their slices and their Packets no longer fit
# in the CPU cache, and costs more per frame than several smaller reads (bench/README.md).
READ_FRAMES = 512
MIN_READ_SIZE = 16 * 1024

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


class LiveClock:
    """The live engine clock (``clock.py`` says why it is the monotonic clock shifted by whole
    milliseconds).  Here so that ``FastInput`` calls ``now`` in C (lean.pxd)."""

    def __init__(self):
        mono = _monotonic_ns()
        wall = _time_ns()
        self.offset = ((wall - mono) // MS) * MS     # whole ms: ns // MS is shift-invariant
        self._last = 0

    @cython.locals(t=cython.longlong)
    def now(self) -> int:
        """Engine ns: strictly greater than every earlier reading."""
        t = _monotonic_ns() + self.offset
        if t <= self._last:
            t = self._last + 1
        self._last = t
        return t

    def to_loop_time(self, engine_ns: int) -> float:
        """Engine ns -> ``loop.time()`` seconds (asyncio's loop clock is time.monotonic)."""
        return (engine_ns - self.offset) / 1e9


class FastInput:
    """primary_in's or secondary_in's read path when only releases matter and frames carry no
    vnet word (``LiveCompare`` with ``compact_pairs``, vnet_hdr_support off): the channel's
    reader callback.  ``readable`` receives (as ``Channel._readable``), feeds the read's whole
    frames where they lie (``feed``), sizes the next read and writes the releases to outdev
    (``after_step``) with no Python function of the runtime in between.  In the compiled core
    that is C from the event loop's callback to ``writev`` on outdev: ``recv`` into one
    buffer, the engine's ``_feed_at``, and the counters kept in C fields (they reach
    ``LiveStats``, ``LiveCompare.idents``, the decoder's ``consumed`` and outdev's
    ``sent_bytes`` in ``sync``, before anything reads them).  Anything unusual goes to the
    runtime's exact path, which ends the read as it always did:

    * the decoder is not at a frame boundary (or is disabled): ``LiveCompare._input``;
    * the read ends with a cut, zero-length or oversized frame: after its whole frames,
      ``LiveCompare._input_rest`` (the exact decoder);
    * a checkpoint message waits, outdev is not a ``Channel``, not connected or still has a
      backlog, or a long release list: ``LiveCompare._after_step``.

    Other events than a pair matched on arrival go to ``LiveCompare._handle`` in order, as in
    ``_input``.  ``feed`` is also ``_input``'s lean loop (one loop for both)."""

    def __init__(self, lc, side: int):
        from .channel import Channel
        self.lc = lc
        self.side = side
        self.engine = lc.engine
        self.ch = lc.channels[SIDE_NAMES[side]]
        self.out_ch = lc.channels["outdev"]
        self.direct = type(self.out_ch) is Channel      # (the unit tests' stubs are not)
        self.send_list = self.out_ch.send_list if self.direct else None
        self.stats = lc.stats
        self.clock = lc.clock
        self.ex = lc.decoders[side].exact
        self.idents = lc.idents
        self.out = lc._out                  # never replaced (LiveCompare._after_step clears it)
        self.rbuf = bytearray(READ_SIZE)    # what recv() reads into (compiled core)
        self.sock = None
        self.fd = -1
        self.out_sock = None
        self.out_fd = -1
        self.n = self.count = self.pairs = 0
        self.bytes_in = self.pairs_out = self.consumed = self.sent = self.wtotal = self.last_read = 0
        self.reload()

    def sync(self) -> None:
        """Fold the counters kept here into the runtime's (before anything reads them, and
        before the exact path takes over)."""
        side = self.side
        st = self.stats
        if self.bytes_in:
            st.bytes_in[side] += self.bytes_in
            self.bytes_in = 0
        if self.pairs_out:
            st.released += self.pairs_out
            st.secondary_dropped += self.pairs_out
            self.pairs_out = 0
        idents = self.idents
        if self.n != idents[side]:
            st.frames_in[side] += self.n - idents[side]
            idents[side] = self.n
        if self.consumed:
            self.ex.consumed += self.consumed
            self.consumed = 0
        if self.sent:
            self.out_ch.sent_bytes += self.sent
            self.sent = 0

    def reload(self) -> None:
        """After the exact path: the last ident, the read size and whether the decoder stands
        at a frame boundary (the fast path's condition) as the runtime left them."""
        ex = self.ex
        self.n = self.idents[self.side]
        self.read_size = self.ch.read_size
        self.clean = ex.state == 0 and not ex._hdr and not ex.disabled

    def readable(self, sock) -> None:
        """``sock`` is readable: ``Channel._readable`` with ``LiveCompare._input``."""
        if cython.compiled:
            if sock is not self.sock:
                self.sock = sock
                self.fd = sock.fileno()
            if self.last_read > _COPY_MAX:
                chunk = _recv_bytes(self.fd, self.read_size)  # noqa: F821 (lean.pxd)
            else:
                chunk = _recv_into(self.fd, self.rbuf, self.read_size)  # noqa: F821 (lean.pxd)
            if chunk is None:
                return                      # EAGAIN
            if chunk.__class__ is not bytes:
                self.ch._disconnect(_strerror(chunk))
                return
        else:
            try:
                chunk = sock.recv(self.read_size)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                self.ch._disconnect(exc.strerror or str(exc))
                return
        if not chunk:
            self.ch._disconnect("EOF")
            return
        self.last_read = len(chunk)
        self.input(chunk)

    @cython.locals(clock=LiveClock, size=cython.Py_ssize_t, pos=cython.Py_ssize_t, count=cython.Py_ssize_t,
                   want=cython.Py_ssize_t, t=cython.longlong, n0=cython.longlong, n_end=cython.longlong)
    def input(self, chunk: bytes) -> None:
        """One read of this input: ``LiveCompare._input``, the same steps in the same order."""
        lc = self.lc
        side = self.side
        if not self.clean:
            lc._input(side, chunk)          # (it syncs this input's counters first, reloads after)
            return
        clock = self.clock
        t = clock.now()                     # (a C call in the compiled core: lean.pxd)
        size = len(chunk)
        n0 = self.n
        pos = self.feed(chunk, t, n0)
        self.bytes_in += size
        self.consumed += pos
        if pos < size:
            # a cut, zero-length or oversized frame: the rest as _input does it, from the
            # runtime's counters as at the start of this read
            n_end = self.n
            self.n = n0
            self.sync()
            lc._input_rest(side, chunk, t, n_end, pos, self.count, self.pairs)
            self.reload()
            return
        self.pairs_out += self.pairs
        count = self.count
        if count:
            want = size // count * READ_FRAMES
            want = MIN_READ_SIZE if want < MIN_READ_SIZE else READ_SIZE if want > READ_SIZE else want
            if want != self.read_size:
                self.read_size = want
                self.ch.read_size = want
        self.after_step()

    @cython.locals(engine=Engine, hp=cython.p_uchar, pos=cython.Py_ssize_t, end=cython.Py_ssize_t,
                   size=cython.Py_ssize_t, ln=cython.Py_ssize_t, count=cython.Py_ssize_t, pairs=cython.Py_ssize_t,
                   side=cython.longlong, out=list)
    def feed(self, chunk: bytes, t: int, n: int) -> int:
        """The lean loop over a read as it lies: the whole ordinary frames at the head of
        ``chunk`` (the decoder is at a frame boundary), read at ``t``, idents on from ``n``;
        the releases to ``LiveCompare._out``, written (``after_step``) every FLUSH_FRAMES
        frames.  Returns the bytes used; ``self.n``, ``self.count`` and ``self.pairs`` are
        then the last ident, the frames fed and the pairs released."""
        engine = self.engine
        side = self.side
        out = self.out
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
                self.after_step()       # the releases so far leave
            n += 1
            count += 1
            if engine._out:
                engine._out = []
            engine._feed_at(side, chunk, pos + 4, ln, t, n)
            evs = engine._out
            if evs:
                for ev in evs:
                    if ev.__class__ is bytes:
                        if cython.compiled:
                            out.append((_len_word(len(ev)), ev))  # noqa: F821 (lean.pxd)
                        else:
                            out.append((_pack1(len(ev)), ev))
                        pairs += 1
                    else:
                        self.lc._handle((ev,), t)
            pos = end
        self.n = n
        self.count = count
        self.pairs = pairs
        return pos

    @cython.locals(engine=Engine, total=cython.Py_ssize_t, sent=cython.Py_ssize_t, out=list)
    def after_step(self) -> None:
        """``LiveCompare._after_step``: the releases leave in one write when outdev is idle
        (``Channel.send``'s fast path), then the scan timer; anything else goes to
        ``_after_step`` itself."""
        lc = self.lc
        if not self.direct or lc._ckpt_msgs:
            lc._after_step()
            return
        out = self.out
        if out:
            ch = self.out_ch
            sock = ch.sock
            if sock is None or ch.current is not None or self.send_list or len(out) > _IOV_HALF:
                lc._after_step()
                return
            # Channel.send's fast path: one write, and what it did not take waits as the send
            # coroutine would leave it
            sent = -2
            if cython.compiled:
                if sock is not self.out_sock:
                    self.out_sock = sock
                    self.out_fd = sock.fileno()
                sent = _writev_entries(self, out)  # noqa: F821 (lean.pxd; -2: not bytes)
                total = self.wtotal
            if sent == -2:
                total, sent = ch._send_once(out)
            if sent == total:
                self.sent += total
                out.clear()
            else:
                entries = out[:]
                out.clear()
                ch._sent_part(entries, total, sent)
                lc._sent(ch, 0)
        engine = self.engine
        if engine.queued:
            ns = engine._tick_ns
            if ns != _NEVER and ns != lc._timer_ns:
                lc._set_timer(ns)
