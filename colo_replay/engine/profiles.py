"""Behaviour profiles: one table of switches per QEMU version.

The engine never asks "which QEMU is this?"; it reads the switches below.  Every
switch names the QEMU change it mirrors (see shared/reference/colo-compare-spec.md
§3.1 and §3.4).  ``4.1`` is QEMU v4.1.0 exactly (the reference source), ``7.2`` is
Debian 12's 7.2.15+ (= v7.2.0 + "Fix calculation of minimum in colo_compare_tcp"),
which is also the logic of current upstream.

Adding an intermediate release (5.2, 6.2, 7.0, ...) is one more row in
``PROFILES``: copy the nearest one with ``dataclasses.replace`` and flip switches.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

# Values of Profile.ack_tracking
ACK_UMAX = "umax"        # seed fill_pkt_tcp_info: *max_ack = max(*max_ack, ack), unsigned, never decreases
ACK_LAST = "last"        # 6.2 fb5eca4a57: (u32)(ack - max) > 0 ? ack : max  ->  last ACK enqueued

# Values of Profile.ack_gate
GATE_UMIN = "umin"       # seed and 7.2.15+ (e29bc931e1): MIN(pack, sack), unsigned
GATE_SACK = "sack"       # 6.2 .. 7.2.14: (u32)(pack - sack) > 0 ? sack : pack  ->  always sack

# Values of Profile.table_overflow
OVERFLOW_CRASH = "crash"      # seed: connection_get frees every Connection twice -> QEMU aborts (double free)
OVERFLOW_DISCARD = "discard"  # 7.1+ (a18d436954): table and conn_list emptied, queued packets silently lost

# Values of Profile.zero_length
ZERO_SIGSEGV = "sigsegv"  # seed: eth_get_l2_hdr_length(NULL) dereferences NULL
ZERO_SIGABRT = "sigabrt"  # 7.2 (3772cf0d1b): assert(data) in parse_packet_early


@dataclass(frozen=True)
class Profile:
    """The observable behaviour of one QEMU version's colo-compare, as switches."""

    name: str
    description: str

    # --- TCP comparison -------------------------------------------------------------
    tcp_compare_inverted: bool
    """Seed bug Q1: colo_mark_tcp_pkt's three payload tests fire on memcmp != 0 (fixed in 4.2/4.1.1)."""
    header_size_subtracts_vnet: bool
    """Seed bug Q7: header_size = l2+ip+tcp - vnet_hdr_len, so payload_size/seq_end grow by vnet (fixed 6.1)."""
    ack_tracking: str
    """How pack/sack follow the ACKs of enqueued segments: ACK_UMAX (seed) or ACK_LAST (6.2+)."""
    ack_gate: str
    """min_ack for the partial-segment ACK gate: GATE_UMIN (seed, 7.2.15+) or GATE_SACK (6.2-7.2.14)."""
    compare_seq_uninitialised: bool
    """Seed Q4: Connection.compare_seq is never initialised (g_slice_new).  We start at 0 and flag it."""

    # --- queue discipline (7.0, a5f038e2c5 "Optimize compare order for performance") ---
    tcp_pop_tail: bool
    """TCP queues: seq_sorter reversed and pop/push at the tail.  Still ascending-seq processing, but
    equal-seq ties leave FIFO (7.0+) instead of LIFO (seed, Q2)."""
    nontcp_pop_tail: bool
    """UDP/ICMP/other: the newest primary is compared first and pushed back at the tail, and the flush
    sends non-TCP primaries newest-first (7.0+).  Seed: oldest first (FIFO)."""
    send_queue_lifo: bool
    """Output path (live mode only): 7.0+ drains a back-pressured send queue newest-first."""
    send_synchronous: bool
    """Seed: compare_chr_send blocks the compare thread on a slow outdev (5.1 added the send coroutine)."""

    # --- connection keys and table ------------------------------------------------------
    portless_key_has_ips: bool
    """6.2 (64153ca613): ICMP and other portless protocols are keyed per (src, dst); seed: one global key."""
    table_overflow: str
    """What the 16386th distinct connection does: OVERFLOW_CRASH (seed) or OVERFLOW_DISCARD (7.1+)."""

    # --- parse_packet_early ----------------------------------------------------------------
    min_frame_len: int
    """Frames shorter than this (after the vnet header) are unsupported: 14 (ETH_HLEN, seed), 18 (7.2)."""
    max_vnet_hdr_len: int | None
    """7.2 (3772cf0d1b): vnet_hdr_len > sizeof(virtio_net_hdr_v1_hash) = 20 is unsupported; seed: no bound."""
    size_check_before_l2_parse: bool
    """7.2 checks the size before reading the ethertype; the seed reads bytes 12..17 first (Q13)."""
    zero_length: str
    """What a zero-length frame does to QEMU: ZERO_SIGSEGV (seed) or ZERO_SIGABRT (7.2)."""

    # --- expiry scan ------------------------------------------------------------------------------
    scan_secondary: bool
    """5.2 (17475df2c1): the old-packet scan also checks secondary lists."""
    scan_on_vm_clock: bool
    """Seed: the scan timer runs on QEMU_CLOCK_VIRTUAL, which stops while the VM is stopped (Q19).
    5.2 (ec081984f4): QEMU_CLOCK_HOST."""

    # --- knobs -----------------------------------------------------------------------------------
    default_compare_timeout: int
    default_expired_scan_cycle: int
    default_max_queue_size: int
    configurable: frozenset = field(default_factory=frozenset)
    """Which of compare_timeout / expired_scan_cycle / max_queue_size exist as QEMU properties."""

    # --- migration side (used by the replay checkpoint model, not by the engine) -------------------
    checkpoint_requests_coalesce: bool = True
    """5.1 (bb70b66ed7): KVM COLO coalesces pending requests; seed: a counting semaphore, one
    checkpoint transaction per request (Q18)."""
    default_checkpoint_delay: int = 20000
    """x-checkpoint-delay default (ms) of migration/migration.c."""


