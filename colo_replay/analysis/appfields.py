"""Application fields (DNS, NTP, HTTP, TLS, ...) of a few frames, from tshark, in one run.

The L2-L4 fields are the package's own (``fields``); naming a differing byte inside a payload
(``ntp.xmt``, ``http.date``, ``dns.id``, ``tls.handshake.random``) needs Wireshark's
dissectors.  This module runs **raw tshark** (not pyshark: PDML already gives every field's
``name``, ``pos``, ``size`` and ``show``, and one subprocess needs no extra package) once over
the frames asked for (all of a file written for it, or a display filter):

    tshark -n -r FILE -o tcp.desegment_tcp_streams:TRUE -o http.desegment_body:TRUE ...
           -o ip.defragment:FALSE -o tcp.analyze_sequence_numbers:FALSE [-Y 'frame.number in {…}'] -T pdml

and parses the PDML with ``xml.etree.ElementTree.iterparse`` (standard library) **as it
streams out** of the pipe, keeping only the fields at the offsets asked for: memory is what is
kept, never tshark's whole output.  A watchdog kills tshark at a deadline that scales with the
frames (``tshark_timeout``): a hung tshark costs seconds.

TCP reassembly is on (``REASSEMBLY``): an application PDU spanning segments (an HTTP response
whose JSON body is its own segment, a TLS record over several) is dissected whole, in the frame
of its last segment, its fields' positions in the *reassembled* buffer.  That buffer is the
concatenation of the payloads of the segments tshark lists (``tcp.segment``: frame, position,
size), so each such field is put back in the frames it covers, at the exact offset there
(``_Packet.place``; which buffer a field is in is decided by its bytes).  Every position given
out is an offset in a frame's own bytes, as the package's offsets are.  (Positions are in the
capture's frame bytes: add a vnet header's length when comparing with frames that carry one.)
Fields whose bytes are in neither (other data sources, e.g. decompressed bodies) are dropped.
Sequence analysis stays off: with it, a segment tshark saw before is a "retransmission" and is
not dissected.

Failure is an answer, not an exception: without tshark, on a timeout or an error,
``app_fields`` returns ``AppFields(None, reason)`` and the caller says so in one line.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import threading
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Iterable, Mapping, NamedTuple

__all__ = ["AppField", "AppFields", "app_fields", "app_field_at", "frame_filter", "tshark_timeout"]

REASSEMBLY = ("-o", "tcp.desegment_tcp_streams:TRUE", "-o", "http.desegment_headers:TRUE",
              "-o", "http.desegment_body:TRUE", "-o", "tls.desegment_ssl_records:TRUE",
              "-o", "tls.desegment_ssl_application_data:TRUE")
"""tshark's reassembly of application PDUs that span TCP segments, on: an HTTP response whose
body is its own segment is one PDU, and JSON names the body's members."""

# PDML protos that describe the capture, not the frame's bytes
_SKIP_PROTOS = {"geninfo", "frame", "fake-field-wrapper"}


@dataclass(frozen=True)
class AppField:
    """One field as tshark dissected it: ``pos``/``size`` in bytes from the start of the
    frame (for a field of a reassembled PDU: its part in this frame), ``show`` the displayed
    value (e.g. ``Thu, 26 Nov 2026 00:38:02 GMT``), ``context`` what its name alone does not
    say (``member request_id`` for a JSON value, ``header X-Id`` for an HTTP header line
    tshark has no field for; None), ``full`` the whole field's size when it spans frames."""

    name: str
    pos: int
    size: int
    show: str
    context: str | None = None
    full: int | None = None

    @property
    def end(self) -> int:
        return self.pos + self.size

    @property
    def whole(self) -> int:
        """The whole field's size (``size`` is its part in this frame when it spans segments)."""
        return self.full if self.full is not None else self.size


class AppFields(NamedTuple):
    """``frames``: frame number -> its fields in PDML order, or ``None`` on failure, when
    ``reason`` says why in one line (``""`` on success)."""

    frames: dict[int, list[AppField]] | None
    reason: str


def frame_filter(frames: Iterable[int]) -> str:
    """The display filter selecting ``frames``, consecutive numbers folded into ranges:
    ``frame.number in {3,7..9}`` (commas: the set syntax of Wireshark 4.0 on)."""
    nums = sorted({int(n) for n in frames if int(n) > 0})
    parts = []
    i = 0
    while i < len(nums):
        j = i
        while j + 1 < len(nums) and nums[j + 1] == nums[j] + 1:
            j += 1
        parts.append(str(nums[i]) if i == j else f"{nums[i]}..{nums[j]}")
        i = j + 1
    return "frame.number in {" + ",".join(parts) + "}"


