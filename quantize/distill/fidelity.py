"""How closely a K-step student reproduces its teacher, on held-out conditions.

Paired: from the same initial noise, the student's chunk vs the teacher's chunk, in the head's
normalized [−1, 1] action space (RMSE and max abs error). Distributional: for each condition,
teacher and student samples from independent noises, compared by mean gap, covariance gap, MMD
and sliced Wasserstein distance, so a student that collapses modes is caught even when its mean
is right. The distributional figures come with a floor: the same statistics between two
independent teacher sample sets, i.e. what sampling noise alone gives.

Everything is deterministic given `seed`, so a reloaded student reproduces its recorded figures.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict

from edge.policy.head import ConditionalUnet1D
from quantize.distill.chain import sample_actions


class PairedFidelity(BaseModel):
    """Student vs teacher chunks from the same noise."""

    model_config = ConfigDict(frozen=True)

    steps: int
    timesteps: list[int]
    conditions: int
    noises_per_condition: int
    rmse: float  # normalized action units, over every element of every chunk
    max_abs_error: float


class DistributionalFidelity(BaseModel):
    """Student vs teacher sample sets per condition (averaged over conditions)."""

    model_config = ConfigDict(frozen=True)

    conditions: int
    samples_per_condition: int
    mean_gap: float  # RMS over chunk elements of the difference of means
    covariance_gap: float  # ‖Σ_s − Σ_t‖_F / ‖Σ_t‖_F
    mmd: float  # √MMD² (biased), Gaussian kernel at the median pairwise distance
    sliced_wasserstein: float  # W1 averaged over random unit directions
    floor_mean_gap: float  # the same four between two independent teacher sample sets
    floor_covariance_gap: float
    floor_mmd: float
    floor_sliced_wasserstein: float


class Fidelity(BaseModel):
    """The fidelity report of one distilled head (what a bundle manifest records)."""

    model_config = ConfigDict(frozen=True)

    teacher_timesteps: list[int]
    seed: int
    paired: PairedFidelity
    baseline_paired: PairedFidelity  # the warm start: teacher weights sampled at the student's K steps
    distributional: DistributionalFidelity


def _noise(generator: torch.Generator, n: int, cfg) -> torch.Tensor:
    return torch.randn((n, cfg.chunk_size, cfg.action_dim), generator=generator)


def paired_fidelity(
    teacher: ConditionalUnet1D,
    teacher_timesteps: list[int],
    student: ConditionalUnet1D,
    timesteps: list[int],
    conditions: torch.Tensor,
    noises_per_condition: int = 8,
    seed: int = 0,
    teacher_actions: torch.Tensor | None = None,
) -> PairedFidelity:
    """Paired error over every held-out condition × `noises_per_condition` noises."""
    cond, noise = _paired_inputs(student, conditions, noises_per_condition, seed)
    if teacher_actions is None:
        teacher_actions = sample_actions(teacher, teacher_timesteps, cond, noise)
    diff = sample_actions(student, timesteps, cond, noise) - teacher_actions
    return PairedFidelity(
        steps=len(timesteps), timesteps=list(timesteps), conditions=int(conditions.shape[0]),
        noises_per_condition=noises_per_condition,
        rmse=float(diff.pow(2).mean().sqrt()), max_abs_error=float(diff.abs().max()),
    )


def _paired_inputs(head: ConditionalUnet1D, conditions: torch.Tensor, per: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    cond = conditions.repeat_interleave(per, dim=0)
    device = next(head.parameters()).device
    return cond.to(device), _noise(g, cond.shape[0], head.cfg).to(device)


def mmd_rbf(x: torch.Tensor, y: torch.Tensor) -> float:
    """√MMD² (biased V-statistic) with a Gaussian kernel whose width is the median pairwise
    distance of the pooled samples (x [N, D], y [M, D], float64)."""
    z = torch.cat([x, y])
    d2 = torch.cdist(z, z).pow(2)
    median = d2[d2 > 0].median() if bool((d2 > 0).any()) else d2.new_tensor(1.0)
    k = torch.exp(-d2 / median)
    n = x.shape[0]
    mmd2 = k[:n, :n].mean() + k[n:, n:].mean() - 2 * k[:n, n:].mean()
    return float(mmd2.clamp(min=0).sqrt())


def sliced_wasserstein(x: torch.Tensor, y: torch.Tensor, directions: torch.Tensor) -> float:
    """W1 between the projections of x and y on each unit direction [P, D], averaged
    (equal sample counts: the sorted projections pair up)."""
    px, _ = torch.sort(x @ directions.T, dim=0)
    py, _ = torch.sort(y @ directions.T, dim=0)
    return float((px - py).abs().mean())


def _set_gaps(a: torch.Tensor, b: torch.Tensor, directions: torch.Tensor) -> tuple[float, float, float, float]:
    """Mean gap, covariance gap, MMD, sliced W1 of sample set `a` against reference set `b`."""
    mean_gap = float((a.mean(0) - b.mean(0)).pow(2).mean().sqrt())
    cov_a, cov_b = torch.cov(a.T), torch.cov(b.T)
    cov_gap = float(torch.linalg.matrix_norm(cov_a - cov_b) / torch.linalg.matrix_norm(cov_b).clamp(min=1e-12))
    return mean_gap, cov_gap, mmd_rbf(a, b), sliced_wasserstein(a, b, directions)


def distributional_fidelity(
    teacher: ConditionalUnet1D,
    teacher_timesteps: list[int],
    student: ConditionalUnet1D,
    timesteps: list[int],
    conditions: torch.Tensor,
    samples_per_condition: int = 64,
    max_conditions: int = 16,
    seed: int = 0,
    projections: int = 64,
) -> DistributionalFidelity:
    """Per-condition sample-set statistics, averaged over up to `max_conditions` conditions."""
    conditions = conditions[:max_conditions]
    n, m = int(conditions.shape[0]), samples_per_condition
    g = torch.Generator().manual_seed(seed + 1)  # independent of the paired noises
    cfg = student.cfg
    device = next(student.parameters()).device
    cond = conditions.repeat_interleave(m, dim=0).to(device)
    noises = [_noise(g, n * m, cfg).to(device) for _ in range(3)]
    teacher_a = sample_actions(teacher, teacher_timesteps, cond, noises[0]).double().cpu().reshape(n, m, -1)
    teacher_b = sample_actions(teacher, teacher_timesteps, cond, noises[1]).double().cpu().reshape(n, m, -1)
    student_s = sample_actions(student, timesteps, cond, noises[2]).double().cpu().reshape(n, m, -1)
    directions = torch.randn((projections, teacher_a.shape[-1]), generator=g, dtype=torch.float64)
    directions = directions / directions.norm(dim=1, keepdim=True)
    gaps = np.mean([_set_gaps(student_s[i], teacher_a[i], directions) for i in range(n)], axis=0)
    floor = np.mean([_set_gaps(teacher_b[i], teacher_a[i], directions) for i in range(n)], axis=0)
    return DistributionalFidelity(
        conditions=n, samples_per_condition=m,
        mean_gap=float(gaps[0]), covariance_gap=float(gaps[1]), mmd=float(gaps[2]), sliced_wasserstein=float(gaps[3]),
        floor_mean_gap=float(floor[0]), floor_covariance_gap=float(floor[1]), floor_mmd=float(floor[2]),
        floor_sliced_wasserstein=float(floor[3]),
    )


def measure_fidelity(
    teacher: ConditionalUnet1D,
    teacher_timesteps: list[int],
    student: ConditionalUnet1D,
    timesteps: list[int],
    conditions: torch.Tensor,
    seed: int = 0,
    noises_per_condition: int = 8,
    samples_per_condition: int = 64,
    max_conditions: int = 16,
) -> Fidelity:
    """The full report: paired (student and its warm start) and distributional, on `conditions`."""
    if conditions.shape[0] == 0 or not math.isfinite(float(conditions.abs().sum())):
        raise ValueError("fidelity needs at least one finite held-out condition")
    teacher.eval(), student.eval()
    cond, noise = _paired_inputs(student, conditions, noises_per_condition, seed)
    teacher_actions = sample_actions(teacher, teacher_timesteps, cond, noise)
    paired = paired_fidelity(teacher, teacher_timesteps, student, timesteps, conditions, noises_per_condition, seed, teacher_actions)
    baseline = paired_fidelity(teacher, teacher_timesteps, teacher, timesteps, conditions, noises_per_condition, seed, teacher_actions)
    distributional = distributional_fidelity(
        teacher, teacher_timesteps, student, timesteps, conditions, samples_per_condition, max_conditions, seed
    )
    return Fidelity(
        teacher_timesteps=list(teacher_timesteps), seed=seed,
        paired=paired, baseline_paired=baseline, distributional=distributional,
    )
