"""What the runtime calls: the predictor protocol and its result, numpy only (no torch).

A predictor maps one observation to the head's normalized action chunk plus per-stage timings;
where it runs (in this process, in a child process, behind a websocket) and on which engines is
its own business. De-normalization is not the predictor's job: the control process blends
chunks in normalized space and decodes each blended action once, with the predictor's
`ActionDecoder` (edge.policy.actions). Runtime modules import this without loading torch.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np

from edge.policy.actions import ActionDecoder

STAGES = ("preprocess", "vision", "language", "head")


@dataclass(frozen=True)
class Prediction:
    """The head's output for one observation and how long each stage took (milliseconds)."""

    normalized: np.ndarray  # [chunk_size, action_dim], in [-1, 1]; decode with the predictor's decoder
    timings_ms: dict[str, float] = field(default_factory=dict)


@runtime_checkable
class ChunkPredictor(Protocol):
    """Observation → normalized action chunk. Images in `camera_names` order, raw state, instruction."""

    camera_names: tuple[str, ...]
    chunk_size: int
    action_dim: int
    state_dim: int
    head_steps: int
    max_prompt_tokens: int
    decoder: ActionDecoder  # normalized actions → robot commands, in the caller's process

    def predict(self, images: list[np.ndarray], state: np.ndarray, instruction: str,
                noise: np.ndarray | None = None) -> Prediction:
        """One chunk; `noise` [1, chunk_size, action_dim] replaces the seeded initial DDIM noise."""
        ...

    def prompt_tokens(self, instruction: str) -> int:
        """Prompt tokens the instruction takes against `max_prompt_tokens` (may exceed it)."""
        ...


class Stopwatch:
    """Per-stage wall times: `lap(stage)` records the time since the previous lap."""

    def __init__(self) -> None:
        self.times: dict[str, float] = {}
        self._t = time.perf_counter()

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        self.times[stage] = (now - self._t) * 1e3
        self._t = now
