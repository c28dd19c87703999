"""Which core runs: the compiled modules (Cython, built from the same ``.py`` files by
``setup.py``) or the interpreted ``.py`` sources.  ``colo-replay --version`` prints ``describe()``.

Nothing is imported to find out: a module already loaded reports its own file; one not loaded
yet is looked up the way the import will find it (``COLO_REPLAY_CORE`` included).
"""

from __future__ import annotations

import os
import sys
from importlib.machinery import EXTENSION_SUFFIXES


def _package():
    return sys.modules["colo_replay"]        # always imported before any of its modules


def module_cores() -> dict[str, str]:
    """{module name: "compiled" | "interpreted"} for every module of the compiled core."""
    pkg = _package()
    root = os.path.dirname(os.path.abspath(pkg.__file__))
    out = {}
    for name in pkg.COMPILED_MODULES:
        mod = sys.modules.get(name)
        if mod is not None:
            compiled = not mod.__file__.endswith(".py")
        elif pkg.CORE_CHOICE == "interpreted":
            compiled = False
        else:
            base = os.path.join(root, *name.split(".")[1:])
            compiled = any(os.path.exists(base + sfx) for sfx in EXTENSION_SUFFIXES)
        out[name] = "compiled" if compiled else "interpreted"
    return out


def core() -> str:
    """"compiled" when every module of the core is, "interpreted" when none is, else "mixed"."""
    kinds = set(module_cores().values())
    return kinds.pop() if len(kinds) == 1 else "mixed"


def describe() -> str:
    """One line for ``--version``, e.g. ``core: compiled (Cython, 9 modules)``."""
    cores = module_cores()
    kind = core()
    if kind == "compiled":
        return f"core: compiled (Cython, {len(cores)} modules)"
    if kind == "interpreted":
        why = " (COLO_REPLAY_CORE=interpreted)" if _package().CORE_CHOICE == "interpreted" else ""
        return f"core: interpreted{why}"
    plain = ", ".join(n for n, k in cores.items() if k == "interpreted")
    return f"core: mixed (interpreted: {plain})"
