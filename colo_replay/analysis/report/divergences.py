"""The one place where the report meets explain: root divergences and their classes, in the
shape of explain's ``to_dict()`` (``divergences`` and ``classes`` lists), whatever produced them.

* ``from_explain(explanation)``: an explain result (its ``to_dict()``), or that dict itself;
  explain details the divergences it was asked for, its ``counts`` give the totals.
* ``from_timeline(events, flows)``: without explain (a saved timeline whose captures are gone,
  or before frames can be read): the roots of ``episodes`` and the classes of
  ``group_classes`` keyed by cause only; no field diff, no hex window.

Either way the rows have the keys below (missing ones are None / empty), so the renderers never
look at where the data came from:

    time_ns, cause, flow {proto, src, dst, sport, dport} or None, primary_frame,
    secondary_frame, offset, payload_offset, fields [{name, primary, secondary}], class (a
    "cause/protocol/field" string), consequences, hex (``HexDiff.to_dict()``: offset,
    s_offset, width, rows [{p_offset, s_offset, primary, secondary, differ}]) or None
"""

from __future__ import annotations

import numpy as np

from ..classes import group_classes
from ..episodes import episodes

__all__ = ["from_explain", "from_timeline", "DIVERGENCE_KEYS", "CLASS_KEYS"]

DIVERGENCE_KEYS = ("time_ns", "cause", "flow", "primary_frame", "secondary_frame", "offset", "payload_offset",
                   "fields", "class", "consequences", "hex", "notes")
CLASS_KEYS = ("cause", "protocol", "field", "count", "share", "checkpoints", "first_ns", "last_ns", "examples",
              "hint")


def _plain(v):
    """numpy scalars and tuples to JSON types."""
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.floating,)):
        return float(v)
    if isinstance(v, (np.bool_,)):
        return bool(v)
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if isinstance(v, dict):
        return {str(k): _plain(x) for k, x in v.items()}
    return v


def _class_name(c) -> str:
    if isinstance(c, dict):
        return "/".join(str(c.get(k) or "") for k in ("cause", "protocol", "field")).rstrip("/")
    if isinstance(c, (list, tuple)):
        return "/".join(str(x or "") for x in c).rstrip("/")
    return "" if c is None else str(c)


def _divergence(row: dict) -> dict:
    out = {k: _plain(row.get(k)) for k in DIVERGENCE_KEYS}
    out["hex"] = _plain(row.get("hex") or row.get("hexdiff") or row.get("window"))
    out["fields"] = [{"name": str(f.get("name", "")), "primary": _plain(f.get("primary")),
                      "secondary": _plain(f.get("secondary"))} for f in (row.get("fields") or [])
                     if isinstance(f, dict)]
    out["class"] = _class_name(row.get("class"))
    out["notes"] = [str(n) for n in (row.get("notes") or [])]
    return out


def _classes(rows) -> list[dict]:
    out = []
    for c in rows:
        d = {k: _plain(c.get(k)) for k in CLASS_KEYS}
        d["examples"] = [list(e) for e in (d["examples"] or [])]
        out.append(d)
    return out


def from_explain(explanation) -> dict:
    """``{"source": "explain", "divergences": [...], "classes": [...]}`` from an explain result
    (anything with ``to_dict()``) or its dict."""
    data = explanation.to_dict() if hasattr(explanation, "to_dict") else dict(explanation)
    # a divergence explain chained to a root (``consequence_of``: a later TLS record after a
    # handshake difference) is that root's consequence, not a root of the report
    divs = sorted((_divergence(r) for r in data.get("divergences") or [] if r.get("consequence_of") is None),
                  key=lambda r: r["time_ns"] or 0)
    counts = data.get("counts") or {}
    # explain details the selected divergences; its counts say how many there were in all
    return {"source": "explain", "divergences": divs, "classes": _classes(data.get("classes") or []),
            "total": int(counts.get("divergences", len(divs))),
            # the roots: not chained to another divergence, not colo-compare's own mechanics
            "roots": counts.get("roots", counts.get("divergences"))}


def from_timeline(events, flows: dict | None = None) -> dict:
    """The same shape from the timeline alone: ``episodes``' roots (with the 5-tuple of their
    connection when ``flows`` maps connection index -> flow dict) and classes by cause."""
    ep = episodes(events)
    roots = ep.roots
    flows = flows or {}
    divs = []
    for r in roots.itertuples(index=False):
        divs.append({
            "time_ns": int(r.time_ns), "cause": str(r.cause), "flow": flows.get(int(r.conn)),
            "primary_frame": int(r.primary_frame), "secondary_frame": int(r.secondary_frame),
            "offset": None, "payload_offset": None, "fields": [], "class": str(r.cause),
            "consequences": int(r.consequences), "hex": None, "notes": []})
    classes = group_classes(roots) if len(roots) else []
    rows = classes.to_dict("records") if len(roots) else []
    return {"source": "timeline", "divergences": divs, "classes": _classes(rows), "total": len(divs),
            "roots": len(divs)}
