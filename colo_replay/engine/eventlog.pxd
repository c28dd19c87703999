# Cython augmenting declarations for eventlog.py (compiled core only): the current block's
# columns as typed views (a row is thirteen C stores), row/pair callable from C with C values.
from colo_replay.engine.packet cimport Packet

cdef class EventLog:
    cdef public list _blocks
    cdef public Py_ssize_t _n
    cdef public Py_ssize_t _cap
    cdef public Py_ssize_t block_rows
    cdef public object spill
    cdef public Py_ssize_t _kept
    cdef public Py_ssize_t _spilled
    cdef public object _arrays
    cdef long long[::1] _t
    cdef short[::1] _kind
    cdef short[::1] _cause
    cdef signed char[::1] _side
    cdef int[::1] _conn
    cdef long long[::1] _pf
    cdef long long[::1] _sf
    cdef long long[::1] _held
    cdef long long[::1] _size
    cdef int[::1] _osize
    cdef long long[::1] _seq
    cdef long long[::1] _end
    cdef long long[::1] _detail

    cpdef row(self, long long t, int kind, int cause, int side, int conn, long long pf, long long sf,
              long long held, long long size, long long osize, long long seq, long long end, long long detail)
    cdef pair(self, long long t, int cause, int conn, object pid, object sid, long long ptime, long long stime,
               long long psize, long long ssize, long long pseq, long long pend, long long sseq, long long send,
               bint named)
