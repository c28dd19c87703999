"""Engine.feed's fast path (Ethernet + 20-byte IPv4 header, no vnet) against the general path.

``GeneralEngine`` feeds every frame the way ``Engine.feed`` did before it had a fast path
(``Packet(...)`` then ``_enqueue_and_compare``).  Random streams over both profiles, with
TCP retransmissions and overlaps, datagrams, other protocols, short and odd frames, small
queues and flushes, must give the same events about the same frames with the same fields.
"""

import random
import struct

import pytest

from colo_replay import PRIMARY, CompareConfig, Engine, EventKind, Packet

PACKET_FIELDS = ("size", "vnet_hdr_len", "side", "ident", "time", "creation_ms", "net_off", "l4_off",
                 "ip_proto", "tcp_seq", "tcp_ack", "seq_end", "header_size", "payload_size", "offset",
                 "flags", "undefined")


class GeneralEngine(Engine):
    def feed(self, side, data, time_ns, vnet_hdr_len=0, ident=None):
        out = self._out = []
        if time_ns >= self._tick_ns:
            self._run_due_scans(time_ns)
        if time_ns > self.now:
            self.now = time_ns
        if vnet_hdr_len and not self._vnet:
            raise ValueError("vnet_hdr_len given but vnet_hdr_support is off")
        self._enqueue_and_compare(Packet(data, side, time_ns, vnet_hdr_len, ident), time_ns)
        return out


def frame(rng: random.Random, flows: list, payloads: list) -> bytes:
    kind = rng.random()
    src, dst, sport, dport = rng.choice(flows)
    if kind < 0.03:
        return bytes(rng.randrange(0, 60))                        # short / non-IP garbage
    if kind < 0.05:
        return bytes(12) + b"\x81\x00" + bytes(rng.randrange(0, 50))   # VLAN
    if kind < 0.07:
        return bytes(12) + b"\x86\xdd" + bytes(60)                 # IPv6
    if kind < 0.65:
        proto = 6
        seq = rng.choice([1000, 1000, 2448, 3896, 0xFFFFFF00, 1000 + 0x80000000, rng.getrandbits(32)])
        ack = rng.choice([1, 5000, 0x7FFFFFFF, 0x80000001])
        n = rng.choice([0, 0, 1, 5, 100, 1448])
        off = rng.choice([5, 5, 5, 5, 8, 15, 2])
        flags = rng.choice([0x10, 0x18, 0x12, 0x11])
        l4 = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, off << 4, flags, 65535, 0, 0)
        l4 += bytes(max(0, off * 4 - 20)) + rng.choice(payloads)[:n]
    elif kind < 0.85:
        proto = 17
        l4 = struct.pack("!HHHH", sport, dport, 8, 0) + rng.choice(payloads)[:rng.choice([0, 3, 40])]
    else:
        proto = rng.choice([1, 1, 51, 50, 132, 47])
        l4 = rng.choice(payloads)[:rng.choice([0, 2, 6, 30])]
    ihl = rng.choice([5, 5, 5, 5, 5, 6, 4, 0])
    ip = struct.pack("!BBHHHBBH4s4s", 0x40 | ihl, 0, 20 + len(l4), rng.getrandbits(16), 0, 64, proto, 0, src, dst)
    ip += bytes(max(0, ihl * 4 - 20))
    data = bytes(6) + bytes(6) + b"\x08\x00" + ip + l4
    if rng.random() < 0.1:
        data = data[:rng.randrange(14, len(data) + 1)]             # cut short
    if rng.random() < 0.05:
        data += bytes(rng.randrange(1, 20))                        # Ethernet padding
    return data


def describe(events):
    out = []
    for ev in events:
        row = [int(ev.kind), int(ev.cause), ev.time, ev.conn, ev.detail]
        for pkt in (ev.frame, ev.other):
            row.append(None if pkt is None else tuple(getattr(pkt, f) for f in PACKET_FIELDS))
        out.append(row)
    return out


