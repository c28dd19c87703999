# Cython augmenting declarations for state.py (compiled core only): the engine's fields as C
# fields.  The integers typed here are queue lengths and counters (far below 2**63); times stay
# Python ints (NEVER is 2**126), as do the profile and config objects.
from colo_replay.engine.eventlog cimport EventLog

cdef class EngineState:
    cdef public object profile
    cdef public object config
    cdef public bint emit_scans
    cdef public object _timeout_ms
    cdef public object _cycle_ns
    cdef public long long _max_queue
    cdef public bint _vnet
    cdef public bint _inverted
    cdef public bint _subtract_vnet
    cdef public bint _ack_umax
    cdef public bint _gate_sack
    cdef public bint _tcp_tail
    cdef public bint _other_tail
    cdef public bint _key_ips
    cdef public dict table
    cdef public list conn_list
    cdef public list _occupied
    cdef public long long _next_conn_index
    cdef public long long queued
    cdef public long long now
    cdef public object _start_ns
    cdef public object _paused_ns
    cdef public object _stopped_at
    cdef public object _deadline
    cdef public object _tick_ns
    cdef public long long _tick_c
    cdef public list _out
    cdef public bint compact_pairs
    cdef public bint lazy_frames
    cdef public list _lazy
    cdef public EventLog rows
    cdef public list _ckeys
    cdef public list _cconns
    cdef public list _ticks
    cdef public long long _tick_i
    cdef public object _oracle