TSHARK_START_S = 10.0
"""The part of tshark's timeout that does not depend on the work: start-up (loading every
dissector takes ~0.4 s here, several seconds on a loaded machine) with a wide margin."""
TSHARK_PER_FRAME_S = 0.002
"""The part per frame dissected: tshark writes the PDML of a frame in ~0.1 ms, so 2 ms is
twenty times that.  A hung tshark is given up after ``tshark_timeout(n)``, never a fixed
two minutes."""


def tshark_timeout(frames: int) -> float:
    """Seconds to allow one tshark run over ``frames`` frames (see the two constants)."""
    return TSHARK_START_S + TSHARK_PER_FRAME_S * max(0, int(frames))


def app_fields(capture: str, frames: Iterable[int] | None, offsets: Mapping[int, Iterable[int]] | None = None,
               *, tshark: str | None = None, timeout: float | None = None) -> AppFields:
    """The fields of the given frames (Wireshark 1-based numbers) of ``capture``; ``None``:
    every frame of it (no display filter: the caller wrote just those frames to the file).

    ``offsets`` (frame -> byte offsets), when given, keeps only the fields covering one of the
    offsets of that frame: what naming a differing byte needs, and much less to hold (the
    filter is applied while the PDML streams in, so memory is the fields kept, not tshark's
    output).  ``tshark``: the binary (default: found on ``PATH``); ``timeout``: seconds
    (default ``tshark_timeout`` of the frames asked for, or of the offsets' frames).  One
    tshark run for all frames; a frame tshark did not output (a number past the end of the
    capture) is absent.  With ``frames``, the frames whose reassembled PDU has one of them as a
    segment are output too (``tcp.segment in {...}``): the fields of a PDU are dissected at its
    last segment, and are put back in the frames asked for.
    """
    if frames is None:
        wanted = None
        count = len(offsets) if offsets is not None else 0
    else:
        wanted = sorted({int(n) for n in frames if int(n) > 0})
        if not wanted:
            return AppFields({}, "")
        count = len(wanted)
    exe = tshark or shutil.which("tshark")
    if not exe:
        return AppFields(None, "tshark not found: application fields (DNS, NTP, HTTP, TLS) not named")
    if timeout is None:
        timeout = tshark_timeout(count)
    if offsets is not None:
        keep = {int(k): [int(o) for o in v] for k, v in offsets.items()}
        if wanted is not None:
            keep = {k: v for k, v in keep.items() if k in set(wanted)}
    else:
        keep = None if wanted is None else {n: None for n in wanted}
    # a frame's fields may be dissected at a later frame (the last segment of the PDU it is a
    # segment of): those frames are output too
    flt = None
    if wanted is not None:
        flt = frame_filter(wanted)
        flt = f"{flt} or {flt.replace('frame.number', 'tcp.segment', 1)}"
    parsed, err = _run(exe, capture, flt, timeout, keep)
    if parsed is None and err.startswith("filter:"):
        # tshark < 4.0 separates set elements with spaces
        parsed, err = _run(exe, capture, flt.replace(",", " "), timeout, keep)
    if parsed is None:
        return AppFields(None, err.removeprefix("filter:"))
    return AppFields(parsed, "")


def _run(exe: str, capture: str, flt: str | None, timeout: float,
         keep: dict[int, list[int]] | None) -> tuple[dict | None, str]:
    """Run tshark and parse its PDML as it streams out: ``(fields by frame, "")`` or
    ``(None, one line saying why)`` (``"filter:"`` in front when the display filter was refused)."""
    # No sequence analysis: with it, a segment tshark saw before is a "retransmission" and its
    # payload is not dissected.
    cmd = [exe, "-n", "-r", str(capture), *REASSEMBLY,
           "-o", "ip.defragment:FALSE", "-o", "tcp.analyze_sequence_numbers:FALSE"]
    cmd += (["-Y", flt] if flt is not None else []) + ["-T", "pdml"]
    with tempfile.TemporaryFile() as errfile:
        try:
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=errfile)
        except OSError as exc:
            return None, f"tshark could not run: {exc}"
        # the watchdog: a tshark that hangs (or a capture that makes it crawl) is killed at the
        # deadline, which ends the PDML stream and so the parse below
        timed_out = threading.Event()

        def kill() -> None:
            timed_out.set()
            proc.kill()
        timer = threading.Timer(timeout, kill)
        timer.daemon = True
        timer.start()
        parsed = problem = None
        try:
            parsed = _parse_pdml(proc.stdout, keep)
        except ET.ParseError as exc:
            problem = exc
        finally:
            if problem is not None or parsed is None:
                proc.kill()                  # nothing more is read: do not leave it writing
            proc.stdout.close()
            rc = proc.wait()
            timer.cancel()
        if timed_out.is_set():
            return None, f"tshark timed out after {timeout:g} s"
        if rc != 0:
            errfile.seek(0)
            lines = [ln for ln in errfile.read(1 << 16).decode("utf-8", "replace").splitlines()
                     if ln.strip() and "Running as user" not in ln]
            msg = lines[0].strip() if lines else f"exit status {rc}"
            is_filter = any("unexpected" in ln or "isn't a valid display filter" in ln for ln in lines)
            return None, ("filter:" if is_filter else "") + f"tshark failed: {msg}"
        if problem is not None:
            return None, f"tshark output not understood: {problem}"
        return parsed, ""


