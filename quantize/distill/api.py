"""`distill_head`: a K-step student of a TinyVLA diffusion head, with its fidelity report."""

from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import torch
from pydantic import BaseModel, ConfigDict

from edge.errors import EdgeError
from edge.policy.head import ConditionalUnet1D
from edge.policy.policy import Policy
from edge.policy.sampler import DDIMSampler, leading_timesteps
from quantize.distill import distributed
from quantize.distill.conditions import split_conditions
from quantize.distill.fidelity import Fidelity, measure_fidelity
from quantize.distill.methods import DEFAULT_METHOD, check_method
from quantize.distill.objectives import rounds_for
from quantize.distill.schedule import validate_head, validate_steps
from quantize.distill.state import RunSettings
from quantize.distill.trainer import train_student

DEFAULT_ITERATIONS = 2000
DEFAULT_BATCH_SIZE = 64
DEFAULT_LEARNING_RATE = 1e-4


class DistillReport(BaseModel):
    """Everything a bundle manifest records about a distilled head."""

    model_config = ConfigDict(frozen=True)

    kind: str = "distilled-head"
    method: str
    steps: int
    teacher_steps: int
    timesteps: list[int]
    teacher_timesteps: list[int]
    rounds: list[list[int]]  # the student timesteps after each round (progressive: the ladder)
    sampler: dict
    iterations: int
    batch_size: int
    learning_rate: float
    seed: int
    world_size: int
    calibration: dict  # counts, held-out fraction, sha256 of the cached conditions
    teacher_sha256: str
    student_sha256: str
    final_loss: float | None
    loss_history: list[tuple[int, float]]
    resumed_from_step: int | None
    elapsed_s: float
    fidelity: Fidelity


@dataclass(frozen=True)
class DistillResult:
    """The student head (CPU, eval mode) and its report."""

    head: ConditionalUnet1D
    report: DistillReport

    @property
    def timesteps(self) -> list[int]:
        return self.report.timesteps

    @property
    def method(self) -> str:
        return self.report.method

    @property
    def teacher_steps(self) -> int:
        return self.report.teacher_steps

    @property
    def fidelity(self) -> Fidelity:
        return self.report.fidelity

    def sampler(self) -> DDIMSampler:
        """The student's static DDIM schedule (what the runtime samples with)."""
        return DDIMSampler(self.timesteps)

    def to_manifest(self) -> dict:
        """The report as plain JSON types."""
        return self.report.model_dump(mode="json")

    def render(self) -> str:
        """The final summary table."""
        return render_summary(self.to_manifest())


