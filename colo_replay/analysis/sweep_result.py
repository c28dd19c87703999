"""A whole sweep: the pairs resolved and prepared once each, every setting of the grid replayed
(``analysis.sweep.run``), the Pareto fronts and recommendations marked, and the ``Sweep`` result
(``api.sweep`` calls ``run_sweep``).

Bounds: the grid's size times the pairs is checked against ``max_settings`` (default
``MAX_SETTINGS``) before the product is made; every pair's settings are checked, and its captures
``os.stat``-ed, before any is read; then each pair is opened when it is prepared (its readers are
drained and closed there), so a manifest of thousands of pairs holds two captures open at a
time; Ctrl-C ends the sweep with the rows finished so far (``Sweep.interrupted``)."""

from __future__ import annotations

import math
import os
import stat
from functools import cached_property

from ..offline.pair import is_path, open_pair
from ..offline.settings import SETTINGS_FIELDS, Settings
from . import sweep as sw

PREPARED_BUDGET = 2 << 30       # bytes of prepared frames held at once (a pair is never split)
MAX_SETTINGS = sw.MAX_SETTINGS  # replays (settings x pairs) a sweep runs unless ``max_settings`` says more


class Sweep:
    """The outcome of a sweep: ``rows`` (one dict per pair and setting, pair-major; columns
    ``analysis.sweep.ROW_COLUMNS``, ``pareto`` and ``recommended`` included), ``summaries`` (the
    full summary of each row's replay when asked, else None), ``swept`` (knob -> values),
    ``settings`` (the grid, as ``Settings`` keywords), ``recommendations`` (one
    ``analysis.sweep.Recommendation`` per pair) and ``pairs`` (name, primary, secondary, and
    ``source`` when the guest selection or the filter-rewriter left notes, as ``replay``'s).

    ``interrupted``: Ctrl-C ended the sweep; ``rows`` are those finished before it (in grid
    order, with gaps), ``error`` the line saying so (None otherwise), and what ``write`` writes
    is marked partial.

    ``to_frame()`` is the rows as a DataFrame, ``to_dict()`` the JSON document (rows and
    recommendations), ``write(path_or_buf)`` the table (.csv / .parquet / .json by extension;
    CSV on a text stream, ``"-"`` or None: standard output)."""

    def __init__(self, rows, summaries, swept, settings, recommendations, pairs, max_held_p99,
                 interrupted: bool = False, error: str | None = None):
        self.rows = rows
        self.summaries = summaries
        self.swept = swept
        self.settings = settings
        self.recommendations = recommendations
        self.pairs = pairs
        self.max_held_p99 = max_held_p99
        self.interrupted = interrupted
        self.error = error

    @cached_property
    def frame(self):
        """The rows as a pandas DataFrame."""
        return sw.to_frame(self.rows)

    def to_frame(self):
        return self.frame

    def to_dict(self) -> dict:
        return {**self.meta(), "rows": self.rows}

    @property
    def exit_status(self) -> int:
        """130 interrupted (Ctrl-C); 2 a capture ended in a read error (its rows are partial);
        1 some setting led to a checkpoint request, or ``max_held_p99`` was given and no setting
        of some pair meets it; 0 no setting of any pair requested a checkpoint."""
        if self.interrupted:
            return 130
        if any(r["partial"] for r in self.rows):
            return 2
        if any(r["requests"] for r in self.rows):
            return 1
        if self.max_held_p99 is not None and any(rec.row is None for rec in self.recommendations):
            return 1
        return 0

    def meta(self) -> dict:
        """What the JSON file holds besides the rows (an interrupted sweep: ``partial``,
        ``interrupted`` and ``error`` too)."""
        meta = {"swept": self.swept, "settings": len(self.settings), "pairs": self.pairs,
                "max_held_p99_ms": self.max_held_p99,
                "recommendations": [r.as_dict() for r in self.recommendations]}
        if self.interrupted:
            meta.update(partial=True, interrupted=True, error=self.error)
        return meta

    def write(self, path_or_buf=None) -> None:
        """The rows as .csv / .parquet, or .json with the recommendations and what was swept; CSV
        on a text stream, ``"-"`` or None (standard output).  An interrupted sweep's file is
        marked partial (``analysis.sweep.write_rows``)."""
        from ..offline.outcome import output_target
        path, stream = output_target(path_or_buf)
        if path is None:
            self.frame.to_csv(stream, index=False)
            return
        self._check_output("output", path)
        sw.write_rows(path, self.rows, self.meta(), partial=self.error if self.interrupted else None)

    def plot(self, path: str, title: str = "") -> None:
        """Checkpoints per minute vs held p99: the settings, the front, the recommendation."""
        self._check_output("plot", path)
        sw.plot(os.fspath(path), self.rows, self.recommendations,
                title or ("" if not self.interrupted else f"colo-replay sweep ({self.error})"))

    def _check_output(self, what: str, path) -> None:
        """ValueError when ``path`` is one of the sweep's captures (symlinks followed)."""
        from ..output.files import check_outputs
        check_outputs({what: path}, {"primary capture": [p["primary"] for p in self.pairs],
                                     "secondary capture": [p["secondary"] for p in self.pairs]})

    def __repr__(self) -> str:
        return (f"<Sweep {len(self.settings)} settings x {len(self.pairs)} pairs"
                f"{' (interrupted)' if self.interrupted else ''}>")