def _parse_pdml(stream, keep: dict[int, list[int]] | None = None) -> dict[int, list[AppField]]:
    """Frame number -> fields, from a PDML stream (read incrementally); only named, visible,
    non-empty fields whose bytes are in the capture's frames, and with ``keep`` (frame ->
    offsets, or None for all its fields) only the fields covering one of that frame's offsets
    (a frame absent from ``keep`` keeps none).

    A field of a PDU that TCP reassembled has its ``pos`` in the reassembled buffer, which is
    the concatenation of the payloads of the segments listed in ``tcp.segment`` (frame number,
    position, size).  Such a field is put back in each frame it covers (``_Packet.place``):
    one ``AppField`` per frame, with its part there (``pos``/``size``) and the whole field's
    size (``full``).  Which buffer a field is in is decided by its bytes (``value``): those of
    the reassembled buffer at ``pos``, or those of the frame's own TCP payload."""
    result: dict[int, dict[AppField, None]] = {}   # frame -> its fields, in order, once each
    payload_at: dict[int, int] = {}          # frame -> where its TCP payload starts (for the segments)
    stack: list[str] = []                    # the names of the open <proto>s
    ctx: list[str | None] = []               # the context of each open <field> (JSON member key)
    pk = None
    root = None
    protos = 0                               # serial number of the current <proto>
    seen: set[int] = set()                   # the frames tshark output
    for event, el in ET.iterparse(stream, events=("start", "end")):
        tag = el.tag
        if event == "start":
            if root is None:
                root = el                    # <pdml>: cleared of each finished packet below
            if tag == "proto":
                stack.append(el.get("name", ""))
                protos += 1
                if pk is not None:
                    pk.protos[protos] = stack[-1]
            elif tag == "packet":
                pk = _Packet()
                ctx = []
            elif tag == "field":
                outer = ctx[-1] if ctx else None
                if el.get("name") == "json.member" and el.get("show") is not None:
                    outer = "member " + el.get("show")
                ctx.append(outer)
            continue
        if tag == "proto":
            stack.pop()
        elif tag == "field":
            context = ctx.pop() if ctx else None
            if pk is None:
                continue
            name = el.get("name", "")
            proto = stack[-1] if stack else ""
            if proto == "geninfo":
                if name == "num":
                    pk.num = _int(el.get("show"))
                elif name == "caplen":
                    pk.caplen = _int(el.get("show"))
            if name == "tcp.payload":
                pk.payload = (_int(el.get("pos")), _hex(el.get("value")))
            if name == "tcp.segment":
                pk.segments.append((_int(el.get("show")), _int(el.get("pos")), _int(el.get("size"))))
            elif name == "tcp.reassembled.data":
                pk.reassembled = _hex(el.get("value"))
            if proto not in _SKIP_PROTOS and name and not name.startswith("_ws.") \
                    and el.get("hide") != "yes":
                pos, size = _int(el.get("pos")), _int(el.get("size"))
                if pos is not None and size:
                    pk.fields.append((name, pos, size, el.get("show", ""), el.get("value"),
                                      _header_context(name, el.get("value")) or context, protos))
        elif tag == "packet":
            if pk is not None and pk.num is not None:
                if pk.payload is not None and pk.payload[0] is not None:
                    payload_at[pk.num] = pk.payload[0]
                seen.add(pk.num)
                for frame, f in pk.place(payload_at):
                    if keep is not None:
                        offs = keep.get(frame, ())
                        if offs is not None and not any(f.pos <= o < f.end for o in offs):
                            continue
                    got = result.setdefault(frame, {})
                    got.setdefault(f, None)      # (a field output twice is kept once: memory is
                                                 # the distinct fields kept, whatever tshark writes)
            pk = None
            el.clear()                       # keep memory flat on big outputs: the packet's
            root.clear()                     # fields, and its (emptied) element in <pdml>
    out = {frame: list(fl) for frame, fl in result.items()}
    if keep is not None:
        for frame in keep:
            if frame in seen:
                out.setdefault(frame, [])
    return out


