"""`tinyvla-edge profile`: run a bundle's pipeline for N ticks per deployment profile and measure
every stage, throughput, memory and power, then write the report (edge.profiling.report).

Each tick runs the whole pipeline synchronously so every stage is timed for every inference:
capture (newest frame of each camera) → preprocess → vision → language → head → postprocess →
safety (the runtime's SafetyLayer) → serial (send the target, read the state). Warm-up ticks
run first and are excluded; the power monitor samples only the measured ticks. The model stages
come from the predictor's own stage timings (synchronized on CUDA), the same ones the runtime
reports.
"""

from __future__ import annotations

import contextlib
import os
import platform
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import numpy as np

from edge.config import Profile, load_profile
from edge.errors import EdgeError
from edge.profiling.model import Environment, Memory, PowerRecord, ProfileRun, Stage, ThermalSample, Throughput, run_energy

MODEL_STAGES = (Stage.PREPROCESS, Stage.VISION, Stage.LANGUAGE, Stage.HEAD, Stage.POSTPROCESS)


@dataclass
class ProfileRequest:
    """What to measure."""

    bundle: Path | None  # None with `profile_published_model`, which builds one per profile
    profiles: list[str]
    ticks: int = 50
    warmup: int = 10
    cameras: list[str] = field(default_factory=list)  # NAME=SPEC or SPEC; default synthetic at the profile's size
    arm: str = "none"  # none | sim | serial port
    instruction: str = "pick up the object"
    set_power_mode: bool = False
    power_source: str | None = None
    base: Path | None = None  # base VLM of a training output (default: the path its config records)
    random_weights: str | None = None  # the published model a random-weight bundle has the size of


