"""What every capture reader offers: columnar batches, a per-frame iterator on top of them,
and what was learnt about the file while reading it.
"""

from __future__ import annotations

from operator import add
from typing import Iterator, NamedTuple

from .errors import CaptureError
from .source import ChunkSource

# Frames longer than this cannot come from a network interface colo-compare reads
# (NET_BUFSIZE is 69632); anything larger in a record header is corruption.
MAX_CAPLEN = 256 * 1024

# A record's original length (the frame's length on the wire) above this is impossible for a
# frame colo-compare could read (and above what libpcap or Wireshark take as a captured length):
# a corrupt record header, most likely.  It is kept as it is, with a warning (``warnings``).
MAX_ORIG_LEN = MAX_CAPLEN

# How many warnings of one kind a reader gives frame by frame; the rest are counted in one more
# line at the end of the file (a corrupt file could otherwise say the same thing a million times).
WARNINGS_PER_KIND = 5

# A timestamp step between consecutive frames larger than this (either way) is an error by
# default: the replay's cost may not grow with replayed time, and such a jump is corruption or a
# clock step far more often than a real idle day.  ``CaptureReader.max_gap_ns = None`` accepts it.
DEFAULT_MAX_GAP_NS = 86_400 * 1_000_000_000


class Interface(NamedTuple):
    """One capture interface.  A classic pcap file has exactly one; a pcapng file has one
    per Interface Description Block, numbered across all sections in file order (that
    global number is the ``interface_id`` the readers yield)."""

    interface_id: int
    linktype: int
    snaplen: int                  # 0: no limit declared
    name: str | None
    units_per_second: int         # timestamp resolution (1_000_000 for microseconds)
    tsoffset: int                 # seconds added to every timestamp (pcapng if_tsoffset)
    section: int                  # 0-based pcapng section; 0 for pcap


