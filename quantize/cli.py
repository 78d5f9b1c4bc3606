"""The commands the quantization stage adds to `tinyvla-edge` (entry point `tinyvla_edge.cli`).

`edge.cli` loads them at start-up, so the device-side package never imports `quantize`. Each
command is thin: parse arguments, call one function, print its result with the CLI's `emit`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Literal, Optional

import typer

from edge.cli_params import check_profile, complete_profile
from edge.config import Precision
from edge.errors import require
from quantize.distill.methods import METHODS
from quantize.int8 import CALIBRATION_METHODS

# Choices checked while the command line is parsed (before anything heavy is imported).
CalibrationMethod = Literal[CALIBRATION_METHODS]
DistillMethod = Literal[METHODS]


def register(app: typer.Typer, emit: Callable) -> None:
    """Add `quantize`, `distill` and `demo` to the CLI app, and provide `profile --model` its bundle builder."""
    from edge.profiling.published import BundleBuilder, provide_bundle_builder
    from quantize.published import build_profile_bundle, recipe

    provide_bundle_builder(BundleBuilder(build=build_profile_bundle, recipe=recipe))

    @app.command()
    def quantize(
        checkpoint: Path = typer.Argument(..., help="TinyVLA training output (root or checkpoint-N/) or a native policy."),
        profile: str = typer.Option(..., "--profile", callback=check_profile, autocompletion=complete_profile,
                                    help="Deployment profile name or YAML path."),
        output: Path = typer.Option(..., "--output", help="Bundle directory to write (its log: OUTPUT.quantize.log)."),
        base: Optional[Path] = typer.Option(None, "--base", help="Base VLM directory."),
        calibration: Optional[Path] = typer.Option(None, "--calibration", help="Calibration frames (tinyvla-edge capture)."),
        calibration_recording: Optional[Path] = typer.Option(None, "--calibration-recording", help="RealSense recording."),
        calibration_frames: Optional[int] = typer.Option(
            None, "--calibration-frames", min=3, max=100_000,
            help="Frames to use: played from --calibration-recording (default 16), the first N of --calibration (default all)."),
        precision: Optional[Precision] = typer.Option(None, "--precision", help="Backbone precision (default: the profile's)."),
        head_steps: Optional[int] = typer.Option(
            None, "--head-steps", min=1, max=100, help="DDIM steps of the head (distilled if fewer than the teacher's)."),
        distill_iterations: Optional[int] = typer.Option(
            None, "--distill-iterations", min=1, max=1_000_000, help="Optimizer steps of the head distillation (default 2000)."),
        max_action_rmse: Optional[float] = typer.Option(
            None, "--max-action-rmse", min=0.0, max=2.0,
            help="Fidelity gate: no bundle above this end-to-end normalized RMSE (default: the profile's model.fidelity_max_rmse)."),
        accept_fidelity: bool = typer.Option(
            False, "--accept-fidelity", help="Write the bundle even above the fidelity gate (the report says so)."),
        calibration_method: CalibrationMethod = typer.Option("percentile", "--calibration-method", help="int8 activation ranges."),
        force: bool = typer.Option(False, "--force", help="Replace an existing output directory."),
        as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
    ) -> None:
        """Training output -> bundle (backbone precision + distilled head + fidelity report)."""
        from quantize.preflight import check_quantize_inputs

        check_quantize_inputs(checkpoint, profile, output, base, calibration, calibration_recording, precision, force)
        require("onnxruntime", "quantize")
        from quantize.pipeline import quantize_training_output
        from quantize.summary import render_summary

        result = quantize_training_output(
            checkpoint, profile, output, base=base, calibration=calibration, calibration_recording=calibration_recording,
            precision=precision, head_steps=head_steps, max_action_rmse=max_action_rmse,
            calibration_method=calibration_method, distill_iterations=distill_iterations,
            calibration_frames=calibration_frames, accept_fidelity=accept_fidelity, force=force, progress=not as_json,
        )
        emit(result, as_json, render_summary)

    @app.command()
    def distill(
        source: Path = typer.Argument(..., help="TinyVLA training output or native policy directory."),
        steps: int = typer.Option(..., "--steps", help="Student DDIM steps K (1 .. teacher steps − 1)."),
        teacher_steps: int = typer.Option(10, "--teacher-steps", help="The teacher's DDIM steps (the reference's 10)."),
        calibration: Optional[Path] = typer.Option(None, "--calibration", exists=True, file_okay=False,
                                                   help="Calibration directory from `capture`."),
        synthetic_calibration: Optional[int] = typer.Option(
            None, "--synthetic-calibration", help="Use N synthetic observations instead of --calibration."),
        instruction: Optional[str] = typer.Option(None, "--instruction", help="Instruction for frames without one."),
        method: Optional[DistillMethod] = typer.Option(
            None, "--method", help="Distillation method (default output-matching; docs/distillation.md)."),
        output: Optional[Path] = typer.Option(None, "--output", help="Output policy directory (default SOURCE-kK)."),
        resume: bool = typer.Option(False, "--resume", help="Continue from OUTPUT/distill-checkpoint."),
        seed: int = typer.Option(0, "--seed", help="Seed for noise, batches and the hold-out split."),
        iterations: Optional[int] = typer.Option(None, "--iterations", help="Optimizer steps (default 2000)."),
        batch_size: Optional[int] = typer.Option(None, "--batch-size", help="Batch per rank (default 64)."),
        learning_rate: Optional[float] = typer.Option(None, "--lr", help="Peak learning rate (default 1e-4)."),
        holdout: float = typer.Option(0.2, "--holdout", help="Fraction of observations held out for fidelity."),
        base: Optional[Path] = typer.Option(None, "--base", help="Base VLM directory (overrides model_base)."),
        device: Optional[str] = typer.Option(None, "--device", help="cpu or cuda (default: per rank, CUDA if present)."),
        as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
    ) -> None:
        """Distill the diffusion head to K steps (works under torchrun; rank 0 writes)."""
        from quantize.distill.command import render_result, run_distill

        result = run_distill(
            source, steps, teacher_steps=teacher_steps, calibration=calibration,
            synthetic_calibration=synthetic_calibration, instruction=instruction, method=method, output=output,
            resume=resume, seed=seed, iterations=iterations, batch_size=batch_size, learning_rate=learning_rate,
            holdout=holdout, base=base, device=device, progress=not as_json,
        )
        if result["rank"] == 0:
            emit(result, as_json, render_result)

    @app.command()
    def demo(
        ticks: int = typer.Option(300, "--ticks", help="Control ticks to run."),
        rate: Optional[float] = typer.Option(None, "--rate", help="Control rate in Hz (default: the cpu-dev profile's)."),
        as_json: bool = typer.Option(False, "--json", help="Machine-readable report."),
        keep: Optional[Path] = typer.Option(None, "--keep", help="Keep the episode and emulator logs in this directory."),
    ) -> None:
        """The whole path on embedded defaults."""
        from edge.demo import render_demo, run_demo
        from quantize.demo import build_demo_bundle, bundle_recipe

        result = run_demo(ticks=ticks, rate_hz=rate, keep=keep, say=lambda text: typer.echo(text, err=True),
                          build_bundle=build_demo_bundle, bundle_recipe=bundle_recipe())
        emit(result, as_json, render_demo)
        if not result["passed"]:
            typer.echo(f"error: demo checks failed: {', '.join(result['failed'])}", err=True)
            raise typer.Exit(1)
