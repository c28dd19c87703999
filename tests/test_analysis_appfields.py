"""analysis.appfields against the real tshark on the sample pair, and the L2-L4 naming of the
sample's real divergences."""

import pytest

from colo_replay.analysis.appfields import AppFields, app_field_at, app_fields, frame_filter
from colo_replay.analysis.fields import (compare_start, dissect, explaining_difference, field_at,
                                         first_difference, payload_offset)
from colo_replay.analysis.hexdiff import hexdiff
from tests.support.pcapread import read_pcap_frames
from tests.support.tools import require

PRI, SEC = "sample_pcaps/primary.pcap", "sample_pcaps/secondary.pcap"


def test_frame_filter_folds_ranges():
    assert frame_filter([9, 3, 7, 8, 3, 0]) == "frame.number in {3,7..9}"


def test_without_tshark_returns_a_reason():
    r = app_fields(PRI, [1], tshark="/nonexistent/tshark")
    assert isinstance(r, AppFields) and r.frames is None and "tshark" in r.reason
    assert app_fields(PRI, []) == AppFields({}, "")


@pytest.mark.wireshark
def test_http_date_position_and_value():
    require("tshark")
    frames = read_pcap_frames(PRI)
    # the HTTP responses of the sample: the ones whose payload starts with a status line
    http = [n for n, b in frames.items()
            if dissect(b).protocol == "tcp" and b[dissect(b).payload_off:].startswith(b"HTTP/1.1 ")]
    assert len(http) >= 5
    r = app_fields(PRI, http[:5] + [99999])        # a number past the end is simply absent
    assert r.reason == "" and sorted(r.frames) == sorted(http[:5])
    for n in http[:5]:
        data = frames[n]
        date = next(f for f in r.frames[n] if f.name == "http.date")
        # the position is in the frame's own bytes (reassembly off)
        assert data[date.pos:date.end].startswith(b"Date: " + date.show.encode())
        assert date.show.endswith(" GMT")
        inner = app_field_at(r.frames[n], date.pos + 10)
        assert inner.name == "http.date"
        # the package's own dissector agrees that this is TCP payload
        assert field_at(data, date.pos).name == "tcp.payload"
        assert payload_offset(data, date.pos) == date.pos - dissect(data).payload_off


@pytest.mark.wireshark
def test_offsets_keep_only_covering_fields_and_errors_do_not_raise():
    require("tshark")
    frames = read_pcap_frames(PRI)
    n = next(n for n, b in frames.items() if b"\r\nDate: " in b)
    pos = frames[n].index(b"\r\nDate: ") + 2
    r = app_fields(PRI, [n], {n: [pos + 3]})
    assert r.frames[n] and all(f.pos <= pos + 3 < f.end for f in r.frames[n])
    assert app_field_at(r.frames[n], pos + 3).name == "http.date"
    bad = app_fields("sample_pcaps/does-not-exist.pcap", [1])
    assert bad.frames is None and bad.reason.startswith("tshark failed")


def test_sample_stat_reply_divergence_is_named():
    """A 'stat' UDP reply (7777): the checksum differs first, the payload is what differs."""
    P, S = read_pcap_frames(PRI), read_pcap_frames(SEC)
    n = next(n for n, b in P.items() if dissect(b).protocol == "udp" and dissect(b).sport == 7777)
    p, s = P[n], S[n]
    assert len(p) == len(s)
    cs = compare_start(p)
    assert cs == 34
    first = first_difference(p, s, cs)
    assert field_at(p, first).name == "udp.checksum"
    off = explaining_difference(p, s, cs)
    assert field_at(p, off).name == "udp.payload"
    assert p[dissect(p).payload_off:off] == s[dissect(s).payload_off:off]
    assert b"time_ns=" in p[dissect(p).payload_off:off]          # the server clocks differ
    h = hexdiff(p, s, off)
    assert any(any(r.differ) for r in h.rows)


def test_sample_api_now_divergence_is_tcp_payload():
    P, S = read_pcap_frames(PRI), read_pcap_frames(SEC)
    n = next(n for n, b in P.items() if b'{"time_ns": ' in b)
    p = P[n]
    s = next(b for b in S.values() if b'{"time_ns": ' in b)
    off = first_difference(p, s, compare_start(p), compare_start(s))
    assert field_at(p, off).name == "tcp.payload"
    assert p[compare_start(p):off].startswith(b'{"time_ns": ')


REAL = "tests/data/real-corpus"


