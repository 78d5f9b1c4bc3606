"""Which timesteps a distilled student samples at, and the progressive-distillation ladder.

The teacher samples at the reference's DDIM "leading" timesteps (90, 80, …, 0 for 10 of 100),
treating the initial Gaussian noise as x_90. A student must reproduce that map from noise to
chunk, so its first step also starts at 90, not at 99 ("trailing"): with the cosine schedule
ᾱ_99 ≈ 2.4e-7, so an epsilon-predicting head at t = 99 recovers x0 = (x − √(1−ᾱ)·ε)/√ᾱ with a
gain of ~2000 on its own error, while at t = 90 (√ᾱ ≈ 0.14) the gain is ~7 and the warm-started
teacher weights already give a sensible one-step estimate. Every student timestep is one of the
teacher's, so each student step covers a whole number of teacher steps (what progressive
distillation needs, and a chunk of the teacher chain the other methods can match too).

One exception, measured: a one-step output-matching student samples at the teacher timestep where
that gain is closest to 1 (t = 50 of 100, √((1−ᾱ)/ᾱ) = 1.04), not at 90. Output matching trains
the whole chain from pure noise to the teacher's chunk, so the timestep is only the step's label
and its DDIM arithmetic; with one step there is no later step to correct the x0 estimate, and at
t = 90 the student must reproduce the noise it is fed to 1/7 of the precision the chunk needs.
MetaWorld push and pick-place (docs/distillation.md): 28 / 36 % at [90], 78 / 84 % at [50], same
400 iterations.
"""

from __future__ import annotations

import math

import numpy as np

from edge.errors import EdgeError
from edge.policy.config import HeadConfig, TRAIN_TIMESTEPS
from edge.policy.sampler import alphas_cumprod, leading_timesteps


def validate_steps(steps: int, teacher_steps: int, train_steps: int = TRAIN_TIMESTEPS) -> None:
    """Refuse step counts that make no student: K must be 1 .. teacher_steps − 1."""
    if not 2 <= teacher_steps <= train_steps:
        raise EdgeError(f"teacher steps must be between 2 and {train_steps}, got {teacher_steps}")
    if not 1 <= steps < teacher_steps:
        raise EdgeError(
            f"student steps must be between 1 and {teacher_steps - 1} (fewer than the teacher's {teacher_steps}), got {steps}"
        )


def horizon_factor(cfg: HeadConfig) -> int:
    """The UNet halves the horizon once per down level but the last: 4 for the reference's three."""
    return 2 ** (len(cfg.down_dims) - 1)


def validate_head(cfg: HeadConfig) -> None:
    """Refuse a head whose horizon the UNet cannot down- and up-sample back to itself."""
    factor = horizon_factor(cfg)
    if cfg.chunk_size % factor:
        raise EdgeError(
            f"head horizon (chunk_size) {cfg.chunk_size} is not divisible by {factor}: "
            f"the UNet downsamples it {len(cfg.down_dims) - 1} times"
        )


def subsample(timesteps: list[int], steps: int) -> list[int]:
    """`steps` of `timesteps` (descending), always keeping the first, spread evenly: student
    step i then covers teacher steps [b_i, b_{i+1}) with b = round(linspace(0, n, steps + 1))."""
    n = len(timesteps)
    if not 1 <= steps <= n:
        raise ValueError(f"cannot pick {steps} of {n} timesteps")
    bounds = np.round(np.linspace(0, n, steps + 1)).astype(int)
    return [timesteps[b] for b in bounds[:-1]]


def ladder(steps: int, teacher_steps: int, train_steps: int = TRAIN_TIMESTEPS) -> list[list[int]]:
    """Timesteps of each progressive-distillation rung, teacher first, student last.

    Rungs halve the step count (K·2^m, …, 2K, K) as in Salimans & Ho; the first rung goes from
    the teacher to the largest K·2^m below it. When the teacher's count is not K·2^(m+1) (10 is
    not a power of two times 1, 2 or 4), that first rung merges only some pairs of teacher steps
    (10 → 8 merges two pairs), which the same per-step matching handles. 10 → 4 is 10, 8, 4.
    """
    validate_steps(steps, teacher_steps, train_steps)
    counts = [steps]
    while counts[-1] * 2 < teacher_steps:
        counts.append(counts[-1] * 2)
    rungs = [leading_timesteps(teacher_steps, train_steps)]
    for count in reversed(counts):
        rungs.append(subsample(rungs[-1], count))
    return rungs


def student_timesteps(steps: int, teacher_steps: int, train_steps: int = TRAIN_TIMESTEPS) -> list[int]:
    """The K timesteps a distilled student samples at (the ladder's last rung), e.g. [90, 40]
    for K = 2 of the 10-step teacher, [90] for K = 1, [90, 70, 40, 10] for K = 4."""
    return ladder(steps, teacher_steps, train_steps)[-1]


def x0_gain(timestep: int, train_steps: int = TRAIN_TIMESTEPS) -> float:
    """How much a DDIM step at `timestep` multiplies the network's noise error in its x0 estimate:
    x0 = (x − √(1−ᾱ)·ε)/√ᾱ, so an error δ in ε is √((1−ᾱ)/ᾱ)·δ in x0."""
    alpha_bar = float(alphas_cumprod(train_steps)[timestep])
    return math.sqrt((1.0 - alpha_bar) / alpha_bar)


def one_step_timestep(teacher_steps: int, train_steps: int = TRAIN_TIMESTEPS) -> int:
    """The timestep a one-step output-matching student samples at: the teacher's timestep whose
    x0 gain is closest to 1 (50 for 10 of 100; see the module docstring)."""
    return min(leading_timesteps(teacher_steps, train_steps), key=lambda t: abs(math.log(x0_gain(t, train_steps))))


def output_matching_timesteps(steps: int, teacher_steps: int, train_steps: int = TRAIN_TIMESTEPS) -> list[int]:
    """An output-matching student's timesteps: [one_step_timestep] for K = 1, else the same as
    every other method's (`student_timesteps`)."""
    validate_steps(steps, teacher_steps, train_steps)
    if steps == 1:
        return [one_step_timestep(teacher_steps, train_steps)]
    return student_timesteps(steps, teacher_steps, train_steps)


def segments(teacher: list[int], student: list[int]) -> list[int]:
    """For each student timestep, its index in the teacher's timesteps (the start of the teacher
    steps it covers); the last segment runs to the end of the teacher's chain."""
    missing = [t for t in student if t not in teacher]
    if missing:
        raise ValueError(f"student timesteps {missing} are not teacher timesteps {teacher}")
    return [teacher.index(t) for t in student]
