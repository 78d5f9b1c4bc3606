"""Head conditions from calibration observations, computed once and cached.

A condition is what the head's front-end makes of one observation: the backbone's hidden states
pooled, normalized, joined with the normalized robot state and projected ([H] per observation).
It does not depend on the denoising step, so distillation computes it once per observation (with
whatever backbone the policy has, quantized or not) and draws fresh noise against it each step.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from edge.errors import EdgeError
from edge.policy.policy import Policy
from quantize.calibration import Observation, read_calibration_dir
from quantize.progress import Stage

MIN_TRAIN = 4
MIN_HOLDOUT = 2
SYNTHETIC_INSTRUCTIONS = (
    "pick up the red cube",
    "open the top drawer",
    "push the button",
    "place the block in the bowl",
)


@torch.inference_mode()
def compute_conditions(policy: Policy, observations: list[Observation], progress: Stage | None = None) -> torch.Tensor:
    """Run each observation through the policy's backbone and the head's `encode_condition`:
    the cached head conditions [N, H] (float32, CPU). `progress` advances once per observation."""
    network = policy.network
    out = []
    for images, state, instruction in observations:
        obs = policy.prepare(images, state, instruction)
        hidden = network.backbone(obs.input_ids, obs.pixel_values)
        out.append(network.embed_out.encode_condition(hidden, obs.states).float().cpu())
        if progress is not None:
            progress.advance()
    if not out:
        raise EdgeError("no calibration observations")
    return torch.cat(out)


def split_conditions(count: int, holdout: float, seed: int) -> tuple[list[int], list[int]]:
    """Deterministic train / held-out indices; refuses a calibration set too small to hold out
    at least MIN_HOLDOUT conditions while keeping MIN_TRAIN to train on."""
    if not 0 < holdout < 1:
        raise EdgeError(f"holdout must be a fraction between 0 and 1, got {holdout}")
    held = math.ceil(holdout * count)
    if held < MIN_HOLDOUT or count - held < MIN_TRAIN:
        needed = next(n for n in range(1, 100_000) if math.ceil(holdout * n) >= MIN_HOLDOUT and n - math.ceil(holdout * n) >= MIN_TRAIN)
        raise EdgeError(
            f"calibration has {count} observations: holding out {holdout:.0%} for the fidelity report needs at least "
            f"{needed} ({MIN_HOLDOUT}+ held out, {MIN_TRAIN}+ to train on); capture more or change the holdout"
        )
    perm = torch.randperm(count, generator=torch.Generator().manual_seed(seed)).tolist()
    return sorted(perm[held:]), sorted(perm[:held])


def camera_order(policy: Policy, directory: Path) -> list[str]:
    """The calibration's camera folders in the policy's camera order: its recorded names, else
    the folders sorted by name (TinyVLA configs usually record no names)."""
    folders = sorted(p.name for p in directory.iterdir() if p.is_dir() and any(p.glob("*.png")))
    names = list(policy.config.camera_names)
    if names:
        missing = [n for n in names if n not in folders]
        if missing:
            raise EdgeError(f"{directory}: no frames for camera(s) {', '.join(missing)} (found {', '.join(folders) or 'none'})")
        return names
    if len(folders) != policy.config.num_cameras:
        raise EdgeError(
            f"{directory}: {len(folders)} camera folder(s) with PNG frames ({', '.join(folders) or 'none'}), "
            f"the policy takes {policy.config.num_cameras}"
        )
    return folders


def read_calibration(policy: Policy, directory: Path, instruction: str | None = None) -> list[Observation]:
    """Observations from a `tinyvla-edge capture` directory (read as quantize reads it). Frames
    without an observations.jsonl line use `instruction` (required then) and the policy's
    example state (or its state mean)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise EdgeError(f"calibration directory not found: {directory}")
    default_state = np.asarray((policy.stats.example_qpos or [policy.stats.qpos_mean])[0], dtype=np.float32)
    return read_calibration_dir(directory, camera_order(policy, directory), default_state,
                                instruction=instruction).observations


def synthetic_observations(policy: Policy, count: int, seed: int = 0) -> list[Observation]:
    """`count` deterministic stand-in observations: smooth random images at the policy's input
    size, states drawn from its normalization statistics, a few instructions. Distilling on these
    matches the teacher only where real observations look like them: use real calibration."""
    rng = np.random.default_rng(seed)
    size = policy.config.vision.image_size
    mean, std = np.asarray(policy.stats.qpos_mean), np.asarray(policy.stats.qpos_std)
    out = []
    for i in range(count):
        images = [_smooth_image(rng, size) for _ in range(policy.config.num_cameras)]
        state = (mean + std * rng.standard_normal(mean.shape)).astype(np.float32)
        out.append(Observation(images, state, SYNTHETIC_INSTRUCTIONS[i % len(SYNTHETIC_INSTRUCTIONS)]))
    return out


def _smooth_image(rng: np.random.Generator, size: int) -> np.ndarray:
    """Low-frequency colour blobs (an 8×8 random grid upsampled), less unlike a scene than noise."""
    from PIL import Image

    grid = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
    return np.asarray(Image.fromarray(grid).resize((size, size), resample=Image.BILINEAR))
