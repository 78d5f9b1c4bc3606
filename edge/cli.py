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
def quantize() -> None:
    """Training output -> bundle (backbone precision + distilled head + fidelity report)."""
    _not_yet("quantize", "quantization issue")


@app.command()
def distill() -> None:
    """Distill the diffusion head to K steps."""
    _not_yet("distill", "distillation issue")


@app.command()
def capture() -> None:
    """Save frames from a camera or recording."""
    _not_yet("capture", "drivers issue")


@app.command()
def run() -> None:
    """The control loop: bundle + cameras + arm."""
    _not_yet("run", "runtime issue")


@app.command()
def profile() -> None:
    """Latency and power of a bundle under one or more profiles."""
    _not_yet("profile", "profiling issue")


@app.command("sim-arm")
def sim_arm() -> None:
    """The serial arm firmware emulator on a pseudo-terminal."""
    _not_yet("sim-arm", "drivers issue")


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
