"""QEMU release strings -> behaviour rows (shared/reference/qemu-releases.md §2).

``resolve_release(text) -> Release`` maps what a user gives ``--qemu`` to one of the rows A..K of
``profiles.ROWS``; ``release_profile(text) -> (row, Profile)`` is the short form.  Accepted:

* an upstream release: ``6.2.0``, ``8.2.2``, ``v9.1.2``; a bare ``MAJOR.MINOR`` when its whole
  branch is one row (``6.2``, ``5.0``).  ``4.1`` and ``7.2`` are the tool's original profile names
  and keep meaning row A (4.1.0) and row K (7.2.15+); the other branches that span two rows
  (``8.2``, ``9.0``, ``9.1``) are refused, naming both rows and the micro release that decides;
* master snapshots ``X.Y.50`` .. ``X.Y.99`` (between X.Y.0 and the next release): the row both
  ends share, refused when the next release changed the row;
* what ``qemu-system-x86_64 --version`` prints: ``QEMU emulator version 7.2.22 (Debian ...)``;
* a Debian or Ubuntu package version: ``1:8.2.2+ds-0ubuntu1.4``, ``1:7.2+dfsg-7+deb12u18`` (Debian
  12's 7.2 packages carry no micro: ``deb12u9`` and later = 7.2.15+ = row K, older = row J, per the
  package changelog quoted in colo-compare-spec.md §3.2);
* a row pin ``row:G`` (for a distro-patched build whose behaviour is known to be one row's).

A release newer than the newest verified one (``NEWEST_VERIFIED``, with its master snapshots) is
row K with a warning.  Distro patches are not covered (qemu-releases.md §2).  ``auto`` (ask the
local binary) is the caller's: the engine runs no program (``offline.localqemu``).

The KVM-COLO availability windows (§6: the migration side, not colo-compare) are ``Release.kvm_colo``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .profiles import PROFILES, ROWS, Profile, switches

NEWEST_VERIFIED = (10, 2, 0)      # v10.2.0 (698104725e) and master to 2026-02-13 (10.2.50)
ROW_PIN_PREFIX = "row:"

# Every upstream release branch v4.1 .. v10.2, in order: [(first micro, row), ...] (§2's rule).
BRANCHES: dict[tuple[int, int], list[tuple[int, str]]] = {
    (4, 1): [(0, "A"), (1, "B")],     # 4.1.1: aea18ef938 (backport of 1e907a32b7)
    (4, 2): [(0, "B")],
    (5, 0): [(0, "C")],
    (5, 1): [(0, "D")],
    (5, 2): [(0, "E")],
    (6, 0): [(0, "E")],
    (6, 1): [(0, "F")],
    (6, 2): [(0, "G")],
    (7, 0): [(0, "H")],
    (7, 1): [(0, "I")],
    (7, 2): [(0, "J"), (15, "K")],    # 7.2.15: 50ca7f1fb4 (backport of e29bc931e1, the MIN fix)
    (8, 0): [(0, "J")],
    (8, 1): [(0, "J")],
    (8, 2): [(0, "J"), (8, "K")],     # 8.2.8: 01f9d3553d
    (9, 0): [(0, "J"), (4, "K")],     # 9.0.4: e0c51649d0
    (9, 1): [(0, "J"), (2, "K")],     # 9.1.2: 289ac098b6
    (9, 2): [(0, "K")],               # e29bc931e1 itself
    (10, 0): [(0, "K")],
    (10, 1): [(0, "K")],
    (10, 2): [(0, "K")],
}
_ORDER = sorted(BRANCHES)

# The bare names the tool had before rows existed: a branch spanning two rows, kept as one of them.
LEGACY_NAMES = {(4, 1): "A", (7, 2): "K"}

# What makes each row differ from the row before it (§2's table), for summaries and the table.
ROW_CHANGES = {
    "A": "the reference source: inverted TCP payload compare, one connection for all ICMP, FIFO queues, "
         "3000 ms virtual-clock scan of primaries only, one checkpoint per request",
    "B": "TCP payload compare fixed (1e907a32b7)",
    "C": "compare_timeout / expired_scan_cycle properties; the old-packet timeout never fires "
         "(int64 read of a uint32, 9cc43c94b3)",
    "D": "send coroutine (no blocking on a slow outdev), max_queue_size property, KVM checkpoint "
         "requests coalesce (9c55fe9408, a2e5cb7a87, bb70b66ed7)",
    "E": "host-clock scan of both queues every 1000 ms, the old-packet timeout works again, compare_seq "
         "initialised (ec081984f4, 17475df2c1, 2f2fcff323, 0c4266ef26, 862ee1e07e)",
    "F": "TCP header_size no longer subtracts the vnet header (5a2d9929ac)",
    "G": "last-ACK tracking and ACK gate = sack; ICMP/other keyed per (src, dst) (fb5eca4a57, 64153ca613)",
    "H": "queues popped at the tail: non-TCP newest first, TCP equal-seq FIFO, send queue LIFO (a5f038e2c5)",
    "I": "table overflow discards instead of double free; a zero-length frame is rejected, not a crash "
         "(a18d436954, 8bdab83b34)",
    "J": "parse_packet_early rewrite: 18-byte minimum frame, vnet header <= 20, assert on a zero-length "
         "frame (3772cf0d1b)",
    "K": "ACK gate MIN(pack, sack) again (e29bc931e1; stable 7.2.15, 8.2.8, 9.0.4, 9.1.2)",
}

# The releases of each row (§2), as the table and the summaries name them.
ROW_RELEASES = {
    "A": "4.1.0", "B": "4.1.1, 4.2.x", "C": "5.0.x", "D": "5.1.0", "E": "5.2.0, 6.0.x", "F": "6.1.x",
    "G": "6.2.0", "H": "7.0.0", "I": "7.1.0",
    "J": "7.2.0-7.2.14, 8.0.x, 8.1.x, 8.2.0-8.2.7, 9.0.0-9.0.3, 9.1.0-9.1.1",
    "K": "7.2.15+, 8.2.8+, 9.0.4+, 9.1.2+, 9.2.x, 10.0.x, 10.1.x, 10.2.0 (newer: unverified)",
}

# KVM-COLO availability (the migration side, §2 / §6 / §7.4): (first, last) stable releases, what happens.
KVM_COLO_BROKEN = (
    ((8, 2, 0), (8, 2, 3), "the KVM-COLO secondary aborts when COLO starts (bdrv_activate_all in a "
                           "coroutine, regression 2b3912f135; fixed by 2cc637f1ea in 8.2.4)"),
    ((9, 0, 0), (9, 0, 0), "the KVM-COLO secondary aborts when COLO starts (regression 2b3912f135; "
                           "fixed by 2cc637f1ea in 9.0.1)"),
    ((10, 0, 0), (10, 0, 6), "KVM COLO never starts: migration completes without entering the COLO state "
                             "(4881411136; fixed by 0b5bf4ea76 in 10.0.7)"),
    ((10, 1, 0), (10, 1, 2), "KVM COLO never starts: migration completes without entering the COLO state "
                             "(4881411136; fixed by 0b5bf4ea76 in 10.1.3)"),
)

_UPSTREAM = re.compile(r"v?(\d+)\.(\d+)(?:\.(\d+))?")
_VERSION_LINE = re.compile(r"QEMU emulator version\s+(\S+)(?:\s+\((.*)\))?", re.IGNORECASE)
# [epoch:]MAJOR.MINOR[.MICRO][+dfsg|+ds|~...][-revision]
_PACKAGE = re.compile(r"(?:(\d+):)?(\d+)\.(\d+)(?:\.(\d+))?([+~][^-]*)?(?:-(.+))?")
_DEB12U = re.compile(r"deb12u(\d+)")


@dataclass(frozen=True)
class Release:
    """What ``--qemu`` was given, and the row it maps to.

    ``given`` the string as given; ``row`` "A".."K"; ``profile`` that row's ``Profile``;
    ``version`` (major, minor, micro) when one was read (None for a row pin), ``how`` one line
    saying how the row was found; ``warnings`` (a release newer than the verified ones);
    ``kvm_colo`` None, or why KVM COLO cannot run on this release (colo-compare itself works)."""

    given: str
    row: str
    profile: Profile
    version: tuple | None = None
    how: str = ""
    warnings: tuple = ()
    kvm_colo: str | None = None
    binary: str | None = field(default=None, compare=False)   # --qemu auto: the binary asked

    def as_dict(self) -> dict:
        """The ``qemu`` object of the summary JSON, the timeline metadata, the report and explain:
        ``release`` (as given), ``row``, ``switches`` ({Profile field: value}); ``binary`` (--qemu
        auto: the binary asked) and ``kvm_colo`` (why KVM COLO cannot run) only when they apply."""
        d = {"release": self.given, "row": self.row, "switches": switches(self.profile)}
        if self.binary is not None:
            d["binary"] = self.binary
        if self.kvm_colo is not None:
            d["kvm_colo"] = self.kvm_colo
        return d


class ReleaseError(ValueError):
    """A release string that maps to no row, or to two."""


def get_profile(name: str | Profile) -> Profile:
    """The profile for a profile name ("4.1", "7.2"), a row pin, or any release string
    (``resolve_release``); a Profile passes through unchanged.  ``Engine(profile)`` takes these."""
    if isinstance(name, Profile):
        return name
    p = PROFILES.get(str(name))
    return p if p is not None else resolve_release(str(name)).profile


def release_profile(text: str) -> tuple[str, Profile]:
    """``(row, Profile)`` for a release string (see ``resolve_release``)."""
    r = resolve_release(text)
    return r.row, r.profile


def resolve_release(text: str) -> Release:
    """The ``Release`` for ``text`` (module docstring: the forms accepted); ``ReleaseError`` (a
    ``ValueError`` whose message is one line naming --qemu and the value) when it maps to no row
    or to two."""
    given = str(text).strip()
    if not given:
        raise ReleaseError("--qemu '': give a QEMU release (e.g. 7.2.15, 8.2.2), a package version, "
                           "'auto' or a row pin (row:A .. row:K)")
    low = given.lower()
    if low.startswith(ROW_PIN_PREFIX):
        row = given[len(ROW_PIN_PREFIX):].strip().upper()
        if row not in ROWS:
            raise ReleaseError(f"--qemu {given}: no such row (rows: {', '.join(ROWS)}; "
                               f"`colo-replay qemu-releases` lists them)")
        return Release(given, row, ROWS[row], None, f"row {row} pinned")
    if low == "auto":
        raise ReleaseError("--qemu auto: asks the local qemu-system-x86_64 (the command line and "
                           "Settings resolve it); the engine takes a release")
    m = _VERSION_LINE.search(given)
    if m:
        # `qemu-system-x86_64 --version`: the upstream version it prints decides (Debian's builds
        # print the stable micro they track, e.g. 7.2.22); the package in parentheses only when
        # the version has no micro.
        inner = _UPSTREAM.fullmatch(m.group(1))
        if inner is None:
            raise ReleaseError(f"--qemu {given}: cannot read the version {m.group(1)!r}")
        if inner.group(3) is None and m.group(2):
            pkg = m.group(2).split()[-1]
            if _PACKAGE.fullmatch(pkg):
                return _from_package(given, pkg)
        return _from_version(given, _ints(inner), "the binary's version line")
    m = _UPSTREAM.fullmatch(given)
    if m:
        return _from_version(given, _ints(m), "upstream release")
    m = _PACKAGE.fullmatch(given)
    if m and (m.group(1) or m.group(5) or m.group(6)):
        return _from_package(given, given)
    raise ReleaseError(f"--qemu {given}: not a QEMU release (give e.g. 7.2.15, 8.2.2, a Debian/Ubuntu package "
                       f"version such as 1:8.2.2+ds-0ubuntu1.4, what `qemu-system-x86_64 --version` prints, "
                       f"'auto', or a row pin row:A .. row:K)")


def _ints(m) -> tuple:
    return int(m.group(1)), int(m.group(2)), None if m.group(3) is None else int(m.group(3))


def _from_package(given: str, pkg: str) -> Release:
    m = _PACKAGE.fullmatch(pkg)
    major, minor = int(m.group(2)), int(m.group(3))
    micro = None if m.group(4) is None else int(m.group(4))
    if micro is None and (major, minor) == (7, 2):
        # Debian 12: 1:7.2+dfsg-7+deb12uN tracks stable-7.2; deb12u9 = 7.2.15 brought the MIN fix
        # (changelog.Debian.gz, colo-compare-spec.md §3.2).  Earlier 7.2 packages (Debian's -1 .. -7,
        # Ubuntu 23.04's) predate 7.2.15.
        u = _DEB12U.search(m.group(6) or "")
        if u and int(u.group(1)) >= 9:
            return _release(given, (7, 2, 15), "K", f"Debian package deb12u{u.group(1)} (deb12u9+ = 7.2.15+)")
        why = f"Debian package deb12u{u.group(1)} (deb12u8 and older = 7.2.14 or older)" if u else \
            "a 7.2 package before Debian's deb12u9 (= 7.2.15)"
        return _release(given, (7, 2, 0), "J", why)
    return _from_version(given, (major, minor, micro), "package's upstream version")


def _from_version(given: str, version: tuple, source: str) -> Release:
    major, minor, micro = version
    branch = (major, minor)
    if branch < _ORDER[0] or (branch not in BRANCHES and branch < _ORDER[-1]):
        if branch < _ORDER[0]:
            raise ReleaseError(f"--qemu {given}: older than QEMU 4.1.0, the oldest release modelled")
        raise ReleaseError(f"--qemu {given}: there is no QEMU {major}.{minor} release "
                           f"(`colo-replay qemu-releases` lists them)")
    if branch > _ORDER[-1] or (micro is not None and version > NEWEST_VERIFIED):
        top = ".".join(map(str, NEWEST_VERIFIED))
        return _release(given, version, "K", f"{source} {_v(version)}", warnings=(
            f"--qemu {given}: newer than QEMU {top}, the newest release verified (and master to 2026-02-13, "
            f"10.2.50): taken as row K, the behaviour of {top}; no later colo-compare change is known "
            f"(qemu-releases.md §6)",))
    rows = BRANCHES[branch]
    if micro is None:
        if len(rows) == 1:
            return _release(given, version, rows[0][1], f"{source} {major}.{minor}.x")
        legacy = LEGACY_NAMES.get(branch)
        if legacy is not None:
            micro = 0 if legacy == "A" else rows[-1][0]
            return _release(given, (major, minor, micro), legacy,
                            f"the profile name {major}.{minor} (= {major}.{minor}.{micro}{'' if micro == 0 else '+'})")
        (_, first), (split, second) = rows
        raise ReleaseError(
            f"--qemu {given}: ambiguous: {major}.{minor}.0-{major}.{minor}.{split - 1} are row {first} and "
            f"{major}.{minor}.{split}+ row {second} ({ROW_CHANGES[second]}); give the micro release "
            f"(`qemu-system-x86_64 --version`, or --qemu auto) or pin the row: row:{first} / row:{second}")
    if micro >= 50:
        # A master snapshot between X.Y.0 and the next release (X.Y.50 .. X.Y.9N release candidates)
        here = _row_at(branch, 0)
        i = _ORDER.index(branch)
        nxt = _ORDER[i + 1] if i + 1 < len(_ORDER) else None
        there = _row_at(nxt, 0) if nxt is not None else here
        if here != there:
            raise ReleaseError(
                f"--qemu {given}: a development snapshot between {major}.{minor}.0 (row {here}) and "
                f"{nxt[0]}.{nxt[1]}.0 (row {there}); which row depends on its commit: pin it, "
                f"row:{here} or row:{there}")
        return _release(given, version, here, f"{source} {_v(version)} (master snapshot)")
    return _release(given, version, _row_at(branch, micro), f"{source} {_v(version)}")


def _row_at(branch: tuple, micro: int) -> str:
    row = None
    for first, r in BRANCHES[branch]:
        if micro >= first:
            row = r
    return row


def _v(version: tuple) -> str:
    return ".".join(str(x) for x in version if x is not None)


def _release(given: str, version: tuple, row: str, how: str, warnings: tuple = ()) -> Release:
    return Release(given, row, ROWS[row], version, how, warnings, kvm_colo_problem(version))


def kvm_colo_problem(version: tuple | None) -> str | None:
    """Why KVM COLO cannot run on this release (None: it can, or the release is unknown)."""
    if version is None or version[2] is None or version[2] >= 50:
        return None
    for first, last, why in KVM_COLO_BROKEN:
        if first <= version <= last:
            span = _v(first) if first == last else f"{_v(first)}-{_v(last)}"
            return f"QEMU {span}: {why}"
    return None


def row_differences(row: str) -> tuple[dict, str]:
    """``({"releases", "neighbours": [(label, text)]}, versus_default)``: what made ``row`` (the
    change from the row before) and what the row after changed, and the switches in which it
    differs from the default profile 7.2 (row K), e.g. ``ack_gate=sack (7.2: umin)``."""
    rows = list(ROWS)
    i = rows.index(row)
    neighbours = [(f"row {row} ({'from ' + rows[i - 1] if i else 'first'})", ROW_CHANGES[row])]
    if i + 1 < len(rows):
        neighbours.append((f"then row {rows[i + 1]}", ROW_CHANGES[rows[i + 1]]))
    mine, default = switches(ROWS[row]), switches(ROWS["K"])
    diff = [f"{k}={_show(v)} (7.2: {_show(default[k])})" for k, v in mine.items() if v != default[k]]
    return {"releases": ROW_RELEASES[row], "neighbours": neighbours}, ", ".join(diff) or "the same row"


def _show(v) -> str:
    return "{" + ", ".join(v) + "}" if isinstance(v, list) else str(v)


def release_table() -> list[dict]:
    """The rows A..K: releases, what changed, switches and properties (``colo-replay qemu-releases``)."""
    out = []
    for row, p in ROWS.items():
        out.append({
            "row": row, "profile": p.name, "releases": ROW_RELEASES[row], "changes": ROW_CHANGES[row],
            "properties": sorted(p.configurable),
            "defaults": {"compare_timeout": p.default_compare_timeout,
                         "expired_scan_cycle": p.default_expired_scan_cycle,
                         "max_queue_size": p.default_max_queue_size,
                         "x-checkpoint-delay": p.default_checkpoint_delay},
            "switches": switches(p),
        })
    return out


def kvm_colo_windows() -> list[dict]:
    """The KVM-COLO availability windows (releases where colo-compare runs but KVM COLO does not)."""
    return [{"first": _v(a), "last": _v(b), "releases": _v(a) if a == b else f"{_v(a)}-{_v(b)}", "what": why}
            for a, b, why in KVM_COLO_BROKEN]
