"""Distillation objectives: what a student is trained to match, round by round.

`progressive` (Salimans & Ho 2022): rounds along the ladder (schedule.ladder); in each round one
student step is trained to land where the round's teacher lands after the teacher steps it
covers (two, or one where a rung merges only some pairs), starting from states on the teacher's
own trajectory (there is no data, only noise and conditions); the student of one round is the
teacher of the next. `output-matching`: one round; the student's whole K-step chain, with
gradients through every step, is trained to end where the 10-step teacher ends from the same
noise. `consistency` (Consistency Policy, Prasad et al. 2024, after Song et al. 2023): one
round; the student's x0 prediction at any teacher timestep is trained to agree with its own
(stop-gradient) x0 prediction further down the teacher's trajectory, and at the end of the
trajectory with the teacher's chunk; it then samples with the same DDIM steps as the others.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from edge.policy.head import ConditionalUnet1D
from edge.policy.sampler import DDIMSampler, leading_timesteps
from quantize.distill.chain import ddim_rows, run_chain, trajectory
from quantize.distill.schedule import ladder, output_matching_timesteps, segments, student_timesteps

from quantize.distill.methods import CONSISTENCY, OUTPUT_MATCHING, PROGRESSIVE


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
        return [Round(leading_timesteps(teacher_steps), output_matching_timesteps(steps, teacher_steps))]
    if method == CONSISTENCY:
        return [Round(leading_timesteps(teacher_steps), student_timesteps(steps, teacher_steps))]
    raise ValueError(f"unknown method {method!r}")


def consistency_pairs(teacher_steps: int, starts: list[int] | None = None) -> torch.Tensor:
    """Every (start, end) pair of positions on a teacher trajectory of `teacher_steps` steps,
    start < end ≤ teacher_steps ([P, 2]; position teacher_steps is the teacher's chunk), with
    start limited to `starts` when given.

    end = start + 1 is Consistency Distillation's one teacher ODE step; longer jumps (the teacher
    solver run further, as in Kim et al.'s Consistency Trajectory Models) carry the teacher's
    chunk back to the noisy end in fewer bootstraps, which a short run needs."""
    firsts = range(teacher_steps) if starts is None else starts
    return torch.tensor([(a, b) for a in firsts for b in range(a + 1, teacher_steps + 1)])


def draw_pairs(uniforms: torch.Tensor, student_pairs: torch.Tensor, all_pairs: torch.Tensor) -> torch.Tensor:
    """One pair per row from its uniform in [0, 1): below ½ a pair that starts at one of the
    student's own timesteps (the only ones it samples at), else any pair of the trajectory
    (what keeps the bootstrapped targets themselves consistent)."""
    own = uniforms < 0.5
    frac = torch.where(own, 2 * uniforms, 2 * uniforms - 1)

    def pick(table: torch.Tensor) -> torch.Tensor:
        return table[(frac * table.shape[0]).long().clamp(0, table.shape[0] - 1)]

    return torch.where(own.view(-1, 1), pick(student_pairs), pick(all_pairs))


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
        teacher_steps = self.teacher_sampler.steps
        self.register_buffer("all_pairs", consistency_pairs(teacher_steps), persistent=False)
        self.register_buffer("student_pairs", consistency_pairs(teacher_steps, self.starts), persistent=False)

    @property
    def teacher(self) -> ConditionalUnet1D:
        return self._teacher[0]

    def forward(self, cond: torch.Tensor, noise: torch.Tensor, uniforms: torch.Tensor) -> torch.Tensor:
        """The batch's loss; `uniforms` [B] in [0, 1) are per-row draws for objectives that pick
        something at random per row (the trainer draws them from the step's generator)."""
        if self.method == OUTPUT_MATCHING:
            return self._output_matching(cond, noise)
        if self.method == CONSISTENCY:
            return self._consistency(cond, noise, uniforms)
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

    def _consistency(self, cond: torch.Tensor, noise: torch.Tensor, uniforms: torch.Tensor) -> torch.Tensor:
        """f(x_t, t) = the student's (unclipped) DDIM x0 prediction, the value its last step would
        output. Row b starts on the teacher's trajectory at position s and is trained towards
        clamp(f_sg(x_e, t_e)) at a later position e, or the teacher's chunk when e is the end.
        The target is the student itself without gradient and without EMA (Song & Dhariwal
        2023, "improved consistency training", drop the EMA target)."""
        teacher_sampler = self.teacher_sampler
        with torch.no_grad():
            states = torch.stack(trajectory(self.teacher, teacher_sampler, cond, noise))  # [N + 1, B, T, A]
            chosen = draw_pairs(uniforms, self.student_pairs, self.all_pairs)
            start, end = chosen[:, 0], chosen[:, 1]
            rows = torch.arange(noise.shape[0], device=noise.device)
            at_end = end == teacher_sampler.steps
            later = end.clamp(max=teacher_sampler.steps - 1)
            bootstrap = self._x0(teacher_sampler, later, states[later, rows], cond)
            clip = teacher_sampler.clip_sample
            target = torch.where(at_end.view(-1, 1, 1), states[-1], bootstrap.clamp(-clip, clip))
        x0 = self._x0(teacher_sampler, start, states[start, rows], cond)
        return clip_aware_error(x0, target, clip).pow(2).mean()

    def _x0(self, sampler: DDIMSampler, index: torch.Tensor, sample: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """The student's unclipped x0 prediction when row b sits at step index[b] of `sampler`."""
        features = self.student.step_features(sampler.timesteps.to(sample.device))[index]
        eps = self.student.denoise(sample, features, cond)
        return ddim_rows(sampler, index, sample, eps).x0
