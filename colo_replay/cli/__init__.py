"""The command line: a thin click layer over ``colo_replay.api``.

``main`` is the ``colo-replay`` group; each command lives in its own module and only parses
options, makes one API call and prints.  ``python -m colo_replay.cli ...`` = ``colo-replay ...``.
"""

from .main import main

__all__ = ["main"]
