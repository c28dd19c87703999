# Cython augmenting declarations for lean.py (compiled core only): the engine's type, so the
# loop calls Engine._feed_at in C.
from colo_replay.engine.compare cimport Engine
