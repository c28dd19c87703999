# Cython augmenting declarations for tcp.py (compiled core only): the extension types its
# @cython.locals name.
from colo_replay.engine.packet cimport Packet, _equal_at
from colo_replay.engine.connection cimport Connection
from colo_replay.engine.datagram cimport DatagramCompare

cdef class TcpCompare(DatagramCompare):
    pass
