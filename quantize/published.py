"""The bundle builder `tinyvla-edge profile --model` uses (edge.profiling.published): a random-weight
training output quantized under a profile, with a token distillation of the head to the profile's
K steps (its latency is that of any K-step head; its actions are random anyway)."""

from __future__ import annotations

from pathlib import Path

# Enough to produce a K-step head of the right shape; distilling random weights buys nothing (so
# the bundle is written whatever its fidelity: only its latency and power are measured).
DISTILL_ITERATIONS = 1
# Min/max ranges: the percentile calibrator also builds histograms of every activation of every
# frame, which for CLIP-L/336 ran this 24 GB machine out of memory (TinyVLA-S).
CALIBRATION_METHOD = "minmax"


def build_profile_bundle(training_output: Path, profile: str, calibration: Path, bundle: Path) -> None:
    """Quantize `training_output` under `profile` (name or YAML path) into `bundle`, int8 calibrated on
    `calibration`."""
    from quantize.pipeline import quantize_training_output

    quantize_training_output(checkpoint=training_output, profile=profile, output=bundle,
                             calibration=calibration, calibration_method=CALIBRATION_METHOD,
                             distill_iterations=DISTILL_ITERATIONS, accept_fidelity=True, progress=True)


def recipe() -> str:
    """How these bundles are built (the demo's tag: the same export and int8 recipe)."""
    from quantize.demo import bundle_recipe

    return f"{bundle_recipe()}-d{DISTILL_ITERATIONS}-{CALIBRATION_METHOD}"

