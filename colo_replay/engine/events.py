"""The events the engine emits: one per decision colo-compare makes, nothing silent.

An event is an ``Event`` (a NamedTuple, so it is also a plain tuple and cheap to make):

    kind    what happened (``EventKind``)
    cause   why (``Cause``)
    time    the engine time of the step that produced it, in integer nanoseconds
    frame   the ``Packet`` the event is about (``None`` for events about no frame)
    other   a second ``Packet``: the secondary a primary matched or miscompared with
    conn    the connection's index in first-seen order (``-1`` when there is none)
    detail  an int: the age in ms for an expired frame, the number of connections for a
            table reset, the declared/allowed length for framing errors, else 0

``frame.ident`` (and ``other.ident``) is whatever identity the caller gave the frame when
feeding it, e.g. a capture frame number, so every event points back to a frame a person
can open in Wireshark.
"""

from __future__ import annotations

from enum import IntEnum
from typing import NamedTuple, Any


class EventKind(IntEnum):
    RELEASE = 1
    """A primary frame was written to outdev (cause says why)."""
    SECONDARY_DROPPED = 2
    """A secondary frame left its queue without being written anywhere (cause says why)."""
    CHECKPOINT_REQUEST = 3
    """colo-compare notified the COLO frame: DO_CHECKPOINT on notify_dev, or the migration notifier."""
    QUEUE_FULL_DROP = 4
    """The frame's queue already held max_queue_size + 1 frames: the frame is lost for good."""
    TABLE_RESET = 5
    """The 16386th distinct connection emptied the connection table (detail = connections lost)."""
    UNSUPPORTED = 6
    """parse_packet_early refused the frame (cause says why); a RELEASE or SECONDARY_DROPPED follows."""
    FLUSH = 7
    """A checkpoint completed and compare flushed every queue (the releases and drops follow)."""
    QEMU_CRASH = 8
    """Real QEMU would have died here (cause says how); the engine carried on as described in the cause."""
    UNDEFINED = 9
    """QEMU's C code reads memory it does not own here (or uses an uninitialised field); the engine
    used a deterministic stand-in (zero bytes / zero) and flags the frame so no verdict is trusted blindly."""
    SCAN = 10
    """An expiry scan ran (only emitted when the engine is built with ``emit_scans=True``)."""
    PRIMARY_LOST = 11
    """A queued primary frame was discarded without being written (the connection table reset)."""

    # Driver rows, 100 and up: NOT QEMU decisions.  The engine never emits these; the replay and
    # live drivers add them to the timeline (TimelineCollector.add_row) so that its kind column
    # comes from this one enum.  They sort after every engine kind.
    UNCOMPARABLE = 100
    """Driver row: a frame never handed to the engine because the capture truncated it (snaplen)."""
    CHECKPOINT_START = 101
    """Driver row: a checkpoint began (modelled by the replay driver, or simulated live); detail = its number."""
    CHECKPOINT_END = 102
    """Driver row: a checkpoint completed (the engine's FLUSH follows); detail = its number."""
    IDLE_CHECKPOINTS = 103
    """Driver row: a run of periodic checkpoints while nothing was queued, in one row (the replay
    driver's bound on idle stretches); time = the first one's start, detail = how many it stands
    for.  The engine's one FLUSH row after it is the last one's flush (the others flushed nothing)."""
    SUPERSEDED = 104
    """Driver row (``--after-checkpoint resync``): a secondary frame not fed, because the SVM a
    checkpoint resynchronised would not send it (cause says why); detail = payload bytes cut (trimmed)."""
    REQUEUED = 105
    """Driver row (``--after-checkpoint resync``): a secondary frame the flush dropped, fed again
    right after it because it was ahead of the primary; detail = payload bytes cut from its front."""


