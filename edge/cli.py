"""The `tinyvla-edge` command line. Thin: parse arguments, call one function, print its result.

Each command's logic lives in the module that owns it. Arguments are checked while parsing
(edge.cli_params), before a command imports anything heavy. User mistakes surface as one line
on stderr and a non-zero exit code (1, usage errors included), never a traceback. `-v`/`-q` set the
log level; warnings from libraries go through the same log handler.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Literal, Optional

import typer

from drivers.errors import DriverError
from edge import __version__
from edge.cli_params import (
    ArmSpace,
    PowerSource,
    check_camera,
    check_cameras,
    check_profile,
    check_profiles,
    complete_profile,
    hide_flag_types,
    usage_error_line,
)
from edge.errors import EdgeError, first_invalid_field
from edge.profiling.published import PUBLISHED_MODELS

PROG = "tinyvla-edge"
PublishedModel = Literal[PUBLISHED_MODELS]  # type: ignore[valid-type]  (the published sizes)

app = typer.Typer(
    name="tinyvla-edge",
    help="Run TinyVLA robot policies on NVIDIA Jetson Orin.",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
_LOG_HANDLER_NAME = "tinyvla-edge"


def _version(value: bool) -> None:
    if value:
        typer.echo(f"tinyvla-edge {__version__}")
        raise typer.Exit()


def configure_logging(verbose: int = 0, quiet: bool = False) -> None:
    """One rich handler on stderr for the root logger: warnings by default, -v info, -vv debug,
    -q errors only. `warnings.warn` from any library is routed into it instead of printed raw."""
    from rich.console import Console
    from rich.logging import RichHandler

    if verbose and quiet:
        raise typer.BadParameter("-v and -q contradict each other; pass one", param_hint="'-v' / '-q'")
    level = logging.ERROR if quiet else {0: logging.WARNING, 1: logging.INFO}.get(verbose, logging.DEBUG)
    root = logging.getLogger()
    for handler in [h for h in root.handlers if h.get_name() == _LOG_HANDLER_NAME]:
        root.removeHandler(handler)  # main() may run several times in one process (tests)
    handler = RichHandler(console=Console(stderr=True), show_time=verbose > 0, show_path=verbose > 1,
                          rich_tracebacks=False, markup=False)
    handler.set_name(_LOG_HANDLER_NAME)
    root.addHandler(handler)
    root.setLevel(level)
    logging.captureWarnings(True)


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
    verbose: int = typer.Option(0, "-v", "--verbose", count=True, help="More log output: -v info, -vv debug."),
    quiet: bool = typer.Option(False, "-q", "--quiet", help="Log errors only."),
) -> None:
    """Run TinyVLA robot policies on NVIDIA Jetson Orin."""
    configure_logging(verbose, quiet)


def emit(result: dict, as_json: bool, render) -> None:
    """Print a command's result: JSON for machines, `render(result)` text for people."""
    if as_json:
        typer.echo(json.dumps(result, indent=2, default=str))
    else:
        typer.echo(render(result))


