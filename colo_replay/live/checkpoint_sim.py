"""``--flush-on-request DURATION``: a stand-in for the COLO frame on rigs that have none.

Without ``notify_dev`` QEMU hands a checkpoint request to the migration notifier
(``colo_compare_inconsistency_notify`` -> ``colo_checkpoint_notify``); the COLO checkpoint loop
then stops the VM, makes every colo-compare flush (``COLO_EVENT_CHECKPOINT`` ->
``colo_flush_packets``) and resumes.  Here a request starts a simulated checkpoint that flushes
``duration_ns`` later.  Requests that arrive while one runs collapse into exactly one more
checkpoint after it (5.1+ ``QemuEvent``, ``checkpoint_requests_coalesce``), or each one queues
another (4.1's counting semaphore), as offline: this is the offline model
(``colo_replay.offline.checkpoints.CheckpointModel``, without periodic checkpoints), driven on
the live clock through its ``request`` / ``finish``.  For the
4.1-5.1 profiles the scan clock (QEMU_CLOCK_VIRTUAL) is stopped meanwhile (``runtime``).
"""

from __future__ import annotations

from ..offline.checkpoints import CheckpointModel


class CheckpointSim:
    """The checkpoint model as the live runtime's timers need it: end times to sleep until."""

    def __init__(self, duration_ns: int, coalesce: bool):
        self.model = CheckpointModel(0, duration_ns, 0, coalesce)

    @property
    def duration_ns(self) -> int:
        return self.model.duration_ns

    def request(self, t: int) -> int | None:
        """A request at ``t``: returns the end time of a checkpoint that starts now, or None."""
        return self._started(self.model.request(t))

    def finish(self, t: int) -> int | None:
        """The running checkpoint ended (flushed) at ``t``: returns the next one's end, or None."""
        return self._started(self.model.finish(t))

    def _started(self, actions) -> int | None:
        return self.model.running_until if any(a.kind == "start" for a in actions) else None
