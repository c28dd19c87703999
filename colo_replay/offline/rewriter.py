"""filter-rewriter for raw captures: put the secondary's TCP into the primary's sequence space.

In a COLO setup the secondary VM's outbound traffic passes QEMU's ``filter-rewriter`` before
colo-compare sees it.  For every connection the guest *accepts*, the rewriter learns the
offset between the two guests' initial sequence numbers and shifts the secondary's segments by
it (net/filter-rewriter.c, 7.2):

* ``handle_secondary_tcp_pkt``: when the secondary guest sends its SYN|ACK (state
  ``TCPS_SYN_RECEIVED``) it stores ``offset = secondary_seq``;
* ``handle_primary_tcp_pkt``: the client's ACK completing the handshake acknowledges the
  *primary's* ISN + 1, and ``offset -= th_ack - 1``, so ``offset = ISN_sec - ISN_pri``;
* every later secondary segment whose flags are exactly ACK among (ACK, SYN) gets
  ``th_seq -= offset`` and a recomputed TCP checksum, when ``offset`` is non-zero.  The SYN|ACK
  itself goes out unshifted.

Connections the guest opens (its SYN) are not translated: the rewriter learns offsets only in
``TCPS_SYN_RECEIVED``.  Raw captures of two guests therefore differ in every TCP sequence
number, which colo-compare reads as divergence; ``RewrittenReader`` applies the same shift to
the secondary capture, learning ``ISN_pri`` from the primary capture's SYN|ACK (the value the
client's ACK would carry).  The n-th SYN|ACK of a 4-tuple on one side pairs with the n-th on the
other (port reuse).

``peer_isn=True`` also shifts the secondary's ACK numbers by the difference of the two SYN|ACKs'
ACK numbers.  Real COLO never needs that (filter-mirror gives both guests the very same client
segments); captures made with two separate clients (like sample_pcaps/) do.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

import numpy as np

from ..captures.base import Batch
from . import framecols

_u16 = struct.Struct("!H").unpack_from
_u32x2 = struct.Struct("!II").unpack_from
_pack_u32x2 = struct.Struct("!II").pack_into
_pack_u16 = struct.Struct("!H").pack_into
TH_SYN, TH_ACK = 0x02, 0x10
MOD32 = 1 << 32


def _tcp_offsets(frame: bytes, vnet: int):
    """(ip_offset, tcp_offset, tcp_end) for an untagged Ethernet/IPv4/TCP frame, else None."""
    eth = vnet
    if len(frame) < eth + 34 or frame[eth + 12] != 0x08 or frame[eth + 13] != 0x00:
        return None
    ip = eth + 14
    if frame[ip] >> 4 != 4 or frame[ip + 9] != 6 or _u16(frame, ip + 6)[0] & 0x3FFF:
        return None
    tcp = ip + (frame[ip] & 0x0F) * 4
    end = ip + _u16(frame, ip + 2)[0]
    if end > len(frame) or tcp + 20 > end:
        return None
    return ip, tcp, end


def _tcp_checksum(buf: bytearray, ip: int, tcp: int, end: int) -> int:
    """The TCP checksum over the IPv4 pseudo-header and segment, as net_checksum_calculate."""
    seg = bytes(buf[tcp:end])
    total = sum(struct.unpack_from("!HH", buf, ip + 12)) + sum(struct.unpack_from("!HH", buf, ip + 16))
    total += 6 + len(seg)
    if len(seg) % 2:
        seg += b"\x00"
    total += sum(struct.unpack(f"!{len(seg) // 2}H", seg))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def synack_table(reader, vnet: int = 0) -> dict:
    """Every SYN|ACK of a capture: {(src, sport, dst, dport): [(seq, ack), ...]} in order."""
    table: dict = {}
    for batch in reader.batches():
        if len(batch):
            add_synacks(table, framecols.columns(batch), vnet)
    return table


def add_synacks(table: dict, cols: framecols.Columns, vnet: int = 0) -> None:
    """``synack_table``'s work for one batch (``framecols.columns``), into ``table``."""
    # Only the frames whose headers pass _tcp_offsets' tests and carry SYN and ACK (a few in
    # thousands) go through the per-frame code, which decides as before.
    for i in _synack_rows(cols, vnet).tolist():
        frame = cols.frame(i)
        offs = _tcp_offsets(frame, vnet)
        if offs is None:
            continue
        ip, tcp, _end = offs
        if frame[tcp + 13] & (TH_SYN | TH_ACK) != TH_SYN | TH_ACK:
            continue
        key = (frame[ip + 12:ip + 20], frame[tcp:tcp + 4])
        table.setdefault(key, []).append(_u32x2(frame, tcp + 4))


