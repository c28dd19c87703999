"""QEMU's own record of each TCP payload comparison, from a real run's trace: the cross-check
of the replay's comparisons, and QEMU's outcome where C's is undefined.

colo-compare traces every payload ``memcmp`` (``colo_compare_ip_info``: both frames' sizes,
from ``colo_compare_packet_payload``) and both sides of every successful TCP mark
(``colo_compare_tcp_info``, right after the ``memcmp`` that made it).  For TCP, an ``ip_info``
followed at once by ``tcp_info`` is a ``memcmp`` that returned 0; one followed by anything else
returned non-zero, or its ACK gate failed (the seed's inverted test, spec Q1: the other way round).  (UDP, ICMP and "other" comparisons trace ``compare
udp`` / ``icmp`` / ``other`` first, and are left out here, as the engine leaves them out.)

The replay makes the same comparisons in the same order when it replays the run as it ran
(its capture, its flushes, its settings).  ``TraceOracle`` walks the trace's TCP comparisons
along with the engine's (``compared``, called by the engine for every TCP payload comparison):

* the sizes must agree, comparison by comparison (the first disagreement is kept, and the
  oracle stops: the sequences are no longer the same run), and so must the seq/ack numbers and
  header and payload lengths of every ``tcp_info`` pair with the two frames';
* where the replay read past a frame's end (``undefined``: C undefined behaviour, QEMU compared
  whatever the heap held there, spec Q13) QEMU's outcome replaces the zero-padding stand-in.
  Only a ``memcmp`` QEMU's trace shows returning 0, or one whose mark failed although the
  replay's ACK gate would have let it through, is decided so; otherwise the stand-in stays.
"""

from __future__ import annotations

from typing import NamedTuple

_NOT_TCP = ("compare udp", "compare icmp", "compare other")


class _Memcmp(NamedTuple):
    """One TCP payload memcmp in the trace."""

    psize: int                 # both frames' sizes (colo_compare_ip_info)
    ssize: int
    mark_ok: bool              # a colo_compare_tcp_info follows: the mark succeeded on it
    line: int                  # the ip_info's line
    time_ns: int               # and its time (colo-compare's iothread made the comparison then)
    tcp_info: dict             # "pri" / "sec" -> its colo_compare_tcp_info event (when mark_ok)


class TraceOracle:
    """The trace's TCP payload comparisons, walked along with a replay's (see the module)."""

    def __init__(self, trace, inverted: bool = False):
        # the seed's payload test is inverted (spec Q1): its marks succeed on a non-zero memcmp
        self.inverted = inverted
        events = trace.compare_events()
        calls = []
        prev = None
        for k, e in enumerate(events):
            if e.kind == "compare_ip_info":
                not_tcp = (prev is not None and prev.kind == "compare_main"
                           and prev.fields.get("text") in _NOT_TCP)
                if not not_tcp:
                    nxt = events[k + 1] if k + 1 < len(events) else None
                    mark_ok = nxt is not None and nxt.kind == "compare_tcp_info"
                    sides = {}
                    for ti in events[k + 1:k + 3] if mark_ok else ():
                        if ti.kind == "compare_tcp_info":
                            sides[ti.fields["side"]] = ti
                    calls.append(_Memcmp(e.fields["psize"], e.fields["ssize"], mark_ok, e.line, e.time_ns, sides))
            prev = e
        self.calls = calls
        self.next = 0
        self.agreed = 0
        self.outcome_disagreements = 0
        self.resolved = 0                  # undefined reads decided by QEMU's outcome
        self.unresolved = 0                # undefined reads left to the stand-in
        self.first_disagreement: str | None = None
        self.first_time_ns: int | None = None      # the trace's time of that comparison
        self.tcp_info_agreed = 0           # tcp_info lines whose seq/ack/hdlen/pdlen are the frames'
        self.tcp_info_first: str | None = None    # the first that are not

    def _check_info(self, call, p, s) -> None:
        """The mark's ``colo_compare_tcp_info`` lines (both sides' seq/ack, header and payload
        lengths, as QEMU parsed the frames) against the replay's packets."""
        for side, pkt in (("pri", p), ("sec", s)):
            ti = call.tcp_info.get(side)
            if ti is None:
                continue
            f = ti.fields
            want = (f["seq"], f["ack"], f["hdlen"], f["pdlen"])
            got = (pkt.tcp_seq, pkt.tcp_ack, pkt.header_size & 0xFF, pkt.payload_size & 0xFFFF)
            if want == got:
                self.tcp_info_agreed += 1
            elif self.tcp_info_first is None:
                self.tcp_info_first = (f"trace line {ti.line}: {side} seq/ack/hdlen/pdlen {want}, the replay's "
                                       f"frame {got}")

    def _take(self, psize: int, ssize: int):
        if self.first_disagreement is not None:
            return None
        if self.next >= len(self.calls):
            self.first_disagreement = (f"comparison #{self.next + 1}: the replay compared {psize}/{ssize} B, the "
                                       f"trace has no more TCP comparisons")
            return None
        call = self.calls[self.next]
        self.next += 1
        if (call.psize, call.ssize) != (psize, ssize):
            self.first_disagreement = (f"comparison #{self.next} (trace line {call.line}): the trace compared "
                                       f"{call.psize}/{call.ssize} B, the replay {psize}/{ssize} B")
            self.first_time_ns = call.time_ns
            return None
        self.agreed += 1
        return call

    def compared(self, p, s, equal: bool) -> None:
        """A TCP payload comparison the replay could make exactly (both reads within the frames
        ``p`` and ``s``, the engine's Packets)."""
        call = self._take(p.size, s.size)
        if call is not None:
            self._check_info(call, p, s)
            if call.mark_ok and equal == self.inverted:
                self.outcome_disagreements += 1   # QEMU's mark succeeded on this memcmp, the replay's cannot

    def undefined(self, p, s, equal: bool, gate_passes: bool):
        """A comparison that read past a frame's end: QEMU's outcome (True: equal, False:
        different), or None to keep the replay's stand-in ``equal``.  ``gate_passes``: the mark
        would succeed on an equal payload (no ACK gate, or one that lets it through)."""
        call = self._take(p.size, s.size)
        if call is None:
            self.unresolved += 1
            return None
        self._check_info(call, p, s)
        if call.mark_ok:                     # the mark succeeded on this memcmp
            self.resolved += 1
            return not self.inverted
        if gate_passes:                      # it failed, and not at the ACK gate: the payloads differed
            self.resolved += 1
            return self.inverted
        self.unresolved += 1                 # the mark failed; the ACK gate alone explains it
        return None

    def as_dict(self) -> dict:
        infos = sum(len(c.tcp_info) for c in self.calls[:self.next])
        return {"trace": len(self.calls), "replay": self.next, "agree": self.agreed,
                "tcp_info": infos, "tcp_info_agree": self.tcp_info_agreed, "tcp_info_first": self.tcp_info_first,
                "outcome_disagreements": self.outcome_disagreements, "undefined_resolved": self.resolved,
                "undefined_unresolved": self.unresolved, "first": self.first_disagreement,
                "first_time_ns": self.first_time_ns}
