# Cython augmenting declarations for driver.py (compiled core only): the engine's type, so the
# merge loop (_stretch) calls Engine.feed_at in C with C arguments.
from colo_replay.engine.compare cimport Engine
