"""Every command's work as a function; the command line (``colo_replay.cli``) only parses
options, makes one of these calls and prints what it returns.

* ``replay(primary, secondary, **options) -> Timeline``      ``colo-replay replay P S``
* ``replay_chardev(capture, **options) -> Timeline``          ``colo-replay replay --chardev C``
* ``verify(capture, **options) -> Verification``              ``colo-replay verify C``
* ``explain(primary, secondary, **options) -> Explanation``   ``colo-replay explain P S``
* ``sweep(primary, secondary, grid=..., **options) -> Sweep``  ``colo-replay sweep P S --compare-timeout ...``
* ``live(primary_in=..., secondary_in=..., outdev=..., ...) -> LiveRun``   ``colo-replay live``

Options are resolved here, once (profiles, filter-rewriter, guest selection, clock alignment,
measured checkpoint times, BPF filter): what the command line accepts, these accept too, and
what they refuse raises ``ValueError`` with the message the command line prints.
"""

from __future__ import annotations

import os
from functools import cached_property

from .offline.driver import ReplayOptions, ReplayResult, replay_partial
from .output.summary import format_summary, summarise
from .output.timeline import check_timeline_path, write_timeline, write_timeline_blocks
from .output.verdict import exit_status


class Timeline:
    """The outcome of a replay.

    ``events`` is a pandas DataFrame with one row per event (columns documented in
    ``colo_replay.timeline``; ``kind``, ``cause`` and ``side`` are categorical), ``summary``
    the summary as a dict, ``partial`` True when a capture ended in a read error (``error``).

    A replay given ``output="t.parquet"`` streamed its rows to that file as they came and kept
    none of them (``output`` is the path): ``summary`` comes from the counts made on the way,
    and ``events`` / ``columns`` read the file back when asked.
    """

    def __init__(self, result: ReplayResult, stream=None):
        self.result = result
        self.stream = stream         # the output.stream.ParquetStream the rows went to, or None
        self.output = None           # the file the replay wrote the timeline to (``replay(output=)``)

    @cached_property
    def events(self):
        if self.stream is not None:
            import pandas as pd
            return pd.read_parquet(self.stream.path)      # the rows were not kept: the file has them
        return self.result.collector.to_frame()

    @cached_property
    def columns(self) -> dict:
        """The events as numpy columns (kind / cause / side as their codes; see
        ``output.timeline``), shared with the collector: what the summary and a Parquet
        timeline are made from, without pandas (a streamed run: from the file)."""
        if self.stream is not None:
            from .output.timeline import code_columns
            return code_columns(self.events)
        return self.result.collector.columns(copy=False)

    @cached_property
    def tally(self):
        """What the summary counts (``output.tally.Tally``): made on the way when streamed."""
        if self.stream is not None:
            return self.stream.tally
        from .output.tally import Tally
        return Tally.of(self.result.collector.blocks())      # no timeline-sized join just to count

    @cached_property
    def summary(self) -> dict:
        summary = summarise(self.tally, self.result)
        source = getattr(self.result, "source", None)
        if source:
            summary["source"] = source
        return summary

    @property
    def partial(self) -> bool:
        return self.result.partial

    @property
    def error(self) -> str | None:
        return self.result.error

    @property
    def diverged(self) -> bool:
        return self.summary["divergences"] > 0

    def format_summary(self) -> str:
        return format_summary(self.summary)

    @property
    def interrupted(self) -> bool:
        return self.result.interrupted

    def _why_partial(self) -> str | None:
        return self.error if self.error is not None else ("interrupted" if self.interrupted else None)

    def write(self, path: str | None = None, stream=None) -> None:
        """Write the events: .parquet / .csv / .jsonl by extension, or JSON Lines to ``stream``;
        a partial timeline is marked so in the file (see ``output.timeline.write_timeline``).
        The file a replay streamed to is already written: nothing to do."""
        if self.output is not None and path is not None and os.path.abspath(path) == os.path.abspath(self.output):
            return
        if self.stream is None:
            # The collector's blocks, one after the other: no timeline-sized join of the columns,
            # DataFrame or text first.  Parquet: a row group each, as a streamed run writes them.
            if path is not None and path.lower().endswith(".parquet"):
                from .output.stream import ParquetStream
                self._write_blocks(ParquetStream(path))
            else:
                write_timeline_blocks(self.result.collector.blocks(), path, stream, partial=self._why_partial())
            return
        write_timeline(self.events, path, stream, partial=self._why_partial())

    def _write_blocks(self, out) -> None:
        """Hand the collector's blocks, in order, to the ParquetStream ``out`` and close it
        (marked partial when the replay was); on any failure (the disk full) leave a closed,
        marked file and re-raise."""
        try:
            for block in self.result.collector.blocks():
                out(block)
            out.close(self._why_partial())
        except BaseException as exc:
            out.abort(f"{type(exc).__name__}: {exc}")
            raise

    def _finish(self, output) -> None:
        """``replay(output=...)``, once the result is final: the streamed file gets the rows
        still in the collector and is closed (marked partial when the replay was); any other
        format is written from memory."""
        if output is None:
            return
        if self.stream is not None:
            # The rows not written yet, in order: a block a Ctrl-C stopped on its way to the
            # stream (kept by the collector), then the last one.
            self.result.collector.spill = None
            self._write_blocks(self.stream)
        else:
            self.write(output)
        self.output = os.fspath(output)

    def exit_status(self, allow_empty: bool = False, exceeded: bool = False) -> int:
        """The exit status of the exit-code contract (``output.verdict``)."""
        s = self.summary
        return exit_status(requests=s["checkpoint_requests"], exceeded=exceeded,
                           nothing_compared=s["nothing_compared"], allow_empty=allow_empty, error=s["error"],
                           interrupted=s["interrupted"])

    def __len__(self) -> int:
        return len(self.result.collector)

    def __repr__(self) -> str:
        return f"<Timeline {len(self)} events, {self.summary['divergences']} divergences>"


def _is_path(capture) -> bool:
    return isinstance(capture, (str, bytes)) or hasattr(capture, "__fspath__")


CHARDEV_IS_RAW = ("--after-checkpoint resync is for pair captures: a chardev capture's secondary stream "
                  "already reflects the checkpoints (it is replayed raw)")
PEER_ISN_NEEDS_REWRITER = "--peer-isn goes with --filter-rewriter (peer_isn=True needs filter_rewriter=True)"


