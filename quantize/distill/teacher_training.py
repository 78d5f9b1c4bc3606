"""Training a diffusion head from scratch, the reference's way (for benchmarks and tests).

TinyVLA trains its head with the epsilon-MSE loss at a uniform timestep of 100, noise added by
the same DDIM scheduler it samples with (tinyvla-format.md §3.2). The MetaWorld benchmark and
the tests train small teachers with exactly this loss so that distillation meets a real teacher,
not a random network.
"""

from __future__ import annotations

import torch

from edge.policy.head import ConditionalUnet1D
from edge.policy.sampler import alphas_cumprod


def ddpm_loss(head: ConditionalUnet1D, cond: torch.Tensor, actions: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Epsilon-prediction MSE for clean normalized chunks `actions` [B, T, A] given conditions
    [B, H]: t ~ U{0..99}, x_t = √ᾱ_t·x0 + √(1−ᾱ_t)·ε."""
    b = actions.shape[0]
    ac = alphas_cumprod().to(actions.device)
    t = torch.randint(0, ac.shape[0], (b,), generator=generator).to(actions.device)
    eps = torch.randn(actions.shape, generator=generator).to(actions.device)
    a = ac[t].view(b, 1, 1)
    noisy = a.sqrt() * actions + (1 - a).sqrt() * eps
    return (head.denoise(noisy, head.step_features(t), cond) - eps).pow(2).mean()


def train_head(
    head: ConditionalUnet1D,
    conditions: torch.Tensor,
    actions: torch.Tensor,
    iterations: int,
    batch_size: int = 128,
    learning_rate: float = 1e-3,
    seed: int = 0,
) -> ConditionalUnet1D:
    """Fit `head` to (condition [N, H], chunk [N, T, A]) pairs with `ddpm_loss`; AdamW with a
    cosine decay. Returns the head in eval mode."""
    g = torch.Generator().manual_seed(seed)
    params = [p for p in head.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=learning_rate, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, iterations)
    head.train()
    for _ in range(iterations):
        idx = torch.randint(0, conditions.shape[0], (batch_size,), generator=g)
        loss = ddpm_loss(head, conditions[idx], actions[idx], g)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
    return head.eval()
