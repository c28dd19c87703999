"""Recorded runs of the differential scenarios on real QEMU releases (issue 20 item 5).

A recording is one gzip'd JSON file per release, ``tests/data/qemu-recordings/<release>.json.gz``,
written by ``scripts/record_qemu_release.py`` from a binary built with
``scripts/build_qemu_release.sh`` (how, and what was found: ``tests/data/qemu-recordings/README.md``)::

    {"format": 1,
     "release": "6.2.0", "row": "G",            # row by qemu-releases.md §2's rule
     "binary": {"version": "QEMU emulator version 6.2.0", "source": "jasowang/qemu tag v6.2.0",
                "configure": [...]},
     "recorded": "2026-12-07",
     "properties": ["compare_timeout", ...],    # the colo-compare properties this release has
     "scenarios": {name: {"config": {...},      # Scenario.config_args()
                          "steps_sha256": "...",  # of the scenario's steps, to notice a changed scenario
                          "steps": [{"releases": [[hex, vnet], ...], "checkpoints": n}, ...]}},
     "skipped": {name: reason},
     "errors": {name: {"error": text, "steps": [...the steps done before it]}},
     "crash_cases": {name: {...}}}

A released frame longer than ``INLINE_MAX`` bytes that is byte-identical to a frame of one of the
scenario's steps (colo-compare releases primary frames unchanged) is stored as
``{"step": i, "len": n, "sha256": ...}`` instead of its hex, which keeps the 66 kB frames of the
16-bit truncation scenarios out of the files; ``load_recording`` puts the bytes back.

``load_recording(path)`` returns ``(meta, {scenario name: [StepCapture, ...]})``: the captures have
the shape ``differential.qemu_run`` returns, so ``differential.compare(scenario, qres, eres)``
works on them unchanged.
"""

from __future__ import annotations

import datetime
import gzip
import hashlib
import json
import re
import struct

from .qemu_oracle import StepCapture

FORMAT = 1
INLINE_MAX = 512
PROPERTIES = ("compare_timeout", "expired_scan_cycle", "max_queue_size")


# ---------------------------------------------------------------------- releases (qemu-releases.md)
def _version(release: str) -> tuple[int, int, int]:
    m = re.fullmatch(r"(\d+)\.(\d+)(?:\.(\d+))?", release.strip())
    if not m:
        raise ValueError(f"not a release string: {release!r}")
    return int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)


def reference_row(release: str) -> str:
    """The behaviour row of qemu-releases.md §2 ("Rule for --qemu MAJOR.MINOR[.MICRO]")."""
    major, minor, micro = _version(release)
    mm = (major, minor)
    if mm < (4, 1):
        raise ValueError(f"QEMU {release} is older than the reference's first row (4.1.0)")
    if mm == (4, 1):
        return "A" if micro == 0 else "B"
    table = {(4, 2): "B", (5, 0): "C", (5, 1): "D", (5, 2): "E", (6, 0): "E", (6, 1): "F", (6, 2): "G",
             (7, 0): "H", (7, 1): "I", (8, 0): "J", (8, 1): "J"}
    if mm in table:
        return table[mm]
    last_j = {(7, 2): 14, (8, 2): 7, (9, 0): 3, (9, 1): 1}
    if mm in last_j:
        return "J" if micro <= last_j[mm] else "K"
    return "K"


def release_properties(release: str) -> frozenset:
    """colo-compare's tunable properties in ``release`` (qemu-releases.md §5)."""
    mm = _version(release)[:2]
    if mm < (5, 0):
        return frozenset()
    if mm < (5, 1):
        return frozenset({"compare_timeout", "expired_scan_cycle"})
    return frozenset(PROPERTIES)


def missing_properties(scenario, release: str) -> list[str]:
    """The properties ``scenario`` sets that ``release`` does not have (then it cannot be run)."""
    have = release_properties(release)
    args = scenario.config_args()
    return [p for p in PROPERTIES if args.get(p) is not None and p not in have]


def extra_scenarios() -> list:
    """Timer scenarios at QEMU's *default* compare_timeout / expired_scan_cycle, recorded on every
    release beside the differential suite (whose timer scenarios set both properties, so 4.1-4.2
    cannot run them): a lone primary, and a lone secondary, left for 3 x 3000 ms, then a flush.
    4.x scans every 3000 ms on the virtual clock, 5.0-5.1 never request (§3 C1), 5.2+ scan every
    1000 ms and the secondary lists too.  Not part of scenarios.py: they take 9 s each."""
    from . import frames as F
    from .scenarios import Scenario
    from .steps import FLUSH, WAIT, P, S
    return [
        Scenario("defaults-timeout-lone-primary", [P(F.udp(b"lonely-primary-defaults")), WAIT(3000),
                                                    WAIT(3000), WAIT(3000), FLUSH],
                 description="lone primary UDP at the default timer settings, 9 s, then a flush"),
        Scenario("defaults-timeout-lone-secondary", [S(F.udp(b"lonely-secondary-defaults")), WAIT(3000),
                                                      WAIT(3000), WAIT(3000), FLUSH],
                 description="lone secondary UDP at the default timer settings, 9 s, then a flush"),
    ]


