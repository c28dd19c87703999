"""Which field a differing byte most likely is, when tshark cannot say: the capture holds only
one direction of the connection, and the dissector needs the other (SSH decides what is
encrypted from both sides' key exchange; an HTTP response to HEAD has no body only if the
request was HEAD; DNS over TCP and some TLS need both too).

A guess reads the frame's TCP payload itself, for the few layouts that are fixed (an SSH
KEXINIT, an HTTP/1.x header block, a JSON member).  Each guesser is ``(bytes of the payload,
offset in it) -> Likely (or a (field, why) pair) or None``; ``GUESSERS`` is the table
``likely_field`` tries in order.  A guess is reported as such ("most likely"), never as
tshark's name.
"""

from __future__ import annotations

import re
import struct
from typing import Callable, NamedTuple

__all__ = ["GENERIC_FIELDS", "GUESSERS", "Likely", "likely_field"]


class Likely(NamedTuple):
    """A guess: the field's Wireshark name, what it is (a few words), its context (``member
    KEY``, ``header NAME``) and, when the layout says, where its value is in the payload
    (``start``, ``end``)."""

    name: str
    what: str
    context: str | None = None
    span: tuple[int, int] | None = None

GENERIC_FIELDS = frozenset({"", "tcp.payload", "tcp.segment_data", "data", "data.data", "ssh.encrypted_packet"})
"""Names that say only "bytes of a payload": with one of these (or none) from tshark on a
one-direction capture, a guess is worth giving."""

SSH_KEXINIT = 20
SSH_COOKIE_LEN = 16
SSH_PACKET_HDR = 5          # uint32 packet_length, byte padding_length


def _ssh(payload: bytes, offset: int):
    """An SSH KEXINIT in cleartext (after an optional ``SSH-2.0-...`` banner line): its
    16-byte cookie, and the message code and lengths before it."""
    start = 0
    if payload.startswith(b"SSH-"):
        eol = payload.find(b"\r\n")
        if eol < 0:
            return ("ssh.protocol", "the SSH identification banner") if offset < len(payload) else None
        if offset < eol + 2:
            return "ssh.protocol", "the SSH identification banner"
        start = eol + 2
    if len(payload) < start + SSH_PACKET_HDR + 1:
        return None
    plen = struct.unpack_from("!I", payload, start)[0]
    if payload[start + SSH_PACKET_HDR] != SSH_KEXINIT or not 16 <= plen <= 35000:
        return None
    rel = offset - start
    if rel < 4:
        return "ssh.packet_length", "the length of the KEXINIT packet"
    if rel == 4:
        return "ssh.padding_length", "the padding length of the KEXINIT packet"
    if rel == 5:
        return "ssh.message_code", "the KEXINIT message code"
    if rel < SSH_PACKET_HDR + 1 + SSH_COOKIE_LEN:
        at = start + SSH_PACKET_HDR + 1
        return Likely("ssh.cookie", "the 16 random bytes of the KEXINIT, the key exchange init", None,
                      (at, at + SSH_COOKIE_LEN))
    if rel < 4 + plen:
        return "ssh.kex_algorithms", "the KEXINIT's algorithm lists"
    return None


_HTTP_START = re.compile(rb"^HTTP/1\.[01] \d{3} ")
_HEADER = re.compile(rb"([!-9;-~]+):[ \t]*")
# a JSON member's key and the start of its value, e.g. `"time_ns": 17`
_MEMBER = re.compile(rb'"((?:[^"\\]|\\.){1,128})"\s*:\s*')
_JSON_VALUE = {ord('"'): "json.value.string", ord("t"): "json.value.true", ord("f"): "json.value.false",
               ord("n"): "json.value.null"}


def _http_json(payload: bytes, offset: int):
    """An HTTP/1.x response's header line (``http.date`` for Date, else the line with its header
    name), or a JSON member's value (with its key) in a body, or a payload that is JSON alone
    (a response body in its own segment, whose headers tshark did not connect to it)."""
    body_at = 0
    if _HTTP_START.match(payload):
        end = payload.find(b"\r\n\r\n")
        if end < 0 or offset < end + 4:
            line_start = payload.rfind(b"\r\n", 0, offset + 1)
            line_start = 0 if line_start < 0 else line_start + 2
            if line_start == 0:
                return Likely("http.response.line", "the HTTP status line")
            m = _HEADER.match(payload, line_start)
            if m is None:
                return None
            name = m.group(1).decode("ascii")
            eol = payload.find(b"\r\n", m.end())
            span = (m.end(), eol if eol >= 0 else len(payload))
            known = {"date": "http.date", "set-cookie": "http.set_cookie", "last-modified": "http.last_modified",
                     "content-length": "http.content_length_header", "server": "http.server"}
            field = known.get(name.lower())
            if field:
                return Likely(field, f"the HTTP {name} header", None, span)
            return Likely("http.response.line", f"the HTTP header line {name}", f"header {name}", span)
        body_at = end + 4
    body = payload[body_at:]
    if not body.lstrip()[:1] in (b"{", b"["):
        return None
    rel = offset - body_at
    last = None
    for m in _MEMBER.finditer(body, 0, rel + 1):
        if m.end() <= rel:
            last = m
    if last is None:
        return None
    start = last.end()
    token = re.match(rb'"(?:[^"\\]|\\.)*"|[-+0-9.eE]+|true|false|null', body[start:])
    if token is None or not start <= rel < start + max(1, len(token.group(0))):
        return None
    key = last.group(1).decode("utf-8", "replace")
    field = _JSON_VALUE.get(body[start], "json.value.number")
    tok = token.group(0)
    span = (body_at + start + 1, body_at + start + len(tok) - 1) if tok.startswith(b'"') else \
        (body_at + start, body_at + start + len(tok))
    return Likely(field, f"the value of JSON member {key}", f"member {key}", span)


GUESSERS: tuple[Callable, ...] = (_ssh, _http_json)


def likely_field(payload: bytes, offset: int) -> Likely | None:
    """The field the byte at ``offset`` of a TCP ``payload`` most likely is, or None."""
    if not 0 <= offset < len(payload):
        return None
    for guess in GUESSERS:
        found = guess(payload, offset)
        if found is not None:
            return found if isinstance(found, Likely) else Likely(*found)
    return None
