# Cython augmenting declarations for packet.py (used only when the compiled core is built):
# Packet becomes an extension type with C fields.  Every integer field holds far less than
# 2**63 (sizes, offsets, 32-bit TCP numbers, ns times), so long long changes no value.
cimport cython
from libc.string cimport memcmp

@cython.freelist(512)      # a queued frame's Packet is reused memory, not a malloc
cdef class Packet:
    cdef public object data
    cdef public object chunk
    cdef public long long chunk_off
    cdef public long long size
    cdef public long long vnet_hdr_len
    cdef public long long side
    cdef public object ident
    cdef public long long time
    cdef public long long net_off
    cdef public long long l4_off
    cdef public long long ip_proto
    cdef public long long tcp_seq
    cdef public long long tcp_ack
    cdef public long long seq_end
    cdef public long long header_size
    cdef public long long payload_size
    cdef public long long offset
    cdef public long long flags
    cdef public bint undefined

cdef bint _equal_at(bytes abuf, Py_ssize_t ao, bytes bbuf, Py_ssize_t bo, Py_ssize_t n)
