"""`tinyvla-edge profile`: measure a bundle under each deployment profile, then write the report
(edge.profiling.report). Two modes, and the report says which produced each run:

- **deployed** (the default): `run`'s own start-up (`edge.runtime.run.start_up`: the model in its
  own process on its CPUs, the serial budget, every check, the execution latency, warm-up) and its
  `ControlLoop` at the profile's rate, against the arm (`--arm sim`: the emulator in its own
  process). The figures are the deployed ones: the control rate the ticks achieved, the tick
  figures, and per inference the model process's stage timings, as `run`'s cadence report has them.
- **model-only** (`--model-only`): the synchronous model pipeline, capture → predict, over and
  over in this process, with no arm and no control rate: what the model alone costs.

Warm-up inferences run first and are excluded; the power monitor samples only the measured part.
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
from edge.profiling.model import (
    TICK_STAGES, ControlFigures, Environment, Memory, PowerRecord, ProfileRun, RunMode, Stage, ThermalSample, Throughput,
    run_energy,
)
from edge.profiling.stats import summarize_stage

MODEL_STAGES = (Stage.PREPROCESS, Stage.VISION, Stage.LANGUAGE, Stage.HEAD, Stage.POSTPROCESS)
INFERENCE_STAGES = tuple(s for s in Stage if s not in TICK_STAGES)  # as the deployed loop's telemetry names them


@dataclass
class ProfileRequest:
    """What to measure."""

    bundle: Path | None  # None with `profile_published_model`, which builds one per profile
    profiles: list[str]
    ticks: int = 50
    warmup: int = 10
    cameras: list[str] = field(default_factory=list)  # NAME=SPEC or SPEC; default synthetic at the profile's size
    arm: str | None = None  # deployed: sim (the default) or a serial port; model-only: none
    model_only: bool = False  # the synchronous model pipeline alone (no arm, no control rate)
    instruction: str = "pick up the object"
    set_power_mode: bool = False
    power_source: str | None = None
    base: Path | None = None  # base VLM of a training output (default: the path its config records)
    random_weights: str | None = None  # the published model a random-weight bundle has the size of


def peak_rss_mb(pid: int | str = "self") -> float:
    """Peak resident memory of a process (VmHWM), MiB; this one by default."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
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


def measure_profile(request: ProfileRequest, profile_ref: str,
                    say: Callable[[str], None] = lambda line: None) -> ProfileRun:
    """Measure the bundle under one profile (a name or a YAML path), in the request's mode."""
    profile = load_profile(profile_ref)
    with _power_context(request, profile):
        if request.set_power_mode:
            time.sleep(1.0)  # let the sensors and clocks settle after a switch
        if request.model_only:
            return _measure_model_only(request, profile)
        return _measure_deployed(request, profile_ref, profile, say)


def _measure_deployed(request: ProfileRequest, profile_ref: str, profile: Profile,
                      say: Callable[[str], None]) -> ProfileRun:
    """`run`'s start-up and control loop for `request.ticks` ticks at the profile's rate."""
    from edge.device.power import PowerMonitor, choose_power_source
    from edge.runtime.run import SIM_ARM, RunRequest, check_outcome, start_up

    run_request = RunRequest(
        bundle=request.bundle, cameras=tuple(request.cameras), arm=request.arm or SIM_ARM,
        instruction=request.instruction, profile=profile_ref, max_ticks=request.ticks, warmup=request.warmup,
        base=request.base, synthetic_cameras=True)
    load_before = os.getloadavg()  # before our own processes add to it: the contention rule reads it
    with start_up(run_request, say) as deployment:
        loop = deployment.control_loop()
        with PowerMonitor(choose_power_source(request.power_source)) as monitor:
            result = deployment.drive(loop)
        check_outcome(result.report)  # a run stopped by a fault measured nothing worth reporting
        rss_mb = peak_rss_mb() + _model_process_rss_mb(deployment.predictor)
    return _deployed_run(request, profile, loop.telemetry, result.report, monitor.trace, rss_mb, load_before)