def _replay_options(options: dict, checkpoints_at=None, end_ns=None, allow_gaps: bool = False) -> ReplayOptions:
    """``ReplayOptions`` from the API's keywords: ``checkpoints_at`` a path or a list of times,
    ``end_ns`` an int or a time string (``parse_time``; ``"+5s"`` is relative to the last
    frame), ``allow_gaps`` accepts timestamp jumps beyond the gap threshold.  Every value is
    checked here, before any frame is read."""
    from .offline.checkpoints import checkpoint_times, parse_until

    opts = ReplayOptions(**options)
    if opts.checkpoint_duration_ns < 0 or (opts.checkpoint_delay_ns is not None and opts.checkpoint_delay_ns < 0):
        raise ValueError("--checkpoint-duration and --checkpoint-delay must not be negative")
    if opts.checkpoint_delay_ns and opts.checkpoint_delay_ns % 1_000_000:
        raise ValueError(f"--checkpoint-delay {opts.checkpoint_delay_ns} ns: QEMU's x-checkpoint-delay is a whole "
                         f"number of milliseconds (0 = off)")
    opts.checkpoints_at = checkpoint_times(checkpoints_at)
    if end_ns is not None:
        opts.end_ns, opts.end_after_ns = parse_until(end_ns)
    if allow_gaps:
        opts.max_gap_ns = None
    return opts


def _option_warnings(opts: ReplayOptions) -> list:
    """Values QEMU would take but change: said before the work, kept in the summary."""
    mqs = opts.max_queue_size
    if mqs is not None and mqs > 0xFFFFFFFF and opts.qemu != "4.1":
        return [f"--max-queue-size {mqs} does not fit QEMU's uint32: QEMU {opts.qemu} truncates it to "
                f"{mqs & 0xFFFFFFFF}, and so does the replay"]
    return []


# The warnings' second look at the captures reads the first this many frames of each: a warning
# is a hint, and SYN|ACKs and skew show early, so a big capture costs no second full read.
WARNING_SAMPLE_FRAMES = 50_000
# ... in chunks of this size: the heuristics work a batch at a time in numpy, and a few large
# batches cost less than many small ones (0.10 s against 0.13 for the 1M bench pair's samples)
WARNING_SAMPLE_CHUNK = 4 << 20


class _Head:
    """A capture reader cut after its first ``limit`` frames."""

    def __init__(self, reader, limit: int):
        self.reader = reader
        self.limit = limit

    def batches(self):
        left = self.limit
        for batch in self.reader.batches():
            n = len(batch)              # (len(batch.frames) would cut every frame into bytes)
            yield batch if n <= left else batch.head(left)
            left -= n
            if left <= 0:
                return


def _replay_warnings(timeline, primary, secondary, opts: ReplayOptions, filter_rewriter: bool, align) -> list:
    """Surprising situations after a replay, one line each (``summary["warnings"]``)."""
    import os
    from functools import partial

    from .captures import open_capture
    from .output.timeline import KIND_CODES

    read = partial(open_capture, max_gap_ns=opts.max_gap_ns, chunk_size=WARNING_SAMPLE_CHUNK)

    def sample(path):
        return _Head(read(path), WARNING_SAMPLE_FRAMES)

    out = []
    res = timeline.result
    paths = _is_path(primary) and _is_path(secondary)
    try:
        if paths and os.path.samefile(primary, secondary):
            out.append(f"the same file is given as both captures ({os.fspath(primary)}): nothing can diverge")
    except OSError:
        pass
    fp, fs = res.primary.frames, res.secondary.frames
    if min(fp, fs) and max(fp, fs) >= 20 and min(fp, fs) * 4 < max(fp, fs):
        few = "primary" if fp < fs else "secondary"
        out.append(f"the {few} capture has far fewer frames than the other ({min(fp, fs)} against {max(fp, fs)}): "
                   f"are they the same stretch of time?")
    s = timeline.summary
    uns = timeline.tally.causes(KIND_CODES["unsupported"])
    kinds = ", ".join(f"{k} {v}" for k, v in uns.items())
    if kinds:
        out.append(f"some traffic is never compared by colo-compare (passed through or dropped as QEMU does: "
                   f"{kinds})")
    if not paths or res.partial:
        return out
    req = s["checkpoint_requests_by_cause"]
    isns = not filter_rewriter and bool(req.get("miscompare") or req.get("ack_gate"))
    skew = align in (None, "none") and not opts.secondary_offset_ns and bool(req.get("expired")
                                                                              or s["nothing_compared"])
    if not (isns or skew):
        return out
    tables, found = _sample_heuristics(sample(primary), sample(secondary), opts.vnet_hdr_len, isns, skew)
    if isns:
        pt, st = tables
        both = pt.keys() & st.keys()
        differ = sum(1 for k in both if pt[k][0][0] != st[k][0][0])
        if both and differ * 2 > len(both):
            out.append(f"the TCP initial sequence numbers differ on {differ} of {len(both)} connections: raw "
                       f"pair captures need --filter-rewriter (QEMU's filter-rewriter shifts them)")
    if found is not None and abs(found.offset_ns) > 10 * 1_000_000:
        out.append(f"the captures' clocks seem skewed ({found.describe()}): try --align auto")
    return out


def _sample_heuristics(primary, secondary, vnet: int, isns: bool, skew: bool):
    """The warnings' look at the two captures' samples, each read once for both heuristics:
    ``([primary SYN|ACKs, secondary SYN|ACKs], Alignment or None)`` (``rewriter.synack_table``
    and ``align.estimate_alignment`` of the samples, when asked for)."""
    from .offline import framecols
    from .offline.align import AlignmentEstimator
    from .offline.rewriter import add_synacks

    tables: list = [{}, {}]
    est = AlignmentEstimator(vnet) if skew else None
    for side, reader in enumerate((primary, secondary)):
        table = tables[side]
        add_keys = None if est is None else (est.secondary if side else est.primary)
        for batch in reader.batches():
            if not len(batch):
                continue
            cols = framecols.columns(batch)
            if isns:
                add_synacks(table, cols, vnet)
            if add_keys is not None:
                add_keys(cols, batch.timestamps)
    found = None
    if est is not None:
        try:
            found = est.result()
        except ValueError:          # no frame matches on both sides: nothing to say
            found = None
    return tables, found


