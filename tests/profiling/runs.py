"""Builders of ProfileRun values for the profiling tests."""

from __future__ import annotations

import random

from edge.profiling import Environment, Memory, PowerRecord, ProfileRun, Stage, ThermalSample, Throughput, run_energy

STAGES = (Stage.CAPTURE, Stage.PREPROCESS, Stage.VISION, Stage.LANGUAGE, Stage.HEAD, Stage.POSTPROCESS)


def make_run(
    profile: str = "cpu-dev",
    ticks: int = 60,
    scale: float = 1.0,
    watts: float | None = 10.0,
    device: str = "x86_64 workstation",
    is_jetson: bool = False,
    power_mode: str | None = None,
    expected_power_mode: str | None = None,
    clocks_locked: bool | None = None,
    thermal: list[ThermalSample] | None = None,
    seed: int = 0,
    actions_per_inference: int = 2,
    control_rate_hz: float | None = 30.0,
    power_budget_w: float | None = None,
    load_average: tuple[float, float, float] | None = None,
    cpu_count: int | None = None,
) -> ProfileRun:
    """A steady run: stage latencies around (i+1) ms x scale, one inference every 50 ms."""
    rng = random.Random(seed)
    stages = {stage: [scale * (i + 1) * rng.uniform(0.95, 1.05) for _ in range(ticks)] for i, stage in enumerate(STAGES)}
    start = 500.0
    boundaries = [(start + 0.05 * k, start + 0.05 * k + 0.04) for k in range(ticks)]
    if watts is None:
        power = PowerRecord(source="none", unavailable_reason="rapl: no RAPL zones under /sys/class/powercap")
    else:
        span = boundaries[-1][1] - start
        trace = [(start - 0.1 + 0.43 * k, watts) for k in range(int(span / 0.43) + 3)]
        power = PowerRecord(source="rapl", basis="CPU packages and DRAM", trace=trace)
    energy_per_inference, energy_per_action = run_energy(power, boundaries, ticks * actions_per_inference)
    return ProfileRun(
        profile=profile,
        expected_power_mode=expected_power_mode,
        control_rate_hz=control_rate_hz,
        power_budget_w=power_budget_w,
        environment=Environment(
            device=device,
            is_jetson=is_jetson,
            jetpack="6.2" if is_jetson else None,
            power_mode=power_mode,
            clocks_locked=clocks_locked,
            engine_versions={"onnxruntime": "1.20.1"},
            python="3.11.7",
            torch="2.13.0+cpu",
            load_average=load_average,
            cpu_count=cpu_count,
        ),
        ticks=ticks,
        warmup=10,
        stages_ms=stages,
        throughput=Throughput(inferences_per_s=20.0 / scale, control_hz=30.0),
        memory=Memory(rss_peak_mb=900.0 * scale, cuda_peak_mb=None),
        power=power,
        inference_boundaries=boundaries,
        energy_per_inference_j=energy_per_inference,
        energy_per_action_j=energy_per_action,
        thermal=thermal or [],
    )
