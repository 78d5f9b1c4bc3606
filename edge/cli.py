"""The `tinyvla-edge` command line. Thin: parse arguments, call one function, print its result.

Each command's logic lives in the module that owns it. User mistakes surface as one line on
stderr and a non-zero exit code, never a traceback.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer

from drivers.errors import DriverError
from edge import __version__
from edge.errors import EdgeError, NotImplementedYet

app = typer.Typer(
    name="tinyvla-edge",
    help="Run TinyVLA robot policies on NVIDIA Jetson Orin.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"tinyvla-edge {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    """Run TinyVLA robot policies on NVIDIA Jetson Orin."""


def emit(result: dict, as_json: bool, render) -> None:
    """Print a command's result: JSON for machines, `render(result)` text for people."""
    if as_json:
        typer.echo(json.dumps(result, indent=2, default=str))
    else:
        typer.echo(render(result))


def _not_yet(command: str, issue: str) -> None:
    raise NotImplementedYet(f"'{command}' is not implemented yet ({issue})")


@app.command()
def inspect(
    path: Path = typer.Argument(..., help="TinyVLA training output (root or checkpoint-N/) or a bundle."),
    base: Optional[Path] = typer.Option(None, "--base", help="Base VLM directory (overrides model_base)."),
    observation: Optional[Path] = typer.Option(None, "--observation", help="OBS.npz to run through the policy."),
    noise: Optional[Path] = typer.Option(None, "--noise", help="Initial DDIM noise (.npy, (1, chunk, action_dim))."),
    steps: Optional[int] = typer.Option(None, "--steps", help="DDIM steps (default: the policy's)."),
    output: Optional[Path] = typer.Option(None, "--output", help="OUT.npz for --observation results."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Load a training output or bundle, verify it, print its facts; optionally run one observation."""
    from edge.inspect import inspect_path, render_facts

    result = inspect_path(path, base=base, observation=observation, noise=noise, steps=steps, output=output)
    emit(result, as_json, render_facts)


@app.command()
def install() -> None:
    """Provision this Jetson (or a staged root) for a profile."""
    _not_yet("install", "Jetson provisioning issue")


@app.command()
def doctor() -> None:
    """Check that everything the runtime needs works here."""
    _not_yet("doctor", "Jetson provisioning issue")


@app.command()
def quantize(
    checkpoint: Path = typer.Argument(..., help="TinyVLA training output (root or checkpoint-N/) or a native policy."),
    profile: str = typer.Option(..., "--profile", help="Deployment profile name or YAML path."),
    output: Path = typer.Option(..., "--output", help="Bundle directory to write."),
    base: Optional[Path] = typer.Option(None, "--base", help="Base VLM directory."),
    calibration: Optional[Path] = typer.Option(None, "--calibration", help="Calibration frames (tinyvla-edge capture)."),
    calibration_recording: Optional[Path] = typer.Option(None, "--calibration-recording", help="RealSense recording."),
    precision: Optional[str] = typer.Option(None, "--precision", help="Backbone precision: fp32, fp16, bf16, int8."),
    head_steps: Optional[int] = typer.Option(None, "--head-steps", help="DDIM steps of the head (distilled if fewer than the teacher's)."),
    max_action_rmse: Optional[float] = typer.Option(None, "--max-action-rmse", help="Fail (no bundle) above this normalized RMSE."),
    calibration_method: str = typer.Option("percentile", "--calibration-method", help="int8: minmax, percentile, entropy."),
    force: bool = typer.Option(False, "--force", help="Replace an existing output directory."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Training output -> bundle (backbone precision + distilled head + fidelity report)."""
    from edge.errors import require

    require("onnxruntime", "quantize")
    from quantize.pipeline import quantize_training_output
    from quantize.summary import render_summary

    result = quantize_training_output(
        checkpoint, profile, output, base=base, calibration=calibration, calibration_recording=calibration_recording,
        precision=precision, head_steps=head_steps, max_action_rmse=max_action_rmse,
        calibration_method=calibration_method, force=force, progress=not as_json,
    )
    emit(result, as_json, render_summary)


@app.command()
def distill() -> None:
    """Distill the diffusion head to K steps."""
    _not_yet("distill", "distillation issue")


@app.command()
def capture(
    camera: list[str] = typer.Option(..., "--camera", help="Camera spec, NAME=SPEC for several (realsense[:SERIAL], recording:PATH, synthetic[:WxH@FPS])."),
    frames: int = typer.Option(30, "--frames", help="Frame sets to save."),
    output: Path = typer.Option(..., "--output", help="Directory for PNGs and frames.jsonl (docs/capture-format.md)."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Save frames from a camera or recording."""
    from drivers.capture import capture as capture_frames, render_capture_summary

    emit(capture_frames(camera, frames, output), as_json, render_capture_summary)


@app.command()
def run() -> None:
    """The control loop: bundle + cameras + arm."""
    _not_yet("run", "runtime issue")


@app.command()
def profile() -> None:
    """Latency and power of a bundle under one or more profiles."""
    _not_yet("profile", "profiling issue")


@app.command("sim-arm")
def sim_arm(
    link: Optional[Path] = typer.Option(None, "--link", help="Keep a symlink at PATH pointing to the pty."),
    dof: int = typer.Option(7, "--dof", help="Degrees of freedom (plus a gripper)."),
    space: str = typer.Option("ee", "--space", help="Action space the arm declares: ee or joint."),
    log: Optional[Path] = typer.Option(None, "--log", help="JSON-lines log of accepted targets and NAKs."),
    fault: Optional[list[str]] = typer.Option(None, "--fault", help="corrupt:P[:rx|tx] drop:P[:rx|tx] delay:S nak:P silence:S@T unplug:S@T"),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """The serial arm firmware emulator on a pseudo-terminal."""
    from drivers.sim_arm import render_sim_arm_ready, render_sim_arm_summary, serve_sim_arm

    ready = lambda info: emit(info, as_json, render_sim_arm_ready)  # noqa: E731 - printed before blocking
    summary = serve_sim_arm(dof=dof, space=space, link=link, log=log, faults=fault or (), on_ready=ready)
    emit(summary, as_json, render_sim_arm_summary)


@app.command()
def demo() -> None:
    """The whole path on embedded defaults."""
    _not_yet("demo", "runtime issue")


def main(argv: list[str] | None = None) -> int:
    """Console entry point: run the app, turning user-facing errors into one line and an exit code."""
    try:
        app(args=argv, standalone_mode=False)
    except (EdgeError, DriverError) as e:
        code = getattr(e, "exit_code", 1)
        typer.echo(f"error: {e}", err=True)
        return code
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        return 130
    except typer.Exit as e:
        return e.exit_code
    except Exception as e:
        # Usage errors from typer's bundled click: show them the click way (one line + usage).
        if hasattr(e, "show") and hasattr(e, "exit_code"):
            e.show()
            return e.exit_code
        if type(e).__name__ == "Abort":
            typer.echo("aborted", err=True)
            return 1
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main())
