"""Constants used across the package, and QEMU's 32-bit sequence-number arithmetic.

Each is defined here once; the drivers (offline/, live/, output/, cli/) import them from here, the
engine imports nothing outward.

Time:

    MS       ns per ms (the engine keeps ns; QEMU stamps frames and scans in integer ms)
    NEVER    a time later than any real one ("no deadline"); ``-NEVER`` is earlier than any

Sequence numbers are uint32_t in QEMU, and colo-compare orders them by the sign of their
int32_t difference (net/colo-compare.c ``after()`` and ``seq_sorter()``).  In Python, with
``d = (a - b) & U32``:

    (int32_t)(a - b) >  0   <=>   0 < d < S32_SIGN      seq_after(a, b)   (QEMU after())
    (int32_t)(a - b) >= 0   <=>   d < S32_SIGN          seq_not_before(a, b)

The engine's hot paths write these expressions out with ``U32`` and ``S32_SIGN`` instead of
calling the helpers (a Python call per comparison costs measurable time there); each such place
says which helper it inlines.
"""

MS = 1_000_000               # ns per ms
NEVER = 1 << 126             # later than any time in ns (and -NEVER earlier than any)

U32 = 0xFFFFFFFF             # uint32_t mask: sequence numbers and their differences wrap here
S32_SIGN = 0x80000000        # the int32_t sign bit: (a - b) & U32 >= S32_SIGN <=> (int32_t)(a - b) < 0


def seq_after(a: int, b: int) -> bool:
    """colo-compare.c ``after(seq1, seq2)``: (int32_t)(seq1 - seq2) > 0."""
    return 0 < (a - b) & U32 < S32_SIGN


def seq_not_before(a: int, b: int) -> bool:
    """(int32_t)(a - b) >= 0: ``seq_sorter``'s result is not negative."""
    return (a - b) & U32 < S32_SIGN
