# Cython augmenting declarations for compare.py (compiled core only): the extension types its
# @cython.locals name, the fast path's helpers as C functions, feed_at callable from C.
from libc.string cimport memcmp
from colo_replay.engine.packet cimport Packet, _equal_at
from colo_replay.engine.connection cimport Connection
from colo_replay.engine.eventlog cimport EventLog
from colo_replay.engine.tcp cimport TcpCompare

cdef Packet _fast_packet(object data, long long size, long long side, object ident, long long time_ns,
                         long long proto, long long seq, long long ack, long long header_size,
                         long long payload_size, long long seq_end, long long flags)
cdef Packet _queued_packet(list lazy, bytes buf, Py_ssize_t off, Py_ssize_t size, long long side, object ident,
                           long long time_ns, long long proto, long long seq, long long ack,
                           long long header_size, long long payload_size, long long seq_end, long long flags)
cdef bytes _bytes_of(Packet pkt)
cdef Py_ssize_t _offset_of(Packet pkt)
cdef bytes _frame(bytes buf, Py_ssize_t off, Py_ssize_t size)

cdef class Engine(TcpCompare):
    cpdef list feed_at(self, long long side, bytes buf, Py_ssize_t off, Py_ssize_t size, object time_ns,
                       object ident=*)
    cdef _feed_at(self, long long side, bytes buf, Py_ssize_t off, Py_ssize_t size, long long time_ns, object ident)
