"""Time-stamped action chunks, a bounded ring buffer of them, and temporal ensembling.

A chunk predicted from an observation captured at time t_obs holds actions for the ticks
t_obs, t_obs + dt, ... (action i is for the tick nearest t_obs + i·dt): its `start_tick`.
At tick n every chunk with start_tick <= n < start_tick + T covers n, and the tick blends their
rows for n as the TinyVLA reference does (tinyvla-format.md §4.4): weights exp(-k·i) with i = 0
for the OLDEST chunk, normalized, averaged in normalized action space; the caller then
de-normalizes and converts (rot6d → Euler). k = 0 uses the newest chunk only.

Unlike the reference's [10000, 10016, A] GPU array (~2 GB) this keeps at most `capacity`
chunks: a chunk older than T ticks cannot cover the present, so capacity T (one chunk per
tick) is all ensembling ever needs. Actions for ticks already past when a chunk arrives are
dropped (latency compensation), never replayed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class TimedChunk:
    """A chunk as the inference worker publishes it."""

    chunk_id: int
    obs_time: float  # monotonic capture time of the observation it was predicted from
    normalized: np.ndarray  # [T, A] head output in [-1, 1]
    published_at: float  # monotonic time the worker finished it
    timings_ms: dict[str, float] = field(default_factory=dict)  # stage -> milliseconds
    frame_numbers: tuple[int, ...] = ()  # the frames it saw, in camera order


@dataclass(frozen=True)
class Admission:
    """What happened to a chunk offered to the buffer."""

    accepted: bool
    stale_actions: int  # actions for ticks already past (dropped)
    rejected_non_finite: bool = False


@dataclass(frozen=True)
class Blend:
    """The ensembled action for one tick."""

    normalized: np.ndarray  # [A]
    chunk_ids: tuple[int, ...]  # the chunks that covered the tick, oldest first
    weights: tuple[float, ...]
    newest_obs_time: float  # observation time of the newest contributing chunk


def ensemble_weights(count: int, k: float) -> np.ndarray:
    """exp(-k·i) for i = 0 (oldest) .. count-1, normalized to sum 1; k = 0 → newest only."""
    if count < 1:
        raise ValueError("ensembling needs at least one chunk")
    if k == 0:
        weights = np.zeros(count)
        weights[-1] = 1.0
        return weights
    weights = np.exp(-k * np.arange(count, dtype=np.float64))
    return weights / weights.sum()


class ChunkBuffer:
    """A fixed-size ring of chunks, addressed by tick index. Not thread-safe: the control
    thread owns it (the worker hands chunks over through `InferenceWorker.take`)."""

    def __init__(self, chunk_size: int, action_dim: int, capacity: int | None = None, ensemble_k: float = 0.01):
        if chunk_size < 1 or action_dim < 1:
            raise ValueError("chunk_size and action_dim must be positive")
        if ensemble_k < 0 or not math.isfinite(ensemble_k):
            raise ValueError(f"ensemble k must be a finite number >= 0, got {ensemble_k}")
        self.chunk_size = chunk_size
        self.action_dim = action_dim
        self.capacity = capacity or chunk_size
        self.ensemble_k = ensemble_k
        self._actions = np.zeros((self.capacity, chunk_size, action_dim), np.float64)
        self._start = np.zeros(self.capacity, np.int64)
        self._order = np.full(self.capacity, -1, np.int64)  # arrival number; -1 = empty slot
        self._ids = np.zeros(self.capacity, np.int64)
        self._obs_time = np.zeros(self.capacity, np.float64)
        self._arrivals = 0
        self._weight_cache: dict[int, tuple[np.ndarray, tuple[float, ...]]] = {}

    def __len__(self) -> int:
        return int((self._order >= 0).sum())

    def add(self, chunk: TimedChunk, start_tick: int, current_tick: int) -> Admission:
        """Offer a chunk whose action 0 is for `start_tick`, at a moment when `current_tick` is
        the next tick to run. Returns whether it was kept and how many of its actions were past."""
        actions = np.asarray(chunk.normalized)
        if actions.shape != (self.chunk_size, self.action_dim):
            raise ValueError(f"chunk {chunk.chunk_id} has shape {actions.shape}, expected "
                             f"({self.chunk_size}, {self.action_dim})")
        if not np.isfinite(actions).all():
            return Admission(False, 0, rejected_non_finite=True)
        stale = min(self.chunk_size, max(0, current_tick - start_tick))
        if stale == self.chunk_size:
            return Admission(False, stale)
        slot = self._arrivals % self.capacity  # overwrite the oldest arrival
        self._actions[slot] = actions
        self._start[slot] = start_tick
        self._order[slot] = self._arrivals
        self._ids[slot] = chunk.chunk_id
        self._obs_time[slot] = chunk.obs_time
        self._arrivals += 1
        return Admission(True, stale)

    def blend(self, tick: int) -> Blend | None:
        """The ensembled normalized action for `tick`, or None if no chunk covers it."""
        offset = tick - self._start
        covering = np.flatnonzero((self._order >= 0) & (offset >= 0) & (offset < self.chunk_size))
        if covering.size == 0:
            return None
        # Oldest first: by the tick the chunk starts at, then by arrival.
        if covering.size > 1:
            covering = covering[np.lexsort((self._order[covering], self._start[covering]))]
        weights, weight_values = self._weights(covering.size)
        normalized = weights @ self._actions[covering, offset[covering]]
        return Blend(
            normalized=normalized,
            chunk_ids=tuple(self._ids[covering].tolist()),
            weights=weight_values,
            newest_obs_time=float(self._obs_time[covering].max()),
        )

    def _weights(self, count: int) -> tuple[np.ndarray, tuple[float, ...]]:
        """Ensembling weights for `count` chunks, computed once per count (the tick is hot)."""
        cached = self._weight_cache.get(count)
        if cached is None:
            weights = ensemble_weights(count, self.ensemble_k)
            cached = self._weight_cache[count] = (weights, tuple(weights.tolist()))
        return cached

    def clear(self) -> None:
        """Forget every chunk."""
        self._order[:] = -1
