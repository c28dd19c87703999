"""The package's import graph: no cycles, and every arrow points inwards.

    cli -> api -> analysis / offline / live -> output / captures -> engine

Every module of ``colo_replay`` is parsed (``ast``, relative imports resolved, imports inside
functions included, since a late import is still a dependency) and the edges between the
package's own modules are checked.  ``from pkg import name`` is an edge to ``pkg.name`` when that
is a module, else to ``pkg`` (whose ``__init__`` runs).  Then, in fresh interpreters, the light
imports stay light.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PKG = ROOT / "colo_replay"

# layer -> the layers it may import (besides itself)
ALLOWED = {
    "engine": set(),
    "captures": {"engine"},
    "output": {"engine"},
    "offline": {"engine", "captures", "output"},
    "live": {"engine", "captures", "output", "offline"},
    "analysis": {"engine", "captures", "output", "offline"},
    "api": {"engine", "captures", "output", "offline", "live", "analysis"},
    "cli": {"engine", "captures", "output", "offline", "live", "analysis", "api"},
    "": set(),      # colo_replay/__init__.py: names are loaded lazily (import_module), no static import
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(PKG.rglob("*.py"))}


def _edges(modules: dict[str, Path]) -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        is_pkg = path.name == "__init__.py"
        here = name if is_pkg else name.rpartition(".")[0]
        out = graph.setdefault(name, set())
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base_parts = here.split(".")
                    if node.level > 1:
                        base_parts = base_parts[:-(node.level - 1)]
                    base = ".".join(base_parts + ([node.module] if node.module else []))
                else:
                    base = node.module or ""
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
            else:
                continue
            for t in targets:
                # "import colo_replay.x.y" names a module; keep the longest known prefix
                while t and t not in modules:
                    t = t.rpartition(".")[0]
                if t.startswith("colo_replay") and t != name:
                    out.add(t)
    return graph


def _layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


GRAPH = _edges(_modules())


def test_the_walk_sees_the_package():
    assert {"colo_replay.engine.compare", "colo_replay.cli.main", "colo_replay.api",
            "colo_replay.offline.driver"} <= set(GRAPH)
    assert "colo_replay.offline.pair" in GRAPH["colo_replay.api"]
    assert "colo_replay.cli.options" in GRAPH["colo_replay.cli.live"]


def test_no_import_cycle():
    """Tarjan's strongly connected components: any with two modules or more is a cycle."""
    index, low, stack, on_stack, cycles = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(GRAPH.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for v in sorted(GRAPH):
        if v not in index:
            visit(v)
    assert cycles == []


def test_arrows_point_inwards():
    wrong = []
    for src, targets in sorted(GRAPH.items()):
        layer = _layer(src)
        assert layer in ALLOWED, f"{src}: a new top-level room; add it to ALLOWED with its place"
        for t in sorted(targets):
            tl = _layer(t)
            if tl != layer and tl not in ALLOWED[layer]:
                wrong.append(f"{src} -> {t}")
    assert wrong == []


def _loaded_after(statement: str) -> list[str]:
    code = (f"import sys, json\n{statement}\n"
            "print(json.dumps(sorted(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    return json.loads(out.stdout)


@pytest.mark.parametrize("statement", ["import colo_replay.engine",
                                       "from colo_replay import Engine, CompareConfig, EventKind"])
def test_the_engine_loads_nothing_heavy(statement):
    loaded = _loaded_after(statement)
    heavy = [m for m in loaded if m.split(".")[0] in ("pandas", "click", "asyncio", "pyarrow", "numpy")
             or m.startswith("colo_replay.captures")]
    assert heavy == []
    assert [m for m in loaded if m.startswith("colo_replay.") and _layer(m) not in ("", "engine")] == []


def test_import_colo_replay_is_cheap():
    loaded = _loaded_after("import colo_replay")
    assert [m for m in loaded if m.split(".")[0] in ("pandas", "pyarrow", "numpy", "click")] == []
    assert [m for m in loaded if m.startswith("colo_replay.")] == []
