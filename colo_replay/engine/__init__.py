"""The sans-I/O engine: QEMU's colo-compare with no files, sockets or clocks.

* ``compare``    ``Engine`` and ``Connection``: the public API, the input path (``feed``'s fast
                 path), the connection table and queues; ``Engine`` inherits the parts below
* ``tcp``        TCP compare (colo_compare_tcp, colo_mark_tcp_pkt, the payload compare)
* ``datagram``   UDP / ICMP / other compare (colo_compare_packet)
* ``scan``       expiry scans and the checkpoint flush
* ``state``      ``EngineState``: the engine's fields, declared once (the parts above chain on it)
* ``core_info``  which core runs: compiled (Cython, from these same files) or interpreted
* ``constants``  MS, NEVER and QEMU's 32-bit sequence arithmetic (``seq_after`` = after())
* ``packet``     ``Packet``: one frame and the header fields QEMU parses from it
* ``events``     ``Event``, ``EventKind``, ``Cause``: what the engine reports
* ``profiles``   one table of behaviour switches per behaviour row (A..K), and ``CompareConfig``
* ``releases``   release strings ("6.2.0", "1:8.2.2+ds-0ubuntu1.4", "row:G") -> row and profile
* ``framing``    the chardev byte-stream codec (``FrameDecoder``, ``encode_frame``, notify messages)
* ``fastframes`` a fast front for ``framing`` used by live mode's read loop

This package imports nothing else of colo_replay, and neither pandas, click, asyncio nor pyarrow:
every driver (offline replay, live sockets, analysis) is built around it, never inside it.
"""

from .compare import Engine
from .connection import Connection
from .events import Cause, Event, EventKind
from .framing import (
    COLO_CHECKPOINT, COLO_COMPARE_GET_XEN_INIT, COLO_USERSPACE_PROXY_INIT, DO_CHECKPOINT,
    NET_BUFSIZE, Frame, FrameDecoder, Oversized, encode_frame,
)
from .packet import PRIMARY, SECONDARY, Packet
from .profiles import DEFAULT_PROFILE, PROFILES, ROWS, CompareConfig, Profile
from .releases import Release, get_profile, release_profile, resolve_release

__all__ = [
    "Engine", "Connection", "Event", "EventKind", "Cause", "Packet", "PRIMARY", "SECONDARY",
    "PROFILES", "DEFAULT_PROFILE", "ROWS", "Profile", "CompareConfig", "get_profile",
    "Release", "resolve_release", "release_profile",
    "FrameDecoder", "Frame", "Oversized", "encode_frame", "NET_BUFSIZE",
    "DO_CHECKPOINT", "COLO_CHECKPOINT", "COLO_USERSPACE_PROXY_INIT", "COLO_COMPARE_GET_XEN_INIT",
]
