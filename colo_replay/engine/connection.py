"""QEMU's ``Connection`` (net/colo.h): the state colo-compare keeps per flow."""

from __future__ import annotations

from collections import deque


class Connection:
    """QEMU ``Connection``: the two queues of one flow and its TCP bookkeeping."""

    __slots__ = ("index", "ip_proto", "primary", "secondary", "compare_seq", "pack", "sack", "key", "occupied")

    def __init__(self, index: int, ip_proto: int, key: bytes):
        self.index = index            # position in first-seen order, never reused
        self.ip_proto = ip_proto
        self.key = key
        self.primary: deque = deque()
        self.secondary: deque = deque()
        self.compare_seq = 0          # 0 doubles as "unset" in QEMU
        self.pack = 0
        self.sack = 0
        self.occupied = False         # in the engine's list of connections that may hold frames
