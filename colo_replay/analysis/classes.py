"""Divergence classes: roots grouped by what diverged, each with an actionable hint.

A class is keyed by ``(cause, protocol, field)``:

* ``cause``: the checkpoint request's cause (miscompare, size_mismatch, ack_gate, expired);
* ``protocol``: a short name of the frame's protocol (``fields.Dissection.protocol``: tcp,
  udp, icmp, ip-<n>, ...);
* ``field``: the field covering the first differing byte, the innermost application field
  when tshark named one (``dns.id``, ``http.date``) else the L2-L4 one (``udp.payload``); empty
  for causes with no differing byte (ack_gate, expired) or when nothing was compared.

The hint sentences live in ``hints`` (data); this module only looks them up and groups.
"""

from __future__ import annotations

import re

from typing import Iterable, NamedTuple

import pandas as pd

from . import hints as _hints

__all__ = ["ClassKey", "class_key", "hint_for", "group_classes", "CLASS_COLUMNS"]

# causes whose requests have no differing byte to name
_NO_BYTES = ("ack_gate", "expired")

CLASS_COLUMNS = ("cause", "protocol", "field", "count", "share", "checkpoints", "first_ns", "last_ns",
                 "examples", "hint")
"""Columns of ``group_classes``' result:

    cause, protocol, field   the class key
    count         roots in the class
    share         the class's share of the checkpoints (its ``checkpoints`` / all), 0..1
    checkpoints   checkpoints its roots cost (the roots' ``checkpoints`` column, else 1 each)
    first_ns, last_ns        time of its first and last root
    examples      up to ``examples`` (primary_frame, secondary_frame) pairs, earliest first
    hint          one actionable sentence
"""


class ClassKey(NamedTuple):
    cause: str
    protocol: str
    field: str


# COLO artefacts (analysis/colo_artefacts.py) and colo-compare's own mechanics (analysis/mechanics.py)
_ARTEFACTS = ("padded-syn-ack", "rewriter-handshake-reset", "segmentation-residue", "compare-order", "table-reset")


def class_key(cause: str, protocol: str | None, field: str | None) -> ClassKey:
    """The normalised key: lowercase names, ``""`` for unknowns, and no field for causes that
    compare no bytes (ack_gate, expired) so that all of them fall in one class per protocol,
    unless a COLO artefact (``_ARTEFACTS``) explains them."""
    cause = str(cause or "").lower()
    # (a COLO artefact names what happened on the frames, also for an ACK-gate failure)
    field = "" if cause in _NO_BYTES and field not in _ARTEFACTS else str(field or "")
    return ClassKey(cause, str(protocol or "").lower(), field)


def context_hint(context: str | None) -> str | None:
    """The hint of a field's context (``hints.CONTEXT_HINTS``: a random id, a clock), or None."""
    if context:
        for pattern, text in _hints.CONTEXT_HINTS:
            if re.search(pattern, context):
                return text
    return None


def context_class(name: str, context: str | None) -> str:
    """The class field of an application field in its context: ``json.value.string (member
    request_id)`` when the context has a hint of its own (``context_hint``) and the name none
    (``hints.FIELD_HINTS``), else the name alone."""
    if name in _hints.FIELD_HINTS or context_hint(context) is None:
        return name
    return f"{name} ({context})"


def hint_for(cause: str, protocol: str | None = None, field: str | None = None) -> str:
    """The hint of a class: by exact field, then cause (for causes without bytes and for
    size mismatches without a field), then field prefix, then protocol, then a generic one."""
    key = class_key(cause, protocol, field)
    if key.field in _hints.FIELD_HINTS:
        return _hints.FIELD_HINTS[key.field]
    name, _, context = key.field.partition(" (")
    if context:                     # a field in its context (``context_class``)
        found = context_hint(context.rstrip(")"))
        if found is not None:
            return found
    if key.cause in _hints.CAUSE_HINTS and (key.cause in _NO_BYTES or not key.field):
        return _hints.CAUSE_HINTS[key.cause]
    for prefix, text in _hints.PREFIX_HINTS.items():
        if key.field.startswith(prefix):
            return text
    if key.cause in _hints.CAUSE_HINTS:
        return _hints.CAUSE_HINTS[key.cause]
    return _hints.PROTOCOL_HINTS.get(key.protocol, _hints.GENERIC_HINT)


def group_classes(roots: pd.DataFrame | Iterable[dict], examples: int = 3) -> pd.DataFrame:
    """Group explained roots into classes, most checkpoints first (then most roots).

    ``roots``: a DataFrame (or dicts) with ``cause``, ``protocol``, ``field``, ``time_ns``,
    ``primary_frame``, ``secondary_frame`` and optionally ``checkpoints`` (as
    ``episodes.Episodes.roots`` has it, with protocol and field added by the explain step).
    Returns a DataFrame with ``CLASS_COLUMNS``.
    """
    df = roots if isinstance(roots, pd.DataFrame) else pd.DataFrame(list(roots))
    if not len(df):
        return pd.DataFrame({c: pd.Series(dtype="object") for c in CLASS_COLUMNS})
    keys = [class_key(c, p, f) for c, p, f in zip(df["cause"].astype(str),
                                                   df.get("protocol", pd.Series("", index=df.index)),
                                                   df.get("field", pd.Series("", index=df.index)))]
    work = pd.DataFrame({
        "cause": [k.cause for k in keys], "protocol": [k.protocol for k in keys],
        "field": [k.field for k in keys],
        "time_ns": df["time_ns"].to_numpy(),
        "pf": df["primary_frame"].to_numpy(), "sf": df["secondary_frame"].to_numpy(),
        "ck": df["checkpoints"].to_numpy() if "checkpoints" in df else 1,
    }).sort_values("time_ns", kind="stable")
    total = work["ck"].sum()
    g = work.groupby(["cause", "protocol", "field"], sort=False)
    out = g.agg(count=("time_ns", "size"), checkpoints=("ck", "sum"), first_ns=("time_ns", "min"),
                last_ns=("time_ns", "max")).reset_index()
    # examples: the first few frame pairs of each class (roots are few: a plain pass is fine)
    ex: dict[tuple, list] = {}
    for key, pf, sf in zip(zip(work["cause"], work["protocol"], work["field"]), work["pf"], work["sf"]):
        lst = ex.setdefault(key, [])
        if len(lst) < examples:
            lst.append((int(pf), int(sf)))
    out["examples"] = [ex[k] for k in zip(out["cause"], out["protocol"], out["field"])]
    # share of the checkpoints; when the roots cost none the replay counted (measured flushes,
    # e.g. a chardev capture), the share of the roots instead
    out["share"] = out["checkpoints"] / total if total else out["count"] / len(work)
    out["hint"] = [hint_for(c, p, f) for c, p, f in zip(out["cause"], out["protocol"], out["field"])]
    out = out.sort_values(["checkpoints", "count", "first_ns"], ascending=[False, False, True], kind="stable")
    return out[list(CLASS_COLUMNS)].reset_index(drop=True)

