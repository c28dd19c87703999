"""What a checkpoint does to the secondary: the resynchronisation model of pair captures.

Under real COLO a checkpoint makes the secondary VM a copy of the primary: after it, the SVM
never sends what the PVM had already sent, and it sends again, with the PVM, whatever it had
sent ahead of it.  A capture taken under COLO (a chardev capture) already shows that.  A pair
captured from two free-running VMs does not: its secondary stream goes on as if no checkpoint
happened, so one divergence in a long TCP stream misaligns every later compare on that
connection and one root becomes dozens of requests.

``Resync`` models the checkpoint's effect on such a pair.  It never changes what
the engine decides about the frames it is given; it changes which secondary frames the driver
gives it, and each such change is a driver row in the timeline (kind ``superseded`` or
``requeued``), never a QEMU decision.  The rules, decided at every flush (the end of a
checkpoint) from the frames that flush released and dropped:

While a checkpoint runs (from its start to its flush) the VMs are stopped:
    frames captured meanwhile (both sides: the pair's VMs ran on) are **held** by the driver and
    fed when the checkpoint ends, right after the flush (and the requeued frames), in arrival
    order, the secondaries through the rules below; a request among them that starts the next
    checkpoint holds the rest again.  So a diverged connection that goes on sending does not
    request again against the miscompared pair still at its queues' heads (which, with 5.1+
    coalescing, would cost a second checkpoint); its frames are compared after the flush.
    (The driver holds them by waiting: it stops at the first such frame, runs the checkpoint
    to its end and feeds from there, late frames at the time the VMs resumed.  Nothing is
    copied aside, so memory does not grow with a run of checkpoints.)

TCP, by sequence space, per connection:
    ``mark`` = the furthest point the primary had sent: the latest ``seq_end`` of the primaries
    the flush released, of the connection's ``compare_seq`` (data compared equal), and of the
    mark from earlier flushes, in 32-bit serial order.
    * A later secondary segment whose data ends at or before the mark is **superseded**: the
      resynchronised SVM had that data already sent by the PVM.  (A segment without payload
      is superseded when it starts before the mark: an ACK of the old, behind stream.)
    * A segment that **straddles** the mark (starts before it, ends after it) is **trimmed**:
      the part before the mark is cut, its sequence number moved to the mark and its IPv4
      total length reduced, as the resynchronised SVM would send only the rest.  The trimmed
      frame keeps its frame number; a ``superseded/trimmed`` row says how many bytes went.
    * The first segment that starts at or after the mark ends the rule for that connection:
      the secondary has caught up.  So does ``compare_timeout`` without such a segment: a
      secondary that far behind would have expired under QEMU anyway.
    * A segment without payload that starts **at** the mark is the SVM's copy of a primary one
      the flush released (or a table reset discarded) at that sequence number, as long as such
      primaries outnumber the ones the flush paired with secondaries there: it is superseded
      (an ACK the resynchronised SVM had already sent with the PVM).  Without one owed, it is
      the caught-up SVM's own ACK and ends the rule.
    * Secondary segments the flush dropped that lie (partly) **after** the mark were ahead of
      the primary.  The resynchronised SVM sends that data again with the PVM, so they are
      **requeued**: fed again right after the flush, at the flush time, in their order
      (trimmed first if they straddle the mark).  A frame is requeued once: dropped by a
      later flush again, it is gone (else data the primary never sends would be requeued at
      every flush and expire after every one: a checkpoint every compare_timeout, forever).

    * Primaries a **connection table reset** discarded (``PRIMARY_LOST``, QEMU 7.1+ drops every
      queued frame when the 16,386th connection comes) were sent by the PVM all the same: they
      count towards the mark at the next flush, like the ones the flush released.  The reset
      took the connection's ``compare_seq`` with it, and without them the secondary copies of
      that data, arriving in the new connection, would be taken for data ahead of the primary,
      requeued and compared misaligned with the PVM's next segment.

UDP, ICMP and other protocols, per connection:
    The flush's primaries and secondaries are paired: first by content (colo-compare's own
    rule: same size, same bytes from the primary's IP payload; whole frames for "other"), then
    the rest in arrival order (a differing counterpart, e.g. an NTP reply carrying the other
    VM's clock).  Primaries left unpaired are **owed**: the behind SVM will still send their
    counterparts.  A later secondary frame on the connection is superseded when it matches an
    owed primary by content, or, failing that, when it arrives within ``compare_timeout`` of
    the flush (the differing counterpart); owed entries older than that are forgotten, since a
    frame that late would have expired under QEMU too.  Secondaries left unpaired were ahead:
    they are requeued.

    Pairing in arrival order is a guess, and on a fast flow it is often wrong: the dropped
    secondary may be a **residue**, the counterpart of an *earlier* primary (one a table reset
    discarded, or an extra frame of the SVM), and the primary's real counterpart is still to
    come.  Had the guess stood, that counterpart would be fed after the flush and compared with
    the *next* primary, and so on at every later flush: one residue shifts the whole flow by
    one frame for good (an ICMP pinger at 23 Hz gave a checkpoint per echo reply).  So a
    primary paired by arrival order stays owed **by content only**: a later secondary with its
    exact bytes (within ``compare_timeout``) is its counterpart, behind, and is superseded, as a
    resynchronised SVM would not send it; a secondary with other bytes is fed (the guess was
    right).  Under real COLO the flush leaves no residue: after it both VMs answer the next
    request alike, and this is what the rule restores.  And a secondary with the bytes of a
    primary still waiting in the connection's queue (one sent after the flush, fed before it)
    is that primary's counterpart, never a differing counterpart by time, and it ends the wait
    for differing counterparts (the SVM sends a flow in order: they would have come first):
    otherwise one primary without a counterpart at all (a reply the SVM never sent) takes a
    later secondary of its flow, and the primary that secondary belonged to expires, or its
    real divergence goes unseen.

The model is a driver-level approximation: it assumes the free-running VMs emit the same
streams modulo the divergences (which is what a pair capture is for).  ``raw`` replays keep the
streams exactly as captured; that is right for captures taken under a real COLO run.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from struct import pack_into

from ..engine.events import Cause
from ..engine.packet import (
    IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP, SECONDARY, Packet, connection_key, fill_tcp_info,
    parse_packet_early,
)

try:
    import cython
except ImportError:                 # Cython absent: the decorators below are no-ops
    from ..engine import _cython_shim as cython

_U32 = 0xFFFFFFFF
_S32_NEG = 0x80000000

# The driver's fast stretch asks of every secondary frame, while a rule is pending, whether its
# connection has one (driver._ruleless).  Most have none; to answer that without making the key's
# bytes and looking it up in two dicts, each key with a rule counts in one of RULE_SLOTS slots
# (``Resync.rule_slots``, by ``rule_slot``: a hash of the key's first 12 bytes, the addresses and
# ports of a TCP or UDP key): a slot at 0 means no rule on the frame's connection.  A count that
# reaches 255 stays there (the slot is then always looked up the exact way: still right, only
# slower; with a few hundred rules in 4,096 slots it does not happen).
RULE_SLOTS = 4096
SLOT_SHIFT = 32 - (RULE_SLOTS.bit_length() - 1)    # the product's top bits: one of RULE_SLOTS
SLOT_MUL = 0x9E3779B1


def rule_slot(key: bytes) -> int:
    """The slot of a connection key: the same arithmetic as the driver's C check (32-bit
    unsigned: the product wraps; a key shorter than 12 bytes only needs to hash the same way
    each time, as it never meets the C check)."""
    w = int.from_bytes(key[0:4], "big") ^ int.from_bytes(key[4:8], "big") ^ int.from_bytes(key[8:12], "big")
    return ((w * SLOT_MUL) & _U32) >> SLOT_SHIFT


# What check_secondary tells the driver to do with a secondary frame
FEED = 0            # give it to the engine as it is
SUPERSEDE = 1       # drop it: a resynchronised SVM would not send it
TRIM = 2            # feed the trimmed bytes instead (the part before the mark is cut)


def _later(a: int, b: int) -> int:
    """The later of two sequence numbers in 32-bit serial order (QEMU's after())."""
    return a if 0 < (a - b) & _U32 < _S32_NEG else b


@dataclass
class Requeue:
    """A secondary frame the flush dropped that the resynchronised SVM sends again."""

    data: bytes
    vnet_hdr_len: int
    ident: object
    trimmed: int = 0     # payload bytes cut from its front (0: fed as it was)


@dataclass
class Verdict:
    action: int                 # FEED / SUPERSEDE / TRIM
    data: bytes = b""           # TRIM: the bytes to feed
    trimmed: int = 0            # TRIM: payload bytes cut
    cause: int = 0              # SUPERSEDE / TRIM: the driver row's Cause (ALREADY_SENT, OWED, TRIMMED)


@dataclass
class _Owed:
    """Datagram flows: primaries a flush released whose secondary counterpart has not come."""

    until_ns: int                                   # forget entries after this time
    items: deque = field(default_factory=deque)     # (size, off, tail bytes, by content only) per primary


@dataclass
class ResyncStats:
    superseded: int = 0
    trimmed: int = 0
    requeued: int = 0

    def as_dict(self) -> dict:
        return {"superseded": self.superseded, "trimmed": self.trimmed, "requeued": self.requeued}


class Resync:
    """The resynchronisation state of one replay (see the module docstring for the rules).

    ``engine`` is the replay's ``Engine`` (read only: its profile, its connections'
    ``compare_seq``).  The driver calls ``after_flush`` with the events of every flush and
    feeds what it returns; while ``active`` it asks ``check_secondary`` about each secondary
    frame before feeding it.
    """

    def __init__(self, engine, compare_timeout_ms: int):
        self.engine = engine
        self.profile = engine.profile
        self._key_ips = self.profile.portless_key_has_ips
        self._subtract_vnet = self.profile.header_size_subtracts_vnet
        self._window_ns = compare_timeout_ms * 1_000_000
        self.marks: dict[bytes, int] = {}       # TCP connection key -> mark (seq)
        self._mark_until: dict[bytes, int] = {}  # TCP connection key -> forget the mark after this
        # (window end, key) of every rule set, in time order (flushes come in time order and
        # each window is as long): sweep pops the ended ones instead of walking every rule
        self._ends: deque = deque()
        self.owed: dict[bytes, _Owed] = {}      # datagram connection key -> owed primaries
        self.stats = ResyncStats()
        self._pure_owed: dict[bytes, int] = {}  # TCP key -> segments without payload owed at the mark
        self._lost: dict[bytes, list] = {}      # TCP key -> primaries table resets discarded since the last flush
        self._requeued: set = set()             # idents requeued once (never twice)
        self.holding = False                    # a modelled checkpoint runs: the VMs are stopped
        # per rule_slot: how many keys of marks and owed fall there (see RULE_SLOTS)
        self.rule_slots = bytearray(RULE_SLOTS)

    @property
    def active(self) -> bool:
        """True while some connection has a rule pending (only then are secondaries checked)."""
        return bool(self.marks or self.owed)

    # ------------------------------------------------------------------ at a table reset
    def primary_lost(self, pkt: Packet) -> None:
        """A table reset discarded the queued primary ``pkt`` (a ``PRIMARY_LOST`` event): the PVM
        sent it, so the next flush counts it towards its connection's mark (TCP only: a lost
        datagram's counterpart is an ordinary residue, which the datagram rules handle)."""
        if pkt is not None and pkt.ip_proto == IPPROTO_TCP:
            self._lost.setdefault(connection_key(pkt, self._key_ips), []).append(pkt)

    # ------------------------------------------------------------------ at a flush
    def after_flush(self, events, t: int) -> list[Requeue]:
        """The flush at ``t`` produced ``events`` (its RELEASE/FLUSH and SECONDARY_DROPPED/FLUSH
        events among them).  Updates the rules and returns the dropped secondaries to requeue,
        in arrival order."""
        self.sweep(t)
        primaries: dict[bytes, list[Packet]] = {}
        secondaries: dict[bytes, list[Packet]] = {}
        protos: dict[bytes, int] = {}
        for ev in events:
            pkt = ev[3]
            if pkt is None or ev[1] != 5:          # Cause.FLUSH
                continue
            if ev[0] == 1:                         # EventKind.RELEASE
                bucket = primaries
            elif ev[0] == 2:                       # EventKind.SECONDARY_DROPPED
                bucket = secondaries
            else:
                continue
            key = connection_key(pkt, self._key_ips)
            bucket.setdefault(key, []).append(pkt)
            protos[key] = pkt.ip_proto
        if self._lost:
            # the primaries table resets discarded since the last flush were sent by the PVM:
            # the resynchronised SVM does not send them again either
            for key, lost in self._lost.items():
                primaries.setdefault(key, []).extend(lost)
                protos[key] = IPPROTO_TCP
            self._lost = {}
        requeue: list[Requeue] = []
        for key, proto in protos.items():
            pl = sorted(primaries.get(key, ()), key=_arrival)
            sl = sorted(secondaries.get(key, ()), key=_arrival)
            if proto == IPPROTO_TCP:
                requeue += self._tcp_flush(key, pl, sl, t)
            else:
                requeue += self._datagram_flush(key, proto, pl, sl, t)
        if requeue:
            done = self._requeued
            requeue = [r for r in requeue if r.ident not in done]
            done.update(r.ident for r in requeue)
        requeue.sort(key=lambda r: r.ident if isinstance(r.ident, int) else 0)
        self.stats.requeued += len(requeue)
        return requeue

    def _tcp_flush(self, key: bytes, pl: list[Packet], sl: list[Packet], t: int = 0) -> list[Requeue]:
        mark = self.marks.get(key)
        conn = self.engine.table.get(key)
        if conn is not None and conn.compare_seq:
            mark = conn.compare_seq if mark is None else _later(mark, conn.compare_seq)
        for p in pl:
            mark = p.seq_end if mark is None else _later(mark, p.seq_end)
        if mark is None:
            # Nothing is known of where the primary is: every dropped secondary was waiting
            # for primary data, i.e. ahead of it.
            return [Requeue(s.data, s.vnet_hdr_len, s.ident) for s in sl]
        if key not in self.marks:
            self._count_rule(key, 1)
        self.marks[key] = mark
        self._mark_until[key] = t + self._window_ns
        self._ends.append((t + self._window_ns, key))
        # segments without payload at the mark: the primary's not paired by the flush are owed
        owed = sum(1 for p in pl if p.seq_end == p.tcp_seq == mark) - \
            sum(1 for s in sl if s.seq_end == s.tcp_seq == mark)
        if owed > 0:
            self._pure_owed[key] = owed
        else:
            self._pure_owed.pop(key, None)
        out = []
        for s in sl:
            if s.seq_end == s.tcp_seq or not 0 < (s.seq_end - mark) & _U32 < _S32_NEG:
                continue                           # no data after the mark: not resent
            if 0 < (mark - s.tcp_seq) & _U32 < _S32_NEG:
                data, cut = self._trim(s, mark)
                out.append(Requeue(data, s.vnet_hdr_len, s.ident, cut))
            else:
                out.append(Requeue(s.data, s.vnet_hdr_len, s.ident))
        return out

    def _datagram_flush(self, key: bytes, proto: int, pl: list[Packet], sl: list[Packet],
                        t: int) -> list[Requeue]:
        left_p = list(pl)
        left_s = []
        for s in sl:                               # pair by content first
            for i, p in enumerate(left_p):
                if _same_datagram(p, s, proto):
                    del left_p[i]
                    break
            else:
                left_s.append(s)
        n = min(len(left_p), len(left_s))          # then differing counterparts, in order:
        guessed = left_p[:n]                       # a guess, so owed by content only
        left_p = left_p[n:]
        left_s = left_s[n:]
        if left_p or guessed:
            owed = self.owed.get(key)
            if owed is None:
                owed = self.owed[key] = _Owed(t + self._window_ns)
                self._count_rule(key, 1)
            owed.until_ns = t + self._window_ns
            self._ends.append((t + self._window_ns, key))
            for p in guessed:
                off = _datagram_offset(p, proto)
                owed.items.append((p.size, off, p.data[off:], True))
            for p in left_p:
                off = _datagram_offset(p, proto)
                owed.items.append((p.size, off, p.data[off:], False))
        return [Requeue(s.data, s.vnet_hdr_len, s.ident) for s in left_s]

    # ------------------------------------------------------------------ per secondary frame
    @cython.locals(pkt=Packet, t=cython.longlong, mark=cython.longlong, seq=cython.longlong,
                   end=cython.longlong, proto=cython.longlong)
    def check_secondary(self, data: bytes, vnet_hdr_len: int, t: int) -> Verdict:
        """What to do with a secondary frame arriving at ``t`` while ``active``."""
        pkt = Packet(data, SECONDARY, t, vnet_hdr_len)
        if not data or parse_packet_early(pkt, self.profile) or pkt.undefined:
            return _FEED                           # unsupported or odd: the engine decides
        key = connection_key(pkt, self._key_ips)
        proto = pkt.ip_proto
        if proto == IPPROTO_TCP:
            found = self.marks.get(key)
            if found is None:
                return _FEED
            mark = found
            if t > self._mark_until[key]:
                # nothing behind the mark came within compare_timeout: whatever comes now is new
                self._drop_mark(key)
                return _FEED
            fill_tcp_info(pkt, self._subtract_vnet)
            seq, end = pkt.tcp_seq, pkt.seq_end
            if seq == end:                         # no payload: stale when it starts before the mark
                if 0 < (mark - seq) & _U32 < _S32_NEG:
                    self.stats.superseded += 1
                    return _SUPERSEDED_SENT
                if seq == mark:
                    owed = self._pure_owed.get(key, 0)
                    if owed:                       # the copy of a primary's, sent before the flush
                        if owed == 1:
                            del self._pure_owed[key]
                        else:
                            self._pure_owed[key] = owed - 1
                        self.stats.superseded += 1
                        return _SUPERSEDED_OWED
                self._drop_mark(key)               # at (or after) the mark: caught up
                return _FEED
            if not 0 < (end - mark) & _U32 < _S32_NEG:
                self.stats.superseded += 1
                return _SUPERSEDED_SENT
            self._drop_mark(key)                   # ends after the mark: caught up
            if 0 < (mark - seq) & _U32 < _S32_NEG:
                trimmed, cut = self._trim(pkt, mark)
                self.stats.trimmed += 1
                return Verdict(TRIM, trimmed, cut, _TRIMMED)
            return _FEED
        owed = self.owed.get(key)
        if owed is None:
            return _FEED
        items = owed.items
        for i, (size, off, tail, _by_content) in enumerate(items):
            if size == pkt.size and data[off:] == tail:
                del items[i]
                break
        else:
            if t > owed.until_ns:
                self._drop_owed(key)                 # too late to be a counterpart
                return _FEED
            if self._waiting_primary(key, pkt):
                # the counterpart of a primary sent after the flush: the SVM, which sends a flow
                # in order, has caught up with it, so no differing counterpart is still to come
                owed.items = deque(item for item in items if item[3])
                if not owed.items:
                    self._drop_owed(key)
                return _FEED
            # the differing counterpart of the oldest primary owed by time; primaries owed by
            # content only wait for their exact copy
            for i, item in enumerate(items):
                if not item[3]:
                    del items[i]
                    break
            else:
                return _FEED
        if not items:
            self._drop_owed(key)
        self.stats.superseded += 1
        return _SUPERSEDED_OWED

    def _waiting_primary(self, key: bytes, pkt: Packet) -> bool:
        """A primary with ``pkt``'s compared bytes waits in the engine's queue of its connection."""
        conn = self.engine.table.get(key)
        if conn is None or not conn.primary:
            return False
        self.engine.settle()        # queued frames still pointing into a read buffer get their bytes
        proto = pkt.ip_proto
        return any(_same_datagram(p, pkt, proto) for p in conn.primary)

    def _drop_mark(self, key: bytes) -> None:
        del self.marks[key]
        del self._mark_until[key]
        self._pure_owed.pop(key, None)
        self._count_rule(key, -1)

    def _drop_owed(self, key: bytes) -> None:
        del self.owed[key]
        self._count_rule(key, -1)

    def _count_rule(self, key: bytes, step: int) -> None:
        """A key entered (+1) or left (-1) marks or owed: its slot's count (see RULE_SLOTS)."""
        slots = self.rule_slots
        i = rule_slot(key)
        c = slots[i]
        if c < 255:
            slots[i] = c + step

    def sweep(self, t: int) -> None:
        """Forget the rules whose window ended before ``t`` (a connection that sent nothing more:
        its rule would otherwise keep every secondary frame checked)."""
        ends = self._ends
        while ends and ends[0][0] < t:
            until, key = ends.popleft()
            if self._mark_until.get(key) == until:       # (a later flush may have renewed it)
                self._drop_mark(key)
            owed = self.owed.get(key)
            if owed is not None and owed.until_ns == until:
                self._drop_owed(key)

    @staticmethod
    def _trim(pkt: Packet, mark: int) -> tuple[bytes, int]:
        """The segment without its payload before ``mark``: (bytes, payload bytes cut)."""
        data = pkt.data
        l4 = pkt.l4_off
        hs = l4 + ((data[l4 + 12] >> 4) << 2)
        cut = (mark - pkt.tcp_seq) & _U32
        out = bytearray(data[:hs] + data[hs + cut:])
        pack_into("!I", out, l4 + 4, mark)
        net = pkt.net_off
        total = int.from_bytes(data[net + 2:net + 4], "big")
        if total >= cut:                            # IPv4 total length, when it was sane
            pack_into("!H", out, net + 2, total - cut)
        return bytes(out), cut


_SENT, _OWED, _TRIMMED = Cause.ALREADY_SENT, Cause.OWED, Cause.TRIMMED
# the verdicts without bytes, made once (the driver only reads them)
_FEED = Verdict(FEED)
_SUPERSEDED_SENT = Verdict(SUPERSEDE, cause=_SENT)
_SUPERSEDED_OWED = Verdict(SUPERSEDE, cause=_OWED)


def _arrival(pkt: Packet):
    return (pkt.time, pkt.ident if isinstance(pkt.ident, int) else 0)


def _datagram_offset(p: Packet, proto: int) -> int:
    """Where colo-compare starts comparing a datagram (colo_packet_compare_udp/icmp/other)."""
    if proto == IPPROTO_UDP or proto == IPPROTO_ICMP:
        return (((p.data[p.net_off] & 0x0F) << 2) + 14 + p.vnet_hdr_len) & 0xFFFF
    return p.vnet_hdr_len


def _same_datagram(p: Packet, s: Packet, proto: int) -> bool:
    off = _datagram_offset(p, proto)
    return p.size == s.size and p.data[off:] == s.data[off:]
