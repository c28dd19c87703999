"""The baseline gate: this run's report data against an earlier report's JSON.

``compare(new, old, rules)`` lists every metric old -> new with its delta, the divergence classes
that are new or gone, and whether the run **regressed**: some metric grew by more than its rule
allows.  All the metrics are "more is worse".

Rules (``--tolerance``, repeatable, or comma-separated; names below):

* ``NAME=+N``   regressed when new - old > N (``checkpoints=+0``: any more checkpoint regresses);
* ``NAME=+N%``  regressed when new > old * (1 + N/100) (``held_p99=+10%``); when old is 0, any
  increase regresses;
* ``NAME=any``  never regresses (shown only; turns a default rule off).

Default rules (a rule given for a name replaces its default): ``checkpoints=+0``,
``checkpoint_requests=+0``, ``roots=+0``, ``new_classes=+0``, ``qemu_crashes=+0``,
``held_p99=+10%``.  Metrics: ``checkpoints``, ``checkpoint_requests``, ``divergences``,
``roots``, ``held_p50``, ``held_p95``, ``held_p99``, ``held_max`` (ms), ``unsupported``,
``truncated``, ``undefined``, ``qemu_crashes``, ``queue_drops``, ``new_classes`` (classes in
this run that the baseline has not).
"""

from __future__ import annotations

import re

__all__ = ["METRICS", "DEFAULT_RULES", "parse_rules", "load_baseline", "compare"]

# metric -> key in the report's "numbers" (None: computed here)
METRICS = {
    "checkpoints": "checkpoints", "checkpoint_requests": "checkpoint_requests", "divergences": "divergences",
    "roots": "roots", "held_p50": "held_p50_ms", "held_p95": "held_p95_ms", "held_p99": "held_p99_ms",
    "held_max": "held_max_ms", "unsupported": "unsupported", "truncated": "truncated", "undefined": "undefined",
    "qemu_crashes": "qemu_crashes", "queue_drops": "queue_drops", "new_classes": None,
}
DEFAULT_RULES = ("checkpoints=+0", "checkpoint_requests=+0", "roots=+0", "new_classes=+0", "qemu_crashes=+0",
                 "held_p99=+10%")
_RULE = re.compile(r"\s*([a-z_0-9]+)\s*=\s*(?:(any)|\+?(\d+(?:\.\d*)?|\.\d+)\s*(%?))\s*")


def parse_rules(specs) -> dict:
    """``{metric: (amount, is_percent) or None}`` from the defaults overridden by ``specs``
    (strings, each one rule or several separated by commas).  ValueError names a bad rule."""
    rules = {}
    for spec in list(DEFAULT_RULES) + [s for item in (specs or ()) for s in str(item).split(",") if s.strip()]:
        m = _RULE.fullmatch(spec)
        if not m:
            raise ValueError(f"--tolerance {spec.strip()!r}: expected NAME=+N, NAME=+N% or NAME=any "
                             f"(e.g. checkpoints=+0, held_p99=+10%)")
        name = m.group(1)
        if name not in METRICS:
            raise ValueError(f"--tolerance {spec.strip()!r}: unknown metric {name!r} (one of "
                             f"{', '.join(METRICS)})")
        rules[name] = None if m.group(2) else (float(m.group(3)), m.group(4) == "%")
    return rules


def _rule_text(name: str, rule) -> str:
    if rule is None:
        return f"{name}=any"
    amount, pct = rule
    return f"{name}=+{amount:g}{'%' if pct else ''}"


def load_baseline(path: str) -> dict:
    """An earlier report's JSON (``--json``); ValueError (one line naming the file, and the key
    path of a bad value: ``b.json: numbers.checkpoints: expected a number, got a list``) when it is
    not one: not UTF-8, not JSON, another schema or a newer one, or a value ``compare`` reads of
    the wrong type (numbers finite and within +-2^63, classes' names strings)."""
    from .checks import Doc, kind_of, read_json, schema_of

    data = read_json(path, "a report's JSON (--json)")
    doc = Doc(path)
    what = "a colo-replay report JSON (--json of report)"
    if not isinstance(data, dict):
        doc.fail("", f"not {what}: a JSON object is expected, got {kind_of(data)}")
    schema_of(doc, data, "colo-replay-report", 1, what)
    doc.string(data, "generated")
    numbers = doc.object(data, "numbers", required=True, null=False)
    for key in METRICS.values():
        if key is not None:
            doc.number(numbers, key, "numbers")
    div = doc.object(data, "divergences")
    if div is not None:
        for i, c in enumerate(doc.objects(div, "classes", "divergences") or ()):
            for k in ("cause", "protocol", "field"):
                doc.string(c, k, f"divergences.classes[{i}]")
    return data


def _class_keys(data: dict) -> list[str]:
    return ["/".join(str(c.get(k) or "") for k in ("cause", "protocol", "field")).rstrip("/")
            for c in (data.get("divergences") or {}).get("classes") or []]


def compare(new: dict, old: dict, rules: dict, path: str = "") -> dict:
    """The regression section's data: ``metrics`` (name, old, new, delta, delta_pct, rule,
    regressed), ``classes_new``, ``classes_gone``, ``regressed`` and one line of ``text``."""
    new_keys, old_keys = _class_keys(new), _class_keys(old)
    classes_new = [k for k in new_keys if k not in set(old_keys)]
    classes_gone = [k for k in old_keys if k not in set(new_keys)]
    metrics = []
    for name, key in METRICS.items():
        if key is None:
            o, n = 0, len(classes_new)
        else:
            o, n = (old.get("numbers") or {}).get(key), (new.get("numbers") or {}).get(key)
        rule = rules.get(name, None)
        gated = name in rules and rule is not None
        delta = None if o is None or n is None else n - o
        pct = None if delta is None or not o else 100.0 * delta / o
        regressed = False
        if gated and delta is not None:
            amount, is_pct = rule
            regressed = (delta > 0 and (o == 0 or delta > o * amount / 100.0)) if is_pct else delta > amount
        elif gated and o is None and n:
            regressed = True          # a number the baseline did not have (e.g. no release then)
        metrics.append({"name": name, "old": o, "new": n, "delta": delta, "delta_pct": pct,
                        "rule": _rule_text(name, rule) if name in rules else None, "regressed": bool(regressed)})
    bad = [m["name"] for m in metrics if m["regressed"]]
    text = (f"REGRESSED beyond the tolerance: {', '.join(bad)}" if bad
            else "No regression beyond the tolerance")
    return {"path": str(path), "generated": old.get("generated"), "rules": [_rule_text(k, v) for k, v in rules.items()],
            "metrics": metrics, "classes_new": classes_new, "classes_gone": classes_gone,
            "regressed": bool(bad), "text": text}
