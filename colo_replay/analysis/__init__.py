"""Answers on top of a timeline: episodes and root divergences, explain, reports, sweeps.

Analysis reads the timeline and the frames; it never changes what the engine decided.
"""
