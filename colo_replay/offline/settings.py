"""One settings value for every command: how captures become colo-compare's input, how
colo-compare is configured, and how the COLO checkpoints behave.

``Settings`` is built once, from the command line's options or the API's keywords (the same
names: a field is the API keyword, its ``flag`` the command-line option), and validated when it
is built: a value QEMU would refuse, or a combination that makes no sense, raises ``ValueError``
with the one message the command line prints, before any frame is read.  It is frozen:
``settings.replace(compare_timeout=100)`` makes another (``sweep`` does, for every setting of
its grid, and each is validated again).

The driver takes a ``ReplayOptions`` (mutable: what a replay resolves on the way, the clock
alignment or a chardev capture's measured flushes); ``Settings.replay_options()`` makes it.

Fields are grouped as the command line's help groups them:

* colo-compare's properties: ``qemu``, ``compare_timeout``, ``expired_scan_cycle``,
  ``max_queue_size``, ``vnet_hdr_support`` (QEMU's own names; live takes only these).  ``qemu`` is
  the release string as given ("7.2", "6.2.0", "1:8.2.2+ds-0ubuntu1.4", "row:G", "auto"); the row
  it maps to is ``settings.release`` (``engine.releases.Release``; "auto" asks the local binary,
  ``offline.localqemu``);
* which frames: ``bpf_filter``, ``guest``, ``filter_rewriter``, ``peer_isn``, ``vnet_hdr_len``,
  ``allow_gaps``;
* clocks: ``primary_offset_ns``, ``secondary_offset_ns``, ``primary_delay_ns``,
  ``secondary_delay_ns``, ``align``, ``scan_phase_ns``;
* checkpoints: ``checkpoint_duration_ns``, ``checkpoint_delay_ns``, ``checkpoints_at``,
  ``end_ns``, ``after_checkpoint``.

The fields marked ``pair`` only make sense for a pair of captures: a chardev capture's streams
are colo-compare's own input, on its clock, already rewritten, outbound only and carrying their
vnet lengths (``check_chardev``).
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field, fields

from ..engine.constants import MS
from ..engine.profiles import CompareConfig
from ..engine.releases import Release, resolve_release

# The one message for options a chardev capture cannot take (replay, explain, report and the API).
NOT_WITH_CHARDEV = ("not applicable with --chardev: its streams are colo-compare's own input, on its clock, "
                    "already rewritten, outbound only and carrying their vnet lengths (and already reflecting "
                    "the checkpoints)")
PEER_ISN_NEEDS_REWRITER = "--peer-isn goes with --filter-rewriter (peer_isn=True needs filter_rewriter=True)"

# kinds, as a manifest (sweep --pairs) or a summary spells the value: "str", "int" (ms or a count),
# "bool", "duration" (ns; 12ms / 1.5s in text, a bare number is ms), "path", "times", "until"
COMPARE, SELECTION, CLOCKS, CHECKPOINTS = "compare", "selection", "clocks", "checkpoints"


def _opt(default, flag: str, kind: str, group: str, pair: bool = False):
    return field(default=default, metadata={"flag": flag, "kind": kind, "group": group, "pair": pair})


class _Times(tuple):
    """``checkpoints_at`` once read and checked: ``replace`` passes it on as it is, so that a
    sweep's thousands of settings do not parse the same flush times again each."""


class _TraceTimes(_Times):
    """``checkpoints_at`` taken from ``qemu_trace`` (not given by the user)."""


class _Traces(tuple):
    """``qemu_trace`` once read: the paths, with the parsed ``QemuTrace`` as ``.trace``
    (``replace`` passes it on, unparsed again)."""

    trace = None


