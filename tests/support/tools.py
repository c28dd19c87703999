"""Outside tools a test needs: missing, the test FAILS (never skips), saying what to install.

A test that runs one carries the tool's marker (``@pytest.mark.wireshark``, ``tcpdump``, ...,
registered in pyproject.toml) so that ``-m`` selects or leaves it out truthfully; a green run
must mean it ran.
"""

from __future__ import annotations

import shutil

import pytest

INSTALL = {"tshark": "apt-get install tshark", "editcap": "apt-get install wireshark-common",
           "mergecap": "apt-get install wireshark-common", "text2pcap": "apt-get install wireshark-common",
           "tcpdump": "apt-get install tcpdump"}


def require(name: str) -> str:
    """The path of ``name``; fails the test at once when it is not installed."""
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed: this test needs it ({INSTALL.get(name, 'install it')}); "
                    f"it fails, never skips, without it", pytrace=False)
    return path
