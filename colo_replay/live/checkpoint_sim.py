"""``--flush-on-request DURATION``: a stand-in for the COLO frame on rigs that have none.

Without ``notify_dev`` QEMU hands a checkpoint request to the migration notifier
(``colo_compare_inconsistency_notify`` -> ``colo_checkpoint_notify``); the COLO checkpoint loop
then stops the VM, makes every colo-compare flush (``COLO_EVENT_CHECKPOINT`` ->
``colo_flush_packets``) and resumes.  Here a request starts a simulated checkpoint that flushes
``duration_ns`` later.  Requests that arrive while one runs collapse into exactly one more
checkpoint after it (5.1+ ``QemuEvent``, ``checkpoint_requests_coalesce``), or each one queues
another (4.1's counting semaphore), as ``colo_replay.checkpoints.CheckpointModel`` models it
offline.  For the 4.1 profile the scan clock (QEMU_CLOCK_VIRTUAL) is stopped meanwhile.
"""

from __future__ import annotations


class CheckpointSim:
    def __init__(self, duration_ns: int, coalesce: bool):
        self.duration_ns = duration_ns
        self.coalesce = coalesce
        self.running_until: int | None = None
        self.pending = 0

    def request(self, t: int) -> int | None:
        """A request at ``t``: returns the end time of a checkpoint that starts now, or None."""
        if self.running_until is None:
            self.running_until = t + self.duration_ns
            return self.running_until
        if self.coalesce:
            self.pending = 1
        else:
            self.pending += 1
        return None

    def finish(self, t: int) -> int | None:
        """The running checkpoint ended (flushed) at ``t``: returns the next one's end, or None."""
        self.running_until = None
        if self.pending:
            self.pending -= 1
            self.running_until = t + self.duration_ns
            return self.running_until
        return None
