# Cython augmenting declarations for lean.py (compiled core only): the engine's type, so the
# loop calls Engine._feed_at in C; LiveClock and FastInput as extension types (C fields, C calls
# between FastInput's methods); and FastInput's socket calls as C (recv into one buffer, writev
# of the releases), with what a failed call leaves to the Python path.
from cpython.bytes cimport PyBytes_FromStringAndSize, PyBytes_AS_STRING, PyBytes_GET_SIZE
from cpython.bytearray cimport PyByteArray_AS_STRING
from cpython.ref cimport PyObject
from libc.errno cimport errno, EAGAIN, EINTR
from posix.uio cimport iovec, writev
from colo_replay.engine.compare cimport Engine

cdef extern from "<sys/socket.h>" nogil:
    ssize_t _c_recv "recv" (int fd, void *buf, size_t n, int flags)

cdef extern from "Python.h":
    PyObject *_new_bytes "PyBytes_FromStringAndSize" (const char *v, Py_ssize_t n) except NULL
    char *_bytes_data "PyBytes_AS_STRING" (PyObject *o)
    int _PyBytes_Resize(PyObject **o, Py_ssize_t n) except -1
    void _decref "Py_DECREF" (PyObject *o)

cdef class LiveClock:
    cdef public long long offset
    cdef public long long _last

    cpdef long long now(self)

cdef class FastInput:
    cdef public object lc
    cdef public long long side
    cdef public Engine engine
    cdef public object ch
    cdef public object out_ch
    cdef public bint direct
    cdef public object send_list
    cdef public object stats
    cdef public LiveClock clock
    cdef public object ex
    cdef public list idents
    cdef public list out
    cdef public bytearray rbuf
    cdef public object sock
    cdef public int fd
    cdef public object out_sock
    cdef public int out_fd
    cdef public bint clean
    cdef public Py_ssize_t read_size
    cdef public long long n
    cdef public Py_ssize_t count
    cdef public Py_ssize_t pairs
    cdef public long long bytes_in
    cdef public long long pairs_out
    cdef public long long consumed
    cdef public long long sent
    cdef public Py_ssize_t wtotal
    cdef public Py_ssize_t last_read

    cpdef sync(self)
    cpdef reload(self)
    cpdef input(self, bytes chunk)
    cpdef Py_ssize_t feed(self, bytes chunk, long long t, long long n) except -1
    cpdef after_step(self)


cdef inline object _recv_into(int fd, bytearray buf, Py_ssize_t size):
    """``recv(fd, size)`` into ``buf``, then copied into a bytes object of the size read (a
    small read: the buffer stays in the cache, the bytes come from Python's small-object
    allocator): the bytes read (b"" at EOF), None if it would block, or the errno (an int) of
    another error; EINTR is retried, as Python's socket.recv does."""
    cdef ssize_t n
    cdef char *p = PyByteArray_AS_STRING(buf)
    while True:
        n = _c_recv(fd, p, <size_t>size, 0)
        if n >= 0:
            return PyBytes_FromStringAndSize(p, n)
        if errno != EINTR:
            break
    if errno == EAGAIN:                 # (= EWOULDBLOCK on Linux)
        return None
    return errno


cdef inline object _recv_bytes(int fd, Py_ssize_t size):
    """``_recv_into`` for a large read: straight into a bytes object of ``size``, shrunk to
    what was read (socket.recv's way: no copy of a long read)."""
    cdef ssize_t n
    cdef PyObject *b = _new_bytes(NULL, size)
    while True:
        n = _c_recv(fd, _bytes_data(b), <size_t>size, 0)
        if n >= 0 or errno != EINTR:
            break
    if n < 0:
        _decref(b)
        if errno == EAGAIN:
            return None
        return errno
    if n != size:
        _PyBytes_Resize(&b, n)          # (on failure b is freed and the error raised)
    out = <object>b                     # (a new reference)
    _decref(b)
    return out


cdef inline Py_ssize_t _writev_entries(FastInput fi, list out):
    """``writev`` of outdev's (header, data) entries (at most IOV_MAX // 2): the bytes written
    (0 if it would block), -1 on another error, or -2 (nothing written) if an entry is not two
    bytes objects; ``fi.wtotal`` = the entries' size.  EINTR is retried."""
    cdef iovec iov[1024]
    cdef Py_ssize_t k = 0
    cdef Py_ssize_t total = 0
    cdef ssize_t n
    cdef tuple e
    for item in out:
        if type(item) is not tuple:
            return -2
        e = <tuple>item
        if len(e) != 2 or type(e[0]) is not bytes or type(e[1]) is not bytes:
            return -2
        h = e[0]
        d = e[1]
        iov[k].iov_base = PyBytes_AS_STRING(h)
        iov[k].iov_len = PyBytes_GET_SIZE(h)
        iov[k + 1].iov_base = PyBytes_AS_STRING(d)
        iov[k + 1].iov_len = PyBytes_GET_SIZE(d)
        total += PyBytes_GET_SIZE(h) + PyBytes_GET_SIZE(d)
        k += 2
    fi.wtotal = total
    while True:
        n = writev(fi.out_fd, iov, <int>k)
        if n >= 0:
            return n
        if errno != EINTR:
            break
    if errno == EAGAIN:                 # (= EWOULDBLOCK on Linux)
        return 0
    return -1


cdef inline bytes _len_word(Py_ssize_t n):
    """outdev's length word of a frame of ``n`` bytes (``struct.pack("!I", n)``)."""
    cdef char w[4]
    w[0] = <char>((n >> 24) & 0xff)
    w[1] = <char>((n >> 16) & 0xff)
    w[2] = <char>((n >> 8) & 0xff)
    w[3] = <char>(n & 0xff)
    return PyBytes_FromStringAndSize(w, 4)