def _model_process_rss_mb(predictor) -> float:
    pid = getattr(predictor, "pid", None)  # a ProcessPredictor's child
    if pid is None:
        return 0.0
    with contextlib.suppress(OSError):
        return peak_rss_mb(pid)
    return 0.0


def _deployed_run(request: ProfileRequest, profile: Profile, telemetry, report: dict, trace, rss_mb: float,
                  load_before: tuple[float, float, float]) -> ProfileRun:
    spans = telemetry.inference_spans()
    if not spans:
        raise EdgeError(f"no inference finished in {report['ticks']} ticks at {report['target_rate_hz']:g} Hz; "
                        "profile more --ticks")
    stages = {stage: telemetry.inference_series(stage.value).tolist() for stage in INFERENCE_STAGES}
    stages = {stage: values for stage, values in stages.items() if values}
    stages.update({stage: telemetry.tick_series(stage.value).tolist() for stage in TICK_STAGES})
    power = PowerRecord.from_trace(trace)
    energy_inf, energy_act = run_energy(power, spans, report["link"]["sent"] or None)
    control = ControlFigures(
        target_rate_hz=report["target_rate_hz"], achieved_rate_hz=report["achieved_rate_hz"], missed=report["missed"],
        exec_latency_ms=report["exec_latency_ms"],
        tick_ms={name: summarize_stage(telemetry.tick_series(name)) for name in report["tick_ms"]},
        chunks=report["chunks"], late_targets=report["link"]["late"], holds=report["safety"]["holds"])
    return ProfileRun(
        profile=profile.name, mode=RunMode.DEPLOYED, expected_power_mode=profile.power.mode,
        environment=environment(profile, load_before), control_rate_hz=profile.control.rate_hz,
        power_budget_w=profile.power.budget_w, ticks=report["ticks"], warmup=request.warmup, stages_ms=stages,
        throughput=Throughput(inferences_per_s=report["policy_rate_hz"], control_hz=report["achieved_rate_hz"]),
        memory=Memory(rss_peak_mb=rss_mb, cuda_peak_mb=None),  # the model's CUDA peak is the model process's
        power=power, inference_boundaries=spans, energy_per_inference_j=energy_inf, energy_per_action_j=energy_act,
        thermal=ThermalSample.from_trace(trace), warnings=_known_warnings(request), control=control,
    )