# ---------------------------------------------------------------------- encoding
def steps_sha256(scenario) -> str:
    """A fingerprint of the scenario's steps (ops, frames, vnet lengths, waits) and config."""
    h = hashlib.sha256()
    h.update(json.dumps(scenario.config_args(), sort_keys=True).encode())
    for st in scenario.steps:
        parts = [st[0]] + [x.hex() if isinstance(x, (bytes, bytearray)) else str(x) for x in st[1:]]
        h.update(("|".join(parts) + "\n").encode())
    return h.hexdigest()


def _step_frames(scenario) -> dict:
    """sha256 -> step index, for every frame of a P / S step."""
    out = {}
    for i, st in enumerate(scenario.steps if scenario is not None else ()):
        if st[0] in ("P", "S"):
            out.setdefault(hashlib.sha256(st[1]).hexdigest(), i)
    return out


def encode_release(data: bytes, vnet: int, frames_by_sha: dict | None = None):
    if len(data) > INLINE_MAX and frames_by_sha:
        sha = hashlib.sha256(data).hexdigest()
        if sha in frames_by_sha:
            return {"step": frames_by_sha[sha], "len": len(data), "sha256": sha, "vnet": vnet}
    return [data.hex(), vnet]


def decode_release(item, scenario=None) -> tuple[bytes, int]:
    if isinstance(item, list):
        return bytes.fromhex(item[0]), item[1]
    if scenario is None:
        raise ValueError("a release stored by step reference needs its scenario")
    data = scenario.steps[item["step"]][1]
    if len(data) != item["len"] or hashlib.sha256(data).hexdigest() != item["sha256"]:
        raise ValueError(f"scenario {scenario.name!r} step {item['step']} is not the recorded frame")
    return data, item["vnet"]


def encode_capture(cap: StepCapture, frames_by_sha: dict | None = None) -> dict:
    d = {"releases": [encode_release(data, vnet, frames_by_sha) for data, vnet in cap.releases],
         "checkpoints": cap.checkpoints}
    if cap.other_notify:
        d["other_notify"] = [m.hex() for m in cap.other_notify]
    if cap.settled:
        d["settled"] = True
    return d


def decode_capture(d: dict, scenario=None) -> StepCapture:
    return StepCapture(releases=[decode_release(r, scenario) for r in d["releases"]],
                       checkpoints=d["checkpoints"],
                       other_notify=[bytes.fromhex(m) for m in d.get("other_notify", ())],
                       settled=bool(d.get("settled", False)))


def encode_scenario(scenario, captures: list) -> dict:
    by_sha = _step_frames(scenario)
    return {"config": scenario.config_args(), "steps_sha256": steps_sha256(scenario),
            "steps": [encode_capture(c, by_sha) for c in captures]}


# ---------------------------------------------------------------------- files
def save_recording(path: str, rec: dict) -> None:
    data = json.dumps(rec, sort_keys=True, separators=(",", ":")).encode()
    with open(path, "wb") as f:
        # mtime=0: the same recording gives the same bytes
        with gzip.GzipFile(filename="", mode="wb", fileobj=f, mtime=0, compresslevel=9) as g:
            g.write(data)


def read_recording(path: str) -> dict:
    """The raw recording (JSON) of ``path``."""
    with gzip.open(path, "rb") as f:
        rec = json.loads(f.read())
    if rec.get("format") != FORMAT:
        raise ValueError(f"{path}: recording format {rec.get('format')!r}, expected {FORMAT}")
    return rec


