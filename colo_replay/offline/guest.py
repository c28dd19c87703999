"""``--guest``: keep only the guest's outbound frames of a capture that holds both directions.

colo-compare only ever sees what the guests *send* (filter-mirror / filter-redirector take the
VM's outbound traffic).  A capture taken on a tap or bridge port holds the inbound frames too;
fed to colo-compare they would be compared as if the guest had sent them.  ``--guest`` selects
the outbound side, spelled as a libpcap filter so it has libpcap's exact semantics:

* a MAC address: ``ether src MAC``;
* an IPv4/IPv6 address: ``src host IP`` (matches IP, and ARP by its sender address);
* ``auto``: the guest's MAC is detected (``detect_guest``) and reported.

Detection: on a capture of one VM's port, the guest's MAC is the one that takes part in
(nearly) every frame, as source or destination.  When two MACs do (a guest that only talks to
its gateway), the one with QEMU's default prefix 52:54:00 wins, and the report says so; if
that does not decide it, the user is asked for ``--guest MAC``.  A capture in which one MAC
sent nearly every frame is outbound only already, and that MAC is the guest.
"""

from __future__ import annotations

import ipaddress
import re
from collections import Counter
from dataclasses import dataclass

_MAC = re.compile(r"^[0-9a-fA-F]{2}([:-][0-9a-fA-F]{2}){5}$")
_BROADCASTISH = 0x01            # group bit of the first octet: broadcast and multicast
QEMU_OUI = bytes.fromhex("525400")


def mac_text(mac: bytes) -> str:
    return ":".join(f"{b:02x}" for b in mac)


@dataclass
class GuestChoice:
    mac: str
    frames: int                 # frames examined
    share: float                # fraction of those frames the MAC takes part in
    sent: int                   # frames it sent
    reason: str

    def describe(self) -> str:
        return (f"guest {self.mac} (auto: in {self.share:.1%} of the first {self.frames} frames, "
                f"sender of {self.sent}; {self.reason})")


def guest_bpf(spec: str) -> str:
    """The libpcap filter for ``--guest MAC`` or ``--guest IP``; ValueError otherwise."""
    spec = spec.strip()
    if _MAC.match(spec):
        return f"ether src {spec.replace('-', ':').lower()}"
    try:
        ipaddress.ip_address(spec)
    except ValueError:
        raise ValueError(f"--guest {spec!r}: expected a MAC address (52:54:00:12:34:56), an IP address "
                         f"or 'auto'") from None
    return f"src host {spec}"


def detect_guest(reader, max_frames: int = 200_000) -> GuestChoice:
    """Detect the guest's MAC from (the start of) a capture; ValueError when it is ambiguous."""
    present: Counter = Counter()
    sent: Counter = Counter()
    n = 0
    for batch in reader.batches():
        for frame in batch.frames:
            if len(frame) < 14:
                continue
            n += 1
            dst, src = frame[0:6], frame[6:12]
            sent[src] += 1
            present[src] += 1
            if dst != src and not dst[0] & _BROADCASTISH:
                present[dst] += 1
            if n >= max_frames:
                break
        if n >= max_frames:
            break
    if not n:
        raise ValueError("--guest auto: the capture has no frames to detect the guest from")
    sender, count = sent.most_common(1)[0]
    if count >= 0.99 * n:
        # Already outbound only (tcpdump -Q out on the VM's port, as in sample_pcaps/).
        return GuestChoice(mac_text(sender), n, present[sender] / n, count,
                           "it sent nearly every frame: the capture is outbound only already")
    ranked = present.most_common()
    top_mac, top = ranked[0]
    ties = [mac for mac, c in ranked if c >= top * 0.9]   # ARP broadcasts leave the guest out of a few
    reason = "the only MAC in nearly every frame"
    if len(ties) > 1:
        qemu = [mac for mac in ties if mac.startswith(QEMU_OUI)]
        if len(qemu) == 1:
            top_mac = qemu[0]
            reason = (f"{len(ties)} MACs in nearly every frame; the one with QEMU's 52:54:00 prefix, "
                      f"others: {', '.join(mac_text(m) for m in ties if m != top_mac)}")
        else:
            raise ValueError("--guest auto: cannot tell the guest from "
                             + ", ".join(mac_text(m) for m in ties)
                             + " (each takes part in nearly every frame); give --guest MAC")
    share = present[top_mac] / n
    if share < 0.9:
        raise ValueError(f"--guest auto: no MAC takes part in most frames (best {mac_text(top_mac)}: "
                         f"{share:.0%}); is this a capture of one VM's port? give --guest MAC or IP")
    return GuestChoice(mac_text(top_mac), n, share, sent[top_mac], reason)
