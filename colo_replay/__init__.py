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

The compiled core: the modules in ``COMPILED_MODULES`` are compiled by ``setup.py`` (Cython,
from these same ``.py`` files) when a C compiler is present; Python then loads the compiled
module instead of the source.  ``COLO_REPLAY_CORE=interpreted`` in the environment makes this
package load the ``.py`` sources even so (the tests run both cores); ``COLO_REPLAY_CORE=compiled``
refuses to run without the compiled modules.  ``colo_replay.engine.core_info`` says which runs.
"""

import os as _os
import sys as _sys
from importlib import import_module

__version__ = "0.1.0"

# The per-frame path (read by setup.py too, as text: keep it one literal tuple)
COMPILED_MODULES = (
    "colo_replay.engine.packet",
    "colo_replay.engine.eventlog",
    "colo_replay.engine.connection",
    "colo_replay.engine.state",
    "colo_replay.engine.tcp",
    "colo_replay.engine.datagram",
    "colo_replay.engine.scan",
    "colo_replay.engine.compare",
    "colo_replay.captures.pcap",
    "colo_replay.offline.driver",
    "colo_replay.offline.resync",
    "colo_replay.output.timeline",
    "colo_replay.live.lean",
)
CORE_ENV = "COLO_REPLAY_CORE"
CORE_CHOICE = _os.environ.get(CORE_ENV, "auto") or "auto"
# An unknown choice: ``import colo_replay`` still works, so that the command line can say so in
# one line (exit 2); importing a module of the core raises ImportError with this message.
CORE_ERROR = (None if CORE_CHOICE in ("auto", "compiled", "interpreted")
              else f"{CORE_ENV}={CORE_CHOICE!r}: use compiled, interpreted or auto")


class _CoreFinder:
    """Finds the modules of COMPILED_MODULES as the ``.py`` source ("interpreted") or only as
    the compiled extension ("compiled"); installed only when COLO_REPLAY_CORE asks for one."""

    def __init__(self, choice: str):
        self.choice = choice

    def find_spec(self, name, path=None, target=None):
        if name not in COMPILED_MODULES or not path:
            return None
        if CORE_ERROR:
            raise ImportError(CORE_ERROR)
        from importlib.machinery import EXTENSION_SUFFIXES, ExtensionFileLoader, SourceFileLoader
        from importlib.util import spec_from_file_location
        leaf = name.rpartition(".")[2]
        for folder in path:
            source = _os.path.join(folder, leaf + ".py")
            if self.choice == "interpreted" and _os.path.exists(source):
                return spec_from_file_location(name, source, loader=SourceFileLoader(name, source))
            if self.choice == "compiled":
                for suffix in EXTENSION_SUFFIXES:
                    ext = _os.path.join(folder, leaf + suffix)
                    if _os.path.exists(ext):
                        return spec_from_file_location(name, ext, loader=ExtensionFileLoader(name, ext))
                raise ImportError(f"{CORE_ENV}=compiled, but {name} is not compiled here (install with a C "
                                  f"compiler present, or run: python setup.py build_ext --inplace)")
        return None


if CORE_CHOICE != "auto":
    _sys.meta_path.insert(0, _CoreFinder(CORE_CHOICE))

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