@dataclass(frozen=True)
class Settings:
    """Every option of a replay (and the colo-compare properties of a live run), validated.

    Times are integer nanoseconds (``*_ns``), colo-compare's properties QEMU's units (ms, a
    count).  ``checkpoints_at`` is given as a path to a ``--checkpoints-at`` file or a list of
    times and kept as the tuple of times it holds (an empty file: a run with no flush, nothing
    flushes); ``end_ns`` as ``--until`` takes it (ns, epoch-seconds text, ``"<n>ns"`` or
    ``"+5s"`` after the last frame)."""

    # colo-compare's properties (QEMU's names)
    qemu: str = _opt("7.2", "--qemu", "str", COMPARE)
    compare_timeout: int | None = _opt(None, "--compare-timeout", "int", COMPARE)
    expired_scan_cycle: int | None = _opt(None, "--expired-scan-cycle", "int", COMPARE)
    max_queue_size: int | None = _opt(None, "--max-queue-size", "int", COMPARE)
    vnet_hdr_support: bool = _opt(False, "--vnet-hdr-support", "bool", COMPARE)
    # which frames are compared
    bpf_filter: str | None = _opt(None, "--filter", "str", SELECTION)
    guest: str | None = _opt(None, "--guest", "str", SELECTION, pair=True)
    filter_rewriter: bool = _opt(False, "--filter-rewriter", "bool", SELECTION, pair=True)
    peer_isn: bool = _opt(False, "--peer-isn", "bool", SELECTION, pair=True)
    vnet_hdr_len: int = _opt(0, "--vnet-hdr-len", "int", SELECTION, pair=True)
    allow_gaps: bool = _opt(False, "--allow-gaps", "bool", SELECTION)
    # clocks
    primary_offset_ns: int = _opt(0, "--primary-offset", "duration", CLOCKS, pair=True)
    secondary_offset_ns: int = _opt(0, "--secondary-offset", "duration", CLOCKS, pair=True)
    primary_delay_ns: int = _opt(0, "--primary-delay", "duration", CLOCKS, pair=True)
    secondary_delay_ns: int = _opt(0, "--secondary-delay", "duration", CLOCKS, pair=True)
    align: str = _opt("none", "--align", "str", CLOCKS, pair=True)
    scan_phase_ns: int = _opt(0, "--scan-phase", "duration", CLOCKS)
    # checkpoints
    checkpoint_duration_ns: int = _opt(100 * MS, "--checkpoint-duration", "duration", CHECKPOINTS)
    checkpoint_delay_ns: int | None = _opt(None, "--checkpoint-delay", "duration", CHECKPOINTS)
    checkpoints_at: tuple | None = _opt(None, "--checkpoints-at", "times", CHECKPOINTS)
    qemu_trace: tuple | None = _opt(None, "--qemu-trace", "traces", CHECKPOINTS)
    end_ns: int | str | None = _opt(None, "--until", "until", CHECKPOINTS)
    after_checkpoint: str | None = _opt(None, "--after-checkpoint", "str", CHECKPOINTS)

    def __post_init__(self):
        from .checkpoints import checkpoint_times, parse_until

        if self.align is None:
            self._set("align", "none")
        if self.align not in ("none", "auto"):
            raise ValueError(f"align must be 'none' or 'auto', not {self.align!r}")
        if self.after_checkpoint not in (None, "resync", "raw"):
            raise ValueError(f"after_checkpoint must be 'resync' or 'raw', not {self.after_checkpoint!r}")
        if self.peer_isn and not self.filter_rewriter:
            raise ValueError(PEER_ISN_NEEDS_REWRITER)
        if self.align == "auto" and self.secondary_offset_ns:
            raise ValueError("--align auto estimates the secondary offset: do not give --secondary-offset too")
        if self.vnet_hdr_len < 0:
            raise ValueError(f"--vnet-hdr-len {self.vnet_hdr_len}: must not be negative")
        if self.checkpoint_duration_ns < 0 or (self.checkpoint_delay_ns is not None and self.checkpoint_delay_ns < 0):
            raise ValueError("--checkpoint-duration and --checkpoint-delay must not be negative")
        if self.checkpoint_delay_ns and self.checkpoint_delay_ns % MS:
            raise ValueError(f"--checkpoint-delay {self.checkpoint_delay_ns} ns: QEMU's x-checkpoint-delay is a "
                             f"whole number of milliseconds (0 = off)")
        # the release and its row; what QEMU's property setters refuse, and the knobs this QEMU
        # has no property for
        release = self._resolve_release()
        self._set("_release", release)
        self.compare_config().resolve(release.profile, release.given)
        if self.qemu_trace is not None:
            self._take_trace(release)
        if release.kvm_colo is not None and self.checkpoints_at is None:
            modelled = [flag for name, flag in (("checkpoint_delay_ns", "--checkpoint-delay"),
                                                ("checkpoint_duration_ns", "--checkpoint-duration"))
                        if getattr(self, name) != SETTINGS_DEFAULTS[name]]
            if self.after_checkpoint == "resync":
                modelled.append("--after-checkpoint resync")
            if modelled:
                raise ValueError(
                    f"--qemu {release.given}: {', '.join(modelled)} model KVM COLO checkpoints, which this release "
                    f"cannot take ({release.kvm_colo}); give measured flushes (--checkpoints-at, e.g. of a Xen "
                    f"COLO run) or a release where KVM COLO runs")
        if self.checkpoints_at is not None and not isinstance(self.checkpoints_at, _Times):
            # a path is read now (a bad line is refused before any frame is read); the times are kept
            self._set("checkpoints_at", _Times(checkpoint_times(self.checkpoints_at)))
        if self.end_ns is not None:
            parse_until(self.end_ns)

    def _take_trace(self, release: Release) -> None:
        """Read ``qemu_trace`` (once) and take its flushes as the measured ones: colo-compare was
        flushed at 'vmstate-received' in 5.1+, at the VM stop before (offline/qemutrace.py)."""
        from .qemutrace import TraceError, read_traces

        traces = self.qemu_trace
        if not isinstance(traces, _Traces):
            paths = [traces] if isinstance(traces, (str, bytes, os.PathLike)) else list(traces)
            try:
                parsed = read_traces(paths)
            except OSError as exc:
                name = os.fsdecode(exc.filename) if exc.filename is not None else "?"
                raise ValueError(f"--qemu-trace {name}: {exc.strerror or exc}") from None
            except TraceError as exc:
                raise ValueError(str(exc)) from None
            traces = _Traces(os.fspath(p) if not isinstance(p, bytes) else os.fsdecode(p) for p in paths)
            traces.trace = parsed
            self._set("qemu_trace", traces)
        if self.checkpoints_at is not None and not isinstance(self.checkpoints_at, _TraceTimes):
            raise ValueError("--qemu-trace gives the measured flushes (the real checkpoints): do not give "
                             "--checkpoints-at too")
        flushes = traces.trace.flush_times(release.profile.checkpoint_requests_coalesce)
        self._set("checkpoints_at", _TraceTimes(sorted(flushes)))

    @property
    def trace(self):
        """The ``offline.qemutrace.QemuTrace`` of ``qemu_trace`` (None without one)."""
        return None if self.qemu_trace is None else self.qemu_trace.trace

    def _resolve_release(self) -> Release:
        if str(self.qemu).strip().lower() == "auto":
            from .localqemu import local_release
            return local_release()
        return resolve_release(self.qemu)

    @property
    def release(self) -> Release:
        """The QEMU release ``qemu`` names: its row, profile and switches (``Release.as_dict()``
        is the ``qemu`` object of every output), its warnings and KVM-COLO availability."""
        return self._release

    def _set(self, name: str, value) -> None:
        object.__setattr__(self, name, value)          # normalising a frozen value while it is built

    @classmethod
    def of(cls, settings: Settings | None = None, **options) -> Settings:
        """``settings`` with ``options`` (the field names) replacing its values; either may be
        missing.  The API's functions take both: ``replay(P, S, settings=s, compare_timeout=100)``."""
        if settings is None:
            return cls(**options)
        if not isinstance(settings, Settings):
            raise TypeError(f"settings must be a Settings, not {type(settings).__name__}")
        return settings.replace(**options) if options else settings

    def replace(self, **changes) -> Settings:
        """A copy with ``changes``, validated again."""
        return dataclasses.replace(self, **changes)

    # -- what was given -------------------------------------------------------------------------

    def given(self) -> dict[str, str]:
        """{field: flag} of the options whose value is not the default, in field order."""
        return {f.name: f.metadata["flag"] for f in fields(self) if getattr(self, f.name) != f.default}

    def check_chardev(self) -> None:
        """ValueError naming every pair-only option given (and ``--after-checkpoint resync``):
        a chardev capture takes none of them."""
        bad = [f.metadata["flag"] for f in fields(self)
               if f.metadata["pair"] and getattr(self, f.name) != f.default]
        if self.after_checkpoint == "resync":
            bad.append("--after-checkpoint resync")
        if bad:
            raise ValueError(f"{', '.join(bad)} {NOT_WITH_CHARDEV}")

    def check_live(self) -> None:
        """ValueError naming every option a live run cannot take (it has only colo-compare's
        properties: its input is the sockets, its clock the host's, its checkpoints real)."""
        bad = [flag for name, flag in self.given().items() if _group(name) != COMPARE]
        if bad:
            raise ValueError(f"{', '.join(bad)} not applicable to a live run (colo-compare's properties only)")

    # -- what it makes --------------------------------------------------------------------------

    def compare_config(self) -> CompareConfig:
        """colo-compare's properties (a vnet header length implies vnet_hdr_support)."""
        return CompareConfig(self.compare_timeout, self.expired_scan_cycle, self.max_queue_size,
                             self.vnet_hdr_support or self.vnet_hdr_len > 0)

    @property
    def max_gap_ns(self) -> int | None:
        """The largest timestamp jump a capture may make (None: any, ``--allow-gaps``)."""
        from ..captures.base import DEFAULT_MAX_GAP_NS
        return None if self.allow_gaps else DEFAULT_MAX_GAP_NS

    def replay_options(self, after_checkpoint: str | None = None):
        """The driver's ``ReplayOptions`` (a new, mutable one).  ``after_checkpoint``: what the
        checkpoints do when the settings leave it open (``None``): ``resync`` for pair
        captures, ``raw`` with measured flushes (``checkpoints_at``: taken under that run)."""
        from .checkpoints import parse_until
        from .driver import ReplayOptions

        after = self.after_checkpoint or after_checkpoint or ("raw" if self.checkpoints_at is not None else "resync")
        end_ns, end_after_ns = parse_until(self.end_ns) if self.end_ns is not None else (None, None)
        return ReplayOptions(
            qemu=self.qemu, release=self.release, compare_timeout=self.compare_timeout,
            expired_scan_cycle=self.expired_scan_cycle, max_queue_size=self.max_queue_size,
            vnet_hdr_support=self.vnet_hdr_support, vnet_hdr_len=self.vnet_hdr_len,
            primary_offset_ns=self.primary_offset_ns, secondary_offset_ns=self.secondary_offset_ns,
            primary_delay_ns=self.primary_delay_ns,
            secondary_delay_ns=self.secondary_delay_ns, scan_phase_ns=self.scan_phase_ns,
            checkpoint_duration_ns=self.checkpoint_duration_ns, checkpoint_delay_ns=self.checkpoint_delay_ns,
            checkpoints_at=None if self.checkpoints_at is None else list(self.checkpoints_at),
            end_ns=end_ns, end_after_ns=end_after_ns, max_gap_ns=self.max_gap_ns, bpf_filter=self.bpf_filter,
            after_checkpoint=after, scan_anchors_ns=None if self.trace is None else self.trace.scan_anchors(),
            qemu_trace=self.trace)

    def warnings(self, who: str = "the replay") -> list[str]:
        """Values QEMU would take but change, and what the release says of itself (newer than
        the verified ones, KVM COLO unavailable): said before the work, kept in the summary."""
        release = self.release
        out = list(release.warnings)
        if release.kvm_colo is not None:
            out.append(f"--qemu {release.given}: {release.kvm_colo}; colo-compare itself runs (and Xen COLO "
                       f"via notify_dev), so {who} still says what it would release and request")
        mqs = self.max_queue_size
        if mqs is not None and mqs > 0xFFFFFFFF and release.profile.max_queue_size_truncates:
            # QEMU 5.2+ parses max_queue_size as uint64 and stores it in a uint32 (engine/profiles.py)
            out.append(f"--max-queue-size {mqs} does not fit QEMU's uint32: QEMU {release.given} truncates it "
                       f"to {mqs & 0xFFFFFFFF}, and so does {who}")
        return out

    def report_options(self) -> dict:
        """``as_dict`` for a report's run options: measured flush times counted, not listed."""
        d = self.as_dict()
        if d["checkpoints_at"] is not None:
            d["checkpoints_at"] = f"{len(d['checkpoints_at'])} measured flush times" + (
                " (from --qemu-trace)" if self.qemu_trace is not None else "")
        return d

    def as_dict(self) -> dict:
        """The fields as plain values (a path given for ``checkpoints_at`` is its times)."""
        out = {}
        for f in fields(self):
            v = getattr(self, f.name)
            out[f.name] = list(v) if isinstance(v, tuple) else (os.fspath(v) if hasattr(v, "__fspath__") else v)
        return out


def _group(name: str) -> str:
    return SETTINGS_FIELDS[name].metadata["group"]


SETTINGS_FIELDS = {f.name: f for f in fields(Settings)}
SETTINGS_DEFAULTS = {f.name: f.default for f in fields(Settings)}

# sweep --pairs: a manifest's keys are the command line's option names (without "--", "_" for "-")
MANIFEST_FIELDS = {f.metadata["flag"][2:].replace("-", "_"): (f.name, f.metadata["kind"]) for f in fields(Settings)}


def split_settings(options: dict) -> tuple[dict, dict]:
    """``(the settings' keywords, the rest)`` of a dict of keywords."""
    mine = {k: v for k, v in options.items() if k in SETTINGS_FIELDS}
    return mine, {k: v for k, v in options.items() if k not in SETTINGS_FIELDS}
