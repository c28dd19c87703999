# Cython augmenting declarations for resync.py (compiled core only): the engine's Packet type, so
# the per-frame check of a secondary (check_secondary) reads its fields in C.
from colo_replay.engine.packet cimport Packet
