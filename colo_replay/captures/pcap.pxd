# Cython augmenting declarations for pcap.py (compiled core only): the record loops' field read
# as an inline C function over the chunk pointer.
cdef inline long long _field(unsigned char* p, Py_ssize_t q, bint big)
