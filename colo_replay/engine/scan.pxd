# Cython augmenting declarations for scan.py (compiled core only): a part of the engine's chain.
from colo_replay.engine.state cimport EngineState
from colo_replay.engine.packet cimport Packet

cdef class ScanAndFlush(EngineState):
    pass
