"""What the runtime calls: observation in, action chunk out, with per-stage timings.

The control loop depends on this small Protocol, never on how the policy runs (torch fp32 from a
training output, or a bundle's engines). `TorchPredictor` is the reference implementation.
"""

from __future__ import annotations

import time
from typing import Protocol, runtime_checkable

import numpy as np
import torch

from edge.policy.actions import ActionChunk, NormStats, Prediction
from edge.policy.components import suffix_length
from edge.policy.config import PolicyConfig
from edge.policy.policy import Policy
from edge.policy.prompt import IMAGE_TOKEN_INDEX
from edge.policy.sampler import DDIMSampler

STAGES = ("preprocess", "vision", "language", "head", "postprocess")


@runtime_checkable
class ChunkPredictor(Protocol):
    """Observation → action chunk. Images in `camera_names` order, raw state, instruction."""

    camera_names: tuple[str, ...]
    chunk_size: int
    action_dim: int
    state_dim: int
    head_steps: int
    max_prompt_tokens: int
    config: PolicyConfig  # the bundle's or training output's (action layout, cameras)
    stats: NormStats  # de-normalizes actions; what `postprocess` uses

    def predict(self, images: list[np.ndarray], state: np.ndarray, instruction: str,
                noise: torch.Tensor | None = None) -> Prediction: ...

    def postprocess(self, normalized: np.ndarray) -> ActionChunk:
        """Normalized actions [T, A] → ActionChunk (de-normalized, robot commands); the runtime
        blends chunks in normalized space and converts the blend with this."""
        ...

    def prompt_tokens(self, instruction: str) -> int:
        """Prompt tokens the instruction takes against `max_prompt_tokens` (may exceed it)."""
        ...


class _Stopwatch:
    def __init__(self) -> None:
        self.times: dict[str, float] = {}
        self._t = time.perf_counter()

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        self.times[stage] = (now - self._t) * 1e3
        self._t = now


class TorchPredictor:
    """A `Policy` run stage by stage in torch (fp32), with a fixed DDIM sampler."""

    def __init__(self, policy: Policy, sampler: DDIMSampler | None = None, camera_names: tuple[str, ...] = (),
                 max_prompt_tokens: int = 256, seed: int = 0):
        self.policy = policy
        self.config, self.stats = policy.config, policy.stats
        cfg = policy.config
        self.sampler = sampler or policy.sampler()
        self.camera_names = camera_names or cfg.camera_names or tuple(f"cam{i}" for i in range(cfg.num_cameras))
        self.chunk_size, self.action_dim, self.state_dim = cfg.head.chunk_size, cfg.head.action_dim, cfg.head.state_dim
        self.head_steps = self.sampler.steps
        self.max_prompt_tokens = max_prompt_tokens
        self._generator = torch.Generator().manual_seed(seed)
        with torch.inference_mode():
            self._step_features = policy.network.embed_out.step_features(self.sampler.timesteps)

    @torch.inference_mode()
    def predict(self, images, state, instruction, noise=None) -> Prediction:
        watch = _Stopwatch()
        net = self.policy.network
        obs = self.policy.prepare(images, state, instruction)
        watch.lap("preprocess")
        image_tokens = net.encode_images(obs.pixel_values)
        watch.lap("vision")
        hidden = net.language_model(net.splice(obs.input_ids, image_tokens))
        watch.lap("language")
        cond = net.embed_out.encode_condition(hidden, obs.states)
        if noise is None:
            noise = self.policy.initial_noise(self._generator)
        normalized = net.sample(cond, noise, self.sampler, self._step_features)
        watch.lap("head")
        chunk = self.policy.postprocess(normalized[0].numpy())
        watch.lap("postprocess")
        return Prediction(chunk, watch.times)

    def postprocess(self, normalized: np.ndarray) -> ActionChunk:
        """Normalized actions [T, A] → ActionChunk, as the policy converts its own output."""
        return self.policy.postprocess(normalized)

    def prompt_tokens(self, instruction: str) -> int:
        """Prompt tokens after the image token, as a bundle built from this policy budgets them."""
        return suffix_length(self.policy.tokenizer.encode_instruction(instruction), IMAGE_TOKEN_INDEX)
