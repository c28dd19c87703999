"""Giving freed heap memory back to the operating system (glibc's ``malloc_trim``).

The timeline's rows are collected in blocks of ``array`` columns (``engine.eventlog``); a
DataFrame needs each column whole, so the blocks are joined column by column and each block's
column is freed once copied.  Those block columns (64-512 KiB each) come from glibc's heap,
where freed memory stays in the process (only the heap's top is given back): after a join of
the 4M-frame free-running pair's 8.2M rows the process held the freed blocks *and* the joined
columns, twice the timeline (explain's peak RSS 1.5 GB).  ``malloc_trim`` returns the free
pages inside the heap; called after each column, the join's peak is the timeline plus one column.

Elsewhere than glibc (musl, macOS) there is no such call, and nothing is done.
"""

from __future__ import annotations

_trim = None            # libc's malloc_trim, once found (False: there is none)


def give_back_free_memory() -> None:
    """Return the heap's free pages to the operating system, where the C library can."""
    global _trim
    if _trim is None:
        _trim = False
        try:
            import ctypes

            # the process's own symbols, the C library's among them (no find_library: on Linux
            # that runs ldconfig or a compiler in a subprocess)
            fn = getattr(ctypes.CDLL(None), "malloc_trim", None)
            if fn is not None:
                fn.argtypes = [ctypes.c_size_t]
                fn.restype = ctypes.c_int
                _trim = fn
        except OSError:
            pass
    if _trim:
        _trim(0)