def run_sweep(primary, secondary, grid: dict, settings: Settings, *, pairs: list[dict] | None = None,
              jobs: int | None = None, dask: str | None = None, max_held_p99: float | None = None,
              start_method: str | None = None, with_summary: bool = False, name: str | None = None,
              max_settings: int | None = None) -> Sweep:
    """Replay a pair (or each of ``pairs``) under every setting of ``grid``, parsing each pair
    once (see ``api.sweep``).  Bad grids and settings raise ``ValueError`` before anything is
    read, and so do more than ``max_settings`` replays (settings x pairs; default
    ``MAX_SETTINGS``), and a capture that does not exist.  Ctrl-C: the rows finished so far,
    ``Sweep.interrupted``."""
    from pathlib import Path

    from ..offline.prepared import PreparedPair, prepare
    from ..offline.streamed import StreamedPair

    if max_settings is not None and (isinstance(max_settings, bool) or not isinstance(max_settings, int)
                                     or max_settings < 1):
        raise ValueError(f"max_settings {max_settings!r}: must be a whole number at least 1 (--max-settings)")
    if jobs is not None and (isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1):
        raise ValueError(f"jobs {jobs!r}: must be a whole number at least 1 (-j)")
    if start_method not in (None, "fork", "spawn", "forkserver"):
        raise ValueError(f"start_method {start_method!r}: must be fork, spawn or forkserver")
    if max_held_p99 is not None and (isinstance(max_held_p99, bool) or not isinstance(max_held_p99, (int, float))
                                     or math.isnan(max_held_p99) or max_held_p99 < 0):
        raise ValueError(f"--max-held-p99 {max_held_p99!r}: must be a number at or above 0")
    swept = sw.grid_values(grid)
    if pairs is None:
        if primary is None or secondary is None:
            raise ValueError("sweep needs PRIMARY and SECONDARY, or pairs")
        pairs = [{"name": name or (Path(os.fsdecode(primary)).stem if is_path(primary) else "pair"),
                  "primary": primary, "secondary": secondary}]
        labels = [None]             # one pair: its messages are replay's
    elif primary is not None or secondary is not None:
        raise ValueError("give either PRIMARY SECONDARY or pairs (--pairs), not both")
    else:
        labels = _labels(pairs)
    if not pairs:
        raise ValueError("no pairs to sweep")
    sw.check_size(sw.grid_size(swept), len(pairs), max_settings)      # before the product is made
    grid_settings = sw.product_of(swept)

    # Every pair checked before the long part, none opened: its options, every setting of the
    # grid for it (what QEMU would refuse), its captures there (os.stat opens nothing).
    swept_fields = {sw.KNOBS[k][0] for k in swept}
    resolved = []
    checked: set = set()
    for spec, label in zip(pairs, labels):
        resolved.append((spec, label, _check_pair(spec, label, settings, grid_settings, swept_fields, checked)))

    # Then each pair is opened when it is prepared (two captures open at a time, whatever the
    # number of pairs), and held in memory with the others of its group (up to PREPARED_BUDGET
    # bytes of frames): many small pairs still fan out together, a suite of large ones does not
    # need them all at once.
    out: list = []
    group: list = []
    held = 0                            # bytes of frames the group holds
    sources: dict = {}
    interrupted = False
    try:
        for k, (spec, label, pair_settings) in enumerate(resolved):
            try:
                pair = open_pair(spec["primary"], spec["secondary"], pair_settings)
            except ValueError as exc:
                raise ValueError(f"{label}: {exc}" if label else str(exc)) from None
            if dask is None and is_path(spec["primary"]) and is_path(spec["secondary"]):
                # Each setting reads the files again, streamed (offline/streamed.py): a worker
                # holds one replay, not the captures; the readers opened here are not needed.
                if pair.rewriter is not None:
                    for _batch in pair.secondary.batches():    # its stats: the sweep's source
                        pass
                for rd in (pair.primary, pair.secondary):
                    close = getattr(rd, "close", None)
                    if close is not None:
                        close()
                sources[spec["name"]] = pair.finished_source()
                group.append(StreamedPair(spec["name"], pair.paths, pair.settings, pair.options, pair.source))
            else:
                p, s = prepare(pair.primary), prepare(pair.secondary)     # (drained: their files closed)
                source = sources[spec["name"]] = pair.finished_source()
                group.append(PreparedPair(spec["name"], p, s, pair.options, source))
                held += p.nbytes + s.nbytes
            if k == len(resolved) - 1 or held >= PREPARED_BUDGET:
                sw.run(group, grid_settings, jobs, dask=dask, start_method=start_method, with_summary=with_summary,
                       done=out)
                group = []
                held = 0
    except KeyboardInterrupt:
        interrupted = True
    del resolved, group
    rows = [r for r, _ in out]
    recs = sw.recommend(rows, max_held_p99, sw.swept_columns(swept) or None)
    sw.mark(rows, recs)
    info = [{"name": p["name"], "primary": str(p["primary"]), "secondary": str(p["secondary"]),
             **({"source": sources[p["name"]]} if sources.get(p["name"]) else {})} for p in pairs]
    total = len(grid_settings) * len(pairs)
    error = f"interrupted: {len(rows)} of {total} rows finished" if interrupted else None
    return Sweep(rows, [s for _, s in out] if with_summary else None, swept, grid_settings, recs, info,
                 max_held_p99, interrupted, error)


