"""The demo's bundle: the tiny training output quantized under the `cpu-dev` profile, with int8
calibration frames played from the demo's RealSense recording and the head distilled to the
profile's K."""

from __future__ import annotations

from pathlib import Path

from edge import demo
from quantize.pipeline import quantize_training_output


def build_demo_bundle(training_output: Path, bundle: Path, recording: Path) -> None:
    """Write the demo bundle (called by `edge.demo.run_demo` when it is not cached)."""
    quantize_training_output(
        checkpoint=training_output, profile=demo.PROFILE, output=bundle, calibration_recording=recording,
        distill_iterations=demo.DEMO_DISTILL_ITERATIONS, progress=False,
    )
