"""Application fields (DNS, NTP, HTTP, TLS, ...) of a few frames, from tshark, in one run.

The L2-L4 fields are the package's own (``fields``); naming a differing byte inside a payload
(``ntp.xmt``, ``http.date``, ``dns.id``, ``tls.handshake.random``) needs Wireshark's
dissectors.  This module runs **raw tshark** (not pyshark: PDML already gives every field's
``name``, ``pos``, ``size`` and ``show``, and one subprocess needs no extra package) once over
the frames asked for (all of a file written for it, or a display filter):

    tshark -n -r FILE -o tcp.desegment_tcp_streams:FALSE -o ip.defragment:FALSE
           -o tcp.analyze_sequence_numbers:FALSE [-Y 'frame.number in {…}'] -T pdml

and parses the PDML with ``xml.etree.ElementTree.iterparse`` (standard library) **as it
streams out** of the pipe, keeping only the fields at the offsets asked for: memory is what is
kept, never tshark's whole output.  A watchdog kills tshark at a deadline that scales with the
frames (``tshark_timeout``): a hung tshark costs seconds.

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

import shutil
import subprocess
import tempfile
import threading
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Iterable, Mapping, NamedTuple

__all__ = ["AppField", "AppFields", "app_fields", "app_field_at", "frame_filter", "tshark_timeout"]

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
    capture) is absent.
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
    keep = None if offsets is None else {int(k): [int(o) for o in v] for k, v in offsets.items()}
    flt = frame_filter(wanted) if wanted is not None else None
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
    # No sequence analysis either: with it, a frame whose segment tshark saw before (the
    # secondary's copy of a primary, next to it in an explain's file) is a "retransmission"
    # and its payload is not dissected.
    cmd = [exe, "-n", "-r", str(capture), "-o", "tcp.desegment_tcp_streams:FALSE",
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
    non-empty fields that lie inside the frame, and with ``keep`` (frame -> offsets) only the
    fields covering one of that frame's offsets (a frame absent from ``keep`` keeps none)."""
    result: dict[int, list[AppField]] = {}
    stack: list[str] = []                    # the names of the open <proto>s
    num = caplen = None
    current: list[AppField] = []
    root = None
    for event, el in ET.iterparse(stream, events=("start", "end")):
        tag = el.tag
        if event == "start":
            if root is None:
                root = el                    # <pdml>: cleared of each finished packet below
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
            if num is not None and (keep is None or num in keep):
                fl = [f for f in current if caplen is None or f.end <= caplen]
                if keep is not None:
                    offs = keep[num]
                    fl = [f for f in fl if any(f.pos <= o < f.end for o in offs)]
                result[num] = fl
            current = []
            el.clear()                       # keep memory flat on big outputs: the packet's
            root.clear()                     # fields, and its (emptied) element in <pdml>
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