def _labels(pairs: list) -> list[str]:
    """What names each of ``pairs`` in a message: its manifest row (``m.csv: row 3 (pair 'x')``)
    or its index (``pairs[2] (pair 'x')``); ValueError for a pair that is no dict, has no name,
    or the name of another."""
    labels = []
    seen: dict = {}
    for i, spec in enumerate(pairs):
        where = getattr(spec, "where", None) or f"pairs[{i}]"
        if not isinstance(spec, dict):
            raise ValueError(f"{where}: not a dict of name, primary, secondary and options")
        name = spec.get("name")
        if name is None or name == "":
            raise ValueError(f"{where}: no name (every pair needs its own)")
        missing = [k for k in ("primary", "secondary") if spec.get(k) is None]
        if missing:
            raise ValueError(f"{where} (pair {name!r}): missing {', '.join(missing)}")
        if name in seen:
            raise ValueError(f"{where}: name {name!r} is already that of {seen[name]} (every pair needs its own)")
        seen[name] = where
        labels.append(f"{where} (pair {name!r})")
    return labels


def _check_pair(spec: dict, label: str | None, settings: Settings, grid_settings: list, swept_fields: set,
                checked: set) -> Settings:
    """The pair's settings, checked under every setting of the grid (once per distinct
    settings: ``checked``), and its captures' existence; ValueError naming the pair (``label``)."""
    prefix = f"{label}: " if label else ""
    own = {k: v for k, v in spec.items() if k not in ("name", "primary", "secondary")}
    unknown = set(own) - set(SETTINGS_FIELDS)
    if unknown:
        raise ValueError(f"{label or spec['name']}: unknown option {', '.join(sorted(map(str, unknown)))}")
    fixed = (set(settings.given()) | set(own)) & swept_fields
    if fixed:
        raise ValueError(f"{label or spec['name']}: {', '.join(sorted(fixed))} is swept: give it in the grid only")
    try:
        pair_settings = settings.replace(**own) if own else settings
        try:
            hash(pair_settings)
            key = pair_settings
        except TypeError:
            key = None
        if key is None or key not in checked:
            for setting in grid_settings:        # what QEMU would refuse, before the long part
                pair_settings.replace(**setting)
            if key is not None:
                checked.add(key)
    except ValueError as exc:
        raise ValueError(prefix + str(exc)) from None
    except OSError as exc:               # the pair's checkpoints_at file (read with its settings)
        if label is None:
            raise
        name = os.fsdecode(exc.filename) if exc.filename is not None else str(own.get("checkpoints_at"))
        raise ValueError(f"{prefix}checkpoints_at {name}: {exc.strerror or exc}") from None
    for side in ("primary", "secondary"):
        capture = spec[side]
        if not is_path(capture):
            continue
        try:
            st = os.stat(capture)
        except OSError as exc:
            if label is None:
                raise
            raise ValueError(f"{prefix}{side} {os.fsdecode(capture)}: {exc.strerror or exc}") from None
        if stat.S_ISDIR(st.st_mode):
            raise ValueError(f"{prefix}{side} {os.fsdecode(capture)}: is a directory")
    return pair_settings
