# Cython augmenting declarations for connection.py (compiled core only); see packet.pxd.
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
