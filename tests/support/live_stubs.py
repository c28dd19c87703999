"""A ``LiveCompare`` without sockets or event loop, for unit tests and the CPU benchmark
(bench/bench_live_cpu.py): inputs are fed by calling ``_input(side, chunk)`` directly."""

from __future__ import annotations

import io

from colo_replay import CompareConfig
from colo_replay.live.logs import Log
from colo_replay.live.runtime import LiveCompare


class StubOut:
    """outdev/notify_dev stand-in; with ``keep`` it keeps what would be written."""
    blocked = False
    queued_bytes = 0
    lost_entries = 0
    sent_bytes = 0
    connected = True

    def __init__(self, keep: bool = True):
        self.keep = keep
        self.writes = []

    def send(self, entries):
        if self.keep:
            self.writes.append(b"".join(b for e in entries for b in e))
        return 0


class StubIn:
    """primary_in/secondary_in stand-in: only the read size the runtime sets."""
    read_size = 0


class StubLoop:
    """Timers that never fire (the expiry scan is not under test here)."""

    def call_at(self, *args):
        return self

    def cancel(self):
        pass


def stub_live_compare(timeline=None, vnet: bool = False, keep_writes: bool = True) -> LiveCompare:
    lc = LiveCompare({}, log=Log(stream=io.StringIO()), timeline=timeline,
                     config=CompareConfig(vnet_hdr_support=vnet))
    lc.channels = {"outdev": StubOut(keep_writes), "notify_dev": StubOut(keep_writes),
                   "primary_in": StubIn(), "secondary_in": StubIn()}
    lc.loop = StubLoop()
    lc._start_engine(lc.clock.now())
    return lc