def _guest_selection(spec: str, primary, secondary, open_capture) -> dict:
    """``guest``: the libpcap filter keeping the guest's outbound frames (its MAC or IP given, or
    ``"auto"``: detected on both captures), with how it was had."""
    from .offline.guest import detect_guest, guest_bpf

    if spec.strip().lower() != "auto":
        return {"guest": spec, "filter": guest_bpf(spec), "how": "given"}
    if not (_is_path(primary) and _is_path(secondary)):
        raise ValueError("--guest auto needs both captures as paths (they are read twice)")
    found = [detect_guest(open_capture(path)) for path in (primary, secondary)]
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


def replay(primary, secondary, progress=None, *, filter_rewriter: bool = False, peer_isn: bool = False,
           guest: str | None = None, align: str | None = None, checkpoints_at=None, end_ns=None,
           allow_gaps: bool = False, after_checkpoint: str | None = None, output=None, **options) -> Timeline:
    """Replay two captures (paths or open ``CaptureReader``s) through colo-compare.

    ``options`` are the fields of ``ReplayOptions`` (``qemu="7.2"``, ``compare_timeout=...``,
    ``secondary_offset_ns=...``, ``checkpoint_duration_ns=...``, ``bpf_filter=...``, ...).
    A read error does not raise: the timeline holds everything up to it and
    ``timeline.partial`` is True.  Options that make no sense raise ``ValueError``.

    * ``filter_rewriter=True`` shifts the secondary's TCP sequence numbers as QEMU's
      filter-rewriter does before colo-compare (see ``colo_replay.offline.rewriter``; the primary
      must be a path, it is read twice); ``peer_isn=True`` (only with ``filter_rewriter``) also
      aligns the secondary's ACK numbers, for pairs captured with two separate clients.
    * ``guest``: keep only the guest's outbound frames of captures holding both directions: its
      MAC, its IP address, or ``"auto"`` (detected; ``summary["source"]["guest"]`` says how).
    * ``align="auto"``: estimate ``secondary_offset_ns`` from frames with the same content on
      both sides (``"none"`` or None: use the given offset).
    * ``checkpoints_at``: measured flush times replacing the checkpoint model: a path to a file
      (``--checkpoints-at``: epoch seconds or ``<n>ns`` per line) or a list of times.
    * ``end_ns``: keep the clock running to this time (ns, or epoch seconds / ``"<n>ns"`` text,
      or ``"+5s"``: that long after the last frame).  Before the last frame, or further after
      it than the gap threshold (one day), it is an error (``timeline.error``).
    * ``allow_gaps=True``: accept timestamps that jump by more than a day (else a CaptureError
      naming the frame and its byte offset ends the replay there).
    * ``summary["warnings"]``: surprising situations (the same file twice, a side with far fewer
      frames, traffic never compared, differing ISNs, skewed clocks, a truncated max_queue_size).
    * ``after_checkpoint``: ``"resync"`` models what a checkpoint does to the secondary VM:
      secondary frames a resynchronised SVM would not send are ``superseded`` rows, dropped ones
      it would send again are ``requeued`` (``colo_replay.offline.resync``); ``"raw"`` replays
      both streams exactly as captured.  Default (``None``): ``"resync"``, the replay models the
      checkpoints of two free-running VMs; ``"raw"`` with ``checkpoints_at``, measured flushes
      mean the captures were taken under that COLO run (the secondary already resynchronised).
    * ``progress``: called with the number of frames replayed so far; if it has a
      ``track(readers, paths)`` method, that is called first and returns the readers to use
      (the command line's progress bar counts bytes that way).
    * ``output``: the timeline file (.parquet, .csv, .jsonl; marked partial as
      ``Timeline.write`` does).  A Parquet timeline is streamed: each block of 65,536 rows is
      written as it fills and not kept, so memory stays flat however long the captures are
      (``timeline.output``; ``timeline.events`` then reads the file back).  CSV and JSON Lines
      are written from memory when the replay ends.
    """
    if output is not None:
        check_timeline_path(os.fspath(output))
    prd, srd, opts, source, rewriter = _open_pair(primary, secondary, filter_rewriter, peer_isn, guest, align,
                                                  checkpoints_at, end_ns, options, allow_gaps, after_checkpoint)
    if progress is not None and hasattr(progress, "track"):
        prd, srd = progress.track((prd, srd), tuple(c for c in (primary, secondary) if _is_path(c)))
    stream = _parquet_stream(output, opts)
    result = _run(stream, prd, srd, opts, progress)
    if rewriter is not None:
        source = {"filter_rewriter": rewriter.stats.as_dict(), **source}
    if source:
        result.source = source
    timeline = Timeline(result, stream)
    timeline._finish(output)
    result.warnings = _option_warnings(opts)
    if not result.interrupted:
        result.warnings += _replay_warnings(timeline, primary, secondary, opts, filter_rewriter, align)
    # The summary was made on the way (the warnings read it): its own warnings (the raw replay's
    # cascade) stay, after the replay's.
    made = [w for w in timeline.summary["warnings"] if w not in result.warnings]
    timeline.summary["warnings"] = list(result.warnings) + made
    return timeline


def _parquet_stream(output, opts: ReplayOptions):
    """The ``ParquetStream`` of a replay whose ``output`` is a Parquet file, else None.  It keeps
    the rows of the cascade signature only when the summary will look for it (``raw`` replay,
    modelled checkpoints: ``summary._after_checkpoint``)."""
    if output is None or not os.fspath(output).lower().endswith(".parquet"):
        return None
    from .output.stream import ParquetStream
    return ParquetStream(output, keep_cascade=opts.after_checkpoint != "resync" and opts.checkpoints_at is None)


def _run(stream, prd, srd, opts: ReplayOptions, progress) -> ReplayResult:
    """``replay_partial`` (a read error or Ctrl-C ends it with the rows so far), its rows handed
    to ``stream`` block by block when there is one.  Anything else it raises leaves a streamed
    file closed and marked partial with the exception, then propagates."""
    if stream is None:
        return replay_partial(prd, srd, opts, progress)[0]
    from .output.timeline import streaming
    with streaming(stream):
        try:
            return replay_partial(prd, srd, opts, progress)[0]
        except BaseException as exc:
            stream.abort(f"{type(exc).__name__}: {exc}")
            raise


