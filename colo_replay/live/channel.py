"""One colo-compare chardev on a non-blocking socket (QEMU chardev/char-socket.c, as used by
net/colo-compare.c).

Connection handling, as QEMU's socket chardev does it:

* ``server=on``: listen; one client at a time (QEMU removes the listen watch while a client is
  connected, so a second client waits in the backlog until the first one leaves); after a
  disconnect the next client is accepted.
* ``server=off``: connect at start-up (failure is fatal without ``reconnect``); with
  ``reconnect=N`` a lost or refused connection is retried every N seconds.
* A disconnect does not reset anything above the socket: colo-compare registers no chardev
  event handler, so its ``SocketReadState`` keeps a half-read frame across a reconnect (the
  runtime keeps its ``FrameDecoder`` the same way and says so in the log).

Reading: up to 124 KiB per ``recv`` (QEMU reads at most ``COMPARE_READ_LEN_MAX`` = NET_BUFSIZE
per callback; the framing result does not depend on chunk sizes).  A channel can be paused
(back-pressure) or disabled for good (QEMU's ``qemu_chr_fe_set_handlers(..., NULL)`` after an
oversized frame: the socket stays open, nothing is read any more, the peer stalls).

Writing models QEMU 7.2's ``compare_chr_send`` send coroutine: entries are pushed at the tail
of ``send_list``; the coroutine writes them with ``qemu_chr_fe_write_all`` and, when the
socket would block, yields in the middle of the current entry.  Entries queued meanwhile are
popped from the **tail** (7.0+, ``send_queue_lifo``) or the head once the socket drains, so a
backlog leaves newest-first in 7.2.  While nothing pushes back, many entries go out in one
``sendmsg`` (same bytes, same order as QEMU's per-frame writes).  A write error (peer gone)
discards the whole send list, as the coroutine's ``err:`` path does (-EIO); so does writing
while no peer is connected.
"""

from __future__ import annotations

import asyncio
import errno
import os
import socket
import stat
from collections import deque

from .endpoint import Endpoint

# The most one recv() takes (see Channel.read_size).  Below glibc's default mmap threshold
# (128 KiB): recv(n) allocates n bytes first, and above the threshold every read, even of one
# small frame, costs an mmap + munmap (measured: 15 us more per read at 256 KiB, which showed
# in live mode's p99 latency).
READ_SIZE = 124 * 1024
IOV_MAX = 1024
SEND_BATCH_BYTES = 1 << 20