@pytest.mark.wireshark
def test_a_json_body_in_its_own_segment_is_named_by_member_at_its_frame():
    """json-api: the HTTP headers are frame 6, the JSON body frame 8.  With reassembly tshark
    dissects the response at frame 8, positions in the reassembled buffer; each field comes
    back at its own frame and offset (the bytes there are the field's), with the member key."""
    require("tshark")
    cap = f"{REAL}/json-api/primary.pcap"
    frames = read_pcap_frames(cap)
    body_at = frames[8].index(b'"request_id": "') + len(b'"request_id": ')
    date_at = frames[6].index(b"Date: ")
    r = app_fields(cap, None, {8: [body_at + 5], 6: [date_at + 10]})
    assert r.reason == ""
    value = app_field_at(r.frames[8], body_at + 5)
    assert (value.name, value.context, value.pos, value.size) == ("json.value.string", "member request_id",
                                                                  body_at, 38)
    assert frames[8][value.pos:value.end] == b'"' + value.show.encode() + b'"'
    # the Date header is dissected at frame 8 (the PDU's last segment) and put back in frame 6
    date = app_field_at(r.frames[6], date_at + 10)
    assert date.name == "http.date" and date.pos == date_at
    assert frames[6][date.pos:date.end] == b"Date: " + date.show.encode() + b"\r\n"
    # asking for frame 6 alone outputs frame 8 too (tcp.segment in {6}), for its fields
    alone = app_fields(cap, [6])
    assert sorted(alone.frames) == [6]
    assert app_field_at(alone.frames[6], date_at + 10).name == "http.date"


@pytest.mark.wireshark
def test_ssh_needs_both_directions():
    """ssh-kexinit: with the client's frames tshark names the KEXINIT cookie; with the server's
    only (ssh-outbound-only, the same frames) it calls the packet encrypted: why explain gives
    tshark a connection's both directions, and guesses when the capture has one."""
    require("tshark")
    both = app_fields(f"{REAL}/ssh-kexinit/primary.pcap", None, {6: [98]})
    assert app_field_at(both.frames[6], 98).name == "ssh.cookie"
    one = app_fields(f"{REAL}/ssh-outbound-only/primary.pcap", None, {3: [98]})
    assert app_field_at(one.frames[3], 98).name == "ssh.encrypted_packet"
    assert read_pcap_frames(f"{REAL}/ssh-outbound-only/primary.pcap")[3] == \
        read_pcap_frames(f"{REAL}/ssh-kexinit/primary.pcap")[6]


def test_reassembled_fields_are_placed_by_their_bytes():
    """PDML of a PDU over two segments (frames 1 and 2: payloads at 66): the fields after the
    segment list are in the reassembled buffer and are split over the frames they cover; a
    field whose bytes are not those of the buffer at its position is dropped."""
    import io
    from colo_replay.analysis.appfields import _parse_pdml
    one, two = b"HTTP/1.0 200 OK\r\n\r\n", b'{"id": "abc"}'
    whole = one + two
    quoted = b'"abc"'

    def f(name, pos, data, show=""):
        return f'<field name="{name}" pos="{pos}" size="{len(data)}" show="{show}" value="{data.hex()}"/>'
    pdml = ('<pdml><packet><proto name="geninfo"><field name="num" show="1"/><field name="caplen" show="'
            f'{66 + len(one)}"/></proto><proto name="tcp">{f("tcp.payload", 66, one)}</proto></packet>'
            '<packet><proto name="geninfo"><field name="num" show="2"/><field name="caplen" show="'
            f'{66 + len(two)}"/></proto><proto name="tcp">{f("tcp.payload", 66, two)}</proto>'
            '<proto name="fake-field-wrapper"><field name="tcp.segments" pos="0" size="32">'
            f'<field name="tcp.segment" pos="0" size="{len(one)}" show="1"/>'
            f'<field name="tcp.segment" pos="{len(one)}" size="{len(two)}" show="2"/>'
            f'{f("tcp.reassembled.data", 0, whole)}</field></proto>'
            f'<proto name="http">{f("http.response.version", 0, b"HTTP/1.0")}'
            f'{f("http.file_data", len(one), two)}{f("http.bogus", 3, b"zz")}</proto>'
            f'<proto name="json"><field name="json.member" pos="{len(one) + 1}" size="11" show="id">'
            f'{f("json.value.string", len(one) + 7, quoted, "abc")}</field></proto>'
            '</packet></pdml>')
    got = _parse_pdml(io.BytesIO(pdml.encode()))
    v1 = {x.name: (x.pos, x.size) for x in got[1]}
    assert v1["http.response.version"] == (66, 8) and "http.bogus" not in v1
    v2 = {x.name: x for x in got[2]}
    js = v2["json.value.string"]
    assert (js.pos, js.size, js.context) == (66 + 7, 5, "member id")
    assert v2["http.file_data"].pos == 66 and v2["tcp.payload"].pos == 66