def _open_pair(primary, secondary, filter_rewriter: bool, peer_isn: bool, guest, align, checkpoints_at, end_ns,
               options: dict, allow_gaps: bool = False, after_checkpoint: str | None = None):
    """What ``replay`` hands to the driver, resolved once (``sweep`` shares it): the two readers,
    the ``ReplayOptions``, the ``source`` notes so far and the filter-rewriter (or None), whose
    stats are complete once the secondary has been read."""
    from functools import partial

    from .captures import open_capture

    if peer_isn and not filter_rewriter:
        raise ValueError(PEER_ISN_NEEDS_REWRITER)
    if align not in (None, "none", "auto"):
        raise ValueError(f"align must be 'none' or 'auto', not {align!r}")
    if after_checkpoint is None:
        after_checkpoint = "raw" if checkpoints_at is not None else "resync"
    opts = _replay_options(dict(options, after_checkpoint=after_checkpoint), checkpoints_at, end_ns, allow_gaps)
    open_capture = partial(open_capture, max_gap_ns=opts.max_gap_ns)      # every read, the same gap rule
    source = {}
    if guest is not None:
        note = source["guest"] = _guest_selection(guest, primary, secondary, open_capture)
        opts.bpf_filter = (f"({opts.bpf_filter}) and ({note['filter']})" if opts.bpf_filter
                           else note["filter"])
    if align == "auto":
        if opts.secondary_offset_ns:
            raise ValueError("--align auto estimates the secondary offset: do not give --secondary-offset too")
        if not (_is_path(primary) and _is_path(secondary)):
            raise ValueError("--align auto needs both captures as paths (they are read twice)")
        from .offline.align import estimate_alignment
        found = estimate_alignment(open_capture(primary), open_capture(secondary), opts.vnet_hdr_len)
        opts.secondary_offset_ns = found.offset_ns
        opts.alignment = "auto: " + found.describe()

    def reader(capture):
        return open_capture(capture) if _is_path(capture) else capture

    prd = reader(primary)
    srd = reader(secondary)
    rewriter = None
    if filter_rewriter:
        from .offline.rewriter import rewrite_secondary
        if not _is_path(primary):
            raise ValueError("filter_rewriter needs the primary capture as a path (it is read twice)")
        srd = rewriter = rewrite_secondary(srd, primary, opts.vnet_hdr_len, peer_isn, max_gap_ns=opts.max_gap_ns)
    return prd, srd, opts, source, rewriter


class Sweep:
    """The outcome of ``sweep``: ``rows`` (one dict per pair and setting, pair-major; columns
    ``analysis.sweep.ROW_COLUMNS``, ``pareto`` and ``recommended`` included), ``summaries`` (the
    full summary of each row's replay when asked, else None), ``swept`` (knob -> values),
    ``settings`` (the grid, as ``ReplayOptions`` keywords), ``recommendations`` (one
    ``analysis.sweep.Recommendation`` per pair) and ``pairs`` (name, primary, secondary, and
    ``source`` when the guest selection or the filter-rewriter left notes, as ``replay``'s)."""

    def __init__(self, rows, summaries, swept, settings, recommendations, pairs, max_held_p99):
        self.rows = rows
        self.summaries = summaries
        self.swept = swept
        self.settings = settings
        self.recommendations = recommendations
        self.pairs = pairs
        self.max_held_p99 = max_held_p99

    @cached_property
    def frame(self):
        """The rows as a pandas DataFrame."""
        from .analysis.sweep import to_frame
        return to_frame(self.rows)

    @property
    def exit_status(self) -> int:
        """2 a capture ended in a read error (its rows are partial); 1 some setting led to a
        checkpoint request, or ``max_held_p99`` was given and no setting of some pair meets it;
        0 no setting of any pair requested a checkpoint."""
        if any(r["partial"] for r in self.rows):
            return 2
        if any(r["requests"] for r in self.rows):
            return 1
        if self.max_held_p99 is not None and any(rec.row is None for rec in self.recommendations):
            return 1
        return 0

    def meta(self) -> dict:
        """What the JSON file holds besides the rows."""
        return {"swept": self.swept, "settings": len(self.settings), "pairs": self.pairs,
                "max_held_p99_ms": self.max_held_p99,
                "recommendations": [r.as_dict() for r in self.recommendations]}

    def write(self, path: str) -> None:
        """The rows as .csv / .parquet, or .json with the recommendations and what was swept."""
        from .analysis.sweep import write_rows
        write_rows(path, self.rows, self.meta())

    def plot(self, path: str, title: str = "") -> None:
        """Checkpoints per minute vs held p99: the settings, the front, the recommendation."""
        from .analysis.sweep import plot
        plot(path, self.rows, self.recommendations, title)

    def __repr__(self) -> str:
        return f"<Sweep {len(self.settings)} settings x {len(self.pairs)} pairs>"


PREPARED_BUDGET = 2 << 30       # sweep: bytes of prepared frames held at once (a pair is never split)