@app.command()
def inspect(
    path: Path = typer.Argument(..., help="TinyVLA training output (root or checkpoint-N/) or a bundle."),
    base: Optional[Path] = typer.Option(None, "--base", help="Base VLM directory (overrides model_base)."),
    observation: Optional[Path] = typer.Option(None, "--observation", exists=True, dir_okay=False,
                                               help="OBS.npz to run through the policy."),
    noise: Optional[Path] = typer.Option(None, "--noise", exists=True, dir_okay=False,
                                         help="Initial DDIM noise (.npy, (1, chunk, action_dim))."),
    steps: Optional[int] = typer.Option(None, "--steps", help="DDIM steps (default: the policy's)."),
    output: Optional[Path] = typer.Option(None, "--output", help="OUT.npz for --observation results."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Load a training output or bundle, verify it, print its facts; optionally run one observation."""
    from edge.hub import check_source

    check_source(path, "path")  # before the model code's imports (seconds)
    from edge.inspect import inspect_path, render_facts

    result = inspect_path(path, base=base, observation=observation, noise=noise, steps=steps, output=output)
    emit(result, as_json, render_facts)


@app.command()
def install(
    profile: Optional[str] = typer.Option(None, "--profile", callback=check_profile, autocompletion=complete_profile,
                                          help="Profile name or YAML path (default: this device's)."),
    user: Optional[str] = typer.Option(None, "--user", help="Non-root user the service runs as (default: $SUDO_USER)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the plan (file contents, diffs, commands); change nothing."),
    root: Optional[Path] = typer.Option(None, "--root", help="Stage into this root tree; record commands instead of running them."),
    yes: bool = typer.Option(False, "--yes", help="Consent to removing brltty and disabling ModemManager."),
    index_url: Optional[str] = typer.Option(None, "--index-url", help="pip index for JetPack wheels ({platform}/{cuda_tag} filled in)."),
    arm_serial: Optional[str] = typer.Option(None, "--arm-serial", help="USB serial number of the arm's adapter (stable /dev/tinyvla-arm)."),
    enable_service: Optional[bool] = typer.Option(None, "--enable-service/--no-enable-service", help="Enable tinyvla-edge.service at boot."),
    venv: Optional[str] = typer.Option(None, "--venv", help="Virtual environment path on the device."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Provision this Jetson (or a staged root) for a profile."""
    from edge.install import install_device, render_install

    result = install_device(profile, user=user, dry_run=dry_run, root=root, yes=yes, index_url=index_url,
                            arm_serial=arm_serial, enable_service=enable_service, venv=venv)
    emit(result, as_json, render_install)


@app.command()
def doctor(
    profile: Optional[str] = typer.Option(None, "--profile", callback=check_profile, autocompletion=complete_profile,
                                          help="Profile to check against (default: the installed one)."),
    camera: Optional[str] = typer.Option(None, "--camera", callback=check_camera,
                                         help="Camera spec to open and stream for 2 s."),
    arm: Optional[str] = typer.Option(None, "--arm", help="Serial port of the arm: handshake, declared facts, reply time vs the spec and the rate."),
    conformance: bool = typer.Option(False, "--conformance", help="With --arm: the full protocol conformance check (moves one axis: bench only)."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Check that everything the runtime needs works here; exit 1 if any check fails."""
    from edge.doctor import render_doctor, run_doctor

    report = run_doctor(profile, camera=camera, arm=arm, arm_conformance=conformance)
    emit(report, as_json, render_doctor)
    if not report["ok"]:
        raise typer.Exit(1)


@app.command()
def capture(
    camera: list[str] = typer.Option(..., "--camera", callback=check_cameras, metavar="<spec>",
                                     help="Camera spec, NAME=SPEC for several (realsense[:SERIAL], recording:PATH, synthetic[:WxH@FPS])."),
    frames: int = typer.Option(30, "--frames", help="Frame sets to save."),
    output: Path = typer.Option(..., "--output", help="Directory for PNGs and frames.jsonl (docs/capture-format.md)."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Save frames from a camera or recording."""
    from drivers.camera.capture import capture as capture_frames, render_capture_summary

    emit(capture_frames(camera, frames, output), as_json, render_capture_summary)


@app.command()
def run(
    bundle: Path = typer.Argument(..., help="Bundle directory (or a TinyVLA training output, run in torch fp32)."),
    base: Optional[Path] = typer.Option(None, "--base", help="Base VLM directory of a training output (overrides model_base)."),
    camera: list[str] = typer.Option(..., "--camera", callback=check_cameras, metavar="<spec>",
                                     help="Camera SPEC or NAME=SPEC, once per bundle camera."),
    arm: str = typer.Option(..., "--arm", help="Serial port of the arm, or 'sim' for the firmware emulator."),
    instruction: str = typer.Option(..., "--instruction", help="What the robot should do."),
    profile_name: Optional[str] = typer.Option(None, "--profile", callback=check_profile, autocompletion=complete_profile,
                                               help="Deployment profile (default: the bundle's)."),
    rate: Optional[float] = typer.Option(None, "--rate", help="Control rate in Hz (default: the profile's)."),
    duration: Optional[float] = typer.Option(None, "--duration", help="Seconds to run (default: until Ctrl-C)."),
    ticks: Optional[int] = typer.Option(None, "--ticks", help="Stop after this many ticks."),
    log: Optional[Path] = typer.Option(None, "--log", help="Write an episode log to this directory."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Everything but sending targets (heartbeats only)."),
    clear_estop: bool = typer.Option(False, "--clear-estop", help="Release an ESTOP latched on the arm before running."),
    inference_thread: bool = typer.Option(False, "--inference-thread",
                                          help="Run the model in a thread of the control process instead of its own "
                                               "process (debugging; the model then delays ticks)."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable report."),
) -> None:
    """The control loop: bundle + cameras + arm."""
    from edge.runtime.run import RunRequest, check_outcome, run_policy
    from edge.runtime.telemetry import render_report

    request = RunRequest(bundle=bundle, cameras=tuple(camera), arm=arm, instruction=instruction,
                         profile=profile_name, rate_hz=rate, duration_s=duration, max_ticks=ticks,
                         log_dir=log, dry_run=dry_run, clear_estop=clear_estop, inference_process=not inference_thread,
                         base=base)
    report = run_policy(request, say=lambda text: typer.echo(text, err=True))
    try:
        emit(report, as_json, render_report)
    finally:  # even when stdout cannot be written (a full disk), the arm's safety is told
        check_outcome(report)  # RunStopped (exit 3) after an ESTOP or an arm not confirmed safe


@app.command()
def profile(
    bundle: Optional[Path] = typer.Argument(None, help="Bundle directory (or a training output, run in torch fp32); "
                                                       "without one, a random-weight bundle of --model is profiled."),
    base: Optional[Path] = typer.Option(None, "--base", help="Base VLM directory of a training output (overrides model_base)."),
    profile_names: list[str] = typer.Option([], "--profile", callback=check_profiles, autocompletion=complete_profile,
                                            metavar="<name|path>",
                                            help="Deployment profile; repeat to compare several."),
    model: Optional[PublishedModel] = typer.Option(None, "--model", help="Without a BUNDLE: the published size to profile with "
                                                                        "random weights (default tinyvla-s)."),
    ticks: int = typer.Option(50, "--ticks", help="Measured ticks per profile."),
    warmup: int = typer.Option(10, "--warmup", help="Ticks run first and excluded (compilation, caches)."),
    camera: list[str] = typer.Option([], "--camera", callback=check_cameras, metavar="<spec>",
                                     help="Camera SPEC or NAME=SPEC (default: synthetic at the profile's size)."),
    arm: Optional[str] = typer.Option(None, "--arm", help="The arm the control loop drives: sim (the emulator, "
                                                         "default) or a serial port."),
    model_only: bool = typer.Option(False, "--model-only", help="Measure the synchronous model pipeline "
                                                                "(capture → predict) alone: no arm, no control rate."),
    set_power_mode: bool = typer.Option(False, "--set-power-mode", help="Switch nvpmodel mode and clocks per profile, restore after."),
    power_source: Optional[PowerSource] = typer.Option(None, "--power-source", help="Power sensor (default: best available)."),
    output: Path = typer.Option(Path("profile-report"), "--output", help="Report directory."),
    compare: list[Path] = typer.Option([], "--compare", exists=True, metavar="<profile.json>",
                                       help="Build a comparison report from earlier profile.json files."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Latency and power of a bundle under one or more profiles, with a report and plots: by default
    `run`'s start-up and control loop at each profile's rate (the deployed figures)."""
    from edge.profiling.cli_render import render_profile

    if compare:
        from edge.profiling import compare_reports

        files = compare_reports(list(compare), output)
        emit({"output": str(files.directory), "markdown": str(files.markdown), "json": str(files.json),
              "plots": [str(p) for p in files.plots], "runs": []}, as_json, render_profile)
        return
    if not profile_names:
        raise EdgeError("profile needs at least one --profile (or --compare FILES)")
    if bundle is not None and model is not None:
        raise EdgeError("pass either a BUNDLE or --model, not both")
    from edge.profiling.measure import ProfileRequest, profile_bundle, profile_published_model
    from edge.profiling.published import DEFAULT_MODEL

    request = ProfileRequest(bundle=bundle, profiles=profile_names, ticks=ticks, warmup=warmup, cameras=camera,
                             arm=arm, model_only=model_only, set_power_mode=set_power_mode,
                             power_source=power_source, base=base)
    say = lambda text: typer.echo(text, err=True)  # noqa: E731 - build progress and each run's plan
    if bundle is None:
        emit(profile_published_model(model or DEFAULT_MODEL, request, output, say), as_json, render_profile)
    else:
        emit(profile_bundle(request, output, say), as_json, render_profile)


@app.command("sim-arm")
def sim_arm(
    link: Optional[Path] = typer.Option(None, "--link", help="Keep a symlink at PATH pointing to the pty."),
    dof: int = typer.Option(7, "--dof", help="Degrees of freedom (plus a gripper)."),
    space: ArmSpace = typer.Option("ee", "--space", help="Action space the arm declares."),
    log: Optional[Path] = typer.Option(None, "--log", help="JSON-lines log of accepted targets and NAKs."),
    fault: Optional[list[str]] = typer.Option(None, "--fault", metavar="<fault>", help="corrupt:P[:rx|tx] drop:P[:rx|tx] delay:S nak:P silence:S@T unplug:S@T"),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """The serial arm firmware emulator on a pseudo-terminal."""
    from drivers.sim.sim_arm import render_sim_arm_ready, render_sim_arm_summary, serve_sim_arm

    ready = lambda info: emit(info, as_json, render_sim_arm_ready)  # noqa: E731 - printed before blocking
    summary = serve_sim_arm(dof=dof, space=space, link=link, log=log, faults=fault or (), on_ready=ready)
    emit(summary, as_json, render_sim_arm_summary)


@app.command()
def serve(
    bundle: Path = typer.Argument(..., help="Bundle directory (or a TinyVLA training output, run in torch fp32)."),
    port: int = typer.Option(8000, "--port", help="TCP port (0: any free port)."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on; anything but localhost exposes the policy."),
) -> None:
    """Serve a policy over a websocket (msgpack + numpy) for other processes: docs/python-api.md."""
    from edge.errors import require

    for module in ("websockets", "msgpack"):
        require(module, "serve")
    from edge.serve.server import serve_bundle

    serve_bundle(bundle, host=host, port=port, say=lambda text: typer.echo(text, err=True))


@app.command()
def export(
    log: Path = typer.Argument(..., help="Episode log directory (run --log DIR)."),
    output: Optional[Path] = typer.Option(None, "--output", help="File to write (default: LOG.mcap beside LOG)."),
    fmt: str = typer.Option("mcap", "--format", help="Output format: mcap (Foxglove, the mcap tools and readers)."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Convert an episode log into a file other tools open: docs/episode-log.md."""
    from edge.runtime.export import export_log, render_export

    emit(export_log(log, output, fmt), as_json, render_export)


@app.command()
def push(
    bundle: Path = typer.Argument(..., help="Bundle directory (verified before anything is sent)."),
    repo: str = typer.Argument(..., help="Hub repo: org/repo[@branch][:subdir]."),
    private: bool = typer.Option(False, "--private", help="Create the repo private if it does not exist."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Upload a verified bundle to the Hugging Face Hub, its report.md as the model card: docs/hub.md."""
    from edge.hub_push import push_bundle, render_push

    emit(push_bundle(bundle, repo, private=private), as_json, render_push)


def register_plugins() -> None:
    """Add the commands other parts of the distribution contribute (entry-point group
    `tinyvla_edge.cli`): the quantization stage adds `quantize`, `distill` and `demo`. The device
    side never imports the quantization stage; a device install without it lacks those commands."""
    from importlib.metadata import entry_points

    for entry in entry_points(group="tinyvla_edge.cli"):
        entry.load()(app, emit)


register_plugins()


def main(argv: list[str] | None = None) -> int:
    """Console entry point: run the app, turning user-facing errors into one line and an exit code."""
    command = typer.main.get_command(app)
    hide_flag_types(command)
    try:
        # Outside standalone mode click returns (not raises) the code of a typer.Exit.
        code = command.main(args=argv, prog_name=PROG, standalone_mode=False)
        return code if isinstance(code, int) else 0
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
        return _report_other(e)


def _report_other(error: Exception) -> int:
    """Usage errors, aborts and pydantic validation errors as one line; anything else is a bug."""
    if hasattr(error, "format_message") and hasattr(error, "exit_code"):  # typer's bundled click
        line = usage_error_line(error) if hasattr(error, "ctx") else f"error: {error.format_message()}"
        typer.echo(line, err=True)
        # A bad argument is a refusal like any other (the documented 1), not click's usage code 2.
        return 1 if error.exit_code == 2 else error.exit_code
    if type(error).__name__ == "Abort":
        typer.echo("aborted", err=True)
        return 1
    if type(error).__name__ == "ValidationError" and callable(getattr(error, "errors", None)):
        typer.echo(f"error: {first_invalid_field(error)}", err=True)
        return 1
    raise error


if __name__ == "__main__":
    sys.exit(main())