def load_recording(path: str, scenarios=None, strict: bool = True):
    """``(meta, {scenario name: [StepCapture per step]})`` of a recording.

    ``scenarios`` (default ``scenarios.all_scenarios() + extra_scenarios()``) are matched by name; they resolve the
    releases stored by step reference, and each one's steps must still be the recorded ones
    (``steps_sha256``): with ``strict`` a changed or vanished scenario raises ``ValueError``,
    otherwise it is left out and named in ``meta["stale"]``.  ``meta`` is the recording without
    its ``scenarios`` (release, row, binary, recorded, properties, skipped, errors, crash_cases).
    """
    rec = read_recording(path)
    if scenarios is None:
        from .scenarios import all_scenarios
        scenarios = all_scenarios() + extra_scenarios()
    by_name = {s.name: s for s in scenarios}
    meta = {k: v for k, v in rec.items() if k != "scenarios"}
    meta["stale"] = []
    out = {}
    for name, srec in rec["scenarios"].items():
        sc = by_name.get(name)
        if sc is None or steps_sha256(sc) != srec["steps_sha256"]:
            if strict:
                why = "no such scenario" if sc is None else "its steps changed since it was recorded"
                raise ValueError(f"{path}: scenario {name!r}: {why} (re-record: scripts/record_qemu_release.py)")
            meta["stale"].append(name)
            continue
        out[name] = [decode_capture(d, sc) for d in srec["steps"]]
    return meta, out


# ---------------------------------------------------------------------- recording a binary
def _signal_name(rc) -> str | None:
    import signal
    if rc is None or rc >= 0:
        return None
    try:
        return signal.Signals(-rc).name
    except ValueError:
        return f"signal {-rc}"


def _stderr_lines(text: str, limit: int = 8) -> list[str]:
    lines = [ln for ln in text.splitlines() if ln.strip()]
    return lines[-limit:]


def run_scenario(scenario, binary: str) -> dict:
    """Run one scenario on ``binary``: the encoded scenario, or {"error", "steps"} if QEMU failed."""
    from .qemu_oracle import QemuError, QemuOracle
    caps: list = []
    try:
        with QemuOracle(binary=binary, **scenario.config_args()) as q:
            for st in scenario.steps:
                caps.append(q.step(st))
    except QemuError as e:
        by_sha = _step_frames(scenario)
        return {"error": str(e).splitlines()[0], "detail": str(e)[-2000:], "failed_step": len(caps),
                "steps": [encode_capture(c, by_sha) for c in caps]}
    return encode_scenario(scenario, caps)


def _after_bad_input(q, send, follow_up: bool = True) -> dict:
    """Write something bad with ``send(q)``; then either QEMU dies (exit status, stderr) or a
    barrier comes back (what that step released and requested) and a follow-up UDP pair runs."""
    from . import frames as F
    from .qemu_oracle import QemuError
    out: dict = {}
    send(q)
    try:
        cap = q.barrier()
    except QemuError as e:
        rc = q.wait_exit(5.0)
        out.update(survived=False, exit_status=rc, signal=_signal_name(rc),
                   error=str(e).splitlines()[0], stderr=_stderr_lines(q.stderr_text()))
        return out
    out.update(survived=True, step=encode_capture(cap))
    if not follow_up:
        return out
    try:
        follow = F.udp(b"after-bad-input", sport=4711)
        caps = [q.step(("P", follow)), q.step(("S", follow))]
        out["follow_up"] = [encode_capture(c) for c in caps]
    except QemuError as e:
        rc = q.wait_exit(5.0)
        out.update(follow_up_error=str(e).splitlines()[0], exit_status=rc, signal=_signal_name(rc),
                   stderr=_stderr_lines(q.stderr_text()))
    return out


def zero_length_case(binary: str, side: str, vnet: bool = False, vnet_len: int = 0) -> dict:
    """A zero-length frame on ``side`` ('pri' / 'sec'), after one queued UDP primary."""
    from . import frames as F
    from .qemu_oracle import QemuOracle, zero_length_frame_bytes
    case = {"input": side, "vnet_hdr_support": vnet, "vnet_hdr_len": vnet_len,
            "before": "P udp 'before' (queued)"}
    with QemuOracle(binary=binary, vnet_hdr_support=vnet) as q:
        case["before_step"] = encode_capture(q.step(("P", F.udp(b"before"))))
        # The frame's header only: the barrier frame written next is what makes QEMU finalise it
        # (zero_length_frame_bytes' extra byte would shift the framing of every later frame).
        header = zero_length_frame_bytes(vnet, vnet_len)[:-1]
        case.update(_after_bad_input(q, lambda q: q.send_raw(side, header)))
    return case