def sweep(primary=None, secondary=None, *, grid: dict, pairs: list[dict] | None = None, jobs: int | None = None,
          dask: str | None = None, max_held_p99: float | None = None, start_method: str | None = None,
          with_summary: bool = False, name: str | None = None, **options) -> Sweep:
    """Replay a pair (or each of ``pairs``) under every setting of ``grid``, parsing each pair once.

    ``grid``: knob -> spec text (``"100,300"``, ``"100:3000:x2"``, ``"100:1000:+300"``) or list
    of values, for the knobs of ``analysis.sweep.KNOBS`` (compare_timeout, expired_scan_cycle,
    max_queue_size, checkpoint_duration, checkpoint_delay; durations as ns in lists).
    ``options``: as for ``replay`` (``filter_rewriter``, ``guest``, ``align``, ``qemu``,
    ``bpf_filter``, offsets, ``checkpoints_at``, ``end_ns``, ...), for every pair.  ``pairs``:
    dicts with ``name``, ``primary``, ``secondary`` and per-pair options overriding those
    (``analysis.sweep.read_manifest`` reads them from a CSV or TOML file).  ``jobs``, ``dask``,
    ``start_method``: see ``analysis.sweep.run``.  ``max_held_p99`` (ms): the recommendation's
    bound.  ``with_summary``: keep each row's full summary (``Sweep.summaries``).

    Each row is what ``replay(primary, secondary, **options, **setting)`` would report.  Bad
    grids and options raise ``ValueError`` before anything is read."""
    from dataclasses import replace
    from pathlib import Path

    from .analysis import sweep as sw
    from .engine.profiles import get_profile
    from .offline.prepared import PreparedPair, prepare

    swept, settings = sw.grid(grid)
    if pairs is None:
        if primary is None or secondary is None:
            raise ValueError("sweep needs PRIMARY and SECONDARY, or pairs")
        pairs = [{"name": name or (Path(primary).stem if _is_path(primary) else "pair"),
                  "primary": primary, "secondary": secondary}]
    elif primary is not None or secondary is not None:
        raise ValueError("give either PRIMARY SECONDARY or pairs (--pairs), not both")
    if not pairs:
        raise ValueError("no pairs to sweep")
    names = [p.get("name") for p in pairs]
    if len(set(names)) != len(names) or not all(names):
        raise ValueError("every pair needs a name, each different")
    pair_keys = ("filter_rewriter", "peer_isn", "guest", "align", "checkpoints_at", "end_ns", "allow_gaps",
                 "after_checkpoint")                      # not ReplayOptions fields
    resolved = []
    for spec in pairs:
        merged = {**options, **{k: v for k, v in spec.items() if k not in ("name", "primary", "secondary")}}
        fixed = set(merged) & {sw.KNOBS[k][0] for k in swept}
        if fixed:
            raise ValueError(f"{spec['name']}: {', '.join(sorted(fixed))} is swept: give it in the grid only")
        kw = {k: merged.pop(k) for k in pair_keys if k in merged}
        prd, srd, opts, source, rewriter = _open_pair(
            spec["primary"], spec["secondary"], kw.get("filter_rewriter", False), kw.get("peer_isn", False),
            kw.get("guest"), kw.get("align"), kw.get("checkpoints_at"), kw.get("end_ns"), merged,
            kw.get("allow_gaps", False), kw.get("after_checkpoint"))
        resolved.append((spec, prd, srd, opts, source, rewriter))
        for setting in settings:         # what QEMU would refuse, before the long part
            trial = replace(opts, **setting)
            trial.compare_config().resolve(get_profile(trial.qemu))
            if trial.checkpoint_duration_ns < 0 or (trial.checkpoint_delay_ns or 0) < 0:
                raise ValueError("--checkpoint-duration and --checkpoint-delay must not be negative")
    # Pairs are held in memory a group at a time (up to PREPARED_BUDGET bytes of frames): many
    # small pairs still fan out together, a suite of large ones does not need them all at once.
    out: list = []
    group: list = []
    sources: dict = {}
    for k, (spec, prd, srd, opts, source, rewriter) in enumerate(resolved):
        p, s = prepare(prd), prepare(srd)
        if rewriter is not None:
            source = {"filter_rewriter": rewriter.stats.as_dict(), **source}
        group.append(PreparedPair(spec["name"], p, s, opts, source))
        sources[spec["name"]] = source
        if k == len(resolved) - 1 or sum(g.primary.nbytes + g.secondary.nbytes for g in group) >= PREPARED_BUDGET:
            out += sw.run(group, settings, jobs, dask=dask, start_method=start_method, with_summary=with_summary)
            group = []
    del resolved
    rows = [r for r, _ in out]
    recs = sw.recommend(rows, max_held_p99, sw.swept_columns(swept) or None)
    sw.mark(rows, recs)
    info = [{"name": p["name"], "primary": str(p["primary"]), "secondary": str(p["secondary"]),
             **({"source": sources[p["name"]]} if sources[p["name"]] else {})} for p in pairs]
    return Sweep(rows, [s for _, s in out] if with_summary else None, swept, settings, recs, info, max_held_p99)


def replay_chardev(capture, ports: dict | None = None, progress=None, flushes: str = "measured", *,
                   checkpoints_at=None, end_ns=None, allow_gaps: bool = False, output=None, **options) -> Timeline:
    """Replay a chardev-stream capture (a path or a ``ChardevCapture``): its primary_in and
    secondary_in streams, as colo-compare read them, on the capture's clock.

    ``ports`` maps primary_in / secondary_in / outdev / notify_dev to TCP ports (QEMU's
    documented 9001 / 9004 / 9005 / 9009 by default).  ``flushes="measured"`` (the default)
    flushes at the times colo-compare was sent ``COLO_CHECKPOINT`` on notify_dev, as the real
    one was; ``"model"`` uses the checkpoint model instead (``checkpoint_duration_ns`` ...),
    e.g. to ask what another timeout would have done; ``checkpoints_at`` (a path or a list)
    overrides both.  The expiry-scan grid starts at the first SYN on the chardev ports (about
    when colo-compare was created), plus ``scan_phase_ns``.  ``vnet_hdr_support`` must be what
    colo-compare ran with.  Other ``options`` (``output`` too) as for ``replay``;
    ``timeline.capture`` is the ``ChardevCapture`` (``describe()``, ``warnings``, ``read_error``).
    """
    from .offline.chardev import ChardevCapture

    if output is not None:
        check_timeline_path(os.fspath(output))
    if flushes not in ("measured", "model"):
        raise ValueError(f"flushes must be 'measured' or 'model', not {flushes!r}")
    if options.get("after_checkpoint", "raw") != "raw":
        raise ValueError(CHARDEV_IS_RAW)
    opts = _replay_options(options, checkpoints_at, end_ns, allow_gaps)
    cap = capture if isinstance(capture, ChardevCapture) else ChardevCapture(
        capture, ports, opts.vnet_hdr_support, max_gap_ns=opts.max_gap_ns)
    opts.vnet_hdr_support = cap.vnet_hdr_support
    if flushes == "measured" and opts.checkpoints_at is None and cap.notify_to.frames:
        opts.checkpoints_at = cap.flush_times()
    if opts.end_ns is None and cap.read_error is None:
        opts.end_ns = cap.end_ns        # scans and flushes after the last input frame count too
    firsts = [s.times[0] for s in (cap.primary_in, cap.secondary_in) if s.times]
    if cap.start_ns is not None and firsts:
        opts.scan_phase_ns += cap.start_ns - min(firsts)
    primary, secondary = cap.side_readers()
    stream = _parquet_stream(output, opts)
    result = _run(stream, primary, secondary, opts, progress)
    if cap.read_error is not None and not result.partial:
        result.partial, result.error = True, str(cap.read_error)
    result.source = {"chardev": cap.path, "ports": dict(cap.ports), "warnings": list(cap.warnings),
                     "flushes": "measured (COLO_CHECKPOINT on notify_dev)"
                     if opts.checkpoints_at is not None and flushes == "measured" else "model"}
    result.warnings = _option_warnings(opts)
    timeline = Timeline(result, stream)
    timeline._finish(output)
    timeline.capture = cap
    return timeline


