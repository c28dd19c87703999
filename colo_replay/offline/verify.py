"""``verify``: replay a chardev-stream capture and check the releases against its outdev stream.

The outdev stream of a chardev capture is what the real colo-compare released, in the order it
released it.  ``verify`` replays the capture's primary_in and secondary_in through the engine,
with the flushes at the times colo-compare was sent ``COLO_CHECKPOINT`` on notify_dev, and
compares the replay's released frames with outdev one by one: bytes, vnet length, order.  The
first difference is reported with both sides' message and capture frame numbers.

Checkpoint requests are compared too, but only reported: colo-compare's ``DO_CHECKPOINT`` times
depend on when its iothread ran (and its expiry timer drifts), so a request may land a little
earlier or later in the replay; a release, by contrast, is fully determined by the input order
and the flush times.
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass, field

from .chardev import ChardevCapture
from ..engine.constants import MS
from ..engine.events import EventKind

_RELEASE = EventKind.RELEASE.name.lower()
_REQUEST = EventKind.CHECKPOINT_REQUEST.name.lower()


@dataclass
class Mismatch:
    """The first place where the replay and outdev part ways."""

    index: int                      # 1-based position in the release order
    reason: str                     # "bytes differ", "vnet length differs", "missing on outdev", ...
    replay_message: int | None      # primary_in message number the replay released there
    replay_time_ns: int | None
    outdev_message: int | None      # outdev message number
    outdev_frame: int | None        # Wireshark frame number of the outdev segment
    outdev_time_ns: int | None
    qemu_candidates: list = field(default_factory=list)   # primary_in messages with QEMU's bytes

    def describe(self, capture: ChardevCapture) -> str:
        def pri(m):
            if m is None:
                return "nothing"
            return (f"primary_in message {m} (capture frame {capture.primary_in.capture_frames[m - 1]}, "
                    f"{len(capture.primary_in.frames[m - 1])} B)")
        text = f"release #{self.index}: {self.reason}: replay released {pri(self.replay_message)}"
        if self.outdev_message is None:
            text += ", QEMU released nothing more"
        else:
            text += (f", QEMU released outdev message {self.outdev_message} (capture frame "
                     f"{self.outdev_frame})")
            if self.qemu_candidates:
                text += " = " + " or ".join(pri(m) for m in self.qemu_candidates[:3])
        return text


@dataclass
class VerifyResult:
    released_replay: int
    released_qemu: int
    mismatch: Mismatch | None
    lag_ms: dict | None                 # outdev capture time minus replay release time
    requests_replay: int
    requests_qemu: int
    requests_matched: int               # QEMU requests with a replay request within the window
    request_window_ms: float
    timeline: object                    # the offline.outcome.Timeline of the replay

    @property
    def ok(self) -> bool:
        return self.mismatch is None

    def as_dict(self) -> dict:
        d = {k: v for k, v in self.__dict__.items() if k not in ("timeline", "mismatch")}
        d["ok"] = self.ok
        d["mismatch"] = None if self.mismatch is None else dict(self.mismatch.__dict__)
        return d


def verify_capture(capture: ChardevCapture, timeline, request_window_ms: float | None = None) -> VerifyResult:
    """Compare ``timeline`` (a replay of ``capture``, see ``api.replay_chardev``) with outdev."""
    ev = timeline.events
    rel = ev[ev["kind"] == _RELEASE]
    msgs = rel["primary_frame"].to_numpy()
    rtimes = rel["time_ns"].to_numpy()
    pri = capture.primary_in
    out = capture.outdev
    mismatch = None
    n = max(len(msgs), len(out.frames))
    for i in range(n):
        m = int(msgs[i]) if i < len(msgs) else None
        have_out = i < len(out.frames)
        if m is not None and have_out:
            if pri.frames[m - 1] != out.frames[i]:
                reason = "bytes differ"
            elif pri.vnet_lens[m - 1] != out.vnet_lens[i]:
                reason = f"vnet length differs ({pri.vnet_lens[m - 1]} vs {out.vnet_lens[i]})"
            else:
                continue
        else:
            reason = "QEMU released fewer frames" if m is not None else "the replay released fewer frames"
        cands = []
        if have_out:
            cands = [k + 1 for k, f in enumerate(pri.frames) if f == out.frames[i]]
        mismatch = Mismatch(i + 1, reason, m, int(rtimes[i]) if m is not None else None,
                            i + 1 if have_out else None,
                            out.capture_frames[i] if have_out else None,
                            out.times[i] if have_out else None, cands)
        break
    lag = None
    k = min(len(msgs), len(out.times))
    if k:
        import numpy as np
        d = (np.asarray(out.times[:k], dtype=np.int64) - rtimes[:k]) / MS
        lag = {"p50": float(np.percentile(d, 50)), "p99": float(np.percentile(d, 99)),
               "min": float(d.min()), "max": float(d.max())}
    cfg = timeline.result.knobs
    window = request_window_ms
    if window is None:
        # A compare-driven request happens when a frame is read; a timer-driven one anywhere in
        # the scan cycle the real timer drifted into: one cycle plus a little is the honest window.
        window = float(cfg.get("expired_scan_cycle") or 0) + 5.0
    ours = sorted(int(t) for t in ev.loc[ev["kind"] == _REQUEST, "time_ns"])
    theirs = capture.request_times()
    matched = _match_within(theirs, ours, int(window * MS))
    return VerifyResult(len(msgs), len(out.frames), mismatch, lag, len(ours), len(theirs), matched,
                        window, timeline)


def _match_within(a: list, b: list, window_ns: int) -> int:
    """How many of ``a`` can be paired one-to-one with a ``b`` no further than ``window_ns``
    (greedy in time order, which is optimal for points on a line)."""
    used = [False] * len(b)
    count = 0
    for t in a:
        j = bisect_left(b, t - window_ns)
        while j < len(b) and b[j] <= t + window_ns:
            if not used[j]:
                used[j] = True
                count += 1
                break
            j += 1
    return count


def format_verify(result: VerifyResult, capture: ChardevCapture, judged: bool = False) -> str:
    lines = []
    if result.ok:
        lines.append(f"verify: OK: the replay released the same {result.released_qemu} frames as QEMU "
                     f"(bytes, vnet length and order, compared with outdev)")
    else:
        lines.append(f"verify: MISMATCH at {result.mismatch.describe(capture)}")
        lines.append(f"  released: replay {result.released_replay}, QEMU (outdev) {result.released_qemu}")
    if result.lag_ms:
        l = result.lag_ms
        lines.append(f"  outdev write minus replay release time: p50 {l['p50']:.3f} ms, p99 {l['p99']:.3f} ms, "
                     f"range {l['min']:.3f} .. {l['max']:.3f} ms")
    if not judged or result.requests_qemu:
        lines.append(f"  checkpoint requests: replay {result.requests_replay}, QEMU DO_CHECKPOINT "
                     f"{result.requests_qemu}, {result.requests_matched} of QEMU's within "
                     f"±{result.request_window_ms:g} ms of one of ours (informational)")
    return "\n".join(lines)


class Verification:
    """The outcome of ``api.verify``: the replay's ``timeline``, the ``result`` (``ok``, the
    first ``mismatch``, request matching) and the ``capture``.  ``to_dict()`` is what
    ``verify --json`` prints, ``to_frame()`` the replay's events, ``format()`` the text."""

    def __init__(self, capture: ChardevCapture, timeline, result: VerifyResult, requests=None):
        self.capture = capture
        self.timeline = timeline
        self.result = result
        self.requests = requests            # offline.request_judge.RequestJudgement (with a QEMU trace)

    @property
    def releases_ok(self) -> bool:
        """The replay released what QEMU's outdev did."""
        return self.result.ok

    @property
    def ok(self) -> bool:
        """The releases agree, and (with a QEMU trace) so do the checkpoint requests."""
        return self.result.ok and (self.requests is None or self.requests.ok)

    def to_dict(self) -> dict:
        d = self.result.as_dict()
        d["releases_ok"] = d["ok"]
        d["ok"] = self.ok
        d["checkpoint_requests"] = None if self.requests is None else self.requests.as_dict()
        return d

    def to_frame(self):
        return self.timeline.to_frame()

    def format(self) -> str:
        text = format_verify(self.result, self.capture, judged=self.requests is not None)
        if self.requests is not None:
            text += "\n" + self.requests.format()
        return text

    def __repr__(self) -> str:
        return f"<Verification {'OK' if self.ok else 'MISMATCH'}>"