def table_overflow_case(binary: str, keys_before: int, config: dict | None = None) -> dict:
    """``keys_before`` distinct connection keys (first + the barrier flow + fillers), then one
    new key ('last'), then a flush: as test_differential_qemu.test_connection_table_reset does.
    ``config``: colo-compare properties (long timeouts where the release has them, so that no
    timer runs while 16k frames are written; 4.x has only its fixed 3000 ms)."""
    from . import frames as F
    from .qemu_oracle import QemuError, QemuOracle
    first = F.udp(b"first", sport=1000)
    fill = [F.udp(b"fill", sport=1000, src=f"10.2.{i >> 8}.{i & 255}") for i in range(keys_before - 2)]
    last = F.udp(b"last", sport=1001)
    case: dict = {"keys_before_last": keys_before}
    case["config"] = dict(config or {})
    with QemuOracle(binary=binary, **(config or {})) as q:
        q.step(("P", first))
        for f in fill:
            q.send_frame("pri", f)
        try:
            q.barrier()
        except QemuError as e:
            rc = q.wait_exit(5.0)
            case.update(survived=False, died_at="fill", exit_status=rc, signal=_signal_name(rc),
                        error=str(e).splitlines()[0], stderr=_stderr_lines(q.stderr_text()))
            return case
        # no follow-up frames here: a new key would itself be one more connection
        sub = _after_bad_input(q, lambda q: q.send_frame("pri", last), follow_up=False)
        case.update(sub)
        if not sub.get("survived"):
            return case
        try:
            flush = q.step(("FLUSH",))
        except QemuError as e:
            rc = q.wait_exit(5.0)
            case.update(flush_error=str(e).splitlines()[0], exit_status=rc, signal=_signal_name(rc),
                        stderr=_stderr_lines(q.stderr_text()))
            return case
        rel = flush.releases
        case["flush"] = {"released": len(rel), "checkpoints": flush.checkpoints, "settled": flush.settled,
                         "last_released": (last, 0) in rel, "first_released": (first, 0) in rel,
                         "released_sha256_sorted": hashlib.sha256(b"".join(
                             struct.pack("!I", len(d)) + d for d, _ in sorted(rel))).hexdigest()}
        if len(rel) <= 4:
            case["flush"]["releases"] = [[d.hex(), v] for d, v in rel]
    return case


def record_binary(binary: str, release: str, scenarios, configure=None, source: str | None = None,
                  crash_cases: bool = True, log=print) -> dict:
    """Run every scenario ``release`` can run (and the crash cases) on ``binary``; the recording."""
    import subprocess
    version = subprocess.run([binary, "--version"], capture_output=True, text=True,
                             timeout=30).stdout.splitlines()[0].strip()
    rec: dict = {"format": FORMAT, "release": release, "row": reference_row(release),
                 "binary": {"version": version, "source": source or f"jasowang/qemu tag v{release}",
                            "configure": list(configure or [])},
                 "recorded": datetime.date.today().isoformat(),
                 "properties": sorted(release_properties(release)),
                 "scenarios": {}, "skipped": {}, "errors": {}, "crash_cases": {}}
    for sc in scenarios:
        missing = missing_properties(sc, release)
        if missing:
            rec["skipped"][sc.name] = (f"sets {', '.join(missing)}, which QEMU {release}'s colo-compare "
                                       "does not have (qemu-releases.md §5)")
            continue
        r = run_scenario(sc, binary)
        if "error" in r:
            rec["errors"][sc.name] = r
            log(f"  {sc.name}: ERROR {r['error']}")
        else:
            rec["scenarios"][sc.name] = r
    if crash_cases:
        quiet = {p: 600000 for p in ("compare_timeout", "expired_scan_cycle")
                 if p in release_properties(release)}
        cases = {
            "zero-length-primary": lambda: zero_length_case(binary, "pri"),
            "zero-length-secondary": lambda: zero_length_case(binary, "sec"),
            "zero-length-primary-vnet-len-0": lambda: zero_length_case(binary, "pri", True, 0),
            "zero-length-primary-vnet-len-10": lambda: zero_length_case(binary, "pri", True, 10),
            "table-overflow-16384-keys": lambda: table_overflow_case(binary, 16384, quiet),
            "table-overflow-16385-keys": lambda: table_overflow_case(binary, 16385, quiet),
        }
        for name, fn in cases.items():
            try:
                rec["crash_cases"][name] = fn()
            except Exception as e:          # a harness failure is a finding too: keep going
                rec["crash_cases"][name] = {"harness_error": f"{type(e).__name__}: {str(e).splitlines()[0]}"}
            log(f"  crash case {name}: {_case_summary(rec['crash_cases'][name])}")
    return rec


def _case_summary(case: dict) -> str:
    if "harness_error" in case:
        return case["harness_error"]
    if case.get("survived") is False:
        return f"died ({case.get('signal') or case.get('exit_status')}): {'; '.join(case.get('stderr', [])[-1:])}"
    if "flush_error" in case or "follow_up_error" in case:
        return f"survived the input, died later ({case.get('signal')})"
    fl = case.get("flush")
    if fl is not None:
        return f"survived; flush released {fl['released']}"
    st = case.get("step", {})
    return f"survived; released {len(st.get('releases', []))}, checkpoints {st.get('checkpoints')}"