class Verification:
    """The outcome of ``verify``: the replay's ``timeline``, the ``result`` (``ok``, the first
    ``mismatch``, request matching; ``as_dict()``) and the ``capture``."""

    def __init__(self, capture, timeline: Timeline, result):
        self.capture = capture
        self.timeline = timeline
        self.result = result

    @property
    def ok(self) -> bool:
        return self.result.ok

    def format(self) -> str:
        from .offline.verify import format_verify
        return format_verify(self.result, self.capture)

    def __repr__(self) -> str:
        return f"<Verification {'OK' if self.ok else 'MISMATCH'}>"


def verify(capture, ports: dict | None = None, request_window: float | None = None, **options) -> Verification:
    """Replay a chardev-stream capture (a path or a ``ChardevCapture``) with its measured
    flushes and check the releases against its captured outdev stream: same bytes, vnet lengths
    and order.  ``request_window`` (ms) is how close a replayed checkpoint request must be to a
    ``DO_CHECKPOINT`` to count as matched (default expired_scan_cycle + 5).  ``options`` as for
    ``replay_chardev`` (``compare_timeout``, ``expired_scan_cycle``, ``vnet_hdr_support``,
    ``scan_phase_ns``, ...: pass what colo-compare ran with).  ValueError when the capture has no
    outdev stream to verify against."""
    from .offline.chardev import ChardevCapture
    from .offline.verify import verify_capture

    gaps = {} if not options.get("allow_gaps") else {"max_gap_ns": None}     # the replay's gap rule
    cap = capture if isinstance(capture, ChardevCapture) else ChardevCapture(
        capture, ports, options.get("vnet_hdr_support", False), **gaps)
    if not cap.outdev.frames and not cap.outdev.connections:
        raise ValueError(f"{cap.path}: no outdev stream on port {cap.ports['outdev']}: nothing to verify "
                         f"against (see --outdev-port)")
    timeline = replay_chardev(cap, **options)
    return Verification(cap, timeline, verify_capture(cap, timeline, request_window))


def explain(primary=None, secondary=None, *, chardev=None, ports: dict | None = None, flushes: str = "measured",
            request: int | None = None, frame: str | None = None, flow: str | None = None,
            limit: int | None = None, other_profile: bool = True, tshark: bool = True,
            evidence: str | None = None, progress=None, **options):
    """Why did the replay diverge: replay ``primary`` and ``secondary`` (options as for
    ``replay``), or the ``chardev`` capture (options as for ``replay_chardev``), and explain its
    root divergences (``colo_replay.analysis.explain``).

    Returns an ``Explanation``: ``.roots`` (DataFrame, one row per selected divergence),
    ``.classes`` (DataFrame), ``.to_dict()`` (the JSON schema), ``.format()`` (text), and
    ``.timeline`` (the replay).  Selection: ``request`` N, ``frame`` ``"P#N"``/``"S#N"``,
    ``flow`` (words of the flow text, e.g. ``"udp :53"``), ``limit``.  ``other_profile``:
    replay again with the other QEMU profile (4.1 <-> 7.2) and note where it decides
    differently on a divergence's frame.  ``tshark``: name application fields (one tshark run
    over the frames involved).  ``evidence``: write those frames, both sides, with comments, to
    this pcapng.
    """
    from .analysis.explain import Selection, explain_timeline
    from .captures import open_capture
    from .captures.pick import pick_frames
    from .engine.profiles import get_profile

    selection = Selection(request, frame, flow, limit)
    selection.parse_frame()                 # a bad --frame is refused before any work
    if chardev is not None:
        if primary is not None or secondary is not None:
            raise ValueError("give either PRIMARY SECONDARY or chardev=, not both")

        def run(**opts):
            return replay_chardev(chardev, ports, progress, flushes, **opts)
        tl = run(**options)
        readers = tl.capture.side_readers

        def fetch(side, nums):
            return pick_frames(readers()[side], nums)
        replay_info = {"chardev": str(chardev)}
    else:
        if primary is None or secondary is None:
            raise ValueError("missing PRIMARY and SECONDARY captures (or chardev=)")

        def run(**opts):
            return replay(primary, secondary, progress, **opts)
        tl = run(**options)

        def fetch(side, nums):
            if side == 0:
                return pick_frames(open_capture(primary), nums)
            rd = open_capture(secondary)
            if options.get("filter_rewriter"):
                from .offline.rewriter import rewrite_secondary
                rd = rewrite_secondary(rd, primary, options.get("vnet_hdr_len", 0), options.get("peer_isn", False))
            return pick_frames(rd, nums)
        replay_info = {"primary": str(primary), "secondary": str(secondary),
                       "filter_rewriter": bool(options.get("filter_rewriter"))}
    knobs = tl.result.knobs
    profile = knobs["qemu"]
    replay_info.update(profile=profile, after_checkpoint=knobs.get("after_checkpoint"),
                       checkpoints=knobs.get("checkpoints"), partial=tl.partial)
    warning = (tl.summary.get("after_checkpoint") or {}).get("warning")
    if warning:
        replay_info["warning"] = warning        # the cascade signature of a raw replay
    other = other_name = None
    if other_profile:
        other_name = "4.1" if profile != "4.1" else "7.2"
        try:
            other = run(**dict(options, qemu=other_name)).events
        except ValueError as exc:           # a knob the other profile lacks (4.1: compare_timeout ...)
            replay_info["other_profile"] = f"not replayed: {exc}"
            other = None
    result = explain_timeline(tl.events, fetch, replay=replay_info, vnet_hdr_len=tl.result.options.vnet_hdr_len,
                              inverted_tcp=get_profile(profile).tcp_compare_inverted, other=other,
                              other_profile=other_name, selection=selection, tshark=tshark)
    result.timeline = tl
    if evidence is not None:
        from .analysis.evidence import write_evidence
        o = tl.result.options
        write_evidence(evidence, result, fetch, vnet_hdr_len=o.vnet_hdr_len,
                       offsets_ns=(o.primary_offset_ns + o.primary_delay_ns,
                                   o.secondary_offset_ns + o.secondary_delay_ns))
    return result


class LiveStartError(ValueError):
    """``live``: an endpoint or the record directory could not be opened at start-up."""


