"""What the engine uses of Cython's pure-Python mode, as no-ops, for when Cython is not installed.

The compiled core (setup.py) reads ``@cython.locals(...)`` as C types for a function's local
variables; interpreted, these decorators return the function unchanged, so the same ``.py``
source runs either way with the same results.
"""


def locals(**_types):  # noqa: A001 - the name Cython gives it
    """``@cython.locals(name=type, ...)``: C types for locals when compiled; a no-op here."""
    def keep(func):
        return func
    return keep


# Type names used in ``cython.locals`` (only their names matter to Cython)
longlong = int
Py_ssize_t = int
bint = bool
