"""What the engine uses of Cython's pure-Python mode, as no-ops, for when Cython is not installed.

The compiled core (setup.py) reads ``@cython.locals(...)`` as C types for a function's local
variables, ``@cython.ccall`` as "callable from C too" and ``cython.compiled`` as True;
interpreted, the decorators return the function unchanged and ``compiled`` is False, so the
same ``.py`` source runs either way with the same results.

Every ``cython.<name>`` the package uses must be here: tests/test_shim.py reads the sources and
fails on a name this module lacks (the interpreted core could not even be imported).
"""

compiled = False


def locals(**_types):  # noqa: A001 - the name Cython gives it
    """``@cython.locals(name=type, ...)``: C types for locals when compiled; a no-op here."""
    def keep(func):
        return func
    return keep


def _same(func):
    return func


ccall = cfunc = inline = _same


def declare(_type, value=None):
    """``x = cython.declare(type, value)``: a C variable when compiled; the value here."""
    return value


def boundscheck(_flag):
    return _same


wraparound = boundscheck


class _TypeName:
    """A C type's name: ``cython.longlong[::1]`` (a typed memoryview) must also be an expression."""

    def __getitem__(self, _item):
        return self


# Type names used in ``cython.locals`` and ``cython.declare`` (only their names matter to Cython)
longlong = ulonglong = uint = Py_ssize_t = bint = p_uchar = uchar = int_ = _TypeName()

# ``cython.int`` (C int): last, as nothing below may mean the builtin ``int`` once it is shadowed
int = _TypeName()  # noqa: A001 - the name Cython gives it
