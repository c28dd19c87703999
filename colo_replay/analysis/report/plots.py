"""The report's three plots, drawn with matplotlib's Agg backend into PNG data URIs.

Every plot is drawn from **binned** data: the time column is cut into a few hundred bins with
``numpy.bincount`` (the held times into log-spaced ``numpy.histogram`` bins), so a plot costs the
same for a thousand rows as for two million, and matplotlib never sees a row.

* ``activity``: frames per second on each side (``model.side_times``: the primary's by arrival,
  the secondary's by when they were compared or dropped) and releases per second; checkpoint
  requests as
  markers by cause (one marker per bin holding any); checkpoints as shaded spans (each bin that a
  checkpoint overlaps).
* ``held``: the CDF of held time (release time minus the primary's arrival: the latency COLO
  adds), log time axis, with p50 / p95 / p99 marked.
* ``checkpoints``: checkpoints per minute over time, stacked by cause.

PNG rather than SVG: an image element carries no markup or script of its own, and it decodes
the same in every browser.  ``Figure`` objects are used directly (no pyplot global state).
"""

from __future__ import annotations

import base64
import io
import warnings

import numpy as np

from ...engine.constants import MS
from .model import mask

__all__ = ["draw_all", "time_bins"]

_NICE_NS = [int(x * MS) for x in (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10_000, 15_000,
                                  30_000, 60_000, 120_000, 300_000, 600_000, 1_800_000, 3_600_000)]
_COLORS = {"primary": "#1f77b4", "secondary": "#ff7f0e", "released": "#2ca02c", "checkpoint": "#d62728"}
_CAUSE_MARKERS = {"miscompare": ("v", "#d62728"), "size_mismatch": ("D", "#9467bd"), "ack_gate": ("^", "#8c564b"),
                  "expired": ("o", "#e377c2")}
_CKPT_COLORS = {"requested": "#d62728", "periodic": "#7f7f7f", "measured": "#17becf"}
DPI = 100


def time_bins(t0: int, t1: int, target: int = 240) -> tuple[int, int]:
    """(bin width ns, number of bins): a round width giving at most ``target`` bins (plus the
    one holding t1) over [t0, t1], whatever the span: beyond the hour of ``_NICE_NS`` the width is
    1, 2 or 5 times a power of ten of ns (a saved run with an accepted ten-year gap gets its
    few hundred bins, not one an hour)."""
    span = max(1, int(t1) - int(t0))
    width = next((w for w in _NICE_NS if span / w <= target), None)
    if width is None:
        need = -(-span // target)                   # ceil: the narrowest width that fits
        mag = 10 ** (len(str(need)) - 1)
        width = next(m * mag for m in (1, 2, 5, 10) if m * mag >= need)
    return width, int(span // width) + 1


def _bincount(t: np.ndarray, t0: int, width: int, n: int) -> np.ndarray:
    idx = (t - t0) // width
    idx = idx[(idx >= 0) & (idx < n)]
    return np.bincount(idx, minlength=n)


def _png(fig) -> dict:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    buf = io.BytesIO()
    with warnings.catch_warnings():      # a glyph the font lacks (a CJK file or pair name): a box, not stderr
        warnings.simplefilter("ignore", UserWarning)
        canvas.print_png(buf)
    w, h = canvas.get_width_height()
    return {"src": "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii"),
            "width": int(w), "height": int(h)}


def _figure(height: float = 3.4, right: float = 0.98):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, height), dpi=DPI)
    # fixed margins (inches -> fractions), not tight_layout: that lays every text out twice
    fig.subplots_adjust(left=0.75 / 11, right=right, bottom=0.55 / height, top=1 - 0.35 / height)
    ax = fig.add_subplot(1, 1, 1)
    ax.grid(True, alpha=0.3)
    return fig, ax


def _unit(width: int) -> tuple[float, str]:
    """Seconds axis, minutes for long runs, hours and days for longer ones."""
    if width >= 12 * 3_600_000 * MS:
        return 86_400e9, "days"
    if width >= 600_000 * MS:
        return 3_600e9, "h"
    return (60e9, "min") if width >= 10_000 * MS else (1e9, "s")


