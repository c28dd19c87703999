# Cython augmenting declarations for driver.py (compiled core only): the engine's type, so the
# merge loop (_stretch) calls Engine.feed_at in C with C arguments; _Side as an extension type,
# so that _stretch reads a batch's columns through views made once a batch, and its cursor as C
# fields.
from colo_replay.engine.compare cimport Engine

cdef class _Side:
    cdef public object reader
    cdef public object stats
    cdef public object shift
    cdef public object vnet
    cdef public object bpf
    cdef public object it
    cdef public object ts
    cdef public object buf
    cdef public object starts
    cdef public object caps
    cdef public object origs
    cdef public object vnets
    cdef public long long first
    cdef public Py_ssize_t i
    cdef public Py_ssize_t n
    cdef public bint simple
    cdef long long[::1] tsv
    cdef long long[::1] startsv
    cdef long long[::1] capsv