def module_sha256(module: torch.nn.Module) -> str:
    """sha256 over a module's state (names, shapes, float32 bytes), in key order."""
    h = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        t = tensor.detach().to("cpu", torch.float32).contiguous()
        h.update(f"{name}{tuple(t.shape)}".encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()


def _head_of(policy_or_head) -> ConditionalUnet1D:
    if isinstance(policy_or_head, Policy):
        return policy_or_head.network.embed_out
    if isinstance(policy_or_head, ConditionalUnet1D):
        return policy_or_head
    raise TypeError(f"expected a Policy or a ConditionalUnet1D, got {type(policy_or_head).__name__}")


def distill_head(
    policy_or_head: Policy | ConditionalUnet1D,
    conditions: torch.Tensor,
    steps: int,
    teacher_steps: int = 10,
    method: str = DEFAULT_METHOD,
    seed: int = 0,
    iterations: int = DEFAULT_ITERATIONS,
    holdout: float = 0.2,
    checkpoint_dir: Path | str | None = None,
    resume: bool = False,
    progress: bool = True,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    learning_rate: float = DEFAULT_LEARNING_RATE,
    device: str | None = None,
    checkpoint_every_s: float = 300.0,
    checkpoint_every_steps: int | None = None,
    fidelity_noises: int = 8,
    fidelity_samples: int = 64,
    fidelity_conditions: int = 16,
) -> DistillResult:
    """Distill the head of `policy_or_head` (sampled as the reference does: DDIM, the first
    `teacher_steps` "leading" timesteps of 100) into a `steps`-step student of the same
    architecture, warm-started from it, trained on cached head `conditions` [N, H] (see
    `compute_conditions`) with fresh noise each step. A `holdout` fraction of the conditions is
    kept out of training for the fidelity report. Works unchanged under torchrun (one DDP
    process per rank; only rank 0 writes checkpoints). The caller's head is not modified.
    """
    head = _head_of(policy_or_head)
    validate_steps(steps, teacher_steps)
    validate_head(head.cfg)
    check_method(method)
    if iterations < 1 or batch_size < 1 or learning_rate <= 0:
        raise EdgeError("iterations and batch size must be at least 1 and the learning rate positive")
    width = head.combine.out_features
    if conditions.dim() != 2 or conditions.shape[1] != width:
        raise EdgeError(f"conditions must be [N, {width}] head conditions, got {list(conditions.shape)}")
    if not bool(torch.isfinite(conditions).all()):
        raise EdgeError("conditions contain NaN or infinite values")
    conditions = conditions.detach().to("cpu", torch.float32)
    train_idx, held_idx = split_conditions(conditions.shape[0], holdout, seed)

    world = distributed.join(device)
    teacher = copy.deepcopy(head).float().to(world.device).eval().requires_grad_(False)
    conditions_sha = distributed.fingerprint(conditions)
    settings = RunSettings(
        method=method, steps=steps, teacher_steps=teacher_steps,
        student_timesteps=rounds_for(method, steps, teacher_steps)[-1].student_timesteps, iterations=iterations,
        batch_size=batch_size, learning_rate=learning_rate, seed=seed, holdout=holdout,
        world_size=world.size, conditions_sha256=conditions_sha, teacher_sha256=module_sha256(teacher),
    )
    distributed.require_same(world, "calibration conditions", conditions_sha)
    distributed.require_same(world, "settings", hashlib.sha256(settings.model_dump_json().encode()).hexdigest())

    outcome = train_student(
        teacher, conditions[train_idx], settings, world,
        checkpoint_dir=Path(checkpoint_dir) if checkpoint_dir is not None else None, resume=resume,
        checkpoint_every_s=checkpoint_every_s, checkpoint_every_steps=checkpoint_every_steps, progress=progress,
    )
    student = outcome.student.eval().requires_grad_(False)
    fidelity = None
    if world.is_main:
        fidelity = measure_fidelity(
            teacher, leading_timesteps(teacher_steps), student, settings.student_timesteps, conditions[held_idx],
            seed=seed, noises_per_condition=fidelity_noises, samples_per_condition=fidelity_samples,
            max_conditions=fidelity_conditions,
        )
    fidelity = distributed.broadcast_object(world, fidelity)
    student = student.cpu()
    report = DistillReport(
        method=method, steps=steps, teacher_steps=teacher_steps, timesteps=settings.student_timesteps,
        teacher_timesteps=leading_timesteps(teacher_steps),
        rounds=[r.student_timesteps for r in rounds_for(method, steps, teacher_steps)],
        sampler=DDIMSampler(settings.student_timesteps).describe(),
        iterations=iterations, batch_size=batch_size, learning_rate=learning_rate, seed=seed, world_size=world.size,
        calibration={
            "conditions": int(conditions.shape[0]), "train": len(train_idx), "holdout": len(held_idx),
            "holdout_fraction": holdout, "conditions_sha256": conditions_sha,
        },
        teacher_sha256=settings.teacher_sha256, student_sha256=module_sha256(student),
        final_loss=outcome.history[-1][1] if outcome.history else None, loss_history=outcome.history,
        resumed_from_step=outcome.resumed_from_step, elapsed_s=round(outcome.elapsed_s, 2), fidelity=fidelity,
    )
    return DistillResult(student, report)


def render_summary(manifest: dict) -> str:
    """A plain-text table of a distillation report (the CLI's final output)."""
    f = manifest["fidelity"]
    p, b, d = f["paired"], f["baseline_paired"], f["distributional"]
    rows = [
        ("method", manifest["method"]),
        ("steps", f"{manifest['teacher_steps']} → {manifest['steps']}  timesteps {manifest['timesteps']}"),
        ("rounds", " → ".join(str(len(r)) for r in manifest["rounds"])),
        ("training", f"{manifest['iterations']} it × batch {manifest['batch_size']} × {manifest['world_size']} rank(s), "
                     f"{manifest['elapsed_s']:.0f} s, final loss {manifest['final_loss']:.4g}"),
        ("calibration", f"{manifest['calibration']['train']} train / {manifest['calibration']['holdout']} held out"),
    ]
    lines = [f"{k:<12} {v}" for k, v in rows]
    lines += [
        "",
        f"{'fidelity (held out, normalized units)':<40} {'student':>10} {'warm start':>11} {'floor':>9}",
        f"{'paired RMSE':<40} {p['rmse']:>10.4f} {b['rmse']:>11.4f} {'':>9}",
        f"{'paired max abs error':<40} {p['max_abs_error']:>10.4f} {b['max_abs_error']:>11.4f} {'':>9}",
        f"{'mean gap':<40} {d['mean_gap']:>10.4f} {'':>11} {d['floor_mean_gap']:>9.4f}",
        f"{'covariance gap (relative)':<40} {d['covariance_gap']:>10.4f} {'':>11} {d['floor_covariance_gap']:>9.4f}",
        f"{'MMD':<40} {d['mmd']:>10.4f} {'':>11} {d['floor_mmd']:>9.4f}",
        f"{'sliced Wasserstein':<40} {d['sliced_wasserstein']:>10.4f} {'':>11} {d['floor_sliced_wasserstein']:>9.4f}",
    ]
    return "\n".join(lines)


def load_report(path: Path) -> DistillReport:
    """Read a report back from a distill.json."""
    return DistillReport.model_validate(json.loads(Path(path).read_text())["distillation"])
