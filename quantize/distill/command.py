"""`tinyvla-edge distill`: SOURCE → native policy directory with a K-step head + distill.json."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from edge.errors import EdgeError
from edge.hub import resolve_path
from edge.policy.checkpoint import load_training_output
from edge.policy.native import load_policy, save_policy
from edge.policy.policy import Policy
from quantize.distill import distributed
from quantize.distill.api import DEFAULT_BATCH_SIZE, DEFAULT_ITERATIONS, DEFAULT_LEARNING_RATE, distill_head, render_summary
from quantize.distill.conditions import compute_conditions, read_calibration, synthetic_observations
from quantize.distill.methods import DEFAULT_METHOD, check_method
from quantize.distill.schedule import validate_head, validate_steps
from quantize.progress import StageProgress

REPORT_FILE = "distill.json"
DISTILL_STAGES = ("load", "conditions", "distillation")
CHECKPOINT_DIR = "distill-checkpoint"


def load_source(source: Path, base: Path | None = None) -> tuple[str, Policy]:
    """A native policy directory (policy.json) or a TinyVLA training output (local or a Hub id)."""
    source = resolve_path(source)
    if not source.exists():
        raise EdgeError(f"path not found: {source}")
    if (source / "policy.json").is_file():
        return "policy", load_policy(source)
    if (source / "manifest.json").is_file():
        raise EdgeError(f"{source}: distilling a bundle's head is not supported yet; pass its training output")
    return "training_output", load_training_output(source, base=base)


def run_distill(
    source: Path,
    steps: int,
    teacher_steps: int = 10,
    calibration: Path | None = None,
    synthetic_calibration: int | None = None,
    instruction: str | None = None,
    method: str | None = None,
    output: Path | None = None,
    resume: bool = False,
    seed: int = 0,
    iterations: int | None = None,
    batch_size: int | None = None,
    learning_rate: float | None = None,
    holdout: float = 0.2,
    base: Path | None = None,
    device: str | None = None,
    progress: bool = True,
) -> dict:
    """Load SOURCE (training output, native policy or bundle), compute the calibration
    conditions, distill, and (rank 0) write OUTPUT: the policy with the student head and
    distill.json. Returns the report (with `output` and `rank` added)."""
    check_method(method)
    if calibration is None and not synthetic_calibration:
        raise EdgeError(
            "distillation needs calibration observations: pass --calibration DIR (from `tinyvla-edge capture`), "
            "or --synthetic-calibration N to use N synthetic observations (fidelity then only holds for those)"
        )
    if calibration is not None and synthetic_calibration:
        raise EdgeError("pass either --calibration or --synthetic-calibration, not both")
    validate_steps(steps, teacher_steps)
    output = Path(output) if output is not None else Path(f"{Path(source).name}-k{steps}")
    if not resume and (output / REPORT_FILE).exists():
        raise EdgeError(f"{output} already holds a distilled policy: choose another --output or remove it")

    world = distributed.join(device)
    stages = StageProgress("distill", DISTILL_STAGES, sys.stderr if progress and world.is_main else None)
    try:
        with stages.stage("load") as stage:
            kind, policy = load_source(Path(source), base)
            validate_head(policy.config.head)
            if calibration is not None:
                observations = read_calibration(policy, Path(calibration), instruction)
            else:
                observations = synthetic_observations(policy, int(synthetic_calibration), seed)
            stage.note(f"{kind}, {len(observations)} observations")
        with stages.stage("conditions", total=len(observations)) as stage:
            conditions = compute_conditions(policy, observations, progress=stage)
        with stages.stage("distillation") as stage:
            result = distill_head(
                policy, conditions, steps, teacher_steps=teacher_steps, method=method or DEFAULT_METHOD, seed=seed,
                iterations=iterations or DEFAULT_ITERATIONS, holdout=holdout, checkpoint_dir=output / CHECKPOINT_DIR,
                resume=resume, progress=stage, batch_size=batch_size or DEFAULT_BATCH_SIZE,
                learning_rate=learning_rate or DEFAULT_LEARNING_RATE, device=device,
            )
    finally:
        stages.close()
    report = result.to_manifest()
    report["calibration"].update(
        source=str(calibration) if calibration is not None else "synthetic",
        synthetic=calibration is None,
    )
    document = {
        "source": {"kind": kind, "path": str(source), **{k: v for k, v in policy.source.items() if k != "path"}},
        "distillation": report,
    }
    if world.is_main:
        policy.network.embed_out.load_state_dict(result.head.state_dict())
        policy.source = {**policy.source, "distillation": {
            "method": result.method, "steps": steps, "timesteps": result.timesteps, "teacher_steps": teacher_steps,
        }}
        save_policy(policy, output)
        (output / REPORT_FILE).write_text(json.dumps(document, indent=2))
    distributed.barrier(world)
    distributed.leave(world)
    return {**document, "output": str(output), "rank": world.rank}


def render_result(result: dict) -> str:
    """The CLI's text output: the summary table and where things went."""
    report = result["distillation"]
    lines = [render_summary(report), ""]
    if report["calibration"].get("synthetic"):
        lines.append("calibration: SYNTHETIC observations (fidelity holds for those only; use --calibration for a real report)")
    lines.append(f"wrote {result['output']} (sample with DDIM timesteps {report['timesteps']}; report in {REPORT_FILE})")
    return "\n".join(lines)