class LiveRun:
    """The outcome of ``live``: ``summary`` (a dict: counters, the resolved properties,
    ``stop_reason``, ``exit_status``, ``record``), ``exit_status`` (0 no checkpoint request,
    1 requests or a frame that would crash QEMU, 2 the run stopped on an internal error) and,
    when a timeline was asked for, ``events`` (a pandas DataFrame, as ``Timeline.events``)."""

    def __init__(self, compare, summary: dict, collector=None):
        self.compare = compare          # the LiveCompare that ran
        self.summary = summary
        self.collector = collector

    @property
    def exit_status(self) -> int:
        return self.summary["exit_status"]

    @cached_property
    def events(self):
        if self.collector is None:
            raise ValueError("no timeline was collected (live(..., timeline=True))")
        return self.collector.to_frame()

    def format_summary(self) -> str:
        return format_summary(self.summary)

    def write(self, path: str | None = None, stream=None) -> None:
        """Write the events: .parquet / .csv / .jsonl by extension, or JSON Lines to ``stream``
        (CSV and JSON Lines a block of the collector at a time, as ``Timeline.write``)."""
        if self.collector is not None and (path is None or not path.lower().endswith(".parquet")):
            write_timeline_blocks(self.collector.blocks(), path, stream)
            return
        write_timeline(self.events, path, stream)

    def __repr__(self) -> str:
        return f"<LiveRun stopped by {self.summary['stop_reason']}, exit status {self.exit_status}>"


def _live_compare(primary_in: str, secondary_in: str, outdev: str, notify_dev: str | None, *,
                  allow_remote: bool = False, qemu: str = "7.2", compare_timeout: int | None = None,
                  expired_scan_cycle: int | None = None, max_queue_size: int | None = None,
                  vnet_hdr_support: bool = False, flush_on_request_ns: int | None = None,
                  stats_interval: float | None = None, timeline: bool = False, log=None, log_format: str = "text",
                  log_level: str = "info", duration_ns: int | None = None, max_send_buffer: int = 64 << 20):
    """Check everything QEMU (or we) would refuse before a socket is opened; the LiveCompare."""
    from .engine.profiles import CompareConfig, get_profile
    from .live.endpoint import EndpointError, parse_endpoint
    from .live.logs import Log
    from .live.runtime import LiveCompare

    specs = {"primary_in": primary_in, "secondary_in": secondary_in, "outdev": outdev}
    if notify_dev is not None:
        specs["notify_dev"] = notify_dev
    endpoints = {}
    for name, spec in specs.items():
        try:
            endpoints[name] = parse_endpoint(spec, allow_remote=allow_remote)
        except EndpointError as exc:
            raise EndpointError(f"--{name.replace('_', '-')}: {exc}") from None
    seen = {}
    for name, ep in endpoints.items():
        key = (ep.kind, ep.address)
        if key in seen:
            # colo_compare_complete: "'indev' and 'outdev' could not be same for compare module"
            raise ValueError(f"--{name.replace('_', '-')} and --{seen[key].replace('_', '-')} name the same socket")
        seen[key] = name
    if flush_on_request_ns is not None:
        if notify_dev is not None:
            raise ValueError("--flush-on-request simulates the COLO frame; with --notify-dev the peer on "
                             "notify_dev does that")
        if flush_on_request_ns < 0:
            raise ValueError("--flush-on-request must not be negative")
    if duration_ns is not None and duration_ns <= 0:
        raise ValueError("--duration must be positive")
    config = CompareConfig(compare_timeout, expired_scan_cycle, max_queue_size, vnet_hdr_support)
    config.resolve(get_profile(qemu))          # raises ValueError as QEMU's property setters refuse
    collector = None
    if timeline:
        from .output.timeline import TimelineCollector
        collector = TimelineCollector()
    if log is None:
        log = Log(log_format, log_level)
    return LiveCompare(endpoints, qemu=qemu, config=config, log=log, flush_on_request_ns=flush_on_request_ns,
                       stats_interval=stats_interval, timeline=collector, max_send_buffer=max_send_buffer)


async def live_async(primary_in: str, secondary_in: str, outdev: str, notify_dev: str | None = None, *,
                     record_dir: str | None = None, duration_ns: int | None = None, allow_empty: bool = False,
                     **options) -> LiveRun:
    """``live`` as a coroutine, for callers that already run an event loop (a notebook); the
    same keywords as ``live``."""
    lc = _live_compare(primary_in, secondary_in, outdev, notify_dev, duration_ns=duration_ns, **options)
    return await _live_run(lc, record_dir, duration_ns, {"allow_empty": allow_empty})


async def _live_run(lc, record_dir, duration_ns, done: dict) -> LiveRun:
    try:
        await lc.open()
    except OSError as exc:
        raise LiveStartError(_endpoint_error(lc, exc)) from None
    if record_dir is not None:
        from .live.recorder import Recorder
        r = lc.resolved
        try:
            lc.recorder = Recorder(record_dir, {"qemu": lc.profile.name, **r.as_dict(),
                                                "compare_timeout": lc.config.compare_timeout,
                                                "expired_scan_cycle": lc.config.expired_scan_cycle,
                                                "max_queue_size": lc.config.max_queue_size,
                                                "vnet_hdr_support": r.vnet_hdr_support,
                                                "engine_start_ns": lc.start_ns,
                                                "flush_on_request_ns": lc.flush_on_request_ns,
                                                "endpoints": {k: v.spec for k, v in lc.endpoints.items()}})
        except OSError as exc:
            lc.close_channels()
            raise LiveStartError(f"--record {record_dir}: {exc.strerror or exc}") from None
    try:
        await lc.run(None if duration_ns is None else duration_ns / 1e9)
    finally:
        _live_finish(lc, record_dir, done)
    return done["run"]


def _endpoint_error(lc, exc: OSError) -> str:
    """One line naming the endpoint that failed (its option and spec) and the OS error (never
    asyncio's "Connect call failed ('127.0.0.1', 19781" with its bracket cut)."""
    import os

    name = getattr(exc, "endpoint_name", None)
    reason = (os.strerror(exc.errno) if exc.errno else exc.strerror) or type(exc).__name__
    where = (f"--{name.replace('_', '-')} {lc.endpoints[name].spec}" if name in lc.endpoints
             else "endpoints " + ", ".join(ep.spec for ep in lc.endpoints.values()))
    return f"cannot open {where}: {reason}"


