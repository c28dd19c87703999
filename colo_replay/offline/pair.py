"""The one way a pair of captures is opened for colo-compare, for replay, sweep and explain.

``open_pair(primary, secondary, settings)`` resolves the settings that need the captures
themselves (``--guest auto`` detection, ``--align auto`` estimation, the filter-rewriter's
SYN|ACK table from the primary) and opens both readers with the same gap rule
(``--allow-gaps``).  The ``PairInput`` it returns holds the readers, the driver's
``ReplayOptions`` and the notes for the summary's ``source``; ``reader(side)`` opens a side
again exactly as the replay read it (explain fetches the frames it shows that way).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..captures.base import UpToError
from .settings import Settings


def is_path(capture) -> bool:
    """A capture given as a path (str, bytes or ``os.PathLike``), not as an open reader."""
    return isinstance(capture, (str, bytes)) or hasattr(capture, "__fspath__")


@dataclass
class PairInput:
    """A capture pair opened for the driver: ``primary`` and ``secondary`` are the readers,
    ``options`` the ``ReplayOptions``, ``source`` what was resolved on the way (the guest
    selection), ``rewriter`` the filter-rewriter's reader (its stats complete once the secondary
    has been read) or None."""

    paths: tuple
    settings: Settings
    primary: object
    secondary: object
    options: object
    source: dict
    rewriter: object = None

    def finished_source(self) -> dict:
        """The summary's ``source`` once the replay has read the secondary."""
        if self.rewriter is not None:
            return {"filter_rewriter": self.rewriter.stats.as_dict(), **self.source}
        return dict(self.source)

    def reader(self, side: int):
        """A new reader of side 0 (primary) or 1 (secondary), as the replay read it."""
        return open_side(self.paths, self.settings, side)


def open_side(paths: tuple, settings: Settings, side: int):
    """A reader of side 0 (primary) or 1 (secondary) of the pair ``paths``, as a replay with
    ``settings`` reads it: the same gap rule (``--allow-gaps``) and, for the secondary, the
    same filter-rewriter (frame numbers are the capture's: no filter applies).  The captures
    must be paths."""
    capture = paths[side]
    if not is_path(capture):
        raise ValueError("the captures were given as readers: they cannot be read again")
    rd = _open(capture, settings)
    if side == 1 and settings.filter_rewriter:
        from .rewriter import rewrite_secondary
        rd = rewrite_secondary(rd, paths[0], settings.vnet_hdr_len, settings.peer_isn, max_gap_ns=settings.max_gap_ns)
    return rd


def _open(capture, settings: Settings):
    from ..captures import open_capture
    return open_capture(capture, max_gap_ns=settings.max_gap_ns)       # every read, the same gap rule


def open_pair(primary, secondary, settings: Settings) -> PairInput:
    """Open a pair (paths or open ``CaptureReader``s) as ``settings`` say; ``ValueError`` for a
    setting the captures cannot honour (``--align auto`` on readers, no common guest ...)."""
    opts = settings.replay_options()
    paths = is_path(primary) and is_path(secondary)
    source = {}
    if settings.guest is not None:
        note = source["guest"] = guest_selection(settings.guest, primary, secondary, settings)
        opts.bpf_filter = (f"({opts.bpf_filter}) and ({note['filter']})" if opts.bpf_filter else note["filter"])
    if settings.align == "auto":
        if not paths:
            raise ValueError("--align auto needs both captures as paths (they are read twice)")
        from .align import estimate_alignment
        found = estimate_alignment(UpToError(_open(primary, settings)), UpToError(_open(secondary, settings)),
                                   opts.vnet_hdr_len)
        opts.secondary_offset_ns = found.offset_ns
        opts.alignment = "auto: " + found.describe()
    prd = _open(primary, settings) if is_path(primary) else primary
    srd = _open(secondary, settings) if is_path(secondary) else secondary
    rewriter = None
    if settings.filter_rewriter:
        if not is_path(primary):
            raise ValueError("filter_rewriter needs the primary capture as a path (it is read twice)")
        from .rewriter import rewrite_secondary
        srd = rewriter = rewrite_secondary(srd, primary, opts.vnet_hdr_len, settings.peer_isn,
                                           max_gap_ns=settings.max_gap_ns)
    return PairInput((primary, secondary), settings, prd, srd, opts, source, rewriter)


def guest_selection(spec: str, primary, secondary, settings: Settings) -> dict:
    """``--guest``: the libpcap filter keeping the guest's outbound frames (its MAC or IP given,
    or ``"auto"``: detected on both captures), with how it was had."""
    from .guest import detect_guest, guest_bpf

    if spec.strip().lower() != "auto":
        return {"guest": spec, "filter": guest_bpf(spec), "how": "given"}
    if not (is_path(primary) and is_path(secondary)):
        raise ValueError("--guest auto needs both captures as paths (they are read twice)")
    found = [detect_guest(UpToError(_open(path, settings))) for path in (primary, secondary)]
    macs = sorted({g.mac for g in found})
    if len(macs) > 1:
        # The secondary VM is a replica of the primary: same MAC.  Two different answers mean one
        # capture is not the guest's output (e.g. inbound frames only): keeping both would compare
        # unrelated traffic, or nothing at all.
        raise ValueError(f"--guest auto found a different guest on each side (primary {found[0].mac}, "
                         f"secondary {found[1].mac}): a COLO pair's VMs share one MAC; give --guest MAC")
    filt = " or ".join(f"ether src {m}" for m in macs)
    return {"guest": " / ".join(macs), "filter": filt if len(macs) == 1 else f"({filt})",
            "how": "; ".join(f"{side}: {g.describe()}" for side, g in zip(("primary", "secondary"), found))}
