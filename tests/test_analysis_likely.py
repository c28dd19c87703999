"""analysis.likely: the field a byte most likely is, read from the payload itself, for the
captures where tshark needs the direction that is missing; and explain's chain of consequences."""

import struct

from colo_replay.analysis.explain import Divergence, _chain_consequences
from colo_replay.analysis.likely import likely_field


def _kexinit(cookie: bytes) -> bytes:
    payload = bytes([20]) + cookie + struct.pack("!I", 8) + b"x" * 8
    pad = 4
    return struct.pack("!IB", len(payload) + pad + 1, pad) + payload + b"\0" * pad


def test_ssh_kexinit_cookie_after_the_banner():
    banner = b"SSH-2.0-dropbear_2022.83\r\n"
    p = banner + _kexinit(b"\x11" * 16)
    start = len(banner)
    assert likely_field(p, 3)[0] == "ssh.protocol"
    assert likely_field(p, start)[0] == "ssh.packet_length"
    assert likely_field(p, start + 5)[0] == "ssh.message_code"
    assert all(likely_field(p, start + 6 + i)[0] == "ssh.cookie" for i in range(16))
    assert p[slice(*likely_field(p, start + 9).span)] == b"\x11" * 16
    assert likely_field(p, start + 22)[0] == "ssh.kex_algorithms"
    assert likely_field(_kexinit(b"\x22" * 16), 6)[0] == "ssh.cookie"           # no banner before it


def test_http_headers_and_json_members():
    resp = b"HTTP/1.1 200 OK\r\nDate: Mon, 07 Dec 2026 09:47:04 GMT\r\nX-Request: 42\r\n\r\n"
    body = b'{"status": "ok", "time_ns": 1795653482695441820, "ok": true}'
    p = resp + body
    date = likely_field(p, resp.index(b"09:47"))
    assert date.name == "http.date" and date.context is None
    assert p[date.span[0]:date.span[1]] == b"Mon, 07 Dec 2026 09:47:04 GMT"
    line = likely_field(p, resp.index(b"42"))
    assert (line.name, line.context, p[slice(*line.span)]) == ("http.response.line", "header X-Request", b"42")
    at = len(resp) + body.index(b"2695")
    num = likely_field(p, at)
    assert (num.name, num.what, num.context) == ("json.value.number", "the value of JSON member time_ns",
                                                 "member time_ns")
    assert p[slice(*num.span)] == b"1795653482695441820"
    assert body[slice(*likely_field(body, body.index(b'ok"')).span)] == b"ok"
    # a body in its own segment
    assert likely_field(body, body.index(b"ok\""))[2] == "member status"
    assert likely_field(body, body.index(b"true"))[0] == "json.value.true"
    assert likely_field(body, body.index(b"time_ns")) is None                  # a key, not a value
    assert likely_field(b"\x17\x03\x03\x00\x10" + b"\x99" * 16, 7) is None      # nothing to guess


def _div(request, field, sport=4433, time_ns=None):
    d = Divergence(request=request, episode=request, concurrent=False, time_ns=time_ns or request * 1000,
                   cause="miscompare", side="primary", conn=0,
                   flow={"src": "10.0.0.1", "dst": "10.0.0.2", "sport": sport, "dport": 40000},
                   protocol="tcp", primary_frame=request * 10, secondary_frame=request * 10, consequences=0,
                   checkpoints=1)
    d.fields = [{"name": field, "primary": None, "secondary": None}]
    return d


def test_later_divergences_after_a_key_difference_chain_to_their_root():
    root = _div(1, "tls.handshake.random")
    later = _div(2, "tls.app_data")
    payload = _div(3, "tcp.payload")
    other_flow = _div(4, "tls.app_data", sport=4434)
    independent = _div(5, "http.date")
    built = [(i, d) for i, d in enumerate([root, later, payload, other_flow, independent])]
    _chain_consequences(built)
    assert later.consequence_of == 1 and payload.consequence_of == 1
    assert other_flow.consequence_of is None          # another connection: its own root
    assert independent.consequence_of is None         # a cleartext field: an independent cause
    assert [c["request"] for c in root.details["chain"]] == [2, 3]
    assert root.checkpoints == 3 and root.consequences == 2
    assert any("consequence of #1" in n for n in later.notes)


def test_a_value_the_server_set_and_carries_on_chains_to_its_root():
    """A session id set in one response and carried in a later one (another connection of the
    same server and client): the later divergence is a consequence; a different value there
    (an independent cause), or the same value to another client, is not; nor is a value that
    merely recurs after a root in a field that sets nothing (the same bytes differing in every
    datagram: a class of independent divergences)."""
    from types import SimpleNamespace
    sid = b"a527bb5c-281b-4125-87b0-7478e1c0eda6"
    sid2 = b"b9fe952b-ad1a-422a-8ecc-2a80742c4a86"
    login = _div(1, "http.set_cookie", sport=8081)
    carried = _div(2, "json.value.string", sport=8081)
    other_value = _div(3, "json.value.string", sport=8081)
    other_client = _div(4, "json.value.string", sport=8081)
    other_client.flow = dict(other_client.flow, dst="10.0.0.9")
    frames = {0: {}, 1: {}}
    for d, data in ((login, b"Set-Cookie: sid=" + sid + b"; Path=/"), (carried, b'{"session": "' + sid + b'"}'),
                    (other_value, b'{"session": "0fe0c3a1-7d5e-4c1b-9a0e-1b2c3d4e5f60"}'),
                    (other_client, b'{"session": "' + sid + b'"}')):
        frames[0][d.primary_frame] = SimpleNamespace(data=data)
        frames[1][d.secondary_frame] = SimpleNamespace(data=data.replace(sid, sid2))
        d.offset = d.secondary_offset = data.index(b"-") - 3 if d is not login else data.index(sid) + 2
    _chain_consequences([(i, d) for i, d in enumerate([login, carried, other_value, other_client])], frames)
    assert carried.consequence_of == 1
    assert other_value.consequence_of is None and other_client.consequence_of is None
    assert [c["request"] for c in login.details["chain"]] == [2]
    # a recurring value after a root that sets nothing: every datagram is its own root
    first, again = _div(5, "udp.payload", sport=7000), _div(6, "udp.payload", sport=7000)
    for d in (first, again):
        frames[0][d.primary_frame] = SimpleNamespace(data=b"Date: 00000001 xxxxxxxxxxxxxxxx")
        frames[1][d.secondary_frame] = SimpleNamespace(data=b"Date: 00000001 xxxxxxxxxxxxxxxy")
        d.offset = d.secondary_offset = 30
    _chain_consequences([(0, first), (1, again)], frames)
    assert again.consequence_of is None