@pytest.mark.parametrize("profile", ["7.2", "4.1"])
@pytest.mark.parametrize("seed", range(6))
def test_fast_path_matches_general_path(profile, seed):
    rng = random.Random(seed * 31 + len(profile))
    flows = [(bytes((10, 0, 0, 1)), bytes((10, 0, 0, rng.randrange(2, 5))), rng.choice([80, 443]),
              rng.choice([40000, 40001])) for _ in range(4)]
    payloads = [bytes(rng.getrandbits(8) for _ in range(1448)) for _ in range(3)]
    config = CompareConfig(max_queue_size=rng.choice([3, 1024])) if profile == "7.2" else None
    fast = Engine(profile, config, start_ns=0)
    general = GeneralEngine(profile, config, start_ns=0)
    t = 0
    for i in range(3000):
        t += rng.choice([0, 1000, 50_000, 1_000_000, 400_000_000 if rng.random() < 0.01 else 10])
        r = rng.random()
        if r < 0.01:
            a, b = fast.checkpoint(t), general.checkpoint(t)
        elif r < 0.02:
            a, b = fast.advance(t), general.advance(t)
        else:
            data = frame(rng, flows, payloads)
            side = PRIMARY if rng.random() < 0.5 else 1
            # the other side's copy, sometimes with a different IP ID (same payload)
            a, b = fast.feed(side, data, t, ident=i), general.feed(side, data, t, ident=i)
        assert describe(a) == describe(b), (i, describe(a), describe(b))
    assert_same_state(fast, general)


def assert_same_state(a: Engine, b: Engine) -> None:
    """The same connections, TCP bookkeeping and queued frames (every Packet field)."""
    assert a.queue_lengths() == b.queue_lengths() and a.queued == b.queued
    assert list(a.table) == list(b.table)
    for ca, cb in zip(a.conn_list, b.conn_list):
        assert (ca.index, ca.ip_proto, ca.compare_seq, ca.pack, ca.sack) == \
            (cb.index, cb.ip_proto, cb.compare_seq, cb.pack, cb.sack)
        for qa, qb in ((ca.primary, cb.primary), (ca.secondary, cb.secondary)):
            assert [tuple(getattr(p, f) for f in PACKET_FIELDS) for p in qa] == \
                [tuple(getattr(p, f) for f in PACKET_FIELDS) for p in qb]


def test_fast_path_counts_as_ordinary_frames():
    """The fast path fills in every Packet attribute another module may read."""
    data = bytes(12) + b"\x08\x00" + struct.pack("!BBHHHBBH4s4s", 0x45, 0, 60, 0, 0, 64, 6, 0,
                                                 bytes(4), bytes(4)) + struct.pack(
        "!HHIIBBHHH", 1, 2, 100, 7, 0x50, 0x18, 0, 0, 0) + b"payload"
    eng = Engine("7.2")
    eng.feed(PRIMARY, data, 5_000_000, ident=3)
    pkt = eng.conn_list[0].primary[0]
    assert isinstance(pkt, Packet)
    assert (pkt.data, pkt.size, pkt.vnet_hdr_len, pkt.ident, pkt.time, pkt.creation_ms) == (data, 61, 0, 3, 5_000_000, 5)
    assert (pkt.tcp_seq, pkt.tcp_ack, pkt.seq_end, pkt.header_size, pkt.payload_size) == (100, 7, 107, 54, 7)
    assert repr(pkt).startswith("Packet(P#3")


def _datagram(rng: random.Random, proto: int, n: int, flow: int) -> bytes:
    l4 = (struct.pack("!HHHH", 1000 + flow, 53, 8 + n, 0) if proto == 17 else b"\x08\x00\x00\x00")
    l4 += bytes(rng.getrandbits(8) for _ in range(n))
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(l4), rng.getrandbits(16), 0, 64, proto, 0,
                     bytes((10, 0, 0, 1)), bytes((10, 0, 0, 2 + flow % 3)))
    return bytes(12) + b"\x08\x00" + ip + l4


@pytest.mark.parametrize("profile", ["7.2", "4.1"])
@pytest.mark.parametrize("seed", range(8))
def test_datagram_first_round_matches_general_path(profile, seed):
    """UDP/ICMP copies arriving on both sides in any order (the datagram fast path's case), some
    altered in their last byte, small queues and flushes: same events, same queues."""
    rng = random.Random(seed)
    config = CompareConfig(max_queue_size=rng.choice([2, 1024])) if profile == "7.2" else None
    fast, general = Engine(profile, config, start_ns=0), GeneralEngine(profile, config, start_ns=0)
    t = 0
    pending = []
    for i in range(2000):
        t += rng.choice([0, 1000, 1_000_000])
        if rng.random() < 0.01:
            a, b = fast.checkpoint(t), general.checkpoint(t)
        else:
            if pending and rng.random() < 0.5:
                side, data = pending.pop(rng.randrange(len(pending)))
                if rng.random() < 0.1:
                    data = data[:-1] + bytes([data[-1] ^ 1])
            else:
                data = _datagram(rng, rng.choice([17, 1]), rng.choice([20, 34, 100, 1400]), rng.randrange(4))
                side = rng.randrange(2)
                pending.append((1 - side, data))
            a, b = fast.feed(side, data, t, ident=i), general.feed(side, data, t, ident=i)
        assert describe(a) == describe(b), (i, describe(a), describe(b))
    assert_same_state(fast, general)


