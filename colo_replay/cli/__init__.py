"""The command line: a thin click layer over ``colo_replay.api``.

``main`` is the ``colo-replay`` group; each command lives in its own module and only parses
options, makes one API call and prints.  ``python -m colo_replay.cli ...`` = ``colo-replay ...``.
"""

import sys as _sys

# (read from the package, always imported before its modules, as engine.core_info does)
CORE_ERROR = _sys.modules["colo_replay"].CORE_ERROR

if CORE_ERROR is None:
    from .main import main
else:
    def main(*_args, **_kwargs):
        """``COLO_REPLAY_CORE`` names no core: the commands cannot load; say so in one line
        (exit 2, the contract for a bad option) rather than with an ImportError's traceback."""
        import sys
        print(f"colo-replay: error: {CORE_ERROR}", file=sys.stderr)
        sys.exit(2)

__all__ = ["main"]
