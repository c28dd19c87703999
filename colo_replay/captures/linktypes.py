"""Link-layer types the readers accept, and how each becomes an Ethernet frame.

colo-compare only ever sees Ethernet frames, so everything a reader yields is Ethernet.
For other link types an Ethernet header is synthesised; the reader records that it did,
so a report can say the MAC addresses (and for raw IP the ethertype) were made up:

* Linux cooked v1 (SLL, 113): 16-byte header ``pkttype, hatype, halen, addr[8], protocol``.
  The address is the *sender's* link-layer address, so it becomes the source MAC when it
  is 6 bytes long; the destination MAC is zeros.  The ethertype is the protocol field as
  is (for the rare 802.2/802.3 pseudo-protocols 0x0001..0x0004 it is not a real ethertype).
* Linux cooked v2 (SLL2, 276): 20-byte header ``protocol, reserved, ifindex, hatype,
  pkttype, halen, addr[8]``; same mapping.
* Raw IP (101 LINKTYPE_RAW, and 12 / 14, the DLT_RAW values some platforms wrote into
  files): zero MACs, ethertype from the IP version nibble (0x0800 for 4, 0x86DD for 6,
  0x0000 for anything else, which colo-compare then treats as a non-IP frame).
* 228 LINKTYPE_IPV4 / 229 LINKTYPE_IPV6: zero MACs, ethertype 0x0800 / 0x86DD.

A converter takes the captured bytes and returns the Ethernet bytes; the original length
changes by the constant ``delta`` (Ethernet header length minus the replaced header's), so
``orig_len - caplen`` -- the number of bytes cut by the snaplen -- is preserved.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

ETHERNET = 1
RAW = 101
DLT_RAW_12 = 12     # DLT_RAW on most BSDs, written as-is into some old files
DLT_RAW_14 = 14     # DLT_RAW on OpenBSD
LINUX_SLL = 113
LINUX_SLL2 = 276
IPV4 = 228
IPV6 = 229

NAMES = {
    ETHERNET: "ETHERNET", RAW: "RAW", DLT_RAW_12: "RAW(12)", DLT_RAW_14: "RAW(14)",
    LINUX_SLL: "LINUX_SLL", LINUX_SLL2: "LINUX_SLL2", IPV4: "IPV4", IPV6: "IPV6",
}

# A few common unsupported ones, only so error messages name them.
_OTHER_NAMES = {0: "NULL", 105: "IEEE802_11", 108: "LOOP", 127: "IEEE802_11_RADIOTAP",
                147: "USER0", 220: "USB_LINUX_MMAPPED", 249: "NETLINK"}

_ZERO6 = bytes(6)
_ZERO12 = bytes(12)
_HDR_IP4 = _ZERO12 + b"\x08\x00"
_HDR_IP6 = _ZERO12 + b"\x86\xdd"
_HDR_NONE = _ZERO12 + b"\x00\x00"


def _raw_ip(frame: bytes) -> bytes:
    if frame:
        version = frame[0] >> 4
        if version == 4:
            return _HDR_IP4 + frame
        if version == 6:
            return _HDR_IP6 + frame
    return _HDR_NONE + frame


def _ipv4(frame: bytes) -> bytes:
    return _HDR_IP4 + frame


def _ipv6(frame: bytes) -> bytes:
    return _HDR_IP6 + frame


def _sll(frame: bytes) -> bytes:
    # frame[14:] is the protocol field followed by the payload: exactly what follows the
    # two MAC addresses in an Ethernet frame.
    if len(frame) < 16:
        return _HDR_NONE   # cut by a tiny snaplen: not even the protocol survived
    if frame[4] == 0 and frame[5] == 6:
        return _ZERO6 + frame[6:12] + frame[14:]
    return _ZERO12 + frame[14:]


def _sll2(frame: bytes) -> bytes:
    if len(frame) < 20:
        return _HDR_NONE
    if frame[11] == 6:
        return _ZERO6 + frame[12:18] + frame[0:2] + frame[20:]
    return _ZERO12 + frame[0:2] + frame[20:]


class LinkType(NamedTuple):
    """How frames of one link type become Ethernet: ``convert`` is None for Ethernet itself;
    ``delta`` is added to the original length."""

    linktype: int
    convert: Callable[[bytes], bytes] | None
    delta: int


SUPPORTED = {
    ETHERNET: LinkType(ETHERNET, None, 0),
    RAW: LinkType(RAW, _raw_ip, 14),
    DLT_RAW_12: LinkType(DLT_RAW_12, _raw_ip, 14),
    DLT_RAW_14: LinkType(DLT_RAW_14, _raw_ip, 14),
    IPV4: LinkType(IPV4, _ipv4, 14),
    IPV6: LinkType(IPV6, _ipv6, 14),
    LINUX_SLL: LinkType(LINUX_SLL, _sll, 14 - 16),
    LINUX_SLL2: LinkType(LINUX_SLL2, _sll2, 14 - 20),
}


def name(linktype: int) -> str:
    """A readable name for a link-type number, e.g. ``"LINUX_SLL2 (276)"``."""
    label = NAMES.get(linktype) or _OTHER_NAMES.get(linktype)
    return f"{label} ({linktype})" if label else f"link type {linktype}"


def lookup(linktype: int) -> LinkType | None:
    """The conversion for ``linktype``, or None when the readers do not support it."""
    return SUPPORTED.get(linktype)