def _compact_view(events):
    """Events as the compact_pairs caller sees them: a bytes item is a pair matched on arrival
    (its primary's bytes released, its secondary dropped); other events by their fields."""
    out = []
    for ev in events:
        if ev.__class__ is bytes:
            out += [("release", ev), ("secondary_dropped",)]
        elif ev.kind == EventKind.RELEASE:
            out.append(("release", ev.frame.data))
        elif ev.kind == EventKind.SECONDARY_DROPPED:
            out.append(("secondary_dropped",))
        else:
            out.append(describe([ev])[0])
    return out


def _copies_in_any_order(rng: random.Random, flows: list, payloads: list, n: int) -> list:
    """``n`` steps: ``("feed", t, side, data, ident)`` for TCP and datagram frames whose
    other-side copy comes later in any order (some altered in their last byte), odd frames among
    them, and now and then ``("checkpoint", t)`` or ``("advance", t)``, at growing times."""
    steps, pending, t = [], [], 0
    for i in range(n):
        t += rng.choice([0, 0, 1000, 1_000_000, 150_000_000 if rng.random() < 0.02 else 10])
        r = rng.random()
        if r < 0.01:
            steps.append(("checkpoint", t))
        elif r < 0.02:
            steps.append(("advance", t))
        else:
            if pending and rng.random() < 0.6:
                side, data = pending.pop(rng.choice([0, 0, 0, rng.randrange(len(pending))]))
                if rng.random() < 0.05:
                    data = data[:-1] + bytes([data[-1] ^ 1])
            else:
                if rng.random() < 0.6:
                    data = frame(rng, flows, payloads)
                else:
                    data = _datagram(rng, rng.choice([17, 1]), rng.choice([20, 100]), rng.randrange(4))
                side = rng.randrange(2)
                pending.append((1 - side, data))
            steps.append(("feed", t, side, data, i))
    return steps


@pytest.mark.parametrize("profile", ["7.2", "4.1"])
@pytest.mark.parametrize("seed", range(8))
def test_compact_pairs_same_decisions(profile, seed):
    """compact_pairs=True (live mode without timeline or recording) against the general path:
    TCP and datagram frames with their other-side copies arriving in any order, some altered,
    odd frames, small queues, scans and flushes: the same releases in the same order, the same
    other events and the same queues; and pairs do come back compact."""
    rng = random.Random(1000 + seed)
    flows = [(bytes((10, 0, 0, 1)), bytes((10, 0, 0, rng.randrange(2, 5))), rng.choice([80, 443]),
              rng.choice([40000, 40001])) for _ in range(3)]
    payloads = [bytes(rng.getrandbits(8) for _ in range(1448)) for _ in range(3)]
    config = CompareConfig(max_queue_size=rng.choice([2, 1024])) if profile == "7.2" else None
    compact = Engine(profile, config, start_ns=0, compact_pairs=True)
    general = GeneralEngine(profile, config, start_ns=0)
    compact_items = 0
    for step in _copies_in_any_order(rng, flows, payloads, 3000):
        if step[0] == "feed":
            _, t, side, data, i = step
            a, b = compact.feed(side, data, t, ident=i), general.feed(side, data, t, ident=i)
        else:
            a, b = getattr(compact, step[0])(step[1]), getattr(general, step[0])(step[1])
        compact_items += sum(1 for ev in a if ev.__class__ is bytes)
        assert _compact_view(a) == _compact_view(b), (step[:3], a, describe(b))
    assert compact_items > 200, compact_items
    assert_same_state(compact, general)