def _measure_model_only(request: ProfileRequest, profile: Profile) -> ProfileRun:
    """capture → predict, synchronously in this process, `warmup + ticks` times; no arm (a zero state)."""
    from drivers.camera import open_camera
    from edge.device.power import PowerMonitor, choose_power_source
    from edge.runtime.cameras import match_cameras
    from edge.runtime.startup import check_instruction, load_run_predictor

    if request.arm is not None:
        raise EdgeError("--model-only measures the model without an arm; leave out --arm")
    load_before = os.getloadavg()  # before our own threads add to it: the contention rule reads it
    predictor, _ = load_run_predictor(request.bundle, base=request.base)
    profile.model.check_chunk_size(predictor.chunk_size)
    check_instruction(predictor, request.instruction)
    names = tuple(predictor.camera_names)
    configs = match_cameras(list(request.cameras) or [f"{n}=synthetic" for n in names], names, profile)
    stages: dict[Stage, list[float]] = {s: [] for s in (Stage.CAPTURE, *MODEL_STAGES)}
    boundaries: list[tuple[float, float]] = []
    state = np.zeros(predictor.state_dim, np.float32)
    with contextlib.ExitStack() as stack:
        cameras = [stack.enter_context(open_camera(config, name)) for name, config in configs]
        monitor, started = None, time.monotonic()
        for tick in range(request.warmup + request.ticks):
            if tick == request.warmup:
                monitor = stack.enter_context(PowerMonitor(choose_power_source(request.power_source)))
                started = time.monotonic()
            begin = time.monotonic()
            frames = [cam.latest(max_age_s=1.0) for cam in cameras]
            captured = time.monotonic()
            prediction = predictor.predict([f.color for f in frames], state, request.instruction)
            t_decode = time.perf_counter()
            predictor.decoder.robot_actions(prediction.normalized[0])  # what the control tick decodes
            timings_ms = {**prediction.timings_ms, Stage.POSTPROCESS.value: (time.perf_counter() - t_decode) * 1e3}
            end = time.monotonic()
            if tick >= request.warmup:
                stages[Stage.CAPTURE].append((captured - begin) * 1e3)
                for stage in MODEL_STAGES:
                    stages[stage].append(timings_ms[stage.value])
                boundaries.append((begin, end))
        elapsed = time.monotonic() - started
        trace = monitor.stop()
    power = PowerRecord.from_trace(trace)
    energy_inf, _ = run_energy(power, boundaries, None)
    return ProfileRun(
        profile=profile.name, mode=RunMode.MODEL_ONLY, expected_power_mode=profile.power.mode,
        environment=environment(profile, load_before), control_rate_hz=profile.control.rate_hz,
        power_budget_w=profile.power.budget_w, ticks=request.ticks, warmup=request.warmup, stages_ms=stages,
        throughput=Throughput(inferences_per_s=request.ticks / elapsed),
        memory=Memory(rss_peak_mb=peak_rss_mb(), cuda_peak_mb=_cuda_peak_mb()), power=power,
        inference_boundaries=boundaries, energy_per_inference_j=energy_inf,
        thermal=ThermalSample.from_trace(trace), warnings=_known_warnings(request),
    )


def _known_warnings(request: ProfileRequest) -> list:
    if request.random_weights is None:
        return []
    from edge.profiling.published import random_weights_warning

    return [random_weights_warning(request.random_weights)]


def _cuda_peak_mb() -> float | None:
    import torch

    return torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else None


def profile_bundle(request: ProfileRequest, output: Path, say: Callable[[str], None] = lambda line: None) -> dict:
    """Measure every requested profile, write profile.json, report.md and plots to `output`."""
    _check_request(request)
    return _report([measure_profile(request, ref, say) for ref in request.profiles], output)


def profile_published_model(model: str, request: ProfileRequest, output: Path,
                            say: Callable[[str], None] = lambda line: None) -> dict:
    """`profile --model`: each profile measured on a random-weight bundle of `model`'s published
    dimensions at that profile's precisions (built once, cached); the report says the weights are random."""
    from edge.profiling.published import published_bundle

    _check_request(request)
    runs = []
    for ref in request.profiles:
        bundle = published_bundle(model, ref, say)
        runs.append(measure_profile(replace(request, bundle=bundle, random_weights=model), ref, say))
    return _report(runs, output)


def _check_request(request: ProfileRequest) -> None:
    """Refuse a bad request before anything is measured (every profile must load)."""
    if request.ticks < 1 or request.warmup < 0:
        raise EdgeError("--ticks must be at least 1 and --warmup not negative")
    if request.model_only and request.arm is not None:
        raise EdgeError("--model-only measures the model without an arm; leave out --arm")
    if request.arm == "none":
        raise EdgeError("profile drives run's control loop, which needs an arm: --arm sim (the emulator, the default) "
                        "or a serial port; --model-only measures the model without one")
    for ref in request.profiles:
        load_profile(ref)


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
        "mode": run.mode.value,
        "ticks": run.ticks,
        "inferences_per_s": round(run.throughput.inferences_per_s, 3),
        "control_hz": None if run.throughput.control_hz is None else round(run.throughput.control_hz, 3),
        "target_rate_hz": run.control.target_rate_hz if run.control else None,
        "stages_ms": {s.value: {"p50": round(v.p50, 3), "p99": round(v.p99, 3)} for s, v in summaries.items()},
        "power": run.power.describe(),
        "energy_per_inference_j": run.energy_per_inference_j,
        "warnings": [w.message for w in run.warnings],
    }
