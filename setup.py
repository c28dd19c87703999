"""Build script: the metadata is in pyproject.toml; this file only adds the compiled core.

The modules named in ``colo_replay.COMPILED_MODULES`` (colo_replay/__init__.py) are compiled with Cython (pure-Python
mode: the ``.py`` files are the source, nothing is hand-written in C) when Cython and a working
C compiler are present.  Otherwise the package installs as pure Python, with one line saying so:
the interpreted modules are the same engine, only slower.

The C compiler builds the modules in parallel, one job per CPU (``build_ext``'s ``parallel`` when
no ``-j`` was given): on 2 CPUs ``pip install -e .`` went from about 100-110 s to 60-67 s.  The
translation to C stays serial: it is about 6 s for the twelve, and ``cythonize(nthreads=2)``
was slower on 2 CPUs (6.7 s against 5.4 s serial).
"""

import os
import sys

from setuptools import setup
from setuptools.command.build_ext import build_ext

# the CPUs this process may run on (a container's share, not the host's count)
JOBS = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)

HERE = os.path.dirname(os.path.abspath(__file__))


def _core_modules():
    """colo_replay.COMPILED_MODULES, read from the source (the package is not imported here)."""
    import ast
    with open(os.path.join(HERE, "colo_replay", "__init__.py"), encoding="utf-8") as fh:
        tree = ast.parse(fh.read())
    for node in tree.body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", None) == "COMPILED_MODULES":
            return ast.literal_eval(node.value)
    raise RuntimeError("colo_replay/__init__.py: COMPILED_MODULES not found")


def _notice(why):
    print(f"colo-replay: {why}; installing the interpreted core (same results, slower)", file=sys.stderr)


def _ext_modules():
    if os.environ.get("COLO_REPLAY_NO_COMPILE"):
        _notice("COLO_REPLAY_NO_COMPILE is set")
        return []
    try:
        from Cython.Build import cythonize
    except ImportError:
        _notice("Cython is not available")
        return []
    if not _have_compiler():
        _notice("no working C compiler")
        return []
    from setuptools import Extension
    exts = [Extension(name, [os.path.join(*name.split(".")) + ".py"]) for name in _core_modules()]
    return cythonize(
        exts, language_level=3, quiet=True,
        compiler_directives={
            # The annotations are for readers and type checkers; Cython must not turn them into
            # C types or exact-type checks (an int annotation would refuse a numpy integer).
            "annotation_typing": False,
            "binding": True,
        })


def _have_compiler():
    """Compile a tiny C file with the compiler setuptools would use (honours CC)."""
    import tempfile
    from setuptools._distutils.ccompiler import new_compiler
    from setuptools._distutils.sysconfig import customize_compiler
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "probe.c")
        with open(src, "w") as fh:
            fh.write("int colo_probe(void) { return 0; }\n")
        try:
            cc = new_compiler()
            customize_compiler(cc)
            cc.compile([src], output_dir=tmp)
        except Exception:     # CompileError, a missing program, ...: no working compiler either way
            # (not "except CompileError": setuptools' distutils may be loaded under two names,
            # each with its own exception classes)
            return False
    return True


class ParallelBuildExt(build_ext):
    """``build_ext`` compiling the extensions in parallel (one job per CPU) unless ``-j N`` (or
    ``build -j N``) says otherwise; pip's builds never pass one."""

    def finalize_options(self):
        super().finalize_options()
        if self.parallel is None and JOBS > 1:
            self.parallel = JOBS


# The generated C files are build products, not package data.
setup(ext_modules=_ext_modules(), cmdclass={"build_ext": ParallelBuildExt},
      exclude_package_data={"": ["*.c"]})