# the protocols before a frame's TCP payload (its own bytes, never a reassembled buffer's)
_HEADER_PROTOS = frozenset({"eth", "sll", "vlan", "ip", "ipv6", "tcp"})

# HTTP fields whose name does not say which header they are: the header's name is their context
_GENERIC_HTTP = ("http.response.line", "http.request.line", "http.unknown_header")


def _header_context(name: str, value: str | None) -> str | None:
    if name not in _GENERIC_HTTP:
        return None
    raw = _hex(value) or b""
    head, sep, _rest = raw.partition(b":")
    if not sep or not head or len(head) > 64 or not all(33 <= c < 127 for c in head):
        return None
    return "header " + head.decode("ascii")


def _hex(value: str | None) -> bytes | None:
    if not value:
        return None
    try:
        return bytes.fromhex(value)
    except ValueError:                       # a value PDML gives as text
        return None


class _Packet:
    """One PDML packet while it streams in: its number, its TCP payload (position, bytes), the
    segments of a PDU reassembled in it and that PDU's bytes, and its fields."""

    __slots__ = ("num", "caplen", "payload", "segments", "reassembled", "fields", "protos")

    def __init__(self):
        self.num = self.caplen = self.payload = self.reassembled = None
        self.segments: list = []
        self.fields: list = []
        self.protos: dict[int, str] = {}      # serial -> name of the packet's <proto>s

    def place(self, payload_at: dict):
        """``(frame, AppField)`` for each part of each field, in PDML order (see ``_parse_pdml``).
        A field whose bytes match only one buffer is in that one; one whose bytes match both
        (a byte or two that happen to be equal) or that has no bytes to check is in the buffer
        most of its protocol's fields are in (the frame when none decides); one whose bytes
        match neither is dropped (another data source)."""
        protos_of = self.protos
        own = self.payload[1] if self.payload is not None else None
        own_at = self.payload[0] if self.payload is not None else None
        segs = [(n, p, z) for n, p, z in self.segments
                if n is not None and p is not None and z and n in payload_at]
        reasm = self.reassembled if segs and self.reassembled is not None else None
        if reasm is None:                    # no reassembled PDU here: every field is the frame's
            for name, pos, size, show, _value, context, _proto in self.fields:
                if self.caplen is None or pos + size <= self.caplen:
                    yield self.num, AppField(name, pos, size, show, context)
            return
        votes: dict[int, int] = {}
        where = []
        for name, pos, size, show, value, context, proto in self.fields:
            raw = _hex(value)
            if raw is None or len(raw) != size:
                where.append(None)           # nothing to check: its protocol's buffer
                continue
            r_ok = reasm[pos:pos + size] == raw
            if own is None or own_at is None or pos < own_at:
                # before the frame's TCP payload: only the L2-L4 headers are the frame's there
                f_ok = protos_of.get(proto) in _HEADER_PROTOS and (self.caplen is None or pos + size <= self.caplen)
            else:
                f_ok = own[pos - own_at:pos - own_at + size] == raw
            side = "r" if r_ok and not f_ok else "f" if f_ok and not r_ok else "both" if r_ok else "neither"
            if side in ("r", "f"):
                votes[proto] = votes.get(proto, 0) + (1 if side == "r" else -1)
            where.append(side)
        for (name, pos, size, show, _value, context, proto), side in zip(self.fields, where):
            if side == "neither":
                continue                     # its bytes are in another data source
            if side in (None, "both"):
                side = "r" if votes.get(proto, 0) > 0 else "f"
            if side == "r":
                if pos + size <= len(reasm):
                    yield from self._pieces(name, pos, size, show, context, segs, payload_at)
            elif self.caplen is None or pos + size <= self.caplen:
                yield self.num, AppField(name, pos, size, show, context)

    def _pieces(self, name, pos, size, show, context, segs, payload_at):
        end = pos + size
        for n, start, length in segs:
            lo, hi = max(pos, start), min(end, start + length)
            if lo < hi:
                at = payload_at[n] + lo - start
                yield n, AppField(name, at, hi - lo, show, context, full=size)


def _int(s: str | None) -> int | None:
    try:
        return int(s) if s is not None else None
    except ValueError:
        return None


def app_field_at(fields: Iterable[AppField], offset: int, end: int | None = None) -> AppField | None:
    """The innermost field covering ``[offset, end)`` (default one byte): the smallest, the
    later (deeper in the tree) on ties; ``None`` if none covers it."""
    if end is None:
        end = offset + 1
    best = None
    for f in fields:
        if f.pos <= offset and end <= f.end and (best is None or f.whole <= best.whole):
            best = f
    return best
