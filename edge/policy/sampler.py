"""DDIM sampling with a static, precomputed schedule (Song et al. 2021, eq. 12 with eta = 0).

TinyVLA's scheduler (tinyvla-format.md §3): 100 training steps, `squaredcos_cap_v2` betas,
epsilon prediction, predicted x0 clipped to ±1, "leading" timestep spacing, `set_alpha_to_one`.
Every per-step coefficient is a tensor computed once, so the K-step loop has no Python
branching on values and can be exported or captured in a CUDA graph. Equal to diffusers'
`DDIMScheduler` with the same settings (tests use it as the oracle).
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import torch

from edge.policy.config import TRAIN_TIMESTEPS


def cosine_betas(train_steps: int = TRAIN_TIMESTEPS, max_beta: float = 0.999) -> torch.Tensor:
    """The `squaredcos_cap_v2` schedule (Nichol & Dhariwal 2021), float32 as diffusers builds it."""

    def alpha_bar(t: float) -> float:
        return math.cos((t + 0.008) / 1.008 * math.pi / 2) ** 2

    betas = [min(1 - alpha_bar((i + 1) / train_steps) / alpha_bar(i / train_steps), max_beta) for i in range(train_steps)]
    return torch.tensor(betas, dtype=torch.float32)


def alphas_cumprod(train_steps: int = TRAIN_TIMESTEPS) -> torch.Tensor:
    """ᾱ_t = ∏(1 − β_s), float32."""
    return torch.cumprod(1.0 - cosine_betas(train_steps), dim=0)


def leading_timesteps(steps: int, train_steps: int = TRAIN_TIMESTEPS) -> list[int]:
    """diffusers' "leading" spacing: 90, 80, …, 0 for 10 of 100."""
    if not 1 <= steps <= train_steps:
        raise ValueError(f"steps must be in 1..{train_steps}, got {steps}")
    ratio = train_steps // steps
    return [i * ratio for i in range(steps)][::-1]


def trailing_timesteps(steps: int, train_steps: int = TRAIN_TIMESTEPS) -> list[int]:
    """"trailing" spacing: the first step starts at the noisiest timestep (99, 49 for 2 of 100).
    Used by distilled students, whose one or two steps must begin from pure noise."""
    if not 1 <= steps <= train_steps:
        raise ValueError(f"steps must be in 1..{train_steps}, got {steps}")
    ratio = train_steps / steps
    return [int(round(train_steps - i * ratio)) - 1 for i in range(steps)]


class DDIMSampler:
    """A K-step deterministic DDIM sampler over fixed timesteps.

    `timesteps` are descending training timesteps; each step goes to the next one, and the last
    to ᾱ = 1 (`set_alpha_to_one`). The coefficients are float32 tensors of shape [K].
    """

    def __init__(self, timesteps: Sequence[int], train_steps: int = TRAIN_TIMESTEPS, clip_sample: float = 1.0):
        ts = [int(t) for t in timesteps]
        if not ts or any(a <= b for a, b in zip(ts, ts[1:])) or ts[-1] < 0 or ts[0] >= train_steps:
            raise ValueError(f"timesteps must be strictly descending within [0, {train_steps}): {ts}")
        ac = alphas_cumprod(train_steps)
        alpha_t = ac[ts]
        alpha_prev = torch.cat([ac[ts[1:]], torch.ones(1)])
        self.timesteps = torch.tensor(ts, dtype=torch.long)
        self.train_steps = train_steps
        self.clip_sample = clip_sample
        # Written as diffusers computes them (x ** 0.5 on float32), so results match to rounding.
        self.sqrt_alpha = alpha_t**0.5
        self.sqrt_one_minus_alpha = (1 - alpha_t) ** 0.5
        self.sqrt_alpha_prev = alpha_prev**0.5
        self.sqrt_one_minus_alpha_prev = (1 - alpha_prev) ** 0.5

    @classmethod
    def leading(cls, steps: int, train_steps: int = TRAIN_TIMESTEPS) -> "DDIMSampler":
        """The reference's schedule for `steps` inference steps."""
        return cls(leading_timesteps(steps, train_steps), train_steps)

    @property
    def steps(self) -> int:
        return len(self.timesteps)

    def step(self, i: int, sample: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        """One DDIM update x_t → x_prev given the predicted noise (eq. 12, σ = 0)."""
        x0 = (sample - self.sqrt_one_minus_alpha[i] * eps) / self.sqrt_alpha[i]
        x0 = x0.clamp(-self.clip_sample, self.clip_sample)
        return self.sqrt_alpha_prev[i] * x0 + self.sqrt_one_minus_alpha_prev[i] * eps

    def sample(self, predict_eps: Callable[[int, torch.Tensor], torch.Tensor], noise: torch.Tensor) -> torch.Tensor:
        """Run all K steps from `noise`; `predict_eps(i, x)` returns the noise prediction at step i."""
        x = noise
        for i in range(self.steps):
            x = self.step(i, x, predict_eps(i, x))
        return x

    def describe(self) -> dict:
        """The schedule as plain numbers (for manifests and reports)."""
        return {
            "kind": "ddim",
            "train_steps": self.train_steps,
            "timesteps": self.timesteps.tolist(),
            "alphas_cumprod": [float(a) ** 2 for a in self.sqrt_alpha.tolist()],
            "beta_schedule": "squaredcos_cap_v2",
            "prediction_type": "epsilon",
            "clip_sample": self.clip_sample,
            "eta": 0.0,
            "set_alpha_to_one": True,
        }