def _width_text(width: int) -> str:
    """A bin width in words: ms up to the hour, then h, then days."""
    for size, name in ((86_400_000 * MS, "days"), (3_600_000 * MS, "h")):
        if width > size * (2 if name == "days" else 1):
            return f"{width / size:g} {name}"
    return f"{width / MS:g} ms"


def _spans(events, kinds) -> tuple[np.ndarray, np.ndarray]:
    """Checkpoint (start, end) times, paired by checkpoint number (the rows' detail)."""
    kind = events["kind"]
    s = mask(kind, "checkpoint_start")
    e = mask(kind, "checkpoint_end")
    if not s.any():
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    t = events["time_ns"].to_numpy()
    d = events["detail"].to_numpy()
    starts = dict(zip(d[s].tolist(), t[s].tolist())) if s.sum() < 200_000 else None
    if starts is None:                  # very many: pair in order
        ts, te = t[s], t[e]
        m = min(len(ts), len(te))
        return ts[:m], te[:m]
    ends = dict(zip(d[e].tolist(), t[e].tolist()))
    keys = sorted(starts)
    end_t = int(t.max())
    return (np.array([starts[k] for k in keys], np.int64),
            np.array([ends.get(k, end_t) for k in keys], np.int64))


def activity(events, side_times: dict, t0: int, t1: int) -> dict:
    kind, cause = events["kind"], events["cause"]
    t = events["time_ns"].to_numpy()
    width, n = time_bins(t0, t1)
    per_s = 1e9 / width
    unit, uname = _unit(width)
    x = (np.arange(n) * width) / unit
    fig, ax = _figure(3.8, right=0.78)
    for side in ("primary", "secondary"):
        c = _bincount(side_times[side], t0, width, n)
        label = "primary frames/s (arrival)" if side == "primary" else "secondary frames/s (compared)"
        ax.step(x, c * per_s, where="post", lw=1.0, color=_COLORS[side], label=label)
    rel = _bincount(t[mask(kind, "release")], t0, width, n)
    ax.step(x, rel * per_s, where="post", lw=1.0, ls="--", color=_COLORS["released"], label="released/s")
    starts, ends = _spans(events, None)
    if len(starts):
        covered = np.zeros(n + 1, dtype=np.int64)
        lo = np.clip((starts - t0) // width, 0, n - 1)
        hi = np.clip((ends - t0) // width, 0, n - 1)
        np.add.at(covered, lo, 1)
        np.add.at(covered, hi + 1, -1)
        on = np.cumsum(covered)[:n] > 0
        ax.fill_between(np.append(x, x[-1] + width / unit), 0, 1, where=np.append(on, on[-1:]), step="post",
                        transform=ax.get_xaxis_transform(), color=_COLORS["checkpoint"], alpha=0.15, lw=0,
                        label=f"checkpoints ({len(starts)})")
    is_req = mask(kind, "checkpoint_request")
    if is_req.any():
        req_t, req_c = t[is_req], cause[is_req].astype(str).to_numpy()
        for i, name in enumerate(sorted(set(req_c))):
            c = _bincount(req_t[req_c == name], t0, width, n)
            where = np.flatnonzero(c)
            marker, color = _CAUSE_MARKERS.get(name, ("x", "#000000"))
            ax.plot(x[where] + width / unit / 2, np.full(len(where), 0.96 - 0.05 * i), ls="none", marker=marker,
                    color=color, ms=6, transform=ax.get_xaxis_transform(),
                    label=f"request: {name} ({int(c.sum())})")
    ax.set_xlim(0, n * width / unit)
    ax.set_ylim(bottom=0)
    ax.set_xlabel(f"time since start ({uname}); bins of {_width_text(width)}")
    ax.set_ylabel("frames per second")
    ax.set_title("Activity: frames per side, releases, checkpoint requests and checkpoints")
    ax.legend(loc="upper left", bbox_to_anchor=(1.005, 1.0), fontsize=8, frameon=False)
    out = _png(fig)
    out["alt"] = (f"Activity over time in bins of {_width_text(width)}: frames per second on each side, releases, "
                  f"{int(is_req.sum())} checkpoint requests as markers, {len(starts)} checkpoints shaded")
    return out


def held(events, held_ms: dict) -> dict:
    kind = events["kind"]
    h = events["held_ns"].to_numpy()[mask(kind, "release")]
    fig, ax = _figure(3.4)
    if len(h):
        pos = h[h > 0]
        lo = max(float(pos.min()) if len(pos) else 1.0, 1e3) / MS
        hi = max(float(h.max()) / MS, lo * 10)
        edges = np.geomspace(lo, hi, 400)
        counts, _ = np.histogram(np.maximum(h / MS, lo), bins=edges)
        cdf = np.cumsum(counts) / len(h)
        ax.step(edges[1:], cdf, where="post", color=_COLORS["primary"], lw=1.5, label=f"{len(h)} releases")
        ax.set_xscale("log")
        # plain "0.01" labels: the default 10^-2 ones go through mathtext, ~0.5 s of parser set-up
        from matplotlib.ticker import FuncFormatter, NullFormatter
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.xaxis.set_minor_formatter(NullFormatter())
        for name, style in (("p50", ":"), ("p95", "--"), ("p99", "-.")):
            v = held_ms.get(f"held_{name}_ms")
            if v is not None and v > 0:
                ax.axvline(v, color=_COLORS["checkpoint"], ls=style, lw=1.2, label=f"{name} {v:.3f} ms")
        ax.set_ylim(0, 1.02)
        ax.legend(loc="lower right", fontsize=8)
    else:
        ax.text(0.5, 0.5, "no frame was released", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel("held time (ms): release minus the primary's arrival, log scale")
    ax.set_ylabel("fraction of releases")
    ax.set_title("Held time (the latency COLO adds), CDF")
    out = _png(fig)
    out["alt"] = ("CDF of held time; " + ", ".join(f"{k} {held_ms.get(f'held_{k}_ms') or 0:.3f} ms"
                                                  for k in ("p50", "p95", "p99")))
    return out


def checkpoints(events, t0: int, t1: int) -> dict:
    kind, cause = events["kind"], events["cause"]
    t = events["time_ns"].to_numpy()
    s = mask(kind, "checkpoint_start")
    span = max(1, int(t1) - int(t0))
    # one bar a minute from ten minutes to four hours; else about 40 (short) or 240 (long) bars
    if 10 * 60_000 * MS <= span <= 240 * 60_000 * MS:
        width = 60_000 * MS
    else:
        width = time_bins(t0, t1, 40 if span < 10 * 60_000 * MS else 240)[0]
    n = int(span // width) + 1
    unit, uname = _unit(width)
    x = np.arange(n) * width / unit
    scale = 60e9 / width                  # per minute
    fig, ax = _figure(3.0)
    bottom = np.zeros(n)
    names = sorted(set(cause[s].astype(str))) if s.any() else []
    for name in names:
        c = _bincount(t[s & mask(cause, name)], t0, width, n) * scale
        ax.bar(x, c, width=width / unit, bottom=bottom, align="edge", color=_CKPT_COLORS.get(name, "#bcbd22"),
               label=f"{name} ({int(round(c.sum() / scale))})", edgecolor="none")
        bottom += c
    if not names:
        ax.text(0.5, 0.5, "no checkpoint", ha="center", va="center", transform=ax.transAxes)
    else:
        ax.legend(loc="upper right", fontsize=8)
    ax.set_xlim(0, n * width / unit)
    ax.set_xlabel(f"time since start ({uname}); bins of {_width_text(width)}")
    ax.set_ylabel("checkpoints per minute")
    ax.set_title("Checkpoints per minute")
    out = _png(fig)
    out["alt"] = f"Checkpoints per minute over time in bins of {_width_text(width)}, {int(s.sum())} checkpoints"
    return out


def draw_all(events, side_times: dict, t0: int, t1: int, numbers: dict) -> dict:
    """``{"activity": {...}, "held": {...}, "checkpoints": {...}}``, each ``src`` (a PNG data
    URI), ``width``, ``height`` (pixels) and ``alt`` (the plot in words)."""
    return {"activity": activity(events, side_times, t0, t1), "held": held(events, numbers),
            "checkpoints": checkpoints(events, t0, t1)}
