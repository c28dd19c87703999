# Cython augmenting declarations for datagram.py (compiled core only): the extension types its
# @cython.locals name.
from colo_replay.engine.packet cimport Packet
from colo_replay.engine.connection cimport Connection
from colo_replay.engine.scan cimport ScanAndFlush

cdef class DatagramCompare(ScanAndFlush):
    pass
