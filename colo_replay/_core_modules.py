"""The modules of the compiled core: the per-frame path, compiled from these very ``.py`` files.

``setup.py`` compiles them with Cython when Cython and a C compiler are present (else the
package installs as pure Python), and ``colo_replay.engine.core_info`` / the import switch in
``colo_replay/__init__.py`` choose, for each of them, the compiled module or this source.  This
file imports nothing, so that ``setup.py`` can read it without importing the package.
"""

COMPILED_MODULES = (
    "colo_replay.engine.packet",
    "colo_replay.engine.connection",
    "colo_replay.engine.tcp",
    "colo_replay.engine.datagram",
    "colo_replay.engine.scan",
    "colo_replay.engine.compare",
    "colo_replay.captures.pcap",
    "colo_replay.offline.driver",
    "colo_replay.output.timeline",
)