QEMU_4_1 = Profile(
    name="4.1",
    description="QEMU v4.1.0 (net/colo-compare.c blob 7489840b), the reference source",
    tcp_compare_inverted=True,
    header_size_subtracts_vnet=True,
    ack_tracking=ACK_UMAX,
    ack_gate=GATE_UMIN,
    compare_seq_uninitialised=True,
    tcp_pop_tail=False,
    nontcp_pop_tail=False,
    send_queue_lifo=False,
    send_synchronous=True,
    portless_key_has_ips=False,
    table_overflow=OVERFLOW_CRASH,
    min_frame_len=14,
    max_vnet_hdr_len=None,
    size_check_before_l2_parse=False,
    zero_length=ZERO_SIGSEGV,
    scan_secondary=False,
    scan_on_vm_clock=True,
    default_compare_timeout=3000,     # REGULAR_PACKET_CHECK_MS doubles as the age threshold
    default_expired_scan_cycle=3000,  # REGULAR_PACKET_CHECK_MS, "TODO: Should be configurable"
    default_max_queue_size=1024,      # MAX_QUEUE_SIZE
    configurable=frozenset(),
    checkpoint_requests_coalesce=False,
)

QEMU_7_2 = Profile(
    name="7.2",
    description="QEMU 7.2.15+ as shipped by Debian 12 (= v7.2.0 + MIN(pack, sack) fix; same logic as upstream)",
    tcp_compare_inverted=False,
    header_size_subtracts_vnet=False,
    ack_tracking=ACK_LAST,
    ack_gate=GATE_UMIN,
    compare_seq_uninitialised=False,
    tcp_pop_tail=True,
    nontcp_pop_tail=True,
    send_queue_lifo=True,
    send_synchronous=False,
    portless_key_has_ips=True,
    table_overflow=OVERFLOW_DISCARD,
    min_frame_len=18,                 # sizeof(eth_header) + sizeof(vlan_header)
    max_vnet_hdr_len=20,              # sizeof(struct virtio_net_hdr_v1_hash)
    size_check_before_l2_parse=True,
    zero_length=ZERO_SIGABRT,
    scan_secondary=True,
    scan_on_vm_clock=False,
    default_compare_timeout=3000,     # DEFAULT_TIME_OUT_MS
    default_expired_scan_cycle=1000,  # REGULAR_PACKET_CHECK_MS since 5.2 (2f2fcff323)
    default_max_queue_size=1024,
    configurable=frozenset({"compare_timeout", "expired_scan_cycle", "max_queue_size"}),
    checkpoint_requests_coalesce=True,
)

