"""A synthetic conditional task with a known bimodal action distribution, and a tiny teacher.

For each condition c (8-D) the chunk is one of two trajectories, base(c) ± 0.45·shape(t), with
equal probability. A teacher trained briefly with the reference's loss produces both; a
distilled student must keep both.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from edge.policy.config import HeadConfig
from edge.policy.head import ConditionalUnet1D
from quantize.distill.chain import sample_actions
from quantize.distill.teacher_training import train_head

COND_DIM, HORIZON, ACTION_DIM = 8, 8, 2
SMALL_HEAD = HeadConfig(action_dim=ACTION_DIM, state_dim=2, chunk_size=HORIZON, down_dims=(16, 32), kernel_size=3,
                        step_embed_dim=16, n_groups=8)
MODE_RADIUS = 0.15  # RMS distance to a mode that counts as "at" it (the modes are ~0.5 apart)


def modes(cond: torch.Tensor) -> torch.Tensor:
    """The two trajectories of each condition: [N, 2, T, A]."""
    t = torch.linspace(0, 1, HORIZON)
    base = 0.4 * torch.tanh(cond[:, :ACTION_DIM])
    shape = torch.stack([torch.sin(math.pi * t), t], -1)
    return torch.stack([base[:, None] + 0.45 * shape, base[:, None] - 0.45 * shape], 1)


def mode_fractions(head: ConditionalUnet1D, timesteps: list[int], cond: torch.Tensor, samples: int = 200) -> list[float]:
    """Fraction of samples within MODE_RADIUS of each mode, over all given conditions."""
    c = cond.repeat_interleave(samples, 0)
    noise = torch.randn((c.shape[0], HORIZON, ACTION_DIM), generator=torch.Generator().manual_seed(5))
    out = sample_actions(head, timesteps, c, noise).reshape(cond.shape[0], samples, HORIZON, ACTION_DIM)
    dist = (out[:, :, None] - modes(cond)[:, None]).pow(2).mean((-1, -2)).sqrt()
    return [float((dist[..., k] < MODE_RADIUS).float().mean()) for k in range(2)]


@dataclass(frozen=True)
class BimodalTask:
    teacher: ConditionalUnet1D
    conditions: torch.Tensor  # [N, COND_DIM]: the calibration conditions


def make_bimodal_task(iterations: int = 400, seed: int = 0, count: int = 20) -> BimodalTask:
    """`count` conditions, 2,048 demonstrations, a teacher trained `iterations` steps (seconds)."""
    g = torch.Generator().manual_seed(seed)
    conditions = torch.randn(count, COND_DIM, generator=g)
    n = 2048
    which = torch.randint(0, conditions.shape[0], (n,), generator=g)
    mode = torch.randint(0, 2, (n,), generator=g)
    actions = modes(conditions)[which, mode] + 0.02 * torch.randn((n, HORIZON, ACTION_DIM), generator=g)
    torch.manual_seed(seed)
    teacher = train_head(ConditionalUnet1D(COND_DIM, SMALL_HEAD), conditions[which], actions, iterations=iterations,
                         batch_size=128, learning_rate=3e-3, seed=seed)
    return BimodalTask(teacher.requires_grad_(False), conditions)
