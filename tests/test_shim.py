"""The shim (colo_replay/engine/_cython_shim.py) stands in for Cython when it is absent: it must
provide every ``cython.<name>`` the package uses, the way it is used, or the interpreted core a
machine without Cython installs cannot even be imported.

The uses are read from the sources (``ast``), so a new ``cython.<name>`` anywhere in the package
fails here until the shim has it; and the modules of the compiled core are imported in a fresh
interpreter where importing Cython fails, as it does there.
"""

from __future__ import annotations

import ast
import builtins
import os
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import colo_replay
from colo_replay.engine import _cython_shim as shim

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "colo_replay"
SHIM = PACKAGE / "engine" / "_cython_shim.py"


def _sources():
    return sorted(p for p in PACKAGE.rglob("*.py") if p != SHIM)


def _is_cython(node) -> bool:
    return isinstance(node, ast.Name) and node.id == "cython"


def _uses():
    """Every ``cython.X`` of the package: {X: ["file:line", ...]}, and the decorators, subscripts
    and calls built on them, as (where, source text, kind)."""
    names, exprs = defaultdict(list), []
    for path in _sources():
        text = path.read_text(encoding="utf-8")
        tree = ast.parse(text, str(path))
        rel = path.relative_to(ROOT)
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and _is_cython(node.value):
                names[node.attr].append(f"{rel}:{node.lineno}")
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                for dec in node.decorator_list:
                    root = dec.func if isinstance(dec, ast.Call) else dec
                    if isinstance(root, ast.Attribute) and _is_cython(root.value):
                        exprs.append((f"{rel}:{dec.lineno}", ast.get_source_segment(text, dec), "decorator"))
            elif isinstance(node, ast.Subscript) and isinstance(node.value, ast.Attribute) \
                    and _is_cython(node.value.value):
                exprs.append((f"{rel}:{node.lineno}", ast.get_source_segment(text, node), "subscript"))
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and _is_cython(node.func.value):
                exprs.append((f"{rel}:{node.lineno}", node.func.attr, "call"))
    return names, exprs


def test_the_sources_use_cython():
    """The scan finds what it looks for (a scan that found nothing would prove nothing)."""
    names, exprs = _uses()
    assert {"compiled", "locals", "longlong", "Py_ssize_t", "declare", "int"} <= set(names)
    assert {kind for _, _, kind in exprs} == {"decorator", "subscript", "call"}


def test_the_shim_provides_every_cython_name_the_package_uses():
    names, _ = _uses()
    missing = {name: where[:3] for name, where in names.items() if not hasattr(shim, name)}
    assert missing == {}, f"add these to {SHIM.relative_to(ROOT)}: {missing}"


def test_the_shim_names_work_the_way_they_are_used():
    """Decorators return the function unchanged, type subscripts evaluate, called names are
    callable, and ``cython.compiled`` is False."""
    assert shim.compiled is False
    _, exprs = _uses()

    class Names(dict):
        """``cython`` is the shim; any other name (``Packet`` in ``locals(pkt=Packet)``) a stand-in."""

        def __missing__(self, name):
            return object()

    namespace = Names(cython=shim)

    def func():
        return 42

    for where, text, kind in exprs:
        if kind == "decorator":
            decorator = eval(text, {}, namespace)  # noqa: S307 - our own source
            assert decorator(func) is func, f"{where}: @{text}"
        elif kind == "subscript":
            eval(text, {}, namespace)  # noqa: S307 - our own source
        else:
            assert callable(getattr(shim, text)), f"{where}: cython.{text}(...)"
    assert shim.declare(shim.longlong, 7) == 7
    assert shim.declare(shim.int, 3) == 3


def test_the_shim_leaves_the_builtins_alone():
    """The shim's ``int`` and ``locals`` are its module's names, not the builtins."""
    assert builtins.int is int and builtins.locals is locals
    assert shim.int is not int and shim.locals is not locals


# A finder refusing Cython: ``import cython`` and ``import Cython`` raise ImportError, as on a
# machine where Cython is not installed.
_NO_CYTHON = """
import importlib, sys

class NoCython:
    def find_spec(self, name, path=None, target=None):
        if name.partition('.')[0] in ('cython', 'Cython'):
            raise ImportError(f'No module named {name!r} (blocked by tests/test_shim.py)')
        return None

sys.meta_path.insert(0, NoCython())
import colo_replay
for name in colo_replay.COMPILED_MODULES:
    module = importlib.import_module(name)
    assert module.__file__.endswith('.py'), module.__file__
    print(name, module.__file__)
try:
    import cython
except ImportError:
    pass
else:
    raise SystemExit('the Cython blocker did not work')
"""


def test_every_compiled_module_imports_without_cython():
    env = dict(os.environ, PYTHONPATH=str(ROOT), COLO_REPLAY_CORE="interpreted")
    proc = subprocess.run([sys.executable, "-c", _NO_CYTHON], capture_output=True, text=True, cwd=ROOT, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert [line.split()[0] for line in proc.stdout.splitlines()] == list(colo_replay.COMPILED_MODULES)
