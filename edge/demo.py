"""`tinyvla-edge demo`: the whole path on embedded defaults, with nothing but this repository.

1. build the tiny TinyVLA-layout training output (edge.policy.tiny);
2. record synthetic frames into a RealSense recording with the real SDK (drivers.camera.recording);
3. quantize the training output into a bundle under the `cpu-dev` profile (int8 backbone,
   calibrated on that recording; the profile's distilled K-step head);
4. run the control loop (`edge.runtime.run`) on the recording, against the firmware emulator
   on a pty, for N ticks;
5. check: the rate held (within 5 %, at most 1 % misses), every target the emulator accepted
   was within limits and max step, and shutdown left the arm safe.

Steps 1-3 are cached under $TINYVLA_EDGE_CACHE (default ~/.cache/tinyvla-edge), each marked
complete only once it finished, so a second run starts in seconds.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable

import numpy as np

from edge import __version__
from edge.errors import EdgeError, MissingDependency
from edge.runtime.audit import audit_arm_log
from edge.runtime.run import SIM_ARM, RunRequest, run_policy
from edge.runtime.safety import SafetyLimits
from edge.runtime.telemetry import render_report

CACHE_ENV = "TINYVLA_EDGE_CACHE"
PROFILE = "cpu-dev"
INSTRUCTION = "pick up the red cube"
RECORDING_FRAMES = 60  # two seconds at 30 fps, looped during the run
RECORDING_SIZE = (64, 48)  # the cpu-dev profile's camera resolution
# The demo shows the runtime, not distillation quality: a short distillation keeps the first
# (uncached) run to minutes on a small CPU. `tinyvla-edge quantize` uses the full default.
DEMO_DISTILL_ITERATIONS = 100  # 0.3 s each on a 2-core CPU
MAX_RATE_ERROR = 0.05
MAX_MISS_RATIO = 0.01
_DONE = ".complete"
# edge.policy.keymap.KEY_LAYOUT (not imported: it loads torch into the control process); a cached
# training output written under older key names would no longer load.
TRAINING_OUTPUT_LAYOUT = "tinyvla-reference-1"


def cache_dir() -> Path:
    """Where demo artifacts are kept between runs."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "tinyvla-edge")


def _cached(path: Path, build: Callable[[Path], None], say: Callable[[str], None], what: str) -> Path:
    """`path` built by `build(path)` unless a completed copy exists (a half-built one is rebuilt)."""
    if (path / _DONE).is_file():
        say(f"{what}: cached ({path})")
        return path
    shutil.rmtree(path, ignore_errors=True)
    say(f"{what}: building ({path}); cached for the next run")
    build(path)
    (path / _DONE).write_text(__version__)
    return path


def _build_training_output(directory: Path) -> None:
    from edge.policy.tiny import tiny_config, write_base_vlm, write_training_output

    cfg = tiny_config()
    base = write_base_vlm(directory / "Llava-Pythia-tiny", cfg, seed=0)
    write_training_output(directory / "llava_pythia_lora_tiny", base, cfg, seed=1)


def _build_recording(directory: Path) -> None:
    from drivers.camera.recording import record_synthetic

    directory.mkdir(parents=True, exist_ok=True)
    width, height = RECORDING_SIZE
    record_synthetic(directory / "synthetic.db3", frames=RECORDING_FRAMES, width=width, height=height, fps=30)


class DemoFailed(EdgeError):
    """The demo ran but one of its checks failed."""


def check_demo(result: dict) -> None:
    """DemoFailed (one line naming the failed checks, exit code 1) unless every check passed.

    Raise this rather than `typer.Exit(1)`: `main()` runs the app with standalone_mode=False,
    where click returns an Exit's code instead of raising it, and main() then returns 0."""
    if not result["passed"]:
        raise DemoFailed(f"demo checks failed: {', '.join(result['failed'])}")


def demo_checks(report: dict, audit) -> dict[str, bool]:
    """The demo's pass conditions, by name."""
    return {
        "rate_within_5_percent": abs(report["rate_error"]) <= MAX_RATE_ERROR,
        "misses_at_most_1_percent": report["miss_ratio"] <= MAX_MISS_RATIO,
        "accepted_targets_within_limits": audit.ok and audit.accepted > 0,
        "arm_left_safe": report["shutdown"]["arm_safe"],
        "completed": report["stop"]["reason"] == "completed",
    }


