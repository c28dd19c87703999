"""Application fields (DNS, NTP, HTTP, TLS, ...) of a few frames, from tshark, in one run.

The L2-L4 fields are the package's own (``fields``); naming a differing byte inside a payload
(``ntp.xmt``, ``http.date``, ``dns.id``, ``tls.handshake.random``) needs Wireshark's
dissectors.  This module runs **raw tshark** (not pyshark: PDML already gives every field's
``name``, ``pos``, ``size`` and ``show``, and one subprocess needs no extra package) ONCE over
only the frames involved:

    tshark -n -r FILE -o tcp.desegment_tcp_streams:FALSE -o ip.defragment:FALSE
           -o tcp.analyze_sequence_numbers:FALSE -Y 'frame.number in {…}' -T pdml

and parses the PDML with ``xml.etree.ElementTree.iterparse`` (standard library).

Reassembly is switched off on purpose: with it, a field of a PDU spanning segments is
reported in the last segment at a position in the *reassembled* buffer, not in the frame.
Without it every position is an offset in that frame's own bytes, as the package's offsets
are.  (Positions are in the capture's frame bytes: add a vnet header's length when comparing
with frames that carry one.)  Fields that do not fit inside their frame (other data sources,
e.g. decompressed bodies) are dropped.

Failure is an answer, not an exception: without tshark, on a timeout or an error,
``app_fields`` returns ``AppFields(None, reason)`` and the caller says so in one line.
"""

from __future__ import annotations

import io
import shutil
import subprocess
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Iterable, Mapping, NamedTuple

__all__ = ["AppField", "AppFields", "app_fields", "app_field_at", "frame_filter"]

# PDML protos that describe the capture, not the frame's bytes
_SKIP_PROTOS = {"geninfo", "frame", "fake-field-wrapper"}


@dataclass(frozen=True)
class AppField:
    """One field as tshark dissected it: ``pos``/``size`` in bytes from the start of the
    frame, ``show`` the displayed value (e.g. ``Thu, 26 Nov 2026 00:38:02 GMT``)."""

    name: str
    pos: int
    size: int
    show: str

    @property
    def end(self) -> int:
        return self.pos + self.size


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


def app_fields(capture: str, frames: Iterable[int], offsets: Mapping[int, Iterable[int]] | None = None,
               *, tshark: str | None = None, timeout: float = 120.0) -> AppFields:
    """The fields of the given frames (Wireshark 1-based numbers) of ``capture``.

    ``offsets`` (frame -> byte offsets), when given, keeps only the fields covering one of the
    offsets of that frame: what naming a differing byte needs, and much less to hold.
    ``tshark``: the binary (default: found on ``PATH``).  One tshark run for all frames; a
    frame tshark did not output (a number past the end of the capture) is absent.
    """
    wanted = sorted({int(n) for n in frames if int(n) > 0})
    if not wanted:
        return AppFields({}, "")
    exe = tshark or shutil.which("tshark")
    if not exe:
        return AppFields(None, "tshark not found: application fields (DNS, NTP, HTTP, TLS) not named")
    flt = frame_filter(wanted)
    out, err = _run(exe, capture, flt, timeout)
    if out is None and err.startswith("filter:"):
        # tshark < 4.0 separates set elements with spaces
        out, err = _run(exe, capture, flt.replace(",", " "), timeout)
    if out is None:
        return AppFields(None, err.removeprefix("filter:"))
    try:
        parsed = _parse_pdml(out)
    except ET.ParseError as exc:
        return AppFields(None, f"tshark output not understood: {exc}")
    if offsets is not None:
        keep = {int(k): [int(o) for o in v] for k, v in offsets.items()}
        parsed = {n: [f for f in fl if any(f.pos <= o < f.end for o in keep.get(n, ()))]
                  for n, fl in parsed.items()}
    return AppFields(parsed, "")


def _run(exe: str, capture: str, flt: str, timeout: float) -> tuple[bytes | None, str]:
    # No sequence analysis either: with it, a frame whose segment tshark saw before (the
    # secondary's copy of a primary, next to it in an explain's file) is a "retransmission"
    # and its payload is not dissected.
    cmd = [exe, "-n", "-r", str(capture), "-o", "tcp.desegment_tcp_streams:FALSE",
           "-o", "ip.defragment:FALSE", "-o", "tcp.analyze_sequence_numbers:FALSE", "-Y", flt, "-T", "pdml"]
    try:
        proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None, f"tshark timed out after {timeout:g} s"
    except OSError as exc:
        return None, f"tshark could not run: {exc}"
    if proc.returncode != 0:
        lines = [ln for ln in proc.stderr.decode("utf-8", "replace").splitlines()
                 if ln.strip() and "Running as user" not in ln]
        msg = lines[0].strip() if lines else f"exit status {proc.returncode}"
        is_filter = any("unexpected" in ln or "isn't a valid display filter" in ln for ln in lines)
        return None, ("filter:" if is_filter else "") + f"tshark failed: {msg}"
    return proc.stdout, ""


def _parse_pdml(data: bytes) -> dict[int, list[AppField]]:
    """Frame number -> fields, from PDML; only named, visible, non-empty fields that lie
    inside the frame."""
    result: dict[int, list[AppField]] = {}
    stack: list[str] = []                    # the names of the open <proto>s
    num = caplen = None
    current: list[AppField] = []
    for event, el in ET.iterparse(io.BytesIO(data), events=("start", "end")):
        tag = el.tag
        if event == "start":
            if tag == "proto":
                stack.append(el.get("name", ""))
            elif tag == "packet":
                num = caplen = None
                current = []
            continue
        if tag == "proto":
            stack.pop()
        elif tag == "field":
            name = el.get("name", "")
            proto = stack[-1] if stack else ""
            if proto == "geninfo":
                if name == "num":
                    num = _int(el.get("show"))
                elif name == "caplen":
                    caplen = _int(el.get("show"))
            elif proto not in _SKIP_PROTOS and name and not name.startswith("_ws.") \
                    and el.get("hide") != "yes":
                pos, size = _int(el.get("pos")), _int(el.get("size"))
                if pos is not None and size:
                    current.append(AppField(name, pos, size, el.get("show", "")))
        elif tag == "packet":
            if num is not None:
                result[num] = [f for f in current if caplen is None or f.end <= caplen]
            el.clear()                       # keep memory flat on big outputs
    return result


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
        if f.pos <= offset and end <= f.end and (best is None or f.size <= best.size):
            best = f
    return best
