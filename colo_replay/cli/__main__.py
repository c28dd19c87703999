"""``python -m colo_replay.cli ...`` = ``colo-replay ...``."""

from . import main

main(prog_name="colo-replay")
