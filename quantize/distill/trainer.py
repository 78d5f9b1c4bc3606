"""The training loop: rounds of a method, DDP, checkpoints, resume, progress bar.

Randomness is keyed by (seed, rank, global step): each step's condition batch and noise come
from a generator seeded from those three, so a run is deterministic on one process and a
resumed run draws exactly what the uninterrupted run would have drawn.
"""

from __future__ import annotations

import copy
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel

from edge.errors import EdgeError
from edge.policy.head import ConditionalUnet1D
from quantize.distill.distributed import World
from quantize.distill.objectives import DistillLoss, Round, rounds_for
from quantize.distill.state import RunSettings, check_resumable, load_state, save_state, STATE_FILE
from quantize.progress import Stage, StageProgress

GRAD_CLIP = 1.0
HISTORY_POINTS_PER_ROUND = 20


@dataclass
class TrainOutcome:
    """The trained student and how the run went."""

    student: ConditionalUnet1D
    rounds: list[Round]
    history: list[tuple[int, float]] = field(default_factory=list)  # (global step, mean loss)
    resumed_from_step: int | None = None
    elapsed_s: float = 0.0


def split_iterations(iterations: int, rounds: int) -> list[int]:
    """Spread the optimizer steps over the rounds (equal shares, the remainder to the last)."""
    base = iterations // rounds
    return [base] * (rounds - 1) + [iterations - base * (rounds - 1)]


def step_generator(seed: int, rank: int, global_step: int) -> torch.Generator:
    """A generator for one step of one rank, independent of every other step and rank."""
    words = np.random.SeedSequence([seed, rank, global_step]).generate_state(2, dtype=np.uint32)
    return torch.Generator().manual_seed(int(words[0]) << 31 ^ int(words[1]))