class Channel:
    def __init__(self, name: str, endpoint: Endpoint, loop: asyncio.AbstractEventLoop, log,
                 on_data=None, on_state=None, lifo: bool = True, on_drained=None):
        self.name = name
        self.ep = endpoint
        self.loop = loop
        self.log = log
        self.on_data = on_data            # callable(bytes) for input channels
        self.on_state = on_state          # callable(channel, connected: bool)
        self.on_drained = on_drained      # callable(channel) when the send list empties
        self.lifo = lifo
        self.sock: socket.socket | None = None
        self.lsock: socket.socket | None = None
        self.connected_once = asyncio.Event()
        self.connections = 0
        self.paused = False
        self.disabled = False
        self.closed = False
        # send side
        self.send_list: deque = deque()   # entries: (header, data)
        self.current: memoryview | None = None
        self.queued_bytes = 0
        self.lost_entries = 0
        self.sent_bytes = 0
        self._writer_on = False
        self._reconnect_task: asyncio.Task | None = None
        self.ignored_bytes = 0
        # How much one recv() asks for; the runtime may lower it (at most READ_SIZE) so that a
        # read of small frames stays a cache-sized batch.
        self.read_size = READ_SIZE
        # The callback of the socket's read watch, called with the socket: ``_readable``, or
        # the runtime's own (``lean.FastInput.readable``: the same receive, then the input's
        # fast path).
        self.reader = self._readable

    # ------------------------------------------------------------------ connection set-up
    async def start(self) -> None:
        """Listen, or connect once (raising OSError when that fails and there is no reconnect)."""
        ep = self.ep
        if ep.server:
            if ep.kind == "unix":
                _unlink_stale_socket(ep.path)
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            else:
                fam = socket.AF_INET6 if ":" in ep.host else socket.AF_INET
                s = socket.socket(fam, socket.SOCK_STREAM)
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(ep.address)
                s.listen(1)
            except OSError:
                s.close()
                raise
            s.setblocking(False)
            self.lsock = s
            self.loop.add_reader(s.fileno(), self._accept)
            self.log.info("listening", channel=self.name, endpoint=ep.describe())
        else:
            try:
                await self._connect()
            except OSError as exc:
                if not ep.reconnect:
                    raise
                self.log.warning("connect_failed", channel=self.name, endpoint=ep.describe(),
                                 error=exc.strerror or str(exc), retry_s=ep.reconnect)
                self._schedule_reconnect()

    async def _connect(self) -> None:
        ep = self.ep
        if ep.kind == "unix":
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        else:
            infos = await self.loop.getaddrinfo(ep.host, ep.port, type=socket.SOCK_STREAM)
            fam, _, _, _, addr = infos[0]
            s = socket.socket(fam, socket.SOCK_STREAM)
        s.setblocking(False)
        try:
            await self.loop.sock_connect(s, ep.address if ep.kind == "unix" else addr)
        except BaseException:
            s.close()
            raise
        self._attach(s)

    def _schedule_reconnect(self) -> None:
        if self.closed or not self.ep.reconnect or self._reconnect_task is not None:
            return

        async def retry():
            try:
                while not self.closed and self.sock is None:
                    await asyncio.sleep(self.ep.reconnect)
                    if self.closed:
                        return
                    try:
                        await self._connect()
                    except OSError as exc:
                        self.log.debug("reconnect_failed", channel=self.name, error=exc.strerror or str(exc))
            finally:
                self._reconnect_task = None

        self._reconnect_task = self.loop.create_task(retry())

    def _accept(self) -> None:
        try:
            s, _ = self.lsock.accept()
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self.log.warning("accept_failed", channel=self.name, error=exc.strerror or str(exc))
            return
        s.setblocking(False)
        self.loop.remove_reader(self.lsock.fileno())      # one client at a time, as QEMU
        self._attach(s)

    def _attach(self, s: socket.socket) -> None:
        if self.ep.kind == "tcp" and self.ep.nodelay:
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = s
        self.connections += 1
        # Input channels read data; output-only ones still watch for EOF/HUP.
        if not self.paused and not self.disabled:
            self.loop.add_reader(s.fileno(), self.reader, s)
        self.log.info("connected", channel=self.name, endpoint=self.ep.describe(), connection=self.connections)
        self.connected_once.set()
        if self.on_state is not None:
            self.on_state(self, True)

    def _disconnect(self, why: str) -> None:
        s = self.sock
        if s is None:
            return
        fd = s.fileno()
        self.loop.remove_reader(fd)
        if self._writer_on:
            self.loop.remove_writer(fd)
            self._writer_on = False
        s.close()
        self.sock = None
        lost = len(self.send_list) + (1 if self.current is not None else 0)
        if lost:
            # _compare_chr_send err: path: every queued entry is discarded.
            self.lost_entries += lost
            self.log.warning("send_queue_discarded", channel=self.name, entries=lost,
                             msg="peer gone with frames still queued (QEMU discards them too)")
        self.send_list.clear()
        self.current = None
        self.queued_bytes = 0
        self.log.warning("disconnected", channel=self.name, reason=why)
        if self.on_state is not None:
            self.on_state(self, False)
        if self.closed:
            return
        if self.lsock is not None:
            self.loop.add_reader(self.lsock.fileno(), self._accept)
        else:
            self._schedule_reconnect()
        if self.on_drained is not None:
            self.on_drained(self)

    # ------------------------------------------------------------------ reading
    def _readable(self, s=None) -> None:
        s = self.sock
        try:
            data = s.recv(self.read_size)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._disconnect(exc.strerror or str(exc))
            return
        if not data:
            self._disconnect("EOF")
            return
        if self.on_data is None:
            self.ignored_bytes += len(data)     # nothing is read from outdev in QEMU either
            return
        self.on_data(data)

    def pause_reading(self) -> None:
        if not self.paused:
            self.paused = True
            if self.sock is not None:
                self.loop.remove_reader(self.sock.fileno())

    def resume_reading(self) -> None:
        if self.paused:
            self.paused = False
            if self.sock is not None and not self.disabled:
                self.loop.add_reader(self.sock.fileno(), self.reader, self.sock)

    def disable_reading(self) -> None:
        """QEMU's qemu_chr_fe_set_handlers(..., NULL): never read this chardev again."""
        self.disabled = True
        if self.sock is not None:
            self.loop.remove_reader(self.sock.fileno())

    # ------------------------------------------------------------------ writing
    @property
    def connected(self) -> bool:
        return self.sock is not None

    @property
    def blocked(self) -> bool:
        return self.current is not None or bool(self.send_list)

    def send(self, entries: list) -> int:
        """Queue ``entries`` [(header, data)] for the peer; returns how many were lost at once
        because no peer is connected (QEMU: write to a disconnected socket chardev = -EIO)."""
        if self.sock is None:
            self.lost_entries += len(entries)
            return len(entries)
        if self.current is not None or self.send_list:
            for h, d in entries:
                self.queued_bytes += len(h) + len(d)
            self.send_list.extend(entries)       # g_queue_push_tail while the coroutine waits
            return 0
        if len(entries) <= IOV_MAX // 2:
            # Fast path: one sendmsg, and usually the socket takes all of it.
            total, n = self._send_once(entries)
            if n == total:
                self.sent_bytes += total
            else:
                self._sent_part(entries, total, n)
            return 0
        self.queued_bytes += sum(len(h) + len(d) for h, d in entries)
        self._write_batch(list(entries))
        return 0

    def _send_once(self, entries: list) -> tuple[int, int]:
        """One ``sendmsg`` of ``entries`` (at most IOV_MAX // 2, nothing queued before them):
        ``(their bytes, bytes written)``, written 0 if the socket would block and -1 if it
        failed (``_sent_part`` handles both).  ``send``'s fast path, and
        ``lean.FastInput.after_step``'s when it cannot ``writev`` in C."""
        bufs = [b for e in entries for b in e]
        total = sum(map(len, bufs))
        try:
            n = self.sock.sendmsg(bufs)
        except (BlockingIOError, InterruptedError):
            n = 0
        except OSError:
            n = -1
        return total, n

    def _sent_part(self, entries: list, total: int, n: int) -> None:
        """The one ``sendmsg`` of ``entries`` (``total`` bytes, nothing queued before them)
        took ``n`` bytes, not all (-1: it failed): the rest waits as the coroutine would leave it.
        (``send``'s fast path, and ``lean.FastInput.after_step``'s.)"""
        if n < 0:
            self.queued_bytes += total
            self._write_batch(list(entries))       # reports and handles the error
            return
        self.sent_bytes += n
        self.queued_bytes += total
        self._partial(list(entries), 0, n)

    def _partial(self, batch: list, k: int, n: int) -> None:
        """``n`` bytes of batch[k:] were written: skip the entries that went out whole; the one
        cut in the middle is the coroutine's current entry, the rest wait in send_list."""
        while True:
            h, d = batch[k]
            size = len(h) + len(d)
            if n >= size:
                n -= size
                self.queued_bytes -= size
                k += 1
                continue
            break
        whole = h + d
        self.queued_bytes -= n
        self.current = memoryview(whole)[n:]
        rest = batch[k + 1:]
        if self.lifo:
            # The coroutine pops the tail next: the entries popped but not written go back
            # so that they come out again in the same order.
            for e in reversed(rest):
                self.send_list.append(e)
        else:
            for e in reversed(rest):
                self.send_list.appendleft(e)
        if not self._writer_on:
            self.loop.add_writer(self.sock.fileno(), self._writable)
            self._writer_on = True

    def _write_batch(self, batch: list) -> bool:
        """Write ``batch`` (entries in send order) now; what the socket does not take becomes
        ``current`` (the entry the coroutine is stuck in) + entries put back for later.
        Returns True if everything went out."""
        s = self.sock
        i = 0
        n_entries = len(batch)
        while i < n_entries:
            j = min(n_entries, i + IOV_MAX // 2)
            bufs = [b for e in batch[i:j] for b in e]
            total = sum(map(len, bufs))
            try:
                n = s.sendmsg(bufs)
            except (BlockingIOError, InterruptedError):
                n = 0
            except OSError as exc:
                self.lost_entries += n_entries - i     # popped, never written
                self._disconnect(exc.strerror or str(exc))
                return False
            self.sent_bytes += n
            if n == total:
                self.queued_bytes -= total
                i = j
                continue
            self._partial(batch[i:], 0, n)      # the group's tail and later entries wait
            return False
        return True

    def _writable(self) -> None:
        s = self.sock
        if s is None:
            return
        cur = self.current
        if cur is not None:
            try:
                n = s.send(cur)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                self._disconnect(exc.strerror or str(exc))
                return
            self.queued_bytes -= n
            self.sent_bytes += n
            if n < len(cur):
                self.current = cur[n:]
                return
            self.current = None
        sl = self.send_list
        while sl:
            batch = []
            size = 0
            pop = sl.pop if self.lifo else sl.popleft
            while sl and len(batch) < IOV_MAX // 2 and size < SEND_BATCH_BYTES:
                e = pop()
                batch.append(e)
                size += len(e[0]) + len(e[1])
            if not self._write_batch(batch):
                return
        if self._writer_on and self.sock is not None:
            self.loop.remove_writer(s.fileno())
            self._writer_on = False
        if self.on_drained is not None:
            self.on_drained(self)

    # ------------------------------------------------------------------ shutdown
    def close(self) -> None:
        self.closed = True
        if self._reconnect_task is not None:
            self._reconnect_task.cancel()
        if self.sock is not None:
            fd = self.sock.fileno()
            self.loop.remove_reader(fd)
            if self._writer_on:
                self.loop.remove_writer(fd)
            self.sock.close()
            self.sock = None
        if self.lsock is not None:
            self.loop.remove_reader(self.lsock.fileno())
            self.lsock.close()
            self.lsock = None
            if self.ep.kind == "unix" and self.ep.path:
                try:
                    os.unlink(self.ep.path)
                except OSError:
                    pass


def _unlink_stale_socket(path: str) -> None:
    """QEMU unlinks the path before binding a listening unix socket; we only remove sockets."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return
    if stat.S_ISSOCK(st.st_mode):
        os.unlink(path)
    else:
        raise OSError(errno.EEXIST, f"{path} exists and is not a socket")
