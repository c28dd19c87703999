"""``python -m colo_replay.live ...`` = ``colo-replay live ...``."""

from .command import live

live(prog_name="colo-replay live")