PROFILES: dict[str, Profile] = {p.name: p for p in (QEMU_4_1, QEMU_7_2)}
DEFAULT_PROFILE = "7.2"


def get_profile(name: str | Profile) -> Profile:
    """Return the profile called ``name`` ("4.1" or "7.2"); a Profile passes through unchanged."""
    if isinstance(name, Profile):
        return name
    try:
        return PROFILES[str(name)]
    except KeyError:
        raise ValueError(f"unknown QEMU profile {name!r}; known: {', '.join(sorted(PROFILES))}") from None


@dataclass(frozen=True)
class CompareConfig:
    """The colo-compare object's properties, as QEMU names them.

    ``None`` means "the profile's default".  ``resolve`` checks the values as QEMU's
    property setters do (uint32, > 0) and refuses knobs the profile's QEMU has no
    property for, so that a replay never silently claims a setting QEMU could not have.
    """

    compare_timeout: int | None = None
    expired_scan_cycle: int | None = None
    max_queue_size: int | None = None
    vnet_hdr_support: bool = False

    def resolve(self, profile: Profile) -> "ResolvedConfig":
        values = {}
        for knob, default in (
            ("compare_timeout", profile.default_compare_timeout),
            ("expired_scan_cycle", profile.default_expired_scan_cycle),
            ("max_queue_size", profile.default_max_queue_size),
        ):
            value = getattr(self, knob)
            if value is None:
                values[knob] = default
                continue
            if knob not in profile.configurable and value != default:
                raise ValueError(
                    f"QEMU {profile.name} colo-compare has no {knob} property "
                    f"(fixed at {default}); use --qemu 7.2 to change it")
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"{knob} must be an integer, got {value!r}")
            # QEMU: visit_type_uint32 + "requires a positive value" (7.2 aborts on 0 in practice,
            # qemu-oracle.md); max_queue_size is parsed as uint64 and truncated into uint32.
            if value <= 0 or (knob != "max_queue_size" and value > 0xFFFFFFFF):
                raise ValueError(f"{knob} must be a positive 32-bit integer, got {value}")
            if knob == "max_queue_size":
                if value > 0xFFFFFFFFFFFFFFFF:
                    raise ValueError(f"max_queue_size must fit in 64 bits, got {value}")
                truncated = value & 0xFFFFFFFF
                if truncated == 0:
                    raise ValueError(f"max_queue_size {value} truncates to 0 in QEMU's uint32")
                value = truncated
            values[knob] = value
        return ResolvedConfig(vnet_hdr_support=bool(self.vnet_hdr_support), **values)


@dataclass(frozen=True)
class ResolvedConfig:
    """A CompareConfig with every knob filled in and checked against a profile."""

    compare_timeout: int
    expired_scan_cycle: int
    max_queue_size: int
    vnet_hdr_support: bool

    def as_dict(self) -> dict:
        return {
            "compare_timeout": self.compare_timeout,
            "expired_scan_cycle": self.expired_scan_cycle,
            "max_queue_size": self.max_queue_size,
            "vnet_hdr_support": self.vnet_hdr_support,
        }


def derive(base: Profile, name: str, **switches) -> Profile:
    """A new profile from ``base`` with some switches flipped (for intermediate releases)."""
    return replace(base, name=name, **switches)