def peak_rss_mb() -> float:
    """Peak resident memory of this process (VmHWM), MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def environment(profile: Profile, load_average: tuple[float, float, float] | None = None) -> Environment:
    """Device, JetPack, power mode and clocks, engine versions: enough to reproduce a run."""
    import torch

    from edge.device.detect import detect

    info = detect()
    mode, locked = None, None
    if info.is_jetson:
        from edge.device import nvpmodel

        with contextlib.suppress(Exception):  # a device without readable nvpmodel state still profiles
            state = nvpmodel.current_mode()
            mode = state.name if state else None
        with contextlib.suppress(Exception):
            locked = nvpmodel.clocks_locked().locked
    versions = {"torch": torch.__version__}
    with contextlib.suppress(ImportError):
        import onnxruntime

        versions["onnxruntime"] = onnxruntime.__version__
    return Environment(device=info.model or info.module_name or f"{platform.machine()} {platform.processor()}".strip(), is_jetson=info.is_jetson,
                       jetpack=info.jetpack, power_mode=mode, clocks_locked=locked, engine_versions=versions,
                       python=platform.python_version(), torch=torch.__version__,
                       load_average=load_average, cpu_count=os.cpu_count())


def _camera_specs(request: ProfileRequest, profile: Profile, names: tuple[str, ...]) -> dict[str, str]:
    if request.cameras:
        from drivers.camera import parse_named_specs

        specs = parse_named_specs(request.cameras)
        missing = [n for n in names if n not in specs]
        if missing and len(specs) == len(names):
            specs = dict(zip(names, specs.values()))
        elif missing:
            raise EdgeError(f"no --camera for bundle camera(s) {', '.join(missing)} (bundle cameras: {', '.join(names)})")
        return specs
    sizes = {c.name: c for c in profile.cameras}
    return {n: f"synthetic:{sizes[n].width}x{sizes[n].height}@{sizes[n].fps}" if n in sizes else "synthetic" for n in names}


@contextlib.contextmanager
def _arm(kind: str, profile: Profile, predictor):
    """Yield (arm, safety) or (None, None) for --arm none."""
    if kind == "none":
        yield None, None
        return
    from drivers.arm.serial_arm import SerialArm
    from drivers.sim.sim_arm import SimArm
    from edge.runtime.safety import SafetyLayer, SafetyLimits
    from edge.runtime.startup import arm_requirement

    with contextlib.ExitStack() as stack:
        port = kind
        if kind == "sim":
            need = arm_requirement(predictor)
            sim = SimArm(dof=need.axes - 1, space=need.action_space or "ee")
            port = sim.start()
            stack.callback(sim.stop)
        arm = SerialArm(port, baud=profile.arm.baud)
        info = arm.connect()
        stack.callback(arm.close)
        yield arm, SafetyLayer(SafetyLimits.combine(info, profile.arm))


def _power_context(request: ProfileRequest, profile: Profile):
    if not request.set_power_mode:
        return contextlib.nullcontext()
    from edge.device.detect import detect

    if not detect().is_jetson:
        raise EdgeError("--set-power-mode needs a Jetson (nvpmodel); this machine is not one")
    if not profile.power.mode:
        raise EdgeError(f"profile {profile.name} names no power mode to switch to")
    from edge.device.nvpmodel import switched_power

    store = Path("/var/lib/tinyvla-edge/profile-clocks.conf")
    return switched_power(profile.power.mode, lock=profile.power.lock_clocks, store_path=store)


def measure_profile(request: ProfileRequest, profile: Profile) -> ProfileRun:
    """Run the pipeline under one profile and return its measurements."""
    from drivers.camera import open_camera
    from edge.device.power import PowerMonitor, choose_power_source
    from edge.runtime.startup import load_run_predictor

    load_before = os.getloadavg()  # before our own threads add to it: the contention rule reads it
    predictor, _ = load_run_predictor(request.bundle, base=request.base)
    profile.model.check_chunk_size(predictor.chunk_size)
    names = tuple(predictor.camera_names)
    stages: dict[Stage, list[float]] = {s: [] for s in Stage}
    boundaries: list[tuple[float, float]] = []
    settle_s = 1.0 if request.set_power_mode else 0.0
    with contextlib.ExitStack() as stack:
        stack.enter_context(_power_context(request, profile))
        time.sleep(settle_s)  # let the sensors and clocks settle after a switch
        cameras = [stack.enter_context(open_camera(spec, name)) for name, spec in _camera_specs(request, profile, names).items()]
        arm, safety = stack.enter_context(_arm(request.arm, profile, predictor))
        state = np.asarray(arm.state().as_target(), np.float32) if arm else np.zeros(predictor.state_dim, np.float32)
        monitor = None
        started = time.monotonic()
        for tick in range(request.warmup + request.ticks):
            if tick == request.warmup:
                monitor = stack.enter_context(PowerMonitor(choose_power_source(request.power_source)))
                started = time.monotonic()
            record = tick >= request.warmup
            t0 = time.perf_counter()
            frames = [cam.latest(max_age_s=1.0) for cam in cameras]
            capture_ms = (time.perf_counter() - t0) * 1e3
            begin = time.monotonic()
            policy_state = state[: predictor.state_dim] if state.size >= predictor.state_dim else np.zeros(predictor.state_dim, np.float32)
            prediction = predictor.predict([f.color for f in frames], policy_state, request.instruction)
            t_decode = time.perf_counter()
            action = predictor.decoder.robot_actions(prediction.normalized[0])  # what the tick decodes
            timings_ms = {**prediction.timings_ms, Stage.POSTPROCESS.value: (time.perf_counter() - t_decode) * 1e3}
            end = time.monotonic()
            safety_ms, serial_ms = _act(arm, safety, action)
            if record:
                stages[Stage.CAPTURE].append(capture_ms)
                for stage in MODEL_STAGES:
                    stages[stage].append(timings_ms[stage.value])
                if arm:
                    stages[Stage.SAFETY].append(safety_ms)
                    stages[Stage.SERIAL].append(serial_ms)
                boundaries.append((begin, end))
        elapsed = time.monotonic() - started
        trace = monitor.stop() if monitor else None
    power = PowerRecord.from_trace(trace)
    energy_inf, energy_act = run_energy(power, boundaries, request.ticks if arm else None)
    env = environment(profile, load_before)
    return ProfileRun(
        profile=profile.name, expected_power_mode=profile.power.mode, environment=env,
        control_rate_hz=profile.control.rate_hz, power_budget_w=profile.power.budget_w, ticks=request.ticks,
        warmup=request.warmup, stages_ms={s: v for s, v in stages.items() if v},
        throughput=Throughput(inferences_per_s=request.ticks / elapsed, control_hz=request.ticks / elapsed if arm else None),
        memory=Memory(rss_peak_mb=peak_rss_mb(), cuda_peak_mb=_cuda_peak_mb()), power=power,
        inference_boundaries=boundaries, energy_per_inference_j=energy_inf, energy_per_action_j=energy_act,
        thermal=ThermalSample.from_trace(trace), warnings=_known_warnings(request),
    )


def _known_warnings(request: ProfileRequest) -> list:
    if request.random_weights is None:
        return []
    from edge.profiling.published import random_weights_warning

    return [random_weights_warning(request.random_weights)]


def _act(arm, safety, action: np.ndarray) -> tuple[float, float]:
    """Safety decision and one serial exchange; (safety ms, serial ms)."""
    if arm is None:
        return 0.0, 0.0
    t0 = time.perf_counter()
    state = arm.state()
    safety.observe(state)
    decision = safety.decide(np.asarray(action, np.float64), state)
    t1 = time.perf_counter()
    result = arm.send_target(decision.target)
    if result.accepted:
        safety.accepted(decision.target)
    else:
        safety.resync(state)
    t2 = time.perf_counter()
    return (t1 - t0) * 1e3, (t2 - t1) * 1e3


def _cuda_peak_mb() -> float | None:
    import torch

    return torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else None


def profile_bundle(request: ProfileRequest, output: Path) -> dict:
    """Measure every requested profile, write profile.json, report.md and plots to `output`."""
    profiles = _checked_profiles(request)
    return _report([measure_profile(request, p) for p in profiles], output)


def profile_published_model(model: str, request: ProfileRequest, output: Path,
                            say: Callable[[str], None] = lambda line: None) -> dict:
    """`profile --model`: each profile measured on a random-weight bundle of `model`'s published
    dimensions at that profile's precisions (built once, cached); the report says the weights are random."""
    from edge.profiling.published import published_bundle

    runs = []
    for ref, profile in zip(request.profiles, _checked_profiles(request)):
        bundle = published_bundle(model, ref, say)
        runs.append(measure_profile(replace(request, bundle=bundle, random_weights=model), profile))
    return _report(runs, output)


def _checked_profiles(request: ProfileRequest) -> list[Profile]:
    if request.ticks < 1 or request.warmup < 0:
        raise EdgeError("--ticks must be at least 1 and --warmup not negative")
    return [load_profile(p) for p in request.profiles]


def _report(runs: list[ProfileRun], output: Path) -> dict:
    from edge.profiling import write_profile_report

    files = write_profile_report(runs, Path(output))
    from edge.profiling import load_profile_report

    written = load_profile_report(files.json)
    return {"output": str(files.directory), "json": str(files.json), "markdown": str(files.markdown),
            "plots": [str(p) for p in files.plots], "runs": [_run_summary(r) for r in written.runs]}


def _run_summary(run) -> dict:
    summaries = run.stage_summaries()
    return {
        "profile": run.profile,
        "ticks": run.ticks,
        "inferences_per_s": round(run.throughput.inferences_per_s, 3),
        "stages_ms": {s.value: {"p50": round(v.p50, 3), "p99": round(v.p99, 3)} for s, v in summaries.items()},
        "power": run.power.describe(),
        "energy_per_inference_j": run.energy_per_inference_j,
        "warnings": [w.message for w in run.warnings],
    }
