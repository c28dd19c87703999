"""Checkpoint episodes and root divergences, from a timeline.

An **episode** runs from a checkpoint request to the flush that ends it: the next ``flush`` row
of the timeline, which is when the checkpoint that request led to (or one that was already
running) completed and colo-compare released every queued primary and dropped every queued
secondary.  Every request before that flush belongs to the same episode; the first one is the
episode's **root** (the divergence a user can act on), the rest are its **consequences**:
colo-compare leaves a miscompared pair at the heads of its queues, so every later frame of the
connection compares again and requests again until the flush (spec 2.4, "Repeated
notifications").  Requests after the last flush form one **open** episode (the replay ended
before a flush).

Two things the flat definition would hide are kept as columns:

* ``other_conns``: consequences that are the first request of *another* connection in the
  episode.  colo-compare's queues are per connection, so such a request is not caused by the
  root: it is an independent divergence that happened to be cleared by the same flush.
  Roots + other_conns is the number of distinct divergences.
* ``checkpoints``: the requested checkpoints an episode cost.  With 5.1+ coalescing, requests
  that arrive while a checkpoint runs give one more checkpoint after it (offline/checkpoints.py);
  with 4.1's semaphore every request is one.  The extra ones start after the episode's flush,
  before the next root, and are counted here.

Rows are taken in **timeline order**, not by time: the driver appends events in the order
they happen, and a request and a flush at the same nanosecond are ordered correctly only by
their position.  Pass the whole timeline (or at least its request, flush and
``checkpoint_start`` rows in their original order).

Vectorised: one ``searchsorted`` of the request positions on the flush positions; no Python
loop per row.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = ["Episodes", "episodes", "ROOT_COLUMNS"]

# The timeline columns copied to each root (its first request's values).
_COPIED = ("time_ns", "cause", "conn", "primary_frame", "secondary_frame", "size", "other_size",
           "tcp_seq", "tcp_seq_end", "detail")

ROOT_COLUMNS = ("episode",) + _COPIED + (
    "row", "requests", "consequences", "other_conns", "checkpoints", "end_ns", "duration_ns", "open")
"""Columns of ``Episodes.roots``:

    episode       episode number, from 0, in time order
    time_ns .. detail   the root request's timeline values (cause: miscompare, size_mismatch,
                        ack_gate, expired; frames: Wireshark numbers, -1 if none)
    row           the root request's position in the timeline (0-based)
    requests      checkpoint requests in the episode, root included
    consequences  requests - 1
    other_conns   consequences that are the first request of another connection
    checkpoints   requested checkpoints started from the root up to the next root
    end_ns        time of the flush that ended the episode; -1 if open
    duration_ns   end_ns - time_ns; -1 if open
    open          no flush followed (the replay ended first)
"""


@dataclass(frozen=True)
class Episodes:
    """``roots``: one row per episode (columns ``ROOT_COLUMNS``).  ``requests``: every
    checkpoint request row of the timeline (same index as in the timeline) with its timeline
    columns plus ``episode``, ``role`` ("root" / "consequence") and ``new_conn`` (True for a
    consequence that is the first request of a connection other than the root's)."""

    roots: pd.DataFrame
    requests: pd.DataFrame

    @property
    def divergences(self) -> int:
        """Roots plus independent same-episode divergences on other connections."""
        return int(len(self.roots) + self.roots["other_conns"].sum())


def _rows_of(col: pd.Series, name: str) -> np.ndarray:
    """Boolean mask of rows whose categorical (or string) ``col`` equals ``name``, without
    materialising millions of strings."""
    if isinstance(col.dtype, pd.CategoricalDtype):
        cats = col.cat.categories
        if name not in cats:
            return np.zeros(len(col), dtype=bool)
        return col.cat.codes.to_numpy() == cats.get_loc(name)
    return col.to_numpy() == name


def episodes(events: pd.DataFrame) -> Episodes:
    """Group the checkpoint requests of a timeline DataFrame into episodes.

    ``events`` is ``Timeline.events`` (the columns of ``colo_replay.output.timeline``).  Pure:
    ``events`` is not modified.
    """
    kind = events["kind"]
    is_req = _rows_of(kind, "checkpoint_request")
    req_pos = np.flatnonzero(is_req)
    flush_pos = np.flatnonzero(_rows_of(kind, "flush"))
    start_mask = _rows_of(kind, "checkpoint_start")
    if start_mask.any():
        start_mask &= _rows_of(events["cause"], "requested")
    start_pos = np.flatnonzero(start_mask)

    requests = events.iloc[req_pos].copy()
    # the flush that ends each request's episode: the first flush after it (index into flush_pos)
    ends = np.searchsorted(flush_pos, req_pos, side="right")
    # episode numbers: consecutive over the distinct ends (requests are in order, so ends are
    # non-decreasing and a change starts a new episode)
    first = np.ones(len(ends), dtype=bool)
    first[1:] = ends[1:] != ends[:-1]
    ep = np.cumsum(first) - 1
    conn = requests["conn"].to_numpy()
    root_idx = np.flatnonzero(first)
    root_conn = conn[root_idx][ep]
    # first request of its (episode, conn) pair, on a connection other than the root's
    key = pd.DataFrame({"ep": ep, "conn": conn})
    new_conn = ~key.duplicated().to_numpy() & ~first & (conn != root_conn)

    requests["episode"] = ep
    requests["role"] = np.where(first, "root", "consequence")
    requests["new_conn"] = new_conn

    n_ep = len(root_idx)
    counts = np.bincount(ep, minlength=n_ep)
    others = np.bincount(ep, weights=new_conn, minlength=n_ep).astype(np.int64)
    root_ends = ends[root_idx]
    is_open = root_ends >= len(flush_pos)
    time_col = events["time_ns"].to_numpy()
    end_ns = np.full(n_ep, -1, dtype=np.int64)
    end_ns[~is_open] = time_col[flush_pos[root_ends[~is_open]]]
    root_pos = req_pos[root_idx]
    # requested checkpoints started in [this root, next root)
    bounds = np.searchsorted(start_pos, np.append(root_pos, len(events)), side="left")
    checkpoints = np.diff(bounds)

    roots = requests.iloc[root_idx][list(_COPIED)].reset_index(drop=True)
    roots.insert(0, "episode", np.arange(n_ep))
    roots["row"] = root_pos
    roots["requests"] = counts
    roots["consequences"] = counts - 1
    roots["other_conns"] = others
    roots["checkpoints"] = checkpoints
    roots["end_ns"] = end_ns
    roots["duration_ns"] = np.where(is_open, -1, end_ns - time_col[root_pos])
    roots["open"] = is_open
    return Episodes(roots, requests)
