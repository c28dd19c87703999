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
