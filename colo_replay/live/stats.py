"""Counters of a live run and the periodic ``--stats`` line (plain dicts, no pandas).  The final
summary is these counters (``LiveCompare.summary()``) printed by ``output.summary.format_summary``,
the formatter of replay summaries too."""

from __future__ import annotations

from dataclasses import dataclass, field, asdict


@dataclass
class LiveStats:
    frames_in: list = field(default_factory=lambda: [0, 0])     # primary_in, secondary_in
    bytes_in: list = field(default_factory=lambda: [0, 0])      # framed stream bytes read
    released: int = 0             # frames written (or queued for writing) to outdev
    passthrough: int = 0          # of which unsupported primaries sent uncompared
    bytes_out: int = 0            # outdev stream bytes handed to the socket
    checkpoint_requests: int = 0  # DO_CHECKPOINT (or notifier) requests
    checkpoints: int = 0          # flushes (COLO_CHECKPOINT or --flush-on-request)
    queue_full_drops: int = 0     # frames lost to max_queue_size, as QEMU loses them
    secondary_dropped: int = 0    # secondaries leaving their queue (matched, flushed, unsupported)
    qemu_crash_events: int = 0    # frames that would have killed QEMU (zero length, ...)
    table_resets: int = 0
    outdev_lost: int = 0          # releases while outdev was disconnected (QEMU loses them: -EIO)
    notify_lost: int = 0          # DO_CHECKPOINT while notify_dev was disconnected
    unsupported_instructions: int = 0
    oversized: int = 0            # inputs disabled by a frame over NET_BUFSIZE
    reconnects: dict = field(default_factory=dict)
    input_pauses: int = 0         # times the inputs were paused because outdev pushed back
    max_send_queue_bytes: int = 0  # high-water mark of bytes waiting for outdev

    def as_dict(self) -> dict:
        return asdict(self)

    def line(self, elapsed_s: float, queued: tuple, send_queue: int) -> str:
        return (f"stats t={elapsed_s:.1f}s in=pri:{self.frames_in[0]}/sec:{self.frames_in[1]} "
                f"released={self.released} queued=pri:{queued[0]}/sec:{queued[1]} "
                f"checkpoint_requests={self.checkpoint_requests} checkpoints={self.checkpoints} "
                f"drops={self.queue_full_drops} lost={self.outdev_lost} "
                f"bytes_in=pri:{self.bytes_in[0]}/sec:{self.bytes_in[1]} bytes_out={self.bytes_out} "
                f"send_queue={send_queue}")

    def fields(self, elapsed_s: float, queued: tuple, send_queue: int) -> dict:
        return {"t": round(elapsed_s, 3), "frames_in_primary": self.frames_in[0],
                "frames_in_secondary": self.frames_in[1], "released": self.released,
                "queued_primary": queued[0], "queued_secondary": queued[1],
                "checkpoint_requests": self.checkpoint_requests, "checkpoints": self.checkpoints,
                "drops": self.queue_full_drops, "outdev_lost": self.outdev_lost,
                "bytes_in_primary": self.bytes_in[0], "bytes_in_secondary": self.bytes_in[1],
                "bytes_out": self.bytes_out, "send_queue": send_queue}
