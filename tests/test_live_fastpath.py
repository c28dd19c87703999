"""``lean.FastInput``, live mode's read path without a timeline or a recording: the same reads
on real sockets through FastInput (the channels' reader, as ``LiveCompare.open`` sets it),
through the exact path as it was (``Channel._readable`` -> ``LiveCompare._input``: the lean loop
``FastInput.feed`` for a read's whole frames, the frame decoder for the rest) and through the
frame decoder alone (no lean loop) give the same bytes on outdev, the same DO_CHECKPOINTs, the same counters and the
same decoder state: frames cut by reads, zero-length and oversized frames, mismatches, pass-
through frames, reads of more than FLUSH_FRAMES frames, and an outdev that pushes back (partial
writes, 7.2's LIFO send queue, inputs paused by ``max_send_buffer``)."""

from __future__ import annotations

import io
import random
import select
import socket

import pytest

from colo_replay import NET_BUFSIZE, encode_frame
from colo_replay.live.channel import Channel
from colo_replay.live.endpoint import parse_endpoint
from colo_replay.live.lean import FastInput
from colo_replay.live.logs import Log
from colo_replay.live.runtime import LiveCompare
from tests.support import frames as F
from tests.support.live_stubs import StubLoop, StubOut
from tests.support.qemu_oracle import zero_length_frame_bytes

SIDES = ("primary_in", "secondary_in")


class _Loop(StubLoop):
    """What a Channel asks of its loop here: the read/write watches are only recorded (the
    test calls the callbacks itself); timers never fire."""

    def __init__(self):
        self.readers, self.writers = {}, {}

    def add_reader(self, fd, cb, *args):
        self.readers[fd] = (cb, args)

    def remove_reader(self, fd):
        self.readers.pop(fd, None)

    def add_writer(self, fd, cb, *args):
        self.writers[fd] = (cb, args)

    def remove_writer(self, fd):
        self.writers.pop(fd, None)


def _rig(mode: str, out_buf: int | None = None, max_send_buffer: int = 64 << 20):
    """A LiveCompare on socketpairs (inputs and outdev real Channels, notify_dev a stub) whose
    inputs are read by ``mode``: "fast" (FastInput.readable), "exact" (Channel._readable ->
    LiveCompare._input) or "decoder" (the same without FastInput: no lean loop)."""
    loop = _Loop()
    log = Log(stream=io.StringIO())
    lc = LiveCompare({}, log=log, max_send_buffer=max_send_buffer)
    lc.loop = loop
    peers = {}
    ep = parse_endpoint("socket,path=/nonexistent.sock")
    for name in SIDES + ("outdev",):
        mine, theirs = socket.socketpair()
        if name == "outdev":
            mine.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, out_buf or 4 << 20)
            theirs.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, out_buf or 4 << 20)
        else:
            theirs.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
            mine.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        mine.setblocking(False)
        side = SIDES.index(name) if name in SIDES else None
        ch = Channel(name, ep, loop, log, on_data=(None if side is None else (lambda c, s=side: lc._input(s, c))),
                     on_drained=lc._on_out_drained if name == "outdev" else None)
        ch._attach(mine)
        lc.channels[name] = ch
        peers[name] = theirs
    lc.channels["notify_dev"] = StubOut()
    lc._start_engine(lc.clock.now())
    assert lc._fast is not None
    if mode == "fast":
        for f in lc._fast:
            f.ch.pause_reading()
            f.ch.reader = f.readable
            f.ch.resume_reading()
    elif mode == "decoder":
        lc._fast = None                 # Channel._readable -> _input, the frame decoder only
    return lc, peers, loop


def _readable(sock) -> bool:
    return bool(select.select([sock], [], [], 0)[0])


def _snapshot(lc) -> tuple:
    """What the runtime decided after a read: outdev's backlog, the inputs' pause, the send
    queue's high-water mark, whether the scan timer is armed (``_run`` checks when)."""
    out = lc.channels["outdev"]
    return (out.queued_bytes, len(out.send_list), out.current is not None, lc._inputs_paused,
            lc.stats.max_send_queue_bytes, lc.stats.input_pauses, lc._timer_ns is None)


def _run(rigs, reads, drain_each: bool) -> list:
    """Write each read to its input of every rig, and let each program read until its socket is
    empty (while its read watch is on); outdev is read after every read (``drain_each``) or
    only when the inputs are paused, and at the end.  After every read the rigs' runtime
    decisions must agree (``_snapshot``).  Returns what each rig's outdev received."""
    gots = [bytearray() for _ in rigs]

    def pump(lc, peers, loop, got):
        out = lc.channels["outdev"]
        while _readable(peers["outdev"]):
            got.extend(peers["outdev"].recv(1 << 20))
        w = loop.writers.get(out.sock.fileno()) if out.sock is not None else None
        if w is not None:
            w[0](*w[1])

    for side, chunk in reads:
        name = SIDES[side]
        for (lc, peers, loop), got in zip(rigs, gots):
            peers[name].sendall(chunk)
            ch = lc.channels[name]
            while _readable(ch.sock):
                r = loop.readers.get(ch.sock.fileno())
                if r is None:
                    if ch.disabled:
                        break
                    pump(lc, peers, loop, got)      # paused: outdev must drain first
                    continue
                r[0](*r[1])
            if drain_each:
                pump(lc, peers, loop, got)
        assert len({_snapshot(lc) for lc, _, _ in rigs}) == 1, [_snapshot(lc) for lc, _, _ in rigs]
        # the scan timer at the same time after each engine's start (the rigs read a few
        # microseconds apart: the deadline of a frame's compare_timeout moves with them)
        due = [lc._timer_ns - lc.start_ns for lc, _, _ in rigs if lc._timer_ns is not None]
        assert not due or max(due) - min(due) < 50_000_000, due
    for (lc, peers, loop), got in zip(rigs, gots):
        while lc.channels["outdev"].blocked or _readable(peers["outdev"]):
            pump(lc, peers, loop, got)
    return [bytes(g) for g in gots]


