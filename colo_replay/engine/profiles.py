"""Behaviour profiles: one table of switches per colo-compare behaviour row.

The engine never asks "which QEMU is this?"; it reads the switches below.  Every
switch names the QEMU change it mirrors, with its first release (see
shared/reference/qemu-releases.md §3-§4 and colo-compare-spec.md §3).  Eleven rows
A..K cover v4.1.0 .. v10.2.0: ``4.1`` (row A) is QEMU v4.1.0 exactly (the reference
source), ``7.2`` (row K) is Debian 12's 7.2.15+ (= v7.2.0 + "Fix calculation of
minimum in colo_compare_tcp"), which is also the logic of 9.2.0 .. 10.2.0.  Rows B..J
are derived from A, one row from the previous, each flipping the switches of the
commits that made it.  Which release string maps to which row: ``releases.py``.

A profile's ``name`` is a release string that maps to its own row (``releases``);
``row`` is its letter.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace

# Values of Profile.ack_tracking
ACK_UMAX = "umax"        # seed fill_pkt_tcp_info: *max_ack = max(*max_ack, ack), unsigned, never decreases
ACK_LAST = "last"        # 6.2 fb5eca4a57: (u32)(ack - max) > 0 ? ack : max  ->  last ACK enqueued

# Values of Profile.ack_gate
GATE_UMIN = "umin"       # 4.1-6.1, and 9.2.0+ with the backports 7.2.15+, 8.2.8+, 9.0.4, 9.1.2+ (e29bc931e1):
                         # MIN(pack, sack), unsigned
GATE_SACK = "sack"       # 6.2.0 .. 9.1.1 except those backports (fb5eca4a57):
                         # (u32)(pack - sack) > 0 ? sack : pack  ->  always sack

# Values of Profile.table_overflow
OVERFLOW_CRASH = "crash"      # seed: connection_get frees every Connection twice -> QEMU aborts (double free)
OVERFLOW_DISCARD = "discard"  # 7.1+ (a18d436954): table and conn_list emptied, queued packets silently lost

# Values of Profile.zero_length
ZERO_SIGSEGV = "sigsegv"  # 4.1-7.0: eth_get_l2_hdr_length(NULL) dereferences NULL
ZERO_REJECT = "reject"    # 7.1 (8bdab83b34): data = NULL + vnet_hdr_len; with vnet_hdr_len 0 the frame is
                          # "unsupported" (a primary goes to compare_chr_send(size 0), which writes nothing;
                          # a secondary is dropped); with vnet_hdr_len > 0 the pointer is not NULL and
                          # eth_get_l2_hdr_length faults as before (SIGSEGV)
ZERO_SIGABRT = "sigabrt"  # 7.2+ (3772cf0d1b): assert(data) in parse_packet_early


@dataclass(frozen=True)
class Profile:
    """The observable behaviour of one behaviour row's colo-compare (the releases of
    ``description``), as switches."""

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
    """min_ack for the partial-segment ACK gate: GATE_UMIN (4.1-6.1; 9.2.0+ and the stable backports
    7.2.15+, 8.2.8+, 9.0.4, 9.1.2+) or GATE_SACK (6.2.0 .. 9.1.1 otherwise)."""
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
    """Frames shorter than this (after the vnet header) are unsupported: 14 (ETH_HLEN, 4.1-7.1), 18 (7.2+)."""
    max_vnet_hdr_len: int | None
    """7.2 (3772cf0d1b): vnet_hdr_len > sizeof(virtio_net_hdr_v1_hash) = 20 is unsupported; seed: no bound."""
    size_check_before_l2_parse: bool
    """7.2 checks the size before reading the ethertype; the seed reads bytes 12..17 first (Q13)."""
    zero_length: str
    """What a zero-length frame does: ZERO_SIGSEGV (4.1-7.0), ZERO_REJECT (7.1; SIGSEGV with a vnet
    header) or ZERO_SIGABRT (7.2+)."""

    # --- expiry scan ------------------------------------------------------------------------------
    scan_secondary: bool
    """5.2 (17475df2c1): the old-packet scan also checks secondary lists."""
    scan_on_vm_clock: bool
    """Seed: the scan timer runs on QEMU_CLOCK_VIRTUAL, which stops while the VM is stopped (Q19).
    5.2 (ec081984f4): QEMU_CLOCK_HOST."""

    # --- knobs -----------------------------------------------------------------------------------
    default_compare_timeout: int
    """Nominal in every release (3000 ms); in 5.0.x-5.1.x see ``old_packet_timeout_broken``."""
    default_expired_scan_cycle: int
    default_max_queue_size: int
    configurable: frozenset = field(default_factory=frozenset)
    """Which of compare_timeout / expired_scan_cycle / max_queue_size exist as QEMU properties:
    none in 4.1-4.2, the first two from 5.0 (9cc43c94b3, cca35ac4d1), all three from 5.1 (a2e5cb7a87)."""
    old_packet_timeout_broken: bool = False
    """5.0.x-5.1.x (9cc43c94b3 .. 0c4266ef26, qemu-releases.md §3 C1): colo_old_packet_check_one reads
    the uint32 compare_timeout through an int64_t pointer, so on a little-endian host the age limit is
    compare_timeout + 2**32 * expired_scan_cycle ms (~408 years by default): the scan runs, but no
    old-packet checkpoint is ever requested."""
    max_queue_size_truncates: bool = True
    """max_queue_size's setter: 5.2+ (0c4266ef26) parses a uint64 and truncates it into the uint32
    global; 5.1 (a2e5cb7a87) parses a uint32 and refuses larger values."""

    # --- migration side (used by the replay checkpoint model, not by the engine) -------------------
    checkpoint_requests_coalesce: bool = True
    """5.1 (bb70b66ed7): KVM COLO coalesces pending requests; seed: a counting semaphore, one
    checkpoint transaction per request (Q18)."""
    default_checkpoint_delay: int = 20000
    """x-checkpoint-delay default (ms) of migration/migration.c (20000 in every release 4.1 .. 10.2)."""

    row: str = ""
    """The behaviour row of qemu-releases.md §2 ("A" .. "K")."""


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
    row="A",
)

QEMU_7_2 = Profile(
    name="7.2",
    description="QEMU 7.2.15+ as shipped by Debian 12 (= v7.2.0 + MIN(pack, sack) fix), 8.2.8+, 9.0.4+, 9.1.2+, "
                "9.2.0 .. 10.2.0 (the same logic)",
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
    row="K",
)

KNOBS = ("compare_timeout", "expired_scan_cycle", "max_queue_size")


def derive(base: Profile, name: str, **switches) -> Profile:
    """A new profile from ``base`` with some switches flipped (for intermediate releases)."""
    return replace(base, name=name, **switches)


# Rows B..J, each from the previous one (qemu-releases.md §3; the commits of §4, first release).
QEMU_4_2 = derive(
    QEMU_4_1, "4.2", row="B", description="QEMU 4.1.1, 4.2.0, 4.2.1 (colo-compare.c blob 7ee17f2c)",
    tcp_compare_inverted=False,      # 1e907a32b7 "Fix incorrect `if` logic", v4.2.0 (4.1.1: aea18ef938)
)
QEMU_5_0 = derive(
    QEMU_4_2, "5.0", row="C", description="QEMU 5.0.0, 5.0.1 (blob 10c0239f)",
    # 9cc43c94b3 / cca35ac4d1 "Expose compare_timeout / expired_scan_cycle to users", v5.0.0
    configurable=frozenset({"compare_timeout", "expired_scan_cycle"}),
    old_packet_timeout_broken=True,  # 9cc43c94b3's int64_t *check_time (fixed by 0c4266ef26, v5.2.0)
)
QEMU_5_1 = derive(
    QEMU_5_0, "5.1", row="D", description="QEMU 5.1.0 (blob 2c20de15)",
    send_synchronous=False,          # 9c55fe9408 "Fix deadlock in compare_chr_send", v5.1.0 (FIFO send queue)
    configurable=frozenset(KNOBS),   # a2e5cb7a87 "Expose compare max_queue_size to users", v5.1.0
    max_queue_size_truncates=False,  # a2e5cb7a87: a uint32 setter (values >= 2**32 refused)
    checkpoint_requests_coalesce=True,   # bb70b66ed7 "migration/colo.c: Use event instead of semaphore", v5.1.0
)
QEMU_5_2 = derive(
    QEMU_5_1, "5.2", row="E", description="QEMU 5.2.0, 6.0.0, 6.0.1 (blobs 337025b4, 9d1ad999)",
    compare_seq_uninitialised=False,  # 862ee1e07e "fix missing compare_seq initialization", v5.2.0
    old_packet_timeout_broken=False,  # 0c4266ef26 "Fix compare_timeout format issue", v5.2.0
    max_queue_size_truncates=True,    # 0c4266ef26: the setter parses a uint64 into the uint32 global
    scan_on_vm_clock=False,           # ec081984f4 "Change the timer clock type", v5.2.0
    scan_secondary=True,              # 17475df2c1 "Add secondary old packet detection", v5.2.0
    default_expired_scan_cycle=1000,  # 2f2fcff323 "Increase default queued packet scan frequency", v5.2.0
)
QEMU_6_1 = derive(
    QEMU_5_2, "6.1", row="F", description="QEMU 6.1.0, 6.1.1 (blob b100e7b5)",
    header_size_subtracts_vnet=False,  # 5a2d9929ac "Fixed calculation error of pkt->header_size", v6.1.0
)
QEMU_6_2 = derive(
    QEMU_6_1, "6.2", row="G", description="QEMU 6.2.0 (blob b966e7e5)",
    ack_tracking=ACK_LAST,            # fb5eca4a57 "Fix ACK track reverse issue", v6.2.0
    ack_gate=GATE_SACK,               # fb5eca4a57 (the unsigned test: min_ack = sack)
    portless_key_has_ips=True,        # 64153ca613 "Optimized the function of fill_connection_key", v6.2.0
)
QEMU_7_0 = derive(
    QEMU_6_2, "7.0", row="H", description="QEMU 7.0.0 (blob 62554b5b)",
    # a5f038e2c5 "Optimize compare order for performance", v7.0.0
    tcp_pop_tail=True, nontcp_pop_tail=True, send_queue_lifo=True,
)
QEMU_7_1 = derive(
    QEMU_7_0, "7.1", row="I", description="QEMU 7.1.0 (blob 787c740f, colo.c 6b0ff562)",
    table_overflow=OVERFLOW_DISCARD,  # a18d436954 'Fix a "double free" crash to clear the conn_list', v7.1.0
    zero_length=ZERO_REJECT,          # 8bdab83b34 "fix segmentation fault when packet is not parsed correctly"
)
QEMU_7_2_0 = derive(
    QEMU_7_1, "7.2.0", row="J",
    description="QEMU 7.2.0-7.2.14, 8.0.x, 8.1.x, 8.2.0-8.2.7, 9.0.0-9.0.3, 9.1.0-9.1.1 (colo.c fb2c36a0)",
    # 3772cf0d1b "Fix the pointer issue reported by Coverity", v7.2.0 (parse_packet_early rewrite)
    min_frame_len=18, max_vnet_hdr_len=20, size_check_before_l2_parse=True, zero_length=ZERO_SIGABRT,
)
# Row K = QEMU_7_2 above = row J + e29bc931e1 "Fix calculation of minimum in colo_compare_tcp" (v9.2.0;
# backports 7.2.15 50ca7f1fb4, 8.2.8 01f9d3553d, 9.0.4 e0c51649d0, 9.1.2 289ac098b6): ack_gate=GATE_UMIN.

ROWS: dict[str, Profile] = {p.row: p for p in (QEMU_4_1, QEMU_4_2, QEMU_5_0, QEMU_5_1, QEMU_5_2, QEMU_6_1,
                                               QEMU_6_2, QEMU_7_0, QEMU_7_1, QEMU_7_2_0, QEMU_7_2)}
PROFILES: dict[str, Profile] = {p.name: p for p in ROWS.values()}
DEFAULT_PROFILE = "7.2"

# Profile fields that are not switches (the profile's identity)
_IDENTITY = ("name", "description", "row")


def switches(profile: Profile) -> dict:
    """{field name: value} of every switch of ``profile`` (JSON-ready: ``configurable`` as a sorted list)."""
    out = {}
    for f in fields(Profile):
        if f.name in _IDENTITY:
            continue
        v = getattr(profile, f.name)
        out[f.name] = sorted(v) if isinstance(v, frozenset) else v
    return out


def get_profile(name: str | Profile) -> Profile:
    """The profile called ``name`` ("4.1", "6.2", "7.2", ...) or pinned by ``row:X``; a Profile
    passes through unchanged.  (Any release string, "6.2.0", "1:8.2.2+ds-0ubuntu1.4":
    ``releases.get_profile``, which the Engine uses.)"""
    if isinstance(name, Profile):
        return name
    p = PROFILES.get(str(name))
    if p is not None:
        return p
    text = str(name).strip()
    if text.lower().startswith("row:") and text[4:].strip().upper() in ROWS:
        return ROWS[text[4:].strip().upper()]
    raise ValueError(f"unknown QEMU profile {name!r}; known: {', '.join(PROFILES)} (or row:A .. row:K; a "
                     f"release string maps to its row with engine.releases)")


KNOB_FIRST_RELEASE = {"compare_timeout": "5.0.0", "expired_scan_cycle": "5.0.0", "max_queue_size": "5.1.0"}


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

    def resolve(self, profile: Profile, release: str | None = None) -> "ResolvedConfig":
        """Every knob filled in and checked; ``release`` (the release string as given) names the
        QEMU in a refusal, else the profile's name does."""
        values = {}
        who = f"QEMU {release or profile.name} (row {profile.row})"
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
                    f"--{knob.replace('_', '-')} {value}: {who} colo-compare has no {knob} property "
                    f"(fixed at {default}; the property exists from QEMU {KNOB_FIRST_RELEASE[knob]})")
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"{knob} must be an integer, got {value!r}")
            # QEMU: visit_type_uint32 + "requires a positive value".  (A refused value makes QEMU
            # 5.1+ abort, not just error: finalize of the half-built object destroys a never
            # initialised event_mtx, qemu-releases.md §5; 4.1-5.0 finalize crashes on a NULL bh.)
            # max_queue_size is parsed as uint64 and truncated into uint32 from 5.2 (0c4266ef26).
            truncates = knob == "max_queue_size" and profile.max_queue_size_truncates
            if value <= 0 or (not truncates and value > 0xFFFFFFFF):
                raise ValueError(f"{knob} must be a positive 32-bit integer, got {value}")
            if truncates:
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

