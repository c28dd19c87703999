"""Chardev-stream captures: a loopback capture of colo-compare's own sockets, decoded.

QEMU's documentation wires colo-compare to TCP chardevs (port 9001 primary_in, 9004
secondary_in, 9005 outdev; notify_dev is the Xen-style control channel).  ``tcpdump -i lo`` on
those ports records exactly what colo-compare read, when, and what it released: the outdev
stream is the ground truth of its decisions.  ``ChardevCapture`` reassembles the TCP streams
(``captures.tcpstream``), finds which connection and direction is which, and decodes each one
with the framing colo-compare itself uses (``framing.FrameDecoder`` = ``net_fill_rstate``):

* primary_in / secondary_in (to colo-compare): ``length [vnet_hdr_len] frame``; the vnet word
  only with ``vnet_hdr_support=on``;
* outdev (from colo-compare): the same framing (``compare_chr_send``);
* notify_dev: messages *to* colo-compare carry the vnet word when ``vnet_hdr_support=on`` (its
  notify SocketReadState shares the flag), messages *from* it never do.

Each decoded frame is stamped with the capture time of the TCP segment that completed it: the
moment colo-compare's read could first have returned its last byte.  Frames are numbered
1, 2, ... per stream ("message numbers"); ``capture_frames`` maps them to the Wireshark frame
numbers of those completing segments.

Decoding follows QEMU where the stream is odd: one decoder per input for the whole capture
(``SocketReadState`` is never reset on reconnect, so a peer that reconnects mid-frame
desynchronises it, and so it does here, with a warning); a frame over NET_BUFSIZE disables that
input from then on (``Oversized``), and the rest of its bytes are ignored.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..captures.base import Batch
from ..captures.errors import CaptureError
from ..captures.tcpstream import StreamGap, TcpReassembler
from ..engine.framing import (
    COLO_CHECKPOINT, COLO_COMPARE_GET_XEN_INIT, COLO_USERSPACE_PROXY_INIT, DO_CHECKPOINT,
    FrameDecoder, Oversized, classify_notify,
)

ROLES = ("primary_in", "secondary_in", "outdev", "notify_dev")
DEFAULT_PORTS = {"primary_in": 9001, "secondary_in": 9004, "outdev": 9005, "notify_dev": 9009}
_FROM_COMPARE = (DO_CHECKPOINT, COLO_COMPARE_GET_XEN_INIT)
_TO_COMPARE = (COLO_CHECKPOINT, COLO_USERSPACE_PROXY_INIT)
_BATCH = 4096


class ChardevError(Exception):
    """The capture cannot be read as colo-compare's chardev streams (one line, says where)."""


@dataclass
class DecodedStream:
    """The frames (or notify messages) of one chardev, in stream order, as columns."""

    role: str
    direction: str                         # "to compare" / "from compare"
    connections: list = field(default_factory=list)   # stream names, in order
    times: list = field(default_factory=list)          # ns: capture time of the completing segment
    capture_frames: list = field(default_factory=list)  # Wireshark frame number of that segment
    frames: list = field(default_factory=list)          # bytes (vnet header included)
    vnet_lens: list = field(default_factory=list)
    nbytes: int = 0                                     # stream bytes
    disabled_at: int | None = None                      # ns: an oversized frame disabled the input
    disabled_message: str | None = None
    ignored_bytes: int = 0                              # bytes after the input was disabled
    leftover: int = 0                                   # bytes of an unfinished frame at the end

    def __len__(self) -> int:
        return len(self.frames)


class ChardevSideReader:
    """primary_in or secondary_in of a chardev capture, in the shape the replay driver reads
    (``batches()`` of ``Batch``; ``frame`` numbers are message numbers in the stream)."""

    format = "chardev"
    synthesised_ethernet = False

    def __init__(self, capture: "ChardevCapture", stream: DecodedStream):
        self.capture = capture
        self.stream = stream
        self.path = f"{capture.path}#{stream.role}"
        self.linktypes = ()
        self.truncated_frames = 0

    def batches(self):
        st = self.stream
        n = len(st.frames)
        for lo in range(0, n, _BATCH):
            hi = min(n, lo + _BATCH)
            frames = st.frames[lo:hi]
            yield Batch(lo + 1, st.times[lo:hi], frames, [len(f) for f in frames], [0] * (hi - lo),
                        st.vnet_lens[lo:hi] if self.capture.vnet_hdr_support else None)

    def __iter__(self):
        st = self.stream
        for i, (t, f) in enumerate(zip(st.times, st.frames)):
            yield i + 1, t, f, len(f), 0


