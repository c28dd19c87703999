"""colo-replay: QEMU colo-compare, exactly, on captures and on live sockets.

The house (import arrows point inwards: cli -> api -> analysis / offline / live -> output /
captures -> engine; never the reverse):

* ``colo_replay.engine``    the sans-I/O colo-compare (``Engine``, events, profiles, framing)
* ``colo_replay.captures``  pcap/pcapng readers and writers, BPF, TCP stream reassembly
* ``colo_replay.offline``   the replay driver, checkpoint model, filter-rewriter, guest selection,
  clock alignment, chardev captures and verify
* ``colo_replay.live``      the engine on real sockets speaking colo-compare's chardev protocol
* ``colo_replay.output``    the timeline and the summary
* ``colo_replay.analysis``  answers on top of the timeline
* ``colo_replay.api``       every command's work as a function
* ``colo_replay.cli``       the click commands

The names below are loaded on first use, so ``import colo_replay`` stays cheap and
``from colo_replay import Engine`` does not load pandas or any capture reader.
"""

from importlib import import_module

__version__ = "0.1.0"

# name -> module that defines it (loaded lazily by __getattr__, PEP 562)
_LAZY = {
    "replay": ".api", "replay_chardev": ".api", "Timeline": ".api", "explain": ".api",
}
for _name in ("Engine", "Connection", "Event", "EventKind", "Cause", "Packet", "PRIMARY", "SECONDARY",
              "PROFILES", "DEFAULT_PROFILE", "Profile", "CompareConfig", "get_profile",
              "FrameDecoder", "Frame", "Oversized", "encode_frame", "NET_BUFSIZE",
              "DO_CHECKPOINT", "COLO_CHECKPOINT", "COLO_USERSPACE_PROXY_INIT", "COLO_COMPARE_GET_XEN_INIT"):
    _LAZY[_name] = ".engine"

__all__ = sorted(_LAZY)


def __getattr__(name: str):
    try:
        module = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'colo_replay' has no attribute {name!r}") from None
    value = getattr(import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
