"""The pcapng writer: recordings of live runs, test captures, evidence files.

Built on dpkt's pcapng writer (``dpkt.pcapng.Writer``): dpkt writes the Section Header Block
(``shb_userappl``) and one Interface Description Block per interface (``if_name``, and
``if_tsresol`` = 9, nanosecond timestamps), and its Enhanced Packet Block header packer and
option class frame every packet.  What dpkt's ``writepkt`` lacks is done here around the same
blocks: integer nanosecond timestamps (``writepkt`` takes float seconds and writes
microseconds), a captured length shorter than the original (``orig_len``, frames cut by a
snaplen), the interface of each packet and a packet comment (``opt_comment``, read back by
Wireshark as ``frame.comment``).  It is on live mode's recording path, so a packet without a
comment costs one header pack and one write.

    with PcapngWriter("evidence.pcapng", ["primary", "secondary"]) as w:
        w.write(t_ns, frame, comment="P#12 differs at byte 54", interface=0)
        w.write(t_ns2, frame2, comment="S#11", interface=1)
"""

from __future__ import annotations

import sys

import dpkt.pcapng as ng

LINKTYPE_ETHERNET = 1

if sys.byteorder == "little":     # dpkt's writer wants the blocks in the host's byte order
    _SHB, _IDB, _EPB, _OPT = ng.SectionHeaderBlockLE, ng.InterfaceDescriptionBlockLE, ng.EnhancedPacketBlockLE, \
        ng.PcapngOptionLE
else:                             # pragma: no cover
    _SHB, _IDB, _EPB, _OPT = ng.SectionHeaderBlock, ng.InterfaceDescriptionBlock, ng.EnhancedPacketBlock, \
        ng.PcapngOption

_END = bytes(_OPT(code=ng.PCAPNG_OPT_ENDOFOPT))
_OPT_HDR = _OPT()._pack_hdr            # code, len: dpkt's option header
_EPB_HDR = _EPB().__hdr_len__          # 32: the fixed part of an EPB, trailing length included
_PAD = (b"", b"\0\0\0", b"\0\0", b"\0")


def _options(*opts) -> list:
    return [*opts, _OPT(code=ng.PCAPNG_OPT_ENDOFOPT)]


class PcapngWriter:
    """One pcapng section with one interface per name in ``interfaces`` (a name or a list of
    names), all ``linktype`` and nanosecond resolution.  ``path`` is a file name or a binary
    file object (closed by ``close()`` either way)."""

    def __init__(self, path, interfaces="colo-replay", *, linktype: int = LINKTYPE_ETHERNET,
                 snaplen: int = 0, application: str = "colo-replay"):
        names = [interfaces] if isinstance(interfaces, str) else list(interfaces)
        if not names:
            raise ValueError("a pcapng file needs at least one interface")
        self.path = path if isinstance(path, str) else getattr(path, "name", None)
        self.fh = open(path, "wb", buffering=1 << 20) if isinstance(path, str) or hasattr(path, "__fspath__") \
            else path
        self.interfaces = names
        self.count = 0
        shb = _SHB(opts=_options(_OPT(code=ng.PCAPNG_OPT_SHB_USERAPPL, data=application.encode())))
        idbs = [_IDB(linktype=linktype, snaplen=snaplen,
                     opts=_options(_OPT(code=ng.PCAPNG_OPT_IF_NAME, data=name.encode()),
                                   _OPT(code=ng.PCAPNG_OPT_IF_TSRESOL, data=b"\x09")))
                for name in names]
        self._dpkt = ng.Writer(self.fh, shb=shb, idb=idbs)
        self._pack = _EPB()._pack_hdr       # type, len, iface, ts_high, ts_low, caplen, orig, len

    def write(self, t_ns: int, data: bytes, comment: str | None = None, orig_len: int | None = None,
              interface: int = 0) -> None:
        """One Enhanced Packet Block: ``t_ns`` nanoseconds since the epoch, ``data`` as
        captured, ``orig_len`` its length on the wire (default ``len(data)``), an optional
        packet comment."""
        n = len(data)
        pad = _PAD[n & 3]
        if comment:
            # what bytes(_OPT(code=PCAPNG_OPT_COMMENT, text=comment)) + _END gives, 3x faster
            c = comment.encode()
            opts = b"".join((_OPT_HDR(ng.PCAPNG_OPT_COMMENT, len(c)), c, _PAD[len(c) & 3], _END))
        else:
            opts = b""
        total = _EPB_HDR + n + len(pad) + len(opts)
        hdr = self._pack(ng.PCAPNG_BT_EPB, total, interface, (t_ns >> 32) & 0xFFFFFFFF, t_ns & 0xFFFFFFFF,
                         n, n if orig_len is None else orig_len, total)
        self.fh.write(b"".join((hdr[:-4], data, pad, opts, hdr[-4:])))
        self.count += 1

    def close(self) -> None:
        self.fh.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()
