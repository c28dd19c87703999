"""Structured logs on stderr: ``--log-format text`` (default) or ``json`` (one object a line).

Every record has an event name and key/value fields, e.g.::

    colo-replay live: warning input_disabled side=primary_in declared=70000 limit=69632 \
        msg="colo-compare primary_in error: serious error: oversized packet received,connection terminated."
    {"ts": 1712.345, "level": "warning", "event": "input_disabled", "side": "primary_in", ...}

Data never goes here; stdout carries the timeline only (when ``-o -`` / no file is asked for).
"""

from __future__ import annotations

import json
import sys
import time

LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40}


class Log:
    def __init__(self, fmt: str = "text", level: str = "info", stream=None):
        if fmt not in ("text", "json"):
            raise ValueError(f"unknown log format {fmt!r}")
        self.fmt = fmt
        self.threshold = LEVELS[level]
        self.stream = stream if stream is not None else sys.stderr
        self.counts: dict[str, int] = {}

    def enabled(self, level: str) -> bool:
        return LEVELS[level] >= self.threshold

    def emit(self, level: str, event: str, msg: str = "", **fields) -> None:
        self.counts[event] = self.counts.get(event, 0) + 1
        if LEVELS[level] < self.threshold:
            return
        if self.fmt == "json":
            rec = {"ts": round(time.time(), 6), "level": level, "event": event}
            if msg:
                rec["msg"] = msg
            rec.update(fields)
            line = json.dumps(rec, default=str)
        else:
            kv = " ".join(f"{k}={_text(v)}" for k, v in fields.items())
            line = f"colo-replay live: {level} {event}"
            if kv:
                line += " " + kv
            if msg:
                line += f" msg={_text(msg)}"
        try:
            self.stream.write(line + "\n")
            self.stream.flush()
        except (OSError, ValueError):
            pass

    def debug(self, event, msg="", **f):
        if self.threshold <= 10:
            self.emit("debug", event, msg, **f)
        else:
            self.counts[event] = self.counts.get(event, 0) + 1

    def info(self, event, msg="", **f):
        self.emit("info", event, msg, **f)

    def warning(self, event, msg="", **f):
        self.emit("warning", event, msg, **f)

    def error(self, event, msg="", **f):
        self.emit("error", event, msg, **f)


def _text(v) -> str:
    s = str(v)
    if s == "" or any(c in s for c in ' "=\n'):
        return json.dumps(s)
    return s
