"""BPF capture filters, compiled and run by the real libpcap (through ctypes).

The expression is compiled against a "dead" pcap handle of link type Ethernet: every frame
the readers yield is Ethernet (synthesised where the capture was not), so one compiled
program applies to all of them.  Matching calls ``pcap_offline_filter`` with a
``pcap_pkthdr`` that is allocated once and refilled per frame.

libpcap is ``libpcap.so.0.8`` on Debian and Ubuntu (the soname of libpcap 1.x there); the
loader falls back to whatever ``ctypes.util.find_library("pcap")`` finds.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import threading

from .linktypes import ETHERNET

PCAP_NETMASK_UNKNOWN = 0xFFFFFFFF
DEFAULT_SNAPLEN = 262144


class _BpfProgram(ctypes.Structure):
    _fields_ = [("bf_len", ctypes.c_uint), ("bf_insns", ctypes.c_void_p)]


class _Timeval(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_usec", ctypes.c_long)]


class _PcapPkthdr(ctypes.Structure):
    _fields_ = [("ts", _Timeval), ("caplen", ctypes.c_uint32), ("len", ctypes.c_uint32)]


_lib = None
_lib_lock = threading.Lock()
# pcap_compile was not thread-safe before libpcap 1.8 and shares the dead handle's error
# buffer: serialise compilations.
_compile_lock = threading.Lock()


def _libpcap() -> ctypes.CDLL:
    global _lib
    with _lib_lock:
        if _lib is None:
            names = ["libpcap.so.0.8", "libpcap.so.1", "libpcap.so"]
            found = ctypes.util.find_library("pcap")
            if found:
                names.append(found)
            errors = []
            for name in names:
                try:
                    lib = ctypes.CDLL(name)
                    break
                except OSError as exc:
                    errors.append(str(exc))
            else:
                raise OSError("libpcap not found (install libpcap0.8): " + "; ".join(errors))
            lib.pcap_open_dead.argtypes = [ctypes.c_int, ctypes.c_int]
            lib.pcap_open_dead.restype = ctypes.c_void_p
            lib.pcap_compile.argtypes = [ctypes.c_void_p, ctypes.POINTER(_BpfProgram),
                                         ctypes.c_char_p, ctypes.c_int, ctypes.c_uint32]
            lib.pcap_compile.restype = ctypes.c_int
            lib.pcap_geterr.argtypes = [ctypes.c_void_p]
            lib.pcap_geterr.restype = ctypes.c_char_p
            lib.pcap_freecode.argtypes = [ctypes.POINTER(_BpfProgram)]
            lib.pcap_freecode.restype = None
            lib.pcap_close.argtypes = [ctypes.c_void_p]
            lib.pcap_close.restype = None
            lib.pcap_offline_filter.argtypes = [ctypes.POINTER(_BpfProgram),
                                                ctypes.POINTER(_PcapPkthdr), ctypes.c_char_p]
            lib.pcap_offline_filter.restype = ctypes.c_int
            _lib = lib
        return _lib


class BpfFilter:
    """A compiled BPF filter for Ethernet frames.

    ``BpfFilter("udp and port 53").matches(frame, orig_len)`` is True when libpcap's
    filter accepts the frame.  ``orig_len`` is the length on the wire (``len(frame)`` when
    the frame was not cut); a filter that reads beyond the captured bytes does not match,
    as in libpcap.  A bad expression raises ``ValueError`` carrying libpcap's message.

    One filter object reuses one packet header, so use one per thread.
    """

    def __init__(self, expr: str, *, linktype: int = ETHERNET, snaplen: int = DEFAULT_SNAPLEN,
                 optimize: bool = True):
        self.expr = expr
        self._lib = lib = _libpcap()
        self._prog = _BpfProgram()
        self._compiled = False
        with _compile_lock:
            handle = lib.pcap_open_dead(linktype, snaplen)
            if not handle:
                raise OSError("pcap_open_dead failed")
            try:
                rc = lib.pcap_compile(handle, ctypes.byref(self._prog), expr.encode(),
                                      1 if optimize else 0, PCAP_NETMASK_UNKNOWN)
                if rc != 0:
                    msg = (lib.pcap_geterr(handle) or b"").decode("utf-8", "replace")
                    raise ValueError(f"bad BPF filter {expr!r}: {msg}")
            finally:
                lib.pcap_close(handle)
        self._compiled = True
        # Everything the per-frame call needs, created once: the header, pointers to it
        # and to the program (byref objects are reusable), the bound C function.
        self._hdr = _PcapPkthdr()
        self._hdr_ref = ctypes.byref(self._hdr)
        self._prog_ref = ctypes.byref(self._prog)
        # A second handle on pcap_offline_filter *without* argtypes: ctypes then skips the
        # per-argument from_param conversions (about 4x faster per call).  Safe because
        # every argument is a byref() pointer or a bytes object (passed as its buffer).
        self._filter = lib["pcap_offline_filter"]
        self._filter.restype = ctypes.c_int

    @property
    def instructions(self) -> int:
        """Length of the compiled program."""
        return self._prog.bf_len

    def matches(self, frame: bytes, orig_len: int | None = None) -> bool:
        """True when the filter accepts ``frame`` (Ethernet bytes as captured)."""
        hdr = self._hdr
        n = len(frame)
        hdr.caplen = n
        hdr.len = n if orig_len is None else orig_len
        return self._filter(self._prog_ref, self._hdr_ref, frame) != 0

    def mask(self, frames, orig_lens=None) -> list[bool]:
        """``matches`` over parallel columns (e.g. a ``Batch``'s ``frames``, ``orig_lens``)."""
        hdr = self._hdr
        f = self._filter
        prog = self._prog_ref
        ref = self._hdr_ref
        out = []
        append = out.append
        if orig_lens is None:
            for frame in frames:
                hdr.caplen = hdr.len = len(frame)
                append(f(prog, ref, frame) != 0)
        else:
            for frame, orig in zip(frames, orig_lens):
                hdr.caplen = len(frame)
                hdr.len = orig
                append(f(prog, ref, frame) != 0)
        return out

    def close(self) -> None:
        """Free the compiled program (also done when the filter is garbage-collected)."""
        if self._compiled:
            self._compiled = False
            self._lib.pcap_freecode(ctypes.byref(self._prog))

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    def __repr__(self) -> str:
        return f"BpfFilter({self.expr!r})"
