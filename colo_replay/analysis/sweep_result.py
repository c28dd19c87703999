"""A whole sweep: the pairs resolved and prepared once each, every setting of the grid replayed
(``analysis.sweep.run``), the Pareto fronts and recommendations marked, and the ``Sweep`` result
(``api.sweep`` calls ``run_sweep``)."""

from __future__ import annotations

from functools import cached_property

from ..offline.pair import is_path, open_pair
from ..offline.settings import SETTINGS_FIELDS, Settings
from . import sweep as sw

PREPARED_BUDGET = 2 << 30       # bytes of prepared frames held at once (a pair is never split)


class Sweep:
    """The outcome of a sweep: ``rows`` (one dict per pair and setting, pair-major; columns
    ``analysis.sweep.ROW_COLUMNS``, ``pareto`` and ``recommended`` included), ``summaries`` (the
    full summary of each row's replay when asked, else None), ``swept`` (knob -> values),
    ``settings`` (the grid, as ``Settings`` keywords), ``recommendations`` (one
    ``analysis.sweep.Recommendation`` per pair) and ``pairs`` (name, primary, secondary, and
    ``source`` when the guest selection or the filter-rewriter left notes, as ``replay``'s).

    ``to_frame()`` is the rows as a DataFrame, ``to_dict()`` the JSON document (rows and
    recommendations), ``write(path_or_buf)`` the table (.csv / .parquet / .json by extension;
    CSV on a text stream, ``"-"`` or None: standard output)."""

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
        return sw.to_frame(self.rows)

    def to_frame(self):
        return self.frame

    def to_dict(self) -> dict:
        return {**self.meta(), "rows": self.rows}

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

    def write(self, path_or_buf=None) -> None:
        """The rows as .csv / .parquet, or .json with the recommendations and what was swept; CSV
        on a text stream, ``"-"`` or None (standard output)."""
        from ..offline.outcome import output_target
        path, stream = output_target(path_or_buf)
        if path is None:
            self.frame.to_csv(stream, index=False)
            return
        sw.write_rows(path, self.rows, self.meta())

    def plot(self, path: str, title: str = "") -> None:
        """Checkpoints per minute vs held p99: the settings, the front, the recommendation."""
        import os
        sw.plot(os.fspath(path), self.rows, self.recommendations, title)

    def __repr__(self) -> str:
        return f"<Sweep {len(self.settings)} settings x {len(self.pairs)} pairs>"


def run_sweep(primary, secondary, grid: dict, settings: Settings, *, pairs: list[dict] | None = None,
              jobs: int | None = None, dask: str | None = None, max_held_p99: float | None = None,
              start_method: str | None = None, with_summary: bool = False, name: str | None = None) -> Sweep:
    """Replay a pair (or each of ``pairs``) under every setting of ``grid``, parsing each pair
    once (see ``api.sweep``).  Bad grids and settings raise ``ValueError`` before anything is read."""
    from pathlib import Path

    from ..offline.prepared import PreparedPair, prepare

    swept, grid_settings = sw.grid(grid)
    if pairs is None:
        if primary is None or secondary is None:
            raise ValueError("sweep needs PRIMARY and SECONDARY, or pairs")
        pairs = [{"name": name or (Path(primary).stem if is_path(primary) else "pair"),
                  "primary": primary, "secondary": secondary}]
    elif primary is not None or secondary is not None:
        raise ValueError("give either PRIMARY SECONDARY or pairs (--pairs), not both")
    if not pairs:
        raise ValueError("no pairs to sweep")
    names = [p.get("name") for p in pairs]
    if len(set(names)) != len(names) or not all(names):
        raise ValueError("every pair needs a name, each different")
    swept_fields = {sw.KNOBS[k][0] for k in swept}
    resolved = []
    for spec in pairs:
        own = {k: v for k, v in spec.items() if k not in ("name", "primary", "secondary")}
        unknown = set(own) - set(SETTINGS_FIELDS)
        if unknown:
            raise ValueError(f"{spec['name']}: unknown option {', '.join(sorted(unknown))}")
        fixed = (set(settings.given()) | set(own)) & swept_fields
        if fixed:
            raise ValueError(f"{spec['name']}: {', '.join(sorted(fixed))} is swept: give it in the grid only")
        pair_settings = settings.replace(**own) if own else settings
        for setting in grid_settings:        # what QEMU would refuse, before the long part
            pair_settings.replace(**setting)
        resolved.append((spec, open_pair(spec["primary"], spec["secondary"], pair_settings)))
    # Pairs are held in memory a group at a time (up to PREPARED_BUDGET bytes of frames): many
    # small pairs still fan out together, a suite of large ones does not need them all at once.
    out: list = []
    group: list = []
    sources: dict = {}
    for k, (spec, pair) in enumerate(resolved):
        p, s = prepare(pair.primary), prepare(pair.secondary)
        source = sources[spec["name"]] = pair.finished_source()
        group.append(PreparedPair(spec["name"], p, s, pair.options, source))
        if k == len(resolved) - 1 or sum(g.primary.nbytes + g.secondary.nbytes for g in group) >= PREPARED_BUDGET:
            out += sw.run(group, grid_settings, jobs, dask=dask, start_method=start_method, with_summary=with_summary)
            group = []
    del resolved
    rows = [r for r, _ in out]
    recs = sw.recommend(rows, max_held_p99, sw.swept_columns(swept) or None)
    sw.mark(rows, recs)
    info = [{"name": p["name"], "primary": str(p["primary"]), "secondary": str(p["secondary"]),
             **({"source": sources[p["name"]]} if sources[p["name"]] else {})} for p in pairs]
    return Sweep(rows, [s for _, s in out] if with_summary else None, swept, grid_settings, recs, info,
                 max_held_p99)
