"""The demo's bundle: the tiny training output quantized under the `cpu-dev` profile, with int8
calibration frames played from the demo's RealSense recording and the head distilled to the
profile's K."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from edge import demo
from edge.policy.keymap import KEY_LAYOUT
from edge.config import load_profile
from quantize.int8 import RECIPE
from quantize.onnx_export import EXPORT_RECIPE
from quantize.pipeline import quantize_training_output


def bundle_recipe() -> str:
    """A short tag of how the demo bundle is built, so a cache from an older recipe is rebuilt."""
    recipe = {"keys": KEY_LAYOUT, "export": EXPORT_RECIPE, "int8": RECIPE, "distill_iterations": demo.DEMO_DISTILL_ITERATIONS,
              "profile": load_profile(demo.PROFILE).model_dump(mode="json")}
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:8]


def build_demo_bundle(training_output: Path, bundle: Path, recording: Path) -> None:
    """Write the demo bundle (called by `edge.demo.run_demo` when it is not cached). Its random-weight
    head distills poorly in the demo's budget, so the fidelity gate is overridden: the demo shows
    the path, not a policy."""
    quantize_training_output(
        checkpoint=training_output, profile=demo.PROFILE, output=bundle, calibration_recording=recording,
        distill_iterations=demo.DEMO_DISTILL_ITERATIONS, accept_fidelity=True, progress=False,
    )