def learning_rate(base: float, step: int, total: int) -> float:
    """Linear warm-up over the first 5% (at most 100 steps), then cosine decay to zero."""
    warm = max(1, min(100, total // 20))
    if step < warm:
        return base * (step + 1) / warm
    return base * 0.5 * (1 + math.cos(math.pi * (step - warm) / max(1, total - warm)))


def frozen_copy(head: ConditionalUnet1D) -> ConditionalUnet1D:
    """A copy that is never trained (a round's teacher)."""
    return copy.deepcopy(head).eval().requires_grad_(False)


def trainable_student(head: ConditionalUnet1D) -> ConditionalUnet1D:
    """The student trains everything but the condition front-end: conditions were cached with
    the teacher's pool/LayerNorm/combine, and the runtime computes them with the student's, so
    those must stay the teacher's."""
    head.requires_grad_(True)
    head.norm_after_pool.requires_grad_(False)
    head.combine.requires_grad_(False)
    return head


def train_student(
    teacher: ConditionalUnet1D,
    conditions: torch.Tensor,
    settings: RunSettings,
    world: World,
    checkpoint_dir: Path | None = None,
    resume: bool = False,
    checkpoint_every_s: float = 300.0,
    checkpoint_every_steps: int | None = None,
    progress: bool | Stage = True,
) -> TrainOutcome:
    """Distill `teacher` (frozen, on world.device) on the training `conditions` [N, H].

    `progress`: show a stage of its own on stderr (True), nothing (False), or advance the
    caller's stage (quantize's "distillation")."""
    rounds = rounds_for(settings.method, settings.steps, settings.teacher_steps)
    per_round = split_iterations(settings.iterations, len(rounds))
    student = trainable_student(copy.deepcopy(teacher))
    round_teacher = teacher
    outcome = TrainOutcome(student, rounds)
    start_round, start_step, optimizer_state = 0, 0, None

    state = load_state(checkpoint_dir) if checkpoint_dir is not None else None
    if state is not None and not resume:
        raise EdgeError(f"{Path(checkpoint_dir) / STATE_FILE} exists: resume it, or remove it to start over")
    if state is not None:
        check_resumable(state, settings, Path(checkpoint_dir) / STATE_FILE)
        student.load_state_dict(state["student"])
        start_round, start_step, optimizer_state = state["round"], state["step"], state.get("optimizer")
        if start_round > 0 and start_round < len(rounds):
            round_teacher = frozen_copy(student)
            round_teacher.load_state_dict(state["teacher"])
        outcome.history = [tuple(h) for h in state["history"]]
        outcome.resumed_from_step = sum(per_round[:start_round]) + start_step
        outcome.elapsed_s = float(state["elapsed_s"])

    bar = _progress_bar(settings, world, progress, outcome.resumed_from_step or 0)
    started, last_save = time.monotonic(), time.monotonic()

    def checkpoint(r: int, s: int, optimizer) -> None:
        if checkpoint_dir is None or not world.is_main:
            return
        save_state(checkpoint_dir, {
            "settings": settings.model_dump(),
            "round": r,
            "step": s,
            "student": {k: v.detach().cpu() for k, v in student.state_dict().items()},
            "teacher": {k: v.detach().cpu() for k, v in round_teacher.state_dict().items()} if 0 < r < len(rounds) else {},
            "optimizer": optimizer.state_dict() if optimizer is not None else None,
            "history": [list(h) for h in outcome.history],
            "elapsed_s": outcome.elapsed_s + time.monotonic() - started,
        })

    for r in range(start_round, len(rounds)):
        if r > 0 and not (r == start_round and start_step > 0):
            round_teacher = frozen_copy(student)  # progressive: last round's student teaches this one
        loss_module = DistillLoss(settings.method, rounds[r], student, round_teacher).to(world.device)
        model = loss_module
        if world.distributed:
            on_cuda = world.device.type == "cuda"
            model = DistributedDataParallel(loss_module, device_ids=[world.device] if on_cuda else None)
        params = [p for p in student.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(params, lr=settings.learning_rate, weight_decay=0.0)
        first = start_step if r == start_round else 0
        if r == start_round and optimizer_state is not None and first > 0:
            optimizer.load_state_dict(optimizer_state)
        offset = sum(per_round[:r])
        window: list[float] = []
        log_every = max(1, per_round[r] // HISTORY_POINTS_PER_ROUND)
        for s in range(first, per_round[r]):
            loss = _train_step(model, optimizer, params, conditions, settings, world, offset + s, s, per_round[r])
            window.append(loss)
            if len(window) == log_every or s == per_round[r] - 1:
                outcome.history.append((offset + s + 1, float(np.mean(window))))
                window = []
            bar.advance(loss=f"{loss:.4g}", round=f"{r + 1}/{len(rounds)} K={len(rounds[r].student_timesteps)}")
            due_time = time.monotonic() - last_save >= checkpoint_every_s
            due_step = checkpoint_every_steps is not None and (s + 1) % checkpoint_every_steps == 0
            if (due_time or due_step) and s + 1 < per_round[r]:
                checkpoint(r, s + 1, optimizer)
                last_save = time.monotonic()
        round_teacher = student  # saved as the next round's teacher (it is copied when that round starts)
        checkpoint(r + 1, 0, None)
        last_save = time.monotonic()
    if bar is not progress:
        bar.finish()
    outcome.elapsed_s += time.monotonic() - started
    return outcome


def _train_step(model, optimizer, params, conditions, settings, world, global_step, step, total) -> float:
    g = step_generator(settings.seed, world.rank, global_step)
    index = torch.randint(conditions.shape[0], (settings.batch_size,), generator=g)
    head_cfg = _head_cfg(model)
    noise = torch.randn((settings.batch_size, head_cfg.chunk_size, head_cfg.action_dim), generator=g)
    uniforms = torch.rand((settings.batch_size,), generator=g)  # drawn last: earlier draws are unchanged
    loss = model(conditions[index].to(world.device), noise.to(world.device), uniforms.to(world.device))
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(params, GRAD_CLIP)
    for group in optimizer.param_groups:
        group["lr"] = learning_rate(settings.learning_rate, step, total)
    optimizer.step()
    return float(loss.detach())


def _head_cfg(model):
    module = model.module if isinstance(model, DistributedDataParallel) else model
    return module.student.cfg


def _progress_bar(settings: RunSettings, world: World, progress: bool | Stage, initial: int) -> Stage:
    """The caller's stage, or one of our own (shown only on the main rank)."""
    if isinstance(progress, Stage):
        progress.set_total(settings.iterations, initial)
        return progress
    stage = StageProgress.single("distill", f"{settings.method} {settings.teacher_steps}→{settings.steps}",
                                 settings.iterations, sys.stderr if progress and world.is_main else None)
    stage.set_total(settings.iterations, initial)
    return stage