class Batch:
    """Frames read from one chunk of the file, as columns (cheap to build, cheap to consume).

    ``frame_numbers`` is ``range(first_frame, first_frame + len(batch))``; the columns are
    parallel: ``timestamps`` (integer ns since the epoch), ``frames`` (Ethernet bytes; the
    captured length is ``len(frame)``), ``orig_lens`` (length on the wire, larger than the
    captured length when a snaplen cut the frame) and ``interface_ids``.  A column is a list
    or an ``array.array('q')``: both index, slice, iterate and ``len`` alike.

    A reader that keeps its chunk whole gives the frames as places in it instead, and no
    ``bytes`` object per frame: ``buf`` is the chunk (a bytes-like object holding every frame of
    the batch), ``starts`` and ``caps`` (``array('q')``) each frame's offset in ``buf`` and its
    captured length.  ``frames`` is then cut from ``buf`` when first asked for (and kept), so a
    consumer of ``frames`` sees no difference; ``len(batch)`` never cuts them.  ``buf`` is None
    for a batch built from a list of frames.

    ``ts_min`` / ``ts_max``: the smallest and largest timestamp, when the reader knew them
    (None: not given; ``CaptureReader.batches`` then finds them itself).

    ``vnet_lens`` is optional: ``None`` (the capture readers' case) means every frame has the
    replay's constant vnet header length (``--vnet-hdr-len``); a sequence parallel to ``frames``
    gives each frame its own (a chardev stream with vnet_hdr_support carries one per frame),
    and the replay feeds each frame with it.

    ``truncated`` is optional too: how many frames of the batch were cut by a snaplen
    (``len(frame) < orig_len``), when the reader counted them anyway; ``None`` = not counted.
    """

    __slots__ = ("first_frame", "timestamps", "_frames", "orig_lens", "interface_ids", "vnet_lens",
                 "truncated", "buf", "starts", "caps", "ts_min", "ts_max", "_n")

    def __init__(self, first_frame: int, timestamps, frames: list | None, orig_lens,
                 interface_ids, vnet_lens=None, truncated: int | None = None, *,
                 buf=None, starts=None, caps=None, ts_min: int | None = None,
                 ts_max: int | None = None):
        self.first_frame = first_frame
        self.timestamps = timestamps
        self.orig_lens = orig_lens
        self.interface_ids = interface_ids
        self.vnet_lens = vnet_lens
        self.truncated = truncated
        self.buf = buf
        self.starts = starts
        self.caps = caps
        self.ts_min = ts_min
        self.ts_max = ts_max
        if frames is None:
            if buf is None or starts is None or caps is None:
                raise TypeError("Batch needs frames, or buf with starts and caps")
            self._n = len(starts)
        else:
            self._n = len(frames)
        self._frames = frames

    @property
    def frames(self) -> list:
        """The frames as ``bytes`` (cut from ``buf`` on first use when the batch has one)."""
        frames = self._frames
        if frames is None:
            # one bytes object per frame, made only now that someone wants them
            frames = self._frames = self._cut(self.buf, self.starts, self.caps)
        return frames

    @staticmethod
    def _cut(buf, starts, caps) -> list:
        """``[buf[s:s + c] for s, c in zip(starts, caps)]``, with C-level maps (a reader's
        subclass may do it faster: the pcap reader's, in its compiled module)."""
        return list(map(buf.__getitem__, map(slice, starts, map(add, starts, caps))))

    @frames.setter
    def frames(self, frames: list) -> None:
        self._frames = frames
        self._n = len(frames)
        self.buf = self.starts = self.caps = None

    def __len__(self) -> int:
        return self._n

    def head(self, n: int) -> "Batch":
        """The batch's first ``n`` frames as a ``Batch`` of their own (the columns cut, the
        buffer shared)."""
        if n >= self._n:
            return self
        vnets = None if self.vnet_lens is None else self.vnet_lens[:n]
        if self._frames is None:
            return Batch(self.first_frame, self.timestamps[:n], None, self.orig_lens[:n], self.interface_ids[:n],
                         vnets, buf=self.buf, starts=self.starts[:n], caps=self.caps[:n])
        return Batch(self.first_frame, self.timestamps[:n], self._frames[:n], self.orig_lens[:n],
                     self.interface_ids[:n], vnets)

    @property
    def frame_numbers(self) -> range:
        return range(self.first_frame, self.first_frame + self._n)

    def __iter__(self):
        """Rows ``(frame_number, timestamp_ns, frame, orig_len, interface_id)``."""
        return zip(self.frame_numbers, self.timestamps, self.frames, self.orig_lens,
                   self.interface_ids)

    def __repr__(self) -> str:
        return f"<Batch frames {self.first_frame}..{self.first_frame + len(self) - 1}>"


