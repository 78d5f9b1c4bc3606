"""Fidelity of a bundle against the fp32 unquantized policy, on held-out observations.

Figures (all in the head's normalized [−1, 1] action space):
- condition cosine: the head's per-observation condition, bundle vs fp32 backbone;
- backbone action RMSE / max abs: same head, same sampler, same noise — what quantizing the
  backbone cost;
- end-to-end action RMSE / max abs: the bundle vs the fp32 teacher at its trained step count,
  from the same noise — what the user gets (includes head distillation).
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

import numpy as np
import torch

from edge.bundle import BundlePredictor
from edge.config import Profile
from edge.errors import EdgeError
from edge.policy.components import split_prompt
from edge.policy.policy import Policy
from edge.policy.prompt import IMAGE_TOKEN_INDEX
from quantize.calibration import Observation
from quantize.progress import Stage


def _cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.nn.functional.cosine_similarity(a.flatten(), b.flatten(), dim=0))


@torch.inference_mode()
def reference_condition(policy: Policy, obs: Observation) -> torch.Tensor:
    prepared = policy.prepare(obs.images, obs.state, obs.instruction)
    hidden = policy.network.backbone(prepared.input_ids, prepared.pixel_values)
    return policy.network.embed_out.encode_condition(hidden, prepared.states)


def measure_fidelity(policy: Policy, predictor: BundlePredictor, held_out: list[Observation], seed: int = 0,
                     progress: Stage | None = None) -> dict:
    """Compare the bundle with the fp32 policy on `held_out` with fixed noise per observation
    (`progress` is advanced once per observation)."""
    cosines, bb_err, e2e_err, timings = [], [], [], {}
    teacher = policy.sampler()
    for i, obs in enumerate(held_out):
        noise = torch.randn((1, predictor.chunk_size, predictor.action_dim), generator=torch.Generator().manual_seed(seed + i))
        ref_cond = reference_condition(policy, obs)
        with torch.inference_mode():
            bundle_cond = predictor.condition(obs.images, obs.state, obs.instruction)
            # The bundle's own head (whatever its engine) on the reference condition: the
            # difference to the bundle's chunk is the backbone's alone.
            same_head = predictor.head_runner(ref_cond, noise).float().cpu()
            teacher_chunk = policy.network.sample(ref_cond, noise, teacher)
        prediction = predictor.predict(obs.images, obs.state, obs.instruction, noise=noise)
        ours = torch.from_numpy(prediction.normalized)
        cosines.append(_cosine(ref_cond, bundle_cond))
        bb_err.append((ours - same_head[0]).numpy())
        e2e_err.append((ours - teacher_chunk[0]).numpy())
        for stage, ms in prediction.timings_ms.items():
            timings.setdefault(stage, []).append(ms)
        if progress is not None:
            progress.advance()
    bb, e2e = np.stack(bb_err), np.stack(e2e_err)
    return {
        "observations": len(held_out),
        "condition_cosine_mean": float(np.mean(cosines)),
        "condition_cosine_min": float(np.min(cosines)),
        "backbone_action_rmse": float(np.sqrt(np.mean(bb**2))),
        "backbone_action_max_abs": float(np.max(np.abs(bb))),
        "action_rmse": float(np.sqrt(np.mean(e2e**2))),
        "action_max_abs": float(np.max(np.abs(e2e))),
        "reference": f"fp32 policy, DDIM {teacher.steps} steps (timesteps {teacher.timesteps.tolist()})",
        "latency_ms_median": {k: statistics.median(v) for k, v in timings.items()},
    }


def prompt_fits(policy: Policy, instruction: str, budget: int) -> bool:
    ids = policy.tokenizer.encode_instruction(instruction)
    try:
        split_prompt(ids, IMAGE_TOKEN_INDEX, budget, policy.config.pad_token_id)
    except ValueError:
        return False
    return True


class FidelityRefused(EdgeError):
    """The bundle's end-to-end action error is above the gate: no bundle was written."""


@dataclass(frozen=True)
class FidelityGate:
    """The largest end-to-end normalized action RMSE a bundle may have to be written.

    `source` says where the limit came from (the profile's `model.fidelity_max_rmse`, or
    --max-action-rmse); `accept` (--accept-fidelity) writes a bundle above it, and says so."""

    max_action_rmse: float
    source: str
    accept: bool = False

    @classmethod
    def for_profile(cls, profile: Profile, max_action_rmse: float | None, accept: bool) -> "FidelityGate":
        if max_action_rmse is not None:
            return cls(max_action_rmse, "--max-action-rmse", accept)
        return cls(profile.model.fidelity_max_rmse, f"profile {profile.name} (model.fidelity_max_rmse)", accept)

    def judge(self, fidelity: dict) -> dict:
        """The verdict recorded in the manifest; raises FidelityRefused when the bundle fails
        the gate and the override was not given."""
        rmse, max_abs = fidelity["action_rmse"], fidelity["action_max_abs"]
        passed = rmse <= self.max_action_rmse
        if not passed and not self.accept:
            raise FidelityRefused(
                f"end-to-end action RMSE {rmse:.4f} (max abs {max_abs:.3f}, normalized [-1, 1]) exceeds the "
                f"fidelity gate {self.max_action_rmse} of {self.source}: no bundle written "
                f"(--accept-fidelity writes it anyway; --max-action-rmse X sets another gate)")
        return {"max_action_rmse": self.max_action_rmse, "source": self.source, "action_rmse": rmse, "passed": passed,
                "verdict": "passed" if passed else "FAILED, written with --accept-fidelity"}