class ChardevCapture:
    """Read and decode a chardev-stream capture.

    ``ports`` overrides ``DEFAULT_PORTS`` per role (``{"primary_in": 7001}``); a role whose port
    has no connection in the capture is empty (notify_dev is optional, as in QEMU).
    ``vnet_hdr_support`` must be what colo-compare was started with.
    """

    def __init__(self, path, ports: dict | None = None, vnet_hdr_support: bool = False, **open_options):
        from ..captures import open_capture

        self.path = str(path)
        self.ports = {**DEFAULT_PORTS, **(ports or {})}
        self.vnet_hdr_support = vnet_hdr_support
        by_port = {}
        for role in ROLES:
            port = self.ports[role]
            if port in by_port:
                raise ChardevError(f"{role} and {by_port[port]} cannot share port {port}")
            by_port[port] = role
        self.warnings: list[str] = []
        self._sources: dict = {}          # role -> the stream directions decoded for it
        rs = TcpReassembler(by_port, self.path)
        reader = open_capture(path, **open_options)      # max_gap_ns (--allow-gaps)
        self.capture_frames = 0
        self.read_error: CaptureError | None = None   # the capture ended in a read error
        self.end_ns: int | None = None
        try:
            try:
                for fno, t, frame, orig, _iface in reader:
                    self.capture_frames = fno
                    self.end_ns = t
                    rs.add(fno, t, frame, orig)
            except CaptureError as exc:
                # Keep everything before the damage: the replay is then partial, and says so.
                self.read_error = exc
            streams = rs.finish(truncated=self.read_error is not None)
        except StreamGap as exc:
            raise ChardevError(str(exc)) from None
        self.warnings += getattr(reader, "warnings", None) or ()     # the capture reader's (odd records)
        # A connection belongs to the role of its well-known port (whichever end has it).
        conns: dict = {role: [] for role in ROLES}
        for st in streams:
            role = by_port.get(st.dport) or by_port.get(st.sport)
            conns[role].append(st)
        self.start_ns = min((st.first_time_ns for st in streams), default=None)
        self.primary_in = self._decode_input("primary_in", conns["primary_in"], to_compare=True)
        self.secondary_in = self._decode_input("secondary_in", conns["secondary_in"], to_compare=True)
        self.outdev = self._decode_input("outdev", conns["outdev"], to_compare=False)
        self.notify_to, self.notify_from = self._decode_notify(conns["notify_dev"])
        self._check_vnet_setting()
        if not self.primary_in.frames and not self.secondary_in.frames:
            raise ChardevError(f"{self.path}: no colo-compare input found (no TCP data on port "
                               f"{self.ports['primary_in']} primary_in or {self.ports['secondary_in']} "
                               f"secondary_in; see --primary-in-port / --secondary-in-port)")

    # ------------------------------------------------------------------ decoding
    def _pairs(self, streams):
        """Group the two directions of each connection: [(a, b)] in first-seen order."""
        pairs = {}
        for st in streams:
            key = frozenset(((st.src, st.sport), (st.dst, st.dport)))
            pairs.setdefault((key, st.index), []).append(st)
        return sorted(pairs.values(), key=lambda dirs: min(d.first_time_ns for d in dirs))

    def _decode_input(self, role: str, streams, to_compare: bool) -> DecodedStream:
        """One data direction per connection: colo-compare only reads primary_in and
        secondary_in and only writes outdev, so the direction that carries bytes is the one."""
        out = DecodedStream(role, "to compare" if to_compare else "from compare")
        chosen = []
        for dirs in self._pairs(streams):
            carrying = [d for d in dirs if d.nbytes]
            if len(carrying) > 1:
                raise ChardevError(f"{self.path}: {role}: both directions of {carrying[0].name} carry "
                                   f"data; colo-compare only ever {'reads' if to_compare else 'writes'} "
                                   f"{role} (wrong port?)")
            chosen.extend(carrying)
        self._sources[role] = chosen
        self._decode(out, chosen, self.vnet_hdr_support)
        return out

    def _decode(self, out: DecodedStream, streams, vnet: bool) -> None:
        dec = FrameDecoder(vnet_hdr=vnet)
        fed = []            # (stream offset, capture frame number) of each chunk: names a frame's start
        for st in streams:
            out.connections.append(st.name)
            if dec.mid_frame and not dec.disabled:
                self.warnings.append(
                    f"{out.role}: a new connection ({st.name}) starts while a frame is unfinished; "
                    f"like QEMU (SocketReadState is never reset) its bytes continue that frame")
            for chunk in st.chunks:
                fed.append((dec.consumed, chunk.frame_number))
                out.nbytes += len(chunk.data)
                for item in dec.feed(chunk.data):
                    if isinstance(item, Oversized):
                        out.disabled_at = chunk.time_ns
                        out.disabled_message = item.message()
                        self.warnings.append(f"{out.role}: {item.message()} in frame {chunk.frame_number}; "
                                             f"colo-compare stops reading {out.role} (so does the replay)")
                        continue
                    out.times.append(chunk.time_ns)
                    out.capture_frames.append(chunk.frame_number)
                    out.frames.append(item.data)
                    out.vnet_lens.append(item.vnet_hdr_len)
        out.ignored_bytes = dec.ignored
        if dec.mid_frame and not dec.disabled:
            from bisect import bisect_right
            out.leftover = dec.index + len(dec._hdr)
            start = dec._frame_start
            k = bisect_right([off for off, _ in fed], start) - 1
            where = f" (its length word in capture frame {fed[k][1]}, stream byte {start})" if k >= 0 else ""
            announced = f", announced {dec.packet_len} bytes" if dec.state == 2 else ""
            # QEMU's net_fill_rstate fails on an oversized length only once the bytes past its
            # buffer arrive: a length word beyond NET_BUFSIZE near the stream's end just waits
            self.warnings.append(f"{out.role}: the stream ends inside a frame{where}{announced}, {out.leftover} "
                                 f"bytes of it captured; colo-compare never saw that frame complete")

    def _check_vnet_setting(self) -> None:
        """A wrong vnet_hdr_support decodes garbage (every length word is off by the vnet word)
        and almost always leaves the streams ending inside a huge "frame".  When that happens and
        the other setting decodes primary_in cleanly, say so instead of replaying garbage."""
        if not any(st.leftover or st.disabled_message for st in (self.primary_in, self.secondary_in)):
            return
        other = not self.vnet_hdr_support
        for role in ("primary_in", "secondary_in"):
            frames, dec = _trial_decode(self._sources[role], other)
            frames = len(frames)
            if frames and not dec.mid_frame and not dec.disabled:
                flag = "--vnet-hdr-support" if other else "--no-vnet-hdr-support"
                raise ChardevError(f"{self.path}: {role} does not decode with vnet_hdr_support="
                                   f"{'on' if self.vnet_hdr_support else 'off'} (the stream ends inside a "
                                   f"frame) but decodes cleanly into {frames} frames with it "
                                   f"{'on' if other else 'off'}: colo-compare ran with {flag}")

    def _decode_notify(self, streams):
        to = DecodedStream("notify_dev", "to compare")
        frm = DecodedStream("notify_dev", "from compare")
        to_dirs, from_dirs = [], []
        for dirs in self._pairs(streams):
            for d in dirs:
                if not d.nbytes:
                    continue
                # Only colo-compare sends DO_CHECKPOINT / GET_XEN_INIT, and never with a vnet word.
                if any(classify_notify(m) in _FROM_COMPARE for m in _trial_decode([d], False)[0]):
                    from_dirs.append(d)
                else:
                    to_dirs.append(d)
        self._decode(to, to_dirs, self.vnet_hdr_support)
        self._decode(frm, from_dirs, False)
        for msg_stream in (to, frm):
            expected = _TO_COMPARE if msg_stream is to else _FROM_COMPARE
            for i, m in enumerate(msg_stream.frames):
                if classify_notify(m) not in expected:
                    self.warnings.append(
                        f"notify_dev ({msg_stream.direction}): message {i + 1} in frame "
                        f"{msg_stream.capture_frames[i]} is {m[:40]!r}, which colo-compare "
                        + ("reports as an unsupported instruction" if msg_stream is to else "does not send"))
        return to, frm

    # ------------------------------------------------------------------ views
    def side_readers(self):
        """(primary, secondary) readers for the replay driver."""
        return ChardevSideReader(self, self.primary_in), ChardevSideReader(self, self.secondary_in)

    def notify_times(self, message: bytes, direction: str = "to") -> list[int]:
        """Capture times of one notify message: ``COLO_CHECKPOINT`` to colo-compare (the flushes)
        or ``DO_CHECKPOINT`` from it (its checkpoint requests)."""
        st = self.notify_to if direction == "to" else self.notify_from
        return [t for t, m in zip(st.times, st.frames) if m == message]

    def flush_times(self) -> list[int]:
        """When colo-compare was told a checkpoint finished (it flushes its queues then)."""
        return self.notify_times(COLO_CHECKPOINT, "to")

    def request_times(self) -> list[int]:
        """When colo-compare asked for a checkpoint (DO_CHECKPOINT on notify_dev)."""
        return self.notify_times(DO_CHECKPOINT, "from")

    def describe(self) -> str:
        """A few lines for stderr: what was found on which port."""
        lines = []
        for st in (self.primary_in, self.secondary_in, self.outdev):
            port = self.ports[st.role]
            lines.append(f"  {st.role:<13} port {port}: {len(st.frames)} frames, {st.nbytes} bytes, "
                         f"{len(st.connections)} connection(s)"
                         + (f", vnet_hdr_len {'/'.join(map(str, sorted(set(st.vnet_lens))))}"
                            if self.vnet_hdr_support and st.vnet_lens else "")
                         + (", DISABLED by an oversized frame" if st.disabled_message else ""))
        lines.append(f"  notify_dev    port {self.ports['notify_dev']}: {len(self.flush_times())} "
                     f"COLO_CHECKPOINT in, {len(self.request_times())} DO_CHECKPOINT out")
        return "\n".join(lines)