class Cause(IntEnum):
    NONE = 0
    # RELEASE causes
    COMPARED_EQUAL = 1       # payload/frame compared the same as ``other``
    PASSTHROUGH = 2          # unsupported primary frame, written at once uncompared
    ALREADY_COMPARED = 3     # TCP: seq_end not after compare_seq ("pri: this packet has compared")
    ZERO_PAYLOAD = 4         # TCP: pure ACK / SYN / FIN / RST released when a secondary was popped
    FLUSH = 5                # released by a checkpoint flush
    # SECONDARY_DROPPED causes (COMPARED_EQUAL, ALREADY_COMPARED, ZERO_PAYLOAD, FLUSH also apply)
    CONSUMED = 6             # TCP: a shorter secondary fully matched by a longer primary (FREE_SECONDARY)
    UNSUPPORTED_FRAME = 7    # unsupported secondary frame, dropped silently by QEMU
    TABLE_RESET = 8          # discarded with every queue by the connection table reset
    # CHECKPOINT_REQUEST causes
    MISCOMPARE = 10          # payload (TCP) or frame (UDP/ICMP/other) bytes differ
    SIZE_MISMATCH = 11       # UDP/ICMP/other: no secondary of the same size (a miscompare in QEMU)
    ACK_GATE = 12            # TCP: payload equal, but the primary ACKs data the secondary has not ACKed
    EXPIRED = 13             # expiry scan found a frame older than compare_timeout (detail = age ms)
    # UNSUPPORTED causes
    TOO_SHORT = 20           # shorter than ETH_HLEN (4.1-7.1) / 18 bytes (7.2+) after the vnet header
    VNET_TOO_LONG = 21       # vnet_hdr_len > 20 (7.2+)
    VLAN = 22                # 802.1Q tag (0x8100): "COLO-proxy don't support vlan"
    NOT_IPV4 = 23            # ARP, IPv6, anything not ethertype 0x0800
    IP_HEADER_TRUNCATED = 24  # frame shorter than l2 + 4*ip_hl
    ZERO_LENGTH = 25         # a zero-length frame (QEMU crashes; see QEMU_CRASH)
    # QEMU_CRASH causes
    SIGSEGV_NULL_FRAME = 30  # 4.1: zero-length frame -> NULL dereference
    SIGABRT_ASSERT_DATA = 31  # 7.2: zero-length frame -> assert(data) in parse_packet_early
    DOUBLE_FREE = 32         # 4.1: 16386th connection -> connection_get frees every connection twice
    # UNDEFINED causes
    OOB_READ = 40            # a read past the end of the frame (zero bytes used instead)
    COMPARE_SEQ_UNINIT = 41  # 4.1: new connection's compare_seq uninitialised (0 used)
    # FLUSH causes
    CHECKPOINT = 50          # the caller reported a completed checkpoint
    # SCAN
    TICK = 60

    # Causes of driver rows, 100 and up: NOT QEMU decisions (see EventKind.UNCOMPARABLE and on)
    TRUNCATED = 100          # UNCOMPARABLE: the capture cut the frame short (snaplen)
    REQUESTED = 101          # CHECKPOINT_START/END: colo-compare requested it (miscompare, expired frame)
    PERIODIC = 102           # CHECKPOINT_START/END: x-checkpoint-delay elapsed
    MEASURED = 103           # CHECKPOINT_START/END: a flush time measured on a rig (--checkpoints-at, live)
    ALREADY_SENT = 104       # SUPERSEDED: TCP data the primary had sent at the flush (by sequence space)
    TRIMMED = 105            # SUPERSEDED: a TCP segment straddling the mark, fed without its first detail bytes
    OWED = 106               # SUPERSEDED: the counterpart of a datagram the flush released
    AHEAD = 107              # REQUEUED: dropped by the flush but ahead of the primary: sent again after it


class Event(NamedTuple):
    kind: EventKind
    cause: Cause
    time: int
    frame: Any = None
    other: Any = None
    conn: int = -1
    detail: int = 0

    def describe(self) -> str:
        """One human line, e.g. ``RELEASE/COMPARED_EQUAL P#12 with S#11``."""
        parts = [f"{EventKind(self.kind).name}/{Cause(self.cause).name}"]
        if self.frame is not None:
            parts.append(_frame_label(self.frame))
        if self.other is not None:
            parts.append("with " + _frame_label(self.other))
        if self.detail:
            parts.append(f"detail={self.detail}")
        return " ".join(parts)


def _frame_label(pkt) -> str:
    side = "PS"[pkt.side] if getattr(pkt, "side", None) in (0, 1) else "?"
    return f"{side}#{pkt.ident}"


# Event construction in the hot path: tuple.__new__ skips the generated Python-level
# NamedTuple.__new__, which costs ~0.3 us per event.
_new_event = tuple.__new__

# Event kinds and causes as module globals for the engine's hot paths (compare, tcp, datagram,
# scan import them): one global load instead of an enum class attribute lookup each time.
_RELEASE = EventKind.RELEASE
_SDROP = EventKind.SECONDARY_DROPPED
_CKPT = EventKind.CHECKPOINT_REQUEST
_FULL = EventKind.QUEUE_FULL_DROP
_UNDEF = EventKind.UNDEFINED
_C_EQUAL = Cause.COMPARED_EQUAL
_C_ALREADY = Cause.ALREADY_COMPARED
_C_ZERO = Cause.ZERO_PAYLOAD
_C_CONSUMED = Cause.CONSUMED
_C_FLUSH = Cause.FLUSH