class CaptureReader:
    """A capture file being read, once, front to back.

    Iterate it for ``(frame_number, timestamp_ns, frame, orig_len, interface_id)`` tuples,
    or call ``batches()`` for the same frames in columns (faster).  Frame numbers start at 1
    and count every packet record, like Wireshark's.  A frame was cut by the snaplen when
    ``len(frame) < orig_len``.  Corruption raises ``CaptureError`` after every frame
    before it has been yielded.

    What the reader learnt (complete once iteration has finished):

    * ``format``: ``"pcap"`` or ``"pcapng"``; ``compressed``: gzip or not;
    * ``linktypes``: the link-type numbers declared (pcap header, pcapng IDBs);
    * ``synthesised_ethernet``: True when some yielded frame got a made-up Ethernet header;
    * ``interfaces``: list of ``Interface``;
    * ``warnings``: what is surprising in the file but not wrong enough to stop reading (an
      impossible original length, a frame larger than the snaplen), one line each naming the
      file, the frame number and the record's byte offset, as errors do; the first
      ``WARNINGS_PER_KIND`` of a kind one by one, then one line counting the rest;
    * ``frames_read``, ``truncated_frames`` (caplen < orig_len) and
      ``untimestamped_frames`` (pcapng Simple Packet Blocks, which carry no time: their
      timestamp is 0 where Wireshark shows none), ``non_packet_records`` (pcapng
      blocks such as custom blocks that are not frames but that Wireshark numbers like
      frames: they are skipped, and frame numbers jump over them as in Wireshark).
    """

    format = "?"
    max_gap_ns: int | None = DEFAULT_MAX_GAP_NS

    def __init__(self, path, source: ChunkSource, *, max_caplen: int = MAX_CAPLEN):
        self.path = source.path if path is None else path
        self.compressed = source.compressed
        self.max_caplen = max_caplen
        self.linktypes: set[int] = set()
        self.synthesised_ethernet = False
        self.interfaces: list[Interface] = []
        self.frames_read = 0
        self.truncated_frames = 0
        self.untimestamped_frames = 0
        self.non_packet_records = 0
        self.warnings: list[str] = []
        self._warned: dict[str, list] = {}      # kind -> [count, what the rest are called]
        self._source = source
        self._started = False

    # -- subclasses implement _batches(), a generator of Batch that raises CaptureError lazily

    def _batches(self) -> Iterator[Batch]:
        raise NotImplementedError

    def batches(self) -> Iterator[Batch]:
        """Yield the frames as ``Batch`` columns, one batch per chunk read (thousands of
        frames each).  A reader can be consumed once."""
        if self._started:
            raise RuntimeError(f"{self.path}: a CaptureReader can only be iterated once")
        self._started = True
        try:
            gap = self.max_gap_ns
            if gap is None:
                yield from self._batches()
                return
            prev = None
            for batch in self._batches():
                ts = batch.timestamps
                if ts and ((prev is not None and abs(ts[0] - prev) > gap) or _spread(batch) > gap):
                    jump = _first_jump(ts, prev, gap)
                    if jump is not None:
                        i, step = jump
                        if i:
                            yield _head(batch, i)
                        raise self._jump_error(batch.first_frame + i, step, gap)
                if ts:
                    prev = ts[-1] or next((t for t in reversed(ts) if t), prev)
                yield batch
        finally:
            self._count_warnings()
            self.close()

    # -- warnings (cold paths: called only for the odd record)

    def _warn(self, kind: str, reason: str, frame_number: int | None, byte_offset: int | None,
              rest: str) -> None:
        """A warning of ``kind`` about one record, in the error's one-line form (``file: frame N at
        byte offset B: reason``); beyond ``WARNINGS_PER_KIND`` of the kind only counted, and
        ``rest`` says what those are in the line that counts them."""
        seen = self._warned.setdefault(kind, [0, rest])
        seen[0] += 1
        if seen[0] <= WARNINGS_PER_KIND:
            self.warnings.append(str(self._error(reason, frame_number, byte_offset)))

    def _count_warnings(self) -> None:
        for count, rest in self._warned.values():
            if count > WARNINGS_PER_KIND:
                self.warnings.append(f"{self.path}: {count - WARNINGS_PER_KIND} more {rest} after the "
                                     f"{WARNINGS_PER_KIND} above")
        self._warned = {}

    def _impossible_orig_len(self, orig: int, frame_number: int, byte_offset: int, what: str) -> None:
        """Frame ``frame_number`` (its record at ``byte_offset``) claims an original length above
        ``MAX_ORIG_LEN``: a warning; the length is kept as it is (the frame is shorter than it,
        so it counts as cut by a snaplen and is never compared)."""
        self._warn("orig_len", f"{what} declares an original length of {orig} bytes, more than any frame can "
                               f"have ({MAX_ORIG_LEN}): a corrupt record header? Kept as it is (the frame "
                               f"counts as cut by a snaplen, never compared)",
                   frame_number, byte_offset, "frames with an impossible original length")

    def _record_offset(self, number: int) -> int | None:
        """Where frame ``number``'s record starts (for error messages only; None if unknown)."""
        return None

    def _jump_error(self, number: int, step: int, gap: int) -> CaptureError:
        what = (f"timestamp jumps forward {step / 1e9:.9g} s" if step > 0
                else f"timestamp goes back {-step / 1e9:.9g} s")
        return self._error(f"{what} from the frame before (more than the {gap / 1e9:g} s gap threshold; "
                           f"--allow-gaps accepts it)", number, self._record_offset(number))

    def __iter__(self) -> Iterator[tuple[int, int, bytes, int, int]]:
        for batch in self.batches():
            yield from batch

    def close(self) -> None:
        """Release the file (done automatically when iteration ends)."""
        self._source.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _error(self, reason: str, frame_number: int | None = None,
               byte_offset: int | None = None) -> CaptureError:
        return CaptureError(self.path, reason, frame_number=frame_number,
                            byte_offset=byte_offset)

    def _gzip_error(self, frame_number: int | None, byte_offset: int) -> CaptureError:
        return self._error(f"gzip data corrupt or truncated after {byte_offset} decompressed "
                           f"bytes ({self._source.error})", frame_number, byte_offset)

    def _check_stream(self, err: CaptureError) -> CaptureError:
        """The error to raise for ``err``, found in the capture data.

        In a gzip file, garbage in the capture structure may really be a damaged deflate
        stream that has not failed yet (the CRC is only checked at its end).  Read the rest
        of the stream: if gzip then fails, that is the better diagnosis.  (Frames already
        yielded from the damaged region cannot be taken back; gzip cannot tell earlier.)
        """
        source = self._source
        if not source.compressed:
            return err
        while source.error is None and source.read():
            pass
        if source.error is None:
            return err
        return self._error(f"gzip data corrupt ({source.error}); the capture data decompressed "
                           f"before that already looked wrong here: {err.reason}",
                           err.frame_number, err.byte_offset)

    def __repr__(self) -> str:
        kind = self.format + (".gz" if self.compressed else "")
        return f"<{type(self).__name__} {self.path!r} {kind} frames_read={self.frames_read}>"