def _synack_rows(cols: framecols.Columns, vnet: int) -> np.ndarray:
    """The indices of the batch's frames that ``_tcp_offsets`` accepts and whose TCP flags have
    both SYN and ACK: its tests, on all frames at once (``a[k:][at]`` is ``a[at + k]``).  The
    flags come first (a SYN|ACK is rare: most batches stop there), read where the IHL puts them,
    clipped to the buffer: the other tests then discard what was read past a frame's end."""
    a = cols.a
    rows = np.flatnonzero(cols.caps >= vnet + 34)
    eth = cols.starts[rows] + vnet
    tcp = eth + 14 + (a[14:][eth] & 0x0F).astype(np.int64) * 4
    keep = np.take(a, tcp + 13, mode="clip") & (TH_SYN | TH_ACK) == TH_SYN | TH_ACK
    if not keep.any():
        return rows[keep]
    rows, eth, tcp = rows[keep], eth[keep], tcp[keep]
    keep = (a[12:][eth] == 0x08) & (a[13:][eth] == 0x00) & (a[23:][eth] == 6) & (a[14:][eth] >> 4 == 4)
    keep &= (a[20:][eth] & 0x3F == 0) & (a[21:][eth] == 0)           # not a fragment
    end = eth + 14 + ((a[16:][eth].astype(np.int64) << 8) | a[17:][eth])
    keep &= (end <= cols.ends[rows]) & (tcp + 20 <= end)
    return rows[keep]


@dataclass
class RewriteStats:
    """What the rewriter did, for the summary."""

    connections: int = 0            # accepted connections paired on both sides
    unpaired: int = 0               # secondary SYN|ACKs with no primary counterpart (not shifted)
    zero_offset: int = 0            # paired with equal ISNs (nothing to shift, as in QEMU)
    frames_rewritten: int = 0
    peer_isn: bool = False
    offsets: list = field(default_factory=list)   # first few (port, ISN_sec - ISN_pri)

    def as_dict(self) -> dict:
        return dict(self.__dict__)


class RewrittenReader:
    """Wraps the secondary capture's reader; yields its batches with filter-rewriter's shift
    applied.  ``primary_synacks`` comes from ``synack_table(primary_reader)``."""

    def __init__(self, reader, primary_synacks: dict, vnet: int = 0, peer_isn: bool = False):
        self.reader = reader
        self.primary = primary_synacks
        self.vnet = vnet
        self.peer_isn = peer_isn
        self.stats = RewriteStats(peer_isn=peer_isn)
        self._seen: dict = {}        # key -> SYN|ACKs seen on the secondary so far
        self._shift: dict = {}       # key -> (seq offset, ack offset) of the current connection

    def __getattr__(self, name):
        return getattr(self.reader, name)       # path, format, linktypes, ...

    def batches(self):
        for batch in self.reader.batches():
            frames = batch.frames
            out = None
            for i, frame in enumerate(frames):
                new = self._rewrite(frame)
                if new is not None:
                    if out is None:
                        out = list(frames)
                    out[i] = new
            if out is not None:
                batch = Batch(batch.first_frame, batch.timestamps, out, batch.orig_lens, batch.interface_ids,
                              batch.vnet_lens, batch.truncated)
            yield batch

    def _rewrite(self, frame: bytes):
        offs = _tcp_offsets(frame, self.vnet)
        if offs is None:
            return None
        ip, tcp, end = offs
        key = (frame[ip + 12:ip + 20], frame[tcp:tcp + 4])
        flags = frame[tcp + 13] & (TH_SYN | TH_ACK)
        if flags == TH_SYN | TH_ACK:
            # TCPS_SYN_RECEIVED: a new accepted connection; the SYN|ACK itself is not shifted.
            n = self._seen.get(key, 0)
            self._seen[key] = n + 1
            theirs = self.primary.get(key, ())
            if n >= len(theirs):
                self.stats.unpaired += 1
                self._shift.pop(key, None)
                return None
            s_seq, s_ack = _u32x2(frame, tcp + 4)
            p_seq, p_ack = theirs[n]
            off = (s_seq - p_seq) % MOD32
            ack_off = (p_ack - s_ack) % MOD32 if self.peer_isn else 0
            self.stats.connections += 1
            if off == 0:
                self.stats.zero_offset += 1
            if len(self.stats.offsets) < 20:
                self.stats.offsets.append((_u16(frame, tcp)[0], off - MOD32 if off >= 1 << 31 else off))
            self._shift[key] = (off, ack_off)
            return None
        if flags != TH_ACK:
            return None
        shift = self._shift.get(key)
        if shift is None or shift == (0, 0):
            return None                      # "if (conn->offset)": nothing to do
        off, ack_off = shift
        buf = bytearray(frame)
        seq, ack = _u32x2(buf, tcp + 4)
        _pack_u32x2(buf, tcp + 4, (seq - off) % MOD32, (ack + ack_off) % MOD32)
        _pack_u16(buf, tcp + 16, 0)
        _pack_u16(buf, tcp + 16, _tcp_checksum(buf, ip, tcp, end))
        self.stats.frames_rewritten += 1
        return bytes(buf)


def rewrite_secondary(secondary_reader, primary_path, vnet: int = 0, peer_isn: bool = False,
                      **open_options) -> RewrittenReader:
    """The secondary capture's reader behind filter-rewriter: the primary capture (a path; it is
    read once more here, for its SYN|ACKs) gives ``ISN_pri`` per connection."""
    from ..captures import open_capture
    from ..captures.base import UpToError
    # (up to a read error: the replay meets it in the primary itself and gives what came before)
    primary = UpToError(open_capture(primary_path, **open_options))
    return RewrittenReader(secondary_reader, synack_table(primary, vnet), vnet, peer_isn)
