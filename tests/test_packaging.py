"""pyproject.toml declares what the code imports, each dependency once, and nothing it does not use.

Read from the sources (``ast``), so that a new ``import X`` of a third-party module fails here
until X is declared, rather than on the first machine whose environment lacks it:

* the package's imports at module level must be in ``dependencies``; imports made only when a
  function runs, or under ``try: ... except ImportError``, may instead be in an extra (``dask``)
  or the build requirements (Cython: the compiled core);
* the tests' imports must be in ``dependencies`` or the ``test`` extra;
* every entry of ``dependencies`` is imported by the package.
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from collections import defaultdict
from importlib.metadata import packages_distributions
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
PROJECT = PYPROJECT["project"]
EXTRAS = PROJECT.get("optional-dependencies", {})


def _dist(requirement: str) -> str:
    """The normalised distribution name of a requirement (PEP 503: ``Foo_bar`` -> ``foo-bar``)."""
    name = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement).group(1)
    return re.sub(r"[-_.]+", "-", name).lower()


def _dists(requirements) -> set[str]:
    return {_dist(r) for r in requirements}


DEPENDENCIES = _dists(PROJECT["dependencies"])
BUILD = _dists(PYPROJECT["build-system"]["requires"])
ANY_EXTRA = set().union(*(_dists(reqs) for reqs in EXTRAS.values()))
MODULE_DISTS = packages_distributions()


def _module_dist(module: str) -> str:
    """The distribution that provides an importable top-level module (``PIL`` -> ``pillow``);
    the module's own name when it is not installed here."""
    dists = MODULE_DISTS.get(module)
    return _dist(dists[0]) if dists else _dist(module)


def _local_names(folder: Path) -> set[str]:
    """``folder`` itself and the modules and packages in it (``from tests.support import ...``)."""
    return {folder.name} | {p.stem for p in folder.rglob("*.py")} | {p.name for p in folder.rglob("*") if p.is_dir()}


class _Imports(ast.NodeVisitor):
    """Third-party top-level modules imported by one file, each as eager (at import time) or not
    (inside a function, under ``try/except ImportError``, or ``if TYPE_CHECKING``)."""

    def __init__(self, local: set[str]):
        self.local, self.found, self.lazy_depth = local, [], 0

    def _lazy(self, node):
        self.lazy_depth += 1
        self.generic_visit(node)
        self.lazy_depth -= 1

    visit_FunctionDef = visit_AsyncFunctionDef = visit_Lambda = _lazy

    def visit_Try(self, node):
        caught = set()
        for handler in node.handlers:
            types = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
            caught |= {getattr(t, "id", None) for t in types}
        if caught & {"ImportError", "ModuleNotFoundError"}:
            self._lazy(node)
        else:
            self.generic_visit(node)

    def visit_If(self, node):
        test = node.test
        if getattr(test, "id", None) == "TYPE_CHECKING" or getattr(test, "attr", None) == "TYPE_CHECKING":
            self._lazy(node)
        else:
            self.generic_visit(node)

    def _add(self, node, module):
        top = module.partition(".")[0]
        if top in sys.stdlib_module_names or top in self.local or top in ("colo_replay", "__future__"):
            return
        self.found.append((top, node.lineno, self.lazy_depth == 0))

    def visit_Import(self, node):
        for alias in node.names:
            self._add(node, alias.name)

    def visit_ImportFrom(self, node):
        if node.level == 0:
            self._add(node, node.module)


def _imports(folder: Path) -> dict[str, list[tuple[str, bool]]]:
    """{distribution: [(file:line, eager), ...]} of the third-party imports under ``folder``
    (the package imports itself by relative imports or as colo_replay; the tests import their
    helpers by name)."""
    local = _local_names(folder) if folder.name == "tests" else set()
    found = defaultdict(list)
    for path in sorted(folder.rglob("*.py")):
        visitor = _Imports(local)
        visitor.visit(ast.parse(path.read_text(encoding="utf-8"), str(path)))
        for module, line, eager in visitor.found:
            found[_module_dist(module)].append((f"{path.relative_to(ROOT)}:{line}", eager))
    return found


def test_each_dependency_is_declared_once():
    groups = {"dependencies": PROJECT["dependencies"], "build-system.requires": PYPROJECT["build-system"]["requires"],
              **{f"optional-dependencies.{name}": reqs for name, reqs in EXTRAS.items()}}
    for group, requirements in groups.items():
        names = [_dist(r) for r in requirements]
        assert len(names) == len(set(names)), f"{group}: {sorted(n for n in set(names) if names.count(n) > 1)} twice"
    for name, reqs in EXTRAS.items():       # an extra adds to the dependencies, it does not repeat them
        assert not (_dists(reqs) & DEPENDENCIES), f"optional-dependencies.{name} repeats {_dists(reqs) & DEPENDENCIES}"


def test_the_scan_finds_the_imports():
    """The scan sees what it must (a scan that found nothing would prove nothing)."""
    found = _imports(ROOT / "colo_replay")
    assert {"numpy", "pandas", "click", "cython"} <= set(found)
    assert any(eager for _, eager in found["pandas"])
    assert not any(eager for _, eager in found["cython"])          # try: import cython / except ImportError
    assert not any(eager for _, eager in found["distributed"])     # sweep --dask only


def test_the_package_declares_what_it_imports():
    undeclared = {}
    for dist, where in _imports(ROOT / "colo_replay").items():
        eager = [w for w, is_eager in where if is_eager]
        if eager and dist not in DEPENDENCIES:
            undeclared[dist] = ("imported at module level: add it to dependencies", eager[:3])
        elif dist not in DEPENDENCIES | ANY_EXTRA | BUILD:
            undeclared[dist] = ("imported, declared nowhere", [w for w, _ in where][:3])
    assert undeclared == {}


def test_the_tests_declare_what_they_import():
    declared = DEPENDENCIES | _dists(EXTRAS["test"])
    undeclared = {dist: [w for w, _ in where][:3] for dist, where in _imports(ROOT / "tests").items()
                  if dist not in declared}
    assert undeclared == {}, "add to optional-dependencies.test"


def test_every_dependency_is_used():
    used = set(_imports(ROOT / "colo_replay"))
    assert DEPENDENCIES - used == set(), "declared in dependencies, imported nowhere in colo_replay/"
