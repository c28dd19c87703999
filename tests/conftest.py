"""Markers that follow from the fixtures a test uses.

Some fixtures run an outside tool for every test that asks for them; a test using one gets that
tool's marker here, so ``-m`` selects it truthfully (markers are registered in pyproject.toml):

* ``caps`` (tests/test_captures.py) captures on the loopback interface with tcpdump and converts
  the capture with Wireshark's editcap / mergecap / text2pcap: ``tcpdump`` and ``wireshark``;
* ``two_way_capture`` (tests/test_guest_and_rewriter.py) runs tcpdump in a network namespace:
  ``tcpdump``;
* ``sample_raw`` (tests/test_explain.py) explains the sample pair with tshark's application
  fields: ``wireshark``.

Tests that call a tool themselves carry the marker as a decorator.
"""

from __future__ import annotations

import pytest

FIXTURE_MARKS = {
    "caps": ("tcpdump", "wireshark"),
    "two_way_capture": ("tcpdump",),
    "sample_raw": ("wireshark",),
}


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items):
    for item in items:
        for fixture in getattr(item, "fixturenames", ()):
            for mark in FIXTURE_MARKS.get(fixture, ()):
                item.add_marker(mark)


def pytest_report_header(config):
    """Which colo_replay the run tests, and which core (compiled or interpreted) it runs."""
    import os

    import colo_replay
    from colo_replay.engine import core_info
    return f"colo_replay: {os.path.dirname(colo_replay.__file__)}, {core_info.describe()}"