def _first_jump(ts: list, prev, gap: int):
    """``(index, step)`` of the first timestamp more than ``gap`` from the one before, or None.  A
    timestamp of 0 is no time at all (a pcapng Simple Packet Block): it is skipped."""
    last = prev
    for i, t in enumerate(ts):
        if not t:
            continue
        if last is not None and (t - last > gap or last - t > gap):
            return i, t - last
        last = t
    return None


def _spread(batch: Batch) -> int:
    """Largest minus smallest timestamp of a non-empty batch (from the reader when it knew them)."""
    lo, hi = batch.ts_min, batch.ts_max
    if lo is None or hi is None:
        ts = batch.timestamps
        lo, hi = min(ts), max(ts)
    return hi - lo


def _head(batch: Batch, n: int) -> Batch:
    """The first ``n`` frames of ``batch`` (columnar still when ``batch`` was)."""
    vnets = batch.vnet_lens
    vnets = None if vnets is None else vnets[:n]
    if batch._frames is None:
        return Batch(batch.first_frame, batch.timestamps[:n], None, batch.orig_lens[:n],
                     batch.interface_ids[:n], vnets, None, buf=batch.buf, starts=batch.starts[:n],
                     caps=batch.caps[:n])
    return Batch(batch.first_frame, batch.timestamps[:n], batch.frames[:n], batch.orig_lens[:n],
                 batch.interface_ids[:n], vnets, None)


class UpToError:
    """A capture reader's batches up to its first read error (kept in ``error``), for the looks
    ahead a replay makes before it starts (``--guest auto``, ``--align auto``, the
    filter-rewriter's SYN|ACKs): they use what can be read, and the replay then meets the error
    itself and gives everything before it, marked partial, as it does without them."""

    def __init__(self, reader):
        self.reader = reader
        self.error = None

    def __getattr__(self, name):
        return getattr(self.reader, name)

    def batches(self):
        try:
            yield from self.reader.batches()
        except CaptureError as exc:
            self.error = exc