def _reads(seed: int, n_reads: int = 14, oversized: bool = True):
    """Primary and secondary streams of UDP/TCP/IPv6 frames (some mismatching), cut into reads
    at random points (frames split across reads) and at frame boundaries; at the end a frame of
    length 0 on primary_in (QEMU 7.2 would abort; its decoder then takes the next byte as part
    of it, so nothing after it would be in step) and (``oversized``) one over NET_BUFSIZE on
    secondary_in (that input is never read again)."""
    rng = random.Random(seed)
    pri, sec = [], []
    for r in range(n_reads):
        for i in range(rng.choice([1, 1, 2, 3, 40, 300, 600])):
            k = rng.random()
            if k < 0.4:
                f = F.udp(rng.randbytes(rng.choice([10, 60, 900])), sport=1000 + (r * 7 + i) % 50)
            elif k < 0.75:
                f = F.tcp(1000 + r * 1000 + i, rng.randbytes(rng.choice([0, 40])), sport=2000 + i % 50)
            elif k < 0.85:
                f = bytes(12) + b"\x86\xdd" + rng.randbytes(50)          # IPv6: passed through
            else:
                pri.append(encode_frame(F.udp(b"P" * 20, sport=3000 + i)))   # a mismatch
                sec.append(encode_frame(F.udp(b"S" * 20, sport=3000 + i)))
                continue
            pri.append(encode_frame(f))
            sec.append(encode_frame(f))
    reads = []
    for side, frames in ((0, pri), (1, sec)):
        stream = b"".join(frames)
        if side == 0:
            stream += zero_length_frame_bytes()
        if oversized and side == 1:
            stream += (NET_BUFSIZE + 1).to_bytes(4, "big") + b"x" * (NET_BUFSIZE + 100)    # disables it
        cuts = sorted(set(rng.sample(range(1, len(stream)), 40)))
        # whole-frame reads as well as cut ones: cut at frame boundaries half of the time
        bounds, pos = [], 0
        for fr in frames:
            pos += len(fr)
            bounds.append(pos)
        cuts = sorted(set(cuts + rng.sample(bounds[:-1], min(40, len(bounds) - 1))))
        pieces = [stream[a:b] for a, b in zip([0] + cuts, cuts + [len(stream)])]
        reads.append([(side, p) for p in pieces])
    # interleave the two sides' reads, primary first more often than not
    a, b, mixed = reads[0], reads[1], []
    while a or b:
        take = a if a and (not b or rng.random() < 0.55) else b
        mixed.append(take.pop(0))
    return mixed


def _state(lc) -> dict:
    s = lc.summary()
    for k in ("runtime_s",):
        s.pop(k, None)
    s["idents"] = list(lc.idents)
    s["decoders"] = [(d.exact.consumed, d.exact.state, d.exact.disabled, d.exact.index) for d in lc.decoders]
    s["notify"] = b"".join(lc.channels["notify_dev"].writes)
    return s


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_fast_input_matches_the_exact_path(seed):
    reads = _reads(seed)
    rigs = [_rig(mode) for mode in ("fast", "exact", "decoder")]
    got_f, got_e, got_d = _run(rigs, reads, drain_each=True)
    st_f, st_e, st_d = (_state(lc) for lc, _, _ in rigs)
    assert got_f == got_e == got_d and len(got_f) > 10_000
    assert st_f == st_e == st_d
    assert st_f["released"] > 300 and st_f["checkpoint_requests"] > 0 and st_f["oversized"] == 1
    assert st_f["passthrough"] > 0 and st_f["qemu_crash_events"] > 0


@pytest.mark.parametrize("seed", [4, 5])
def test_fast_input_matches_the_exact_path_when_outdev_pushes_back(seed):
    """outdev's socket takes a few KiB and is read only once the inputs are paused (and at the
    end): partial writes, the send coroutine's LIFO backlog, input pauses and resumes."""
    reads = _reads(seed, oversized=False)
    rigs = [_rig(mode, out_buf=8192, max_send_buffer=64 << 10) for mode in ("fast", "exact")]
    got_f, got_e = _run(rigs, reads, drain_each=False)
    st_f, st_e = (_state(lc) for lc, _, _ in rigs)
    assert got_f == got_e
    assert st_f == st_e
    assert st_f["input_pauses"] > 0 and st_f["max_send_queue_bytes"] > 0


def test_fast_input_counters_reach_the_stats_before_they_are_read():
    """FastInput keeps its counters in C fields: summary() (and --stats) fold them in first."""
    lc, peers, loop = _rig("fast")
    pair = encode_frame(F.udp(b"x" * 58, sport=1234))
    (got,) = _run([(lc, peers, loop)], [(0, pair), (1, pair)] * 5, drain_each=True)
    assert got == pair * 5
    s = lc.summary()
    assert s["released"] == 5 and s["frames_in"] == [5, 5] and s["bytes_in"] == [5 * len(pair)] * 2
    assert s["bytes_out"] == 5 * len(pair) and lc.idents == [5, 5]
    assert all(isinstance(f, FastInput) and f.bytes_in == 0 for f in lc._fast)
