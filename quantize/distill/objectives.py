"""Distillation objectives: what a student is trained to match, round by round.

`progressive` (Salimans & Ho 2022): rounds along the ladder (schedule.ladder); in each round one
student step is trained to land where the round's teacher lands after the teacher steps it
covers (two, or one where a rung merges only some pairs), starting from states on the teacher's
own trajectory (there is no data, only noise and conditions); the student of one round is the
teacher of the next. `output-matching`: one round; the student's whole K-step chain, with
gradients through every step, is trained to end where the 10-step teacher ends from the same
noise.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from edge.policy.head import ConditionalUnet1D
from edge.policy.sampler import DDIMSampler, leading_timesteps
from quantize.distill.chain import ddim_rows, run_chain, trajectory
from quantize.distill.schedule import ladder, segments, student_timesteps

from quantize.distill.methods import OUTPUT_MATCHING, PROGRESSIVE


@dataclass(frozen=True)
class Round:
    """One distillation round: the teacher's and the student's timesteps."""

    teacher_timesteps: list[int]
    student_timesteps: list[int]


def rounds_for(method: str, steps: int, teacher_steps: int) -> list[Round]:
    """The rounds a method runs to reach `steps` from the `teacher_steps` reference schedule."""
    if method == PROGRESSIVE:
        rungs = ladder(steps, teacher_steps)
        return [Round(a, b) for a, b in zip(rungs[:-1], rungs[1:])]
    if method == OUTPUT_MATCHING:
        return [Round(leading_timesteps(teacher_steps), student_timesteps(steps, teacher_steps))]
    raise ValueError(f"unknown method {method!r}")


def clip_aware_error(x0: torch.Tensor, target: torch.Tensor, clip: float = 1.0) -> torch.Tensor:
    """Error of a final step whose output is clamp(x0): zero where the target sits on the clip
    bound and x0 is past it (the output matches), else x0 − target unclipped, so a student
    clipped on the wrong side still gets a gradient (the clamp alone would give none)."""
    err = x0 - target
    err = torch.where(target >= clip, err.clamp(max=0), err)
    return torch.where(target <= -clip, err.clamp(min=0), err)


class DistillLoss(nn.Module):
    """The trainable student plus a frozen teacher; `forward(cond, noise)` is one batch's loss.

    One module so DistributedDataParallel can wrap it (its hooks fire inside `forward`). The
    teacher is held outside the module tree: it is neither trained nor synchronised.
    """

    def __init__(self, method: str, round_: Round, student: ConditionalUnet1D, teacher: ConditionalUnet1D):
        super().__init__()
        self.method = method
        self.student = student
        self._teacher = (teacher,)
        self.teacher_sampler = DDIMSampler(round_.teacher_timesteps)
        self.student_sampler = DDIMSampler(round_.student_timesteps)
        self.starts = segments(round_.teacher_timesteps, round_.student_timesteps)
        # Error at an intermediate step measured in clean-action units at the noise level it
        # lands on (÷ √ᾱ_next): a state error there reaches the chunk scaled roughly by that.
        self.register_buffer("step_weights", 1.0 / self.student_sampler.sqrt_alpha_prev**2, persistent=False)

    @property
    def teacher(self) -> ConditionalUnet1D:
        return self._teacher[0]

    def forward(self, cond: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        if self.method == OUTPUT_MATCHING:
            return self._output_matching(cond, noise)
        return self._progressive(cond, noise)

    def _output_matching(self, cond: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            target = run_chain(self.teacher, self.teacher_sampler, cond, noise).sample
        out = run_chain(self.student, self.student_sampler, cond, noise)
        return clip_aware_error(out.x0, target, self.student_sampler.clip_sample).pow(2).mean()

    def _progressive(self, cond: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            states = trajectory(self.teacher, self.teacher_sampler, cond, noise)
        k, b = len(self.starts), noise.shape[0]
        start = torch.cat([states[p] for p in self.starts])
        target = torch.cat([states[p] for p in self.starts[1:]] + [states[-1]])
        index = torch.arange(k, device=noise.device).repeat_interleave(b)
        features = self.student.step_features(self.student_sampler.timesteps.to(noise.device))[index]
        eps = self.student.denoise(start, features, cond.repeat(k, 1))
        out = ddim_rows(self.student_sampler, index, start, eps)
        last = (index == k - 1).view(-1, 1, 1)
        err = torch.where(last, clip_aware_error(out.x0, target, self.student_sampler.clip_sample), out.sample - target)
        weights = self.step_weights.to(noise.device)[index].view(-1, 1, 1)
        return (weights * err.pow(2)).mean()
