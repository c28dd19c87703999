# Cython augmenting declarations for compare.py (compiled core only): the extension types its
# @cython.locals name.
from colo_replay.engine.packet cimport Packet
from colo_replay.engine.connection cimport Connection
from colo_replay.engine.tcp cimport TcpCompare

cdef class Engine(TcpCompare):
    pass
