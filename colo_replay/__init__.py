"""colo-replay: QEMU colo-compare, exactly, on captures and on live sockets.

The public API:

* ``Engine`` — the sans-I/O colo-compare (``colo_replay.engine``)
* ``Event``, ``EventKind``, ``Cause`` — what the engine reports (``colo_replay.events``)
* ``PROFILES``, ``Profile``, ``CompareConfig`` — QEMU versions and properties (``colo_replay.profiles``)
* ``FrameDecoder``, ``encode_frame`` and the notify messages — the chardev codec (``colo_replay.framing``)
* ``replay(primary, secondary, **options) -> Timeline`` — the offline replay (``colo_replay.api``)
"""

from .api import Timeline, replay
from .engine import Engine, Connection
from .events import Cause, Event, EventKind
from .framing import (
    COLO_CHECKPOINT, COLO_COMPARE_GET_XEN_INIT, COLO_USERSPACE_PROXY_INIT, DO_CHECKPOINT,
    NET_BUFSIZE, Frame, FrameDecoder, Oversized, encode_frame,
)
from .packet import PRIMARY, SECONDARY, Packet
from .profiles import DEFAULT_PROFILE, PROFILES, CompareConfig, Profile, get_profile

__version__ = "0.1.0"

__all__ = [
    "replay", "Timeline", "Engine", "Connection", "Event", "EventKind", "Cause", "Packet", "PRIMARY", "SECONDARY",
    "PROFILES", "DEFAULT_PROFILE", "Profile", "CompareConfig", "get_profile",
    "FrameDecoder", "Frame", "Oversized", "encode_frame", "NET_BUFSIZE",
    "DO_CHECKPOINT", "COLO_CHECKPOINT", "COLO_USERSPACE_PROXY_INIT", "COLO_COMPARE_GET_XEN_INIT",
]
