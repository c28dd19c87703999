"""Large-chunk byte source for the readers: a plain file, or a gzip file decompressed as a
stream.

Chunks are 256 KiB by default: big enough that per-read overhead vanishes (a pcap batch is one
chunk; 256 KiB to 1 MiB read alike), small enough that a chunk and the frames cut from it stay in
the CPU's L2 cache while the replay works on them (bench/README.md, "Capture readers").  On the project's machine
a pcap is read at ~0.5 µs a frame with 128-256 KiB chunks, ~0.9 µs with 8 MiB ones; reading a
large file whole is slower still (reference/performance-notes.md).

A corrupt or truncated gzip stream must not cost the frames decompressed before the
damage, so a failing decompression is not raised from ``read``: ``read`` returns what it
had, and leaves the failure in ``error`` for the reader to raise after those frames.

``unread(tail)`` hands the last bytes read back, so the next ``read`` starts with them: a
reader that stops at the last complete record of a chunk starts the next chunk at the record
boundary, and every frame of a batch lies in that batch's one buffer (no joined copy for the
record that straddled two chunks).  A regular file is read with ``pread`` at a position kept
here, which ``unread`` moves back (the bytes are read again, from the page cache: no ``lseek``
per chunk); a pipe seeks back; a gzip stream keeps them and puts them in front of the next read.
"""

from __future__ import annotations

import gzip
import os
import stat
import zlib

GZIP_MAGIC = b"\x1f\x8b"
DEFAULT_CHUNK = 256 << 10


class ChunkSource:
    """``read(n)`` returns up to ``n`` bytes (fewer is not end of file; ``b""`` is)."""

    def __init__(self, path, chunk_size: int = DEFAULT_CHUNK):
        self.path = os.fspath(path)
        self.chunk_size = chunk_size
        # Unbuffered: one read() is one syscall straight into the returned bytes object.
        self._raw = open(self.path, "rb", buffering=0)
        self._gz = None
        self.compressed = False
        self.error: str | None = None     # why decompression stopped, if it failed
        self._back = b""                  # bytes unread() from a gzip stream
        self._fd = -1                     # a regular file's descriptor: read with pread at _pos
        self._pos = 0
        try:
            head = self._raw.read(2)
            self._raw.seek(0)
            if head == GZIP_MAGIC:
                self.compressed = True
                self._gz = gzip.GzipFile(fileobj=self._raw, mode="rb")
            elif stat.S_ISREG(os.fstat(self._raw.fileno()).st_mode):
                self._fd = self._raw.fileno()
        except BaseException:
            self._raw.close()
            raise

    def read(self, n: int | None = None) -> bytes:
        """Up to ``n`` bytes (default: the chunk size), beginning with any bytes unread; fewer
        than asked only at the end of the data (or where decompression failed)."""
        if n is None:
            n = self.chunk_size
        if self._fd >= 0:
            data = os.pread(self._fd, n, self._pos)
            self._pos += len(data)
            return data
        if self._gz is None:
            return self._raw.read(n)
        parts = []
        got = 0
        back = self._back
        if back:
            if len(back) > n:
                self._back = back[n:]
                back = back[:n]
            else:
                self._back = b""
            parts.append(back)
            got = len(back)
        if self.error is None:
            # read1 returns whatever one decompression step produced, so a failure loses
            # nothing already decompressed: collect the pieces up to n.
            read1 = self._gz.read1
            try:
                while got < n:
                    piece = read1(n - got)
                    if not piece:
                        break
                    parts.append(piece)
                    got += len(piece)
            except (OSError, EOFError, zlib.error) as exc:
                # BadGzipFile (an OSError), "Compressed file ended before the end-of-stream
                # marker was reached" (EOFError), CRC / length check failures, bad deflate data.
                self.error = f"{type(exc).__name__}: {exc}"
        return parts[0] if len(parts) == 1 else b"".join(parts)

    @property
    def seekable(self) -> bool:
        """An uncompressed regular file: ``read_at`` works."""
        return self._fd >= 0

    def read_at(self, offset: int, n: int) -> bytes:
        """Up to ``n`` bytes at ``offset`` of a regular file (``seekable``), beside the stream:
        the position ``read`` goes on from is not moved."""
        if self._fd < 0:
            raise OSError(f"{self.path}: not a regular uncompressed file: cannot read at an offset")
        return os.pread(self._fd, n, offset)

    def unread(self, tail: bytes) -> None:
        """Give back ``tail``, the last bytes read so far (from one read or several): the next
        ``read`` returns them first."""
        if not tail:
            return
        if self._fd >= 0:
            self._pos -= len(tail)
        elif self._gz is None:
            self._raw.seek(-len(tail), os.SEEK_CUR)
        else:
            self._back = bytes(tail) + self._back

    def close(self) -> None:
        try:
            if self._gz is not None:
                self._gz.close()
        finally:
            self._raw.close()