def _trial_decode(streams, vnet: bool):
    """Decode ``streams`` (in order, one parser) without recording anything: ``(frame bytes,
    the decoder)``, to ask how a stream reads with a given vnet setting."""
    dec = FrameDecoder(vnet_hdr=vnet)
    frames = []
    for st in streams:
        for chunk in st.chunks:
            frames.extend(item.data for item in dec.feed(chunk.data) if not isinstance(item, Oversized))
    return frames, dec


def resolve_options(cap: ChardevCapture, opts, flushes: str) -> dict:
    """Fit the driver's ``ReplayOptions`` ``opts`` to a chardev capture, and return the summary's
    ``source``: the vnet setting it was decoded with; ``flushes="measured"`` (unless
    ``checkpoints_at`` was given): the times colo-compare was sent ``COLO_CHECKPOINT``; the clock
    kept running to the capture's end (scans and flushes after the last input frame count too);
    the expiry-scan grid from the first SYN on the chardev ports (about when colo-compare was
    created), plus ``scan_phase_ns``."""
    if flushes not in ("measured", "model"):
        raise ValueError(f"flushes must be 'measured' or 'model', not {flushes!r}")
    given = opts.checkpoints_at is not None
    opts.vnet_hdr_support = cap.vnet_hdr_support
    if flushes == "measured" and opts.checkpoints_at is None and cap.notify_to.frames:
        opts.checkpoints_at = cap.flush_times()
    if opts.end_ns is None and cap.read_error is None:
        opts.end_ns = cap.end_ns
    firsts = [s.times[0] for s in (cap.primary_in, cap.secondary_in) if s.times]
    if cap.start_ns is not None and firsts:
        opts.scan_phase_ns += cap.start_ns - min(firsts)
    return {"chardev": cap.path, "ports": dict(cap.ports), "warnings": list(cap.warnings),
            "flushes": "measured (given)" if given else "measured (COLO_CHECKPOINT on notify_dev)"
            if opts.checkpoints_at is not None and flushes == "measured" else "model"}