@pytest.mark.parametrize("rows", [True, False])
@pytest.mark.parametrize("profile", ["7.2", "4.1"])
@pytest.mark.parametrize("seed", range(6))
def test_lazy_frames_same_decisions(profile, seed, rows):
    """lazy_frames=True (the offline driver's engine: a frame queued on the fast path keeps its
    bytes in the caller's buffer until settle()) against the same engine copying every queued
    frame: frames fed from shared multi-frame buffers at their offsets, settle() at most buffer
    ends (not all: several buffers may stay referenced), TCP and datagram copies in any order,
    some altered, odd frames, small queues, scans and flushes.  The same events, the same rows
    (the engines write matched pairs into an EventLog when ``rows``), the same queues; every
    frame an event names has its bytes, and settle() leaves none without."""
    from colo_replay.engine.eventlog import EventLog

    rng = random.Random(5000 + seed)
    flows = [(bytes((10, 0, 0, 1)), bytes((10, 0, 0, rng.randrange(2, 5))), rng.choice([80, 443]),
              rng.choice([40000, 40001])) for _ in range(3)]
    payloads = [bytes(rng.getrandbits(8) for _ in range(1448)) for _ in range(3)]
    config = CompareConfig(max_queue_size=rng.choice([2, 1024])) if profile == "7.2" else None
    lazy, eager = Engine(profile, config, start_ns=0), Engine(profile, config, start_ns=0)
    lazy.lazy_frames = True
    if rows:
        lazy.rows, eager.rows = EventLog(block_rows=97), EventLog(block_rows=97)
    steps = _copies_in_any_order(rng, flows, payloads, 3000)
    lazies = 0
    k = 0
    while k < len(steps):
        group = steps[k:k + rng.randrange(1, 20)]           # one read buffer's frames
        k += len(group)
        fed = [s for s in group if s[0] == "feed"]
        buf = bytes(rng.randrange(3)) + b"".join(s[3] for s in fed)
        off = len(buf) - sum(len(s[3]) for s in fed)
        for step in group:
            if step[0] == "feed":
                _, t, side, data, ident = step
                a = list(lazy.feed_at(side, buf, off, len(data), t, ident))
                b = eager.feed(side, data, t, ident=ident)
                off += len(data)
            else:
                a, b = getattr(lazy, step[0])(step[1]), getattr(eager, step[0])(step[1])
            lazies += len(lazy._lazy)
            assert describe(a) == describe(b), (step, describe(a), describe(b))
            for ev in a:
                for pkt in (ev.frame, ev.other):
                    assert pkt is None or pkt.data is not None and pkt.chunk is None
            assert [ev.frame.data for ev in a if ev.frame is not None] == \
                [ev.frame.data for ev in b if ev.frame is not None]
        if rng.random() < 0.8:
            lazy.settle()
    assert lazies > 300, lazies                             # frames were queued lazily
    lazy.settle()
    assert_same_state(lazy, eager)
    for ca, cb in zip(lazy.conn_list, eager.conn_list):
        for qa, qb in ((ca.primary, cb.primary), (ca.secondary, cb.secondary)):
            assert [(p.data, p.chunk) for p in qa] == [(p.data, None) for p in qb]
    if rows:
        assert len(lazy.rows) == len(eager.rows) > 500
        for name, col in lazy.rows.columns().items():
            assert list(col) == list(eager.rows.columns()[name]), name


def test_settle_queues_settles_one_connection_or_all():
    """Engine.settle_queues (what _compare_tcp / _compare_packet run first): the frames queued
    lazily on that connection get their bytes, the other connections' stay in their read buffer;
    past SETTLE_ONE_MAX frames on the connection every lazy frame is settled, so a call never
    walks a long queue for nothing."""
    from colo_replay.engine.scan import SETTLE_ONE_MAX
    from tests.support import frames as F

    eng = Engine("7.2", start_ns=0)
    eng.lazy_frames = True
    a = [F.tcp(1000 + 10 * i, bytes([i]) * 10, sport=80) for i in range(3)]
    b = [F.tcp(5000 + 10 * i, bytes([i]) * 10, sport=81) for i in range(2)]
    buf = b"".join(a + b)
    off = 0
    for i, fr in enumerate(a + b):
        assert eng.feed_at(PRIMARY, buf, off, len(fr), 1000 + i, ident=i + 1) == []
        off += len(fr)
    ca, cb = eng.conn_list
    assert all(p.data is None and p.chunk is buf for q in (ca.primary, cb.primary) for p in q)
    eng.settle_queues(ca)
    assert sorted(p.data for p in ca.primary) == sorted(a)
    assert all(p.chunk is None for p in ca.primary)
    assert all(p.data is None and p.chunk is buf for p in cb.primary)      # not this one's
    assert len(eng._lazy) == 5                  # settle() still passes them all (a's are done)
    eng.settle()
    assert sorted(p.data for p in cb.primary) == sorted(b) and not eng._lazy

    # a connection holding more than SETTLE_ONE_MAX frames: everything is settled at once
    long = [F.tcp(9000 + 10 * i, b"x" * 10, sport=82) for i in range(SETTLE_ONE_MAX + 1)]
    other = F.tcp(7000, b"y" * 10, sport=83)
    buf = b"".join(long) + other
    off = 0
    for i, fr in enumerate(long + [other]):
        eng.feed_at(PRIMARY, buf, off, len(fr), 2000 + i, ident=100 + i)
        off += len(fr)
    cl, co = eng.conn_list[2:]
    eng.settle_queues(cl)
    assert not eng._lazy
    assert [p.data for p in co.primary] == [other] and co.primary[0].chunk is None
    assert sorted(p.data for p in cl.primary) == sorted(long)