def run_demo(ticks: int = 300, rate_hz: float | None = None, keep: Path | None = None,
             say: Callable[[str], None] = lambda line: None,
             build_bundle: Callable[[Path, Path, Path], None] | None = None, bundle_recipe: str = "") -> dict:
    """Build (or reuse) the artifacts, run the loop for `ticks`, check the outcome.

    `build_bundle(training_output, bundle_dir, recording)` quantizes the tiny policy; the
    quantization stage passes it in (`quantize.demo.build_demo_bundle`), since the device side
    never imports that stage, with `bundle_recipe`, a tag of how it builds bundles: a cached
    bundle made another way is rebuilt, not reused."""
    if ticks < 2:
        raise EdgeError("the demo needs at least 2 ticks")
    cache = cache_dir() / "demo"
    training = _cached(cache / f"training-output-{TRAINING_OUTPUT_LAYOUT}", _build_training_output, say, "tiny training output")
    recording_dir = _cached(cache / "recording", _build_recording, say, "RealSense recording")
    recording = recording_dir / "synthetic.db3"

    def build_bundle_into(directory: Path) -> None:
        if build_bundle is None:
            raise MissingDependency("the demo builds its bundle with the quantization stage: pip install 'tinyvla-edge[quantize]'")
        directory.mkdir(parents=True)
        build_bundle(training / "llava_pythia_lora_tiny", directory / "bundle", recording)

    name = f"bundle-{PROFILE}" + (f"-{bundle_recipe}" if bundle_recipe else "")
    bundle = _cached(cache / name, build_bundle_into, say, f"{PROFILE} bundle") / "bundle"

    workdir = Path(keep) if keep else Path(tempfile.mkdtemp(prefix="tinyvla-demo-"))
    log_dir = workdir / "episode"
    if log_dir.exists():
        shutil.rmtree(log_dir)
    try:
        cameras = tuple(f"{name}=recording:{recording}?loop" for name in _bundle_cameras(bundle))
        request = RunRequest(bundle=bundle, cameras=cameras, arm=SIM_ARM, instruction=INSTRUCTION,
                             profile=PROFILE, rate_hz=rate_hz, max_ticks=ticks, log_dir=log_dir)
        report = run_policy(request, say=say)
        audit = audit_arm_log(log_dir / "sim-arm.jsonl", _limits_from_plan(report["plan"]))
    finally:
        if not keep:
            shutil.rmtree(workdir, ignore_errors=True)
    checks = demo_checks(report, audit)
    return {
        "passed": all(checks.values()),
        "failed": [name for name, ok in checks.items() if not ok],
        "checks": checks,
        "emulator": audit.as_dict(),
        "artifacts": {"cache": str(cache), "bundle": str(bundle), "recording": str(recording),
                      "logs": str(workdir) if keep else None},
        "report": report,
    }


def _bundle_cameras(bundle: Path) -> list[str]:
    import json

    return json.loads((bundle / "manifest.json").read_text())["camera_names"]


def _limits_from_plan(plan: dict) -> SafetyLimits:
    rows = plan["limits"]
    return SafetyLimits(
        lower=np.array([r["lower"] for r in rows]), upper=np.array([r["upper"] for r in rows]),
        max_step=np.array([r["max_step"] for r in rows]), axes=tuple(r["axis"] for r in rows),
    )


def render_demo(result: dict) -> str:
    """The cadence report, the emulator audit and the verdict."""
    audit = result["emulator"]
    lines = [
        render_report(result["report"]),
        f"emulator: {audit['accepted_targets']} targets accepted, {audit['out_of_limits']} outside limits, "
        f"{audit['oversized_steps']} steps over max, last event {audit['last_event']}",
        "checks: " + ", ".join(f"{name} {'ok' if ok else 'FAILED'}" for name, ok in result["checks"].items()),
        "demo: PASSED" if result["passed"] else "demo: FAILED",
    ]
    return "\n".join(lines)