def _live_finish(lc, record_dir, done: dict) -> LiveRun:
    """The summary (and the recording's manifest) of a run that stopped, once."""
    import os

    if "run" not in done:
        summary = lc.summary()
        if lc.recorder is not None:
            m = lc.recorder.close(summary, lc.stop_ns)
            summary["record"] = {"dir": os.path.abspath(record_dir), "replay_command": m["replay_command"]}
        silent = [name for name, n in zip(("primary_in", "secondary_in"), summary["frames_in"]) if not n]
        summary["nothing_compared"] = (f"no frame arrived on {' or '.join(silent)}" if silent else None)
        summary["exit_status"] = _live_exit_status(lc, summary, done.get("allow_empty", False))
        done["run"] = LiveRun(lc, summary, lc.timeline)
    return done["run"]


def _live_exit_status(lc, summary: dict, allow_empty: bool = False) -> int:
    # The one contract (output.verdict).  An internal error leaves the run incomplete: status 2,
    # as for a read error.  A frame that would crash QEMU counts as a threshold exceeded.  SIGINT
    # and SIGTERM are how a live run is ended, not an interruption of it: 0 or 1.  A run in which
    # one input never sent a frame compared nothing: 2, unless allow_empty.
    return exit_status(requests=summary["checkpoint_requests"], exceeded=bool(summary["qemu_crash_events"]),
                       nothing_compared=summary["nothing_compared"], allow_empty=allow_empty,
                       error="internal error" if lc.stop_reason == "internal error" else None)


def live(primary_in: str, secondary_in: str, outdev: str, notify_dev: str | None = None, *,
         allow_remote: bool = False, qemu: str = "7.2", compare_timeout: int | None = None,
         expired_scan_cycle: int | None = None, max_queue_size: int | None = None,
         vnet_hdr_support: bool = False, flush_on_request_ns: int | None = None,
         stats_interval: float | None = None, record_dir: str | None = None,
         timeline: bool = False, log=None, log_format: str = "text", log_level: str = "info",
         duration_ns: int | None = None, max_send_buffer: int = 64 << 20, allow_empty: bool = False) -> LiveRun:
    """Run colo-compare live on real sockets until SIGINT/SIGTERM or ``duration_ns``.

    Endpoints are QEMU chardev specs (``socket,path=/run/x.sock``,
    ``socket,host=127.0.0.1,port=9001,server=on,wait=off``, ``reconnect=SECONDS``);
    ``allow_remote=True`` allows listening on non-loopback addresses.  Keywords:
    ``qemu``, ``compare_timeout``, ``expired_scan_cycle``, ``max_queue_size``,
    ``vnet_hdr_support`` (QEMU's properties), ``flush_on_request_ns`` (simulated checkpoints
    without notify_dev), ``stats_interval`` (s), ``record_dir`` (pcapng recording, replayable),
    ``timeline=True`` (collect every event: ``run.events``), ``log`` or ``log_format`` /
    ``log_level`` (stderr logs), ``duration_ns``, ``max_send_buffer``.  The run's exit status
    (``run.exit_status``) follows the one contract; a run in which primary_in or secondary_in
    never sent a frame compared nothing (``summary["nothing_compared"]``): 2 unless ``allow_empty``.

    ValueError before any socket is opened for what QEMU would refuse (``EndpointError`` for a
    bad spec); ``LiveStartError`` when an endpoint or ``record_dir`` cannot be opened.
    """
    import asyncio

    lc = _live_compare(primary_in, secondary_in, outdev, notify_dev, allow_remote=allow_remote, qemu=qemu,
                       compare_timeout=compare_timeout, expired_scan_cycle=expired_scan_cycle,
                       max_queue_size=max_queue_size, vnet_hdr_support=vnet_hdr_support,
                       flush_on_request_ns=flush_on_request_ns, stats_interval=stats_interval, timeline=timeline,
                       log=log, log_format=log_format, log_level=log_level, duration_ns=duration_ns,
                       max_send_buffer=max_send_buffer)
    done: dict = {"allow_empty": allow_empty}
    try:
        return asyncio.run(_live_run(lc, record_dir, duration_ns, done))
    except KeyboardInterrupt:           # a SIGINT before the handlers were installed
        return _live_finish(lc, record_dir, done)


def report(primary=None, secondary=None, *, chardev=None, timeline=None, summary=None, ports: dict | None = None,
           flushes: str = "measured", baseline=None, tolerance=(), top: int = 20, progress=None, sweep=None,
           **options):
    """A regression report (``colo_replay.analysis.report.Report``: ``html()``, ``markdown()``,
    ``json()``, ``exit_status``) of one run: a replay of ``primary`` and ``secondary`` (options
    as for ``replay``), of a ``chardev`` capture (``ports``, ``flushes``: as ``replay_chardev``),
    or a saved ``timeline`` file with its ``summary`` JSON (``replay -o t.parquet --summary-json
    s.json``, ``live -o``), reported later without replaying.  ``baseline``: an earlier report's
    JSON, gated by the ``tolerance`` rules (``analysis.report.baseline``); ``top``: rows of long
    tables.  The divergences are ``explain``'s (the first ``top`` detailed, the classes over all;
    a saved run: the timeline's roots and classes by cause, no frame is read).  The input files
    are hashed in a thread while the replay runs.  ``sweep``: a ``sweep -o sweep.json`` whose
    table, plot and recommendation the report includes."""
    from .analysis.report import Sources, build_report
    from .analysis.report.load import load_summary, load_timeline

    if timeline is not None:
        if primary is not None or secondary is not None or chardev is not None:
            raise ValueError("give a saved timeline, or captures to replay, not both")
        summ = load_summary(summary)
        sources = Sources.saved(timeline, summary, summ, ports)
        events, mode, result, why = load_timeline(timeline), "saved", None, None
    elif chardev is not None:
        if primary is not None or secondary is not None:
            raise ValueError("give either PRIMARY SECONDARY or --chardev CAPTURE, not both")
        sources = Sources.chardev(chardev)
        why = explain(chardev=chardev, ports=ports, flushes=flushes, limit=top, other_profile=False,
                      progress=progress, **options)
        run = why.timeline
        sources.use_capture(run.capture)
        events, summ, mode, result = run.events, run.summary, "chardev", run.result
    elif primary is not None and secondary is not None:
        sources = Sources.pair(primary, secondary)
        why = explain(primary, secondary, limit=top, other_profile=False, progress=progress, **options)
        run = why.timeline
        events, summ, mode, result = run.events, run.summary, "replay", run.result
    else:
        raise ValueError("missing PRIMARY and SECONDARY captures (or --chardev CAPTURE, or --timeline FILE)")
    return build_report(events, summ, sources, mode=mode, result=result, explanation=why, options=options,
                        baseline=baseline, tolerance=tolerance, top=top, sweep=sweep)
