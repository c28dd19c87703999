# Cython augmenting declarations for timeline.py (compiled core only): the extension type its
# @cython.locals name.
from colo_replay.engine.packet cimport Packet
