"""The state of an ``Engine``: every field its parts work on, declared once.

``Engine`` is a chain of parts with one job each, all working on this state: ``EngineState``
(the fields) <- ``scan.ScanAndFlush`` <- ``datagram.DatagramCompare`` <- ``tcp.TcpCompare`` <-
``compare.Engine`` (the public API and the input path).  A single chain, not mixins side by side,
so that the compiled core can make each of them an extension type with C fields (state.pxd):
a method of any part then reads the engine's fields directly.  Interpreted, a method found
through the chain costs the same as one defined on ``Engine`` (the type attribute cache).
The fields are set by ``Engine.__init__``.
"""

from __future__ import annotations


class EngineState:
    """The fields of an ``Engine`` (see compare.py for what each holds)."""

    # Slots: the per-frame path reads and writes a dozen of these; slot access is the cheapest.
    __slots__ = ("profile", "config", "emit_scans", "_timeout_ms", "_cycle_ns", "_max_queue", "_vnet",
                 "_inverted", "_subtract_vnet", "_ack_umax", "_gate_sack", "_tcp_tail", "_other_tail",
                 "_key_ips", "table", "conn_list", "_occupied", "_next_conn_index", "queued", "now", "_start_ns",
                 "_paused_ns", "_stopped_at", "_deadline", "_tick_ns", "_tick_c", "_out", "compact_pairs", "lazy_frames", "_lazy", "rows",
                 "_ckeys", "_cconns", "_ticks", "_tick_i", "_oracle")
