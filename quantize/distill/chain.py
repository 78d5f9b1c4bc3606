"""The DDIM chain as distillation needs it: batched, per-row steps, trajectories, gradients.

Same update as `edge.policy.sampler.DDIMSampler.step` (DDIM eq. 12, σ = 0, x0 clipped to ±1),
but the step index may differ per row, so all the steps of one chain can be trained in one
batched UNet call, and the unclipped x0 is returned too so a loss can see past the clip.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from edge.policy.head import ConditionalUnet1D
from edge.policy.sampler import DDIMSampler


@dataclass(frozen=True)
class StepOutput:
    """One DDIM update: the next sample and the (unclipped) predicted x0 it came from."""

    sample: torch.Tensor
    x0: torch.Tensor


def ddim_rows(sampler: DDIMSampler, index: torch.Tensor, sample: torch.Tensor, eps: torch.Tensor) -> StepOutput:
    """DDIM update where row b takes step `index[b]` of `sampler` (coefficients gathered per row)."""

    def coef(c: torch.Tensor) -> torch.Tensor:
        return c.to(sample.device)[index].view(-1, *([1] * (sample.dim() - 1)))

    x0 = (sample - coef(sampler.sqrt_one_minus_alpha) * eps) / coef(sampler.sqrt_alpha)
    clipped = x0.clamp(-sampler.clip_sample, sampler.clip_sample)
    nxt = coef(sampler.sqrt_alpha_prev) * clipped + coef(sampler.sqrt_one_minus_alpha_prev) * eps
    return StepOutput(nxt, x0)


def run_chain(head: ConditionalUnet1D, sampler: DDIMSampler, cond: torch.Tensor, noise: torch.Tensor) -> StepOutput:
    """All steps of `sampler` from `noise` [B, T, A] given conditions [B, H]; the last step's
    output. Gradients flow through the whole chain when the caller has them enabled."""
    return _steps(head, sampler, cond, noise)[-1]


def trajectory(head: ConditionalUnet1D, sampler: DDIMSampler, cond: torch.Tensor, noise: torch.Tensor) -> list[torch.Tensor]:
    """The chain's samples [x_start, x_1, …, x_K] (K + 1 tensors), e.g. the teacher's states at
    every one of its timesteps, from which a progressive student's targets are read."""
    return [noise] + [out.sample for out in _steps(head, sampler, cond, noise)]


def _steps(head: ConditionalUnet1D, sampler: DDIMSampler, cond: torch.Tensor, noise: torch.Tensor) -> list[StepOutput]:
    features = head.step_features(sampler.timesteps.to(noise.device))
    x, outs = noise, []
    for i in range(sampler.steps):
        eps = head.denoise(x, features[i : i + 1], cond)
        outs.append(ddim_rows(sampler, torch.full((x.shape[0],), i, dtype=torch.long, device=x.device), x, eps))
        x = outs[-1].sample
    return outs


@torch.no_grad()
def sample_actions(
    head: ConditionalUnet1D, timesteps: list[int], cond: torch.Tensor, noise: torch.Tensor, batch: int = 256
) -> torch.Tensor:
    """Normalized chunks [B, T, A] from `noise`, in batches (evaluation: no gradients)."""
    sampler = DDIMSampler(timesteps)
    outs = [run_chain(head, sampler, cond[i : i + batch], noise[i : i + batch]).sample for i in range(0, noise.shape[0], batch)]
    return torch.cat(outs) if outs else noise.new_zeros(noise.shape)
