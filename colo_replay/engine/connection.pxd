# Cython augmenting declarations for connection.py (compiled core only); see packet.pxd.
cimport cython

# A table reset frees up to 16,385 connections at once and the next frames make new ones: the
# freed objects are reused (a free-running pair makes a connection every ~12 frames).
@cython.freelist(16400)
cdef class Connection:
    cdef public long long index
    cdef public long long ip_proto
    cdef public object primary
    cdef public object secondary
    cdef public long long compare_seq
    cdef public long long pack
    cdef public long long sack
    cdef public object key
    cdef public bint occupied
