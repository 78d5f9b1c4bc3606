"""The typed result of profiling: one `ProfileRun` per deployment profile, `ProfileReport` on disk.

`profile.json` is a `ProfileReport` (schema documented in docs/profile-report.md). Times are
`time.monotonic()` seconds, shared by the power trace, thermal samples and inference boundaries.
"""

from __future__ import annotations

import math
from enum import Enum

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from edge.device.power import PowerTrace, energy_figures
from edge.profiling.stats import StageSummary, summarize_stage

SCHEMA_VERSION = 2  # 2: runs say their mode; a deployed run carries its control figures


class Stage(str, Enum):
    """Pipeline stages, in tick order."""

    CAPTURE = "capture"
    PREPROCESS = "preprocess"
    VISION = "vision"
    LANGUAGE = "language"
    HEAD = "head"
    POSTPROCESS = "postprocess"
    TRANSFER = "transfer"  # with the model in its own process: the round trip outside the model's stages
    SAFETY = "safety"
    SERIAL = "serial"


# Stages of the control tick: one sample per control tick. Every other stage has one per inference.
TICK_STAGES = (Stage.SAFETY, Stage.SERIAL)


class RunMode(str, Enum):
    """What a run measured."""

    DEPLOYED = "deployed"  # `run`'s start-up and control loop at the profile's rate (the default)
    MODEL_ONLY = "model-only"  # the synchronous model pipeline, capture → predict; no arm, no control rate


class WarningKind(str, Enum):
    """Conditions that invalidate or weaken a measurement."""

    POWER_MODE_MISMATCH = "power_mode_mismatch"
    CLOCKS_NOT_LOCKED = "clocks_not_locked"
    THERMAL_THROTTLING = "thermal_throttling"
    WARMUP_TOO_SHORT = "warmup_too_short"
    POWER_SAMPLING_FAILED = "power_sampling_failed"
    RANDOM_WEIGHTS = "random_weights"  # `profile --model`: timings valid, actions not
    CPU_CONTENTION = "cpu_contention"  # other load or unsteady ticks: latency is not the pipeline's own
    POWER_OVER_BUDGET = "power_over_budget"  # mean power above the profile's power.budget_w


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MeasurementWarning(_Model):
    """A loud note in the report: what is wrong and what to do."""

    kind: WarningKind
    message: str


class Environment(_Model):
    """Where and how the run happened, enough to reproduce it."""

    device: str = Field(description="model string or host description, e.g. 'NVIDIA Jetson Orin Nano (p3767-0005)'")
    is_jetson: bool
    jetpack: str | None = None
    power_mode: str | None = Field(default=None, description="nvpmodel mode in effect during the run")
    clocks_locked: bool | None = Field(default=None, description="jetson_clocks active; None where unknown or n/a")
    engine_versions: dict[str, str] = Field(default_factory=dict)
    python: str
    torch: str
    load_average: tuple[float, float, float] | None = Field(
        default=None, description="os.getloadavg() (1, 5, 15 min) taken before the model loaded")
    cpu_count: int | None = Field(default=None, gt=0, description="logical CPUs the load average is shared by")


class Throughput(_Model):
    """How fast the pipeline ran."""

    inferences_per_s: float = Field(ge=0)
    control_hz: float | None = Field(default=None, ge=0, description="deployed: ticks achieved per second")


class ControlFigures(_Model):
    """A deployed run's control loop, as `run`'s cadence report gives it."""

    target_rate_hz: float = Field(gt=0)
    achieved_rate_hz: float = Field(ge=0, description="from tick start times: (ticks - 1) / span")
    missed: int = Field(ge=0, description="tick slots skipped after overruns")
    exec_latency_ms: float = Field(ge=0, description="actions are sent this long before they are due")
    tick_ms: dict[str, StageSummary] = Field(description="per control-tick part: start_error, chunks, convert, "
                                                         "safety, serial, log, work")
    chunks: dict[str, int] = Field(description="published, admitted, stale_actions_dropped, ...")
    late_targets: int = Field(ge=0, description="policy targets the arm confirmed after the time they were for")
    holds: int = Field(ge=0, description="ticks that held for lack of a fresh action")


class Memory(_Model):
    """Peak memory during the measured ticks, in MiB."""

    rss_peak_mb: float = Field(ge=0)
    cuda_peak_mb: float | None = Field(default=None, ge=0)


class PowerRecord(_Model):
    """Total power over time, or why it could not be measured. Never zeros in place of a reading."""

    source: str = Field(description="ina3221, tegrastats, nvml, rapl or none")
    basis: str | None = Field(default=None, description="what the total stands for, e.g. 'module input rail'")
    trace: list[tuple[float, float]] = Field(default_factory=list, description="(monotonic s, total W)")
    unavailable_reason: str | None = None

    @model_validator(mode="after")
    def _trace_or_reason(self) -> "PowerRecord":
        if bool(self.trace) == bool(self.unavailable_reason):
            raise ValueError("a power record has either a trace or an unavailable_reason, not both or neither")
        return self

    @property
    def available(self) -> bool:
        """True when there is a trace."""
        return bool(self.trace)

    @classmethod
    def from_trace(cls, trace: PowerTrace) -> "PowerRecord":
        """The record of a `PowerMonitor` trace."""
        if not trace.available:
            return cls(source=trace.source.value, unavailable_reason=trace.reason)
        assert trace.basis is not None
        return cls(source=trace.source.value, basis=trace.basis.describe(), trace=trace.points())

    def describe(self) -> str:
        """One line for reports."""
        if not self.available:
            return f"power: unavailable ({self.unavailable_reason})"
        return f"power: {self.source}, {len(self.trace)} samples, total = {self.basis}"


class ThermalSample(_Model):
    """Temperatures (C) and clocks (MHz) at one moment."""

    t: float
    temperatures_c: dict[str, float] = Field(default_factory=dict)
    clocks_mhz: dict[str, float] = Field(default_factory=dict)

    @classmethod
    def from_trace(cls, trace: PowerTrace) -> list["ThermalSample"]:
        """The temperatures and clocks a power trace carried (empty when its source has none)."""
        return [
            cls(t=s.t, temperatures_c=dict(s.temperatures_c), clocks_mhz=dict(s.clocks_mhz))
            for s in trace.samples
            if s.temperatures_c or s.clocks_mhz
        ]


class ProfileRun(_Model):
    """One measured run of a bundle under one deployment profile.

    There is one (start, end) boundary per measured inference; each inference stage has one
    latency sample (ms) per inference and each tick stage (TICK_STAGES) one per measured control
    tick. In model-only mode every tick is one inference. Stages that do not exist in this setup
    are absent.
    """

    profile: str
    mode: RunMode = RunMode.MODEL_ONLY
    expected_power_mode: str | None = Field(default=None, description="the power mode the profile asks for")
    control_rate_hz: float | None = Field(default=None, gt=0, description="the profile's control.rate_hz")
    power_budget_w: float | None = Field(default=None, gt=0, description="the profile's power.budget_w")
    environment: Environment
    ticks: int = Field(gt=0, description="measured control ticks (model-only: pipeline passes), after warm-up")
    warmup: int = Field(ge=0)
    stages_ms: dict[Stage, list[float]]
    throughput: Throughput
    memory: Memory
    power: PowerRecord
    inference_boundaries: list[tuple[float, float]]
    energy_per_inference_j: float | None = Field(default=None, ge=0)
    energy_per_action_j: float | None = Field(default=None, ge=0)
    thermal: list[ThermalSample] = Field(default_factory=list)
    warnings: list[MeasurementWarning] = Field(default_factory=list)
    control: ControlFigures | None = Field(default=None, description="deployed runs only")

    @field_validator("stages_ms")
    @classmethod
    def _finite_latencies(cls, stages: dict[Stage, list[float]]) -> dict[Stage, list[float]]:
        if not stages:
            raise ValueError("at least one stage must have latency samples")
        for stage, samples in stages.items():
            if any(not math.isfinite(v) or v < 0 for v in samples):
                raise ValueError(f"stage {stage.value}: latencies must be finite and non-negative")
        # Store in pipeline order whatever order the caller used.
        return {stage: stages[stage] for stage in Stage if stage in stages}

    @model_validator(mode="after")
    def _consistent_with_ticks(self) -> "ProfileRun":
        inferences = len(self.inference_boundaries)
        if self.mode is RunMode.MODEL_ONLY and inferences != self.ticks:
            raise ValueError(f"{inferences} inference boundaries for {self.ticks} ticks")
        if (self.mode is RunMode.DEPLOYED) != (self.control is not None):
            raise ValueError("a deployed run has control figures, a model-only run none")
        for stage, samples in self.stages_ms.items():
            expected, per = (self.ticks, "ticks") if stage in TICK_STAGES else (inferences, "inferences")
            if len(samples) != expected:
                raise ValueError(f"stage {stage.value} has {len(samples)} samples for {expected} {per}")
        if any(end < start for start, end in self.inference_boundaries):
            raise ValueError("an inference boundary ends before it starts")
        if not self.power.available and (self.energy_per_inference_j is not None or self.energy_per_action_j is not None):
            raise ValueError("energy figures without a power trace")
        return self

    def stage_summaries(self) -> dict[Stage, StageSummary]:
        """Percentiles of every stage that ran."""
        return {stage: summarize_stage(samples) for stage, samples in self.stages_ms.items()}

    def inference_stages_ms(self) -> dict[Stage, list[float]]:
        """The stages with one sample per inference (capture → transfer), plus in model-only mode
        the tick stages of the same pass; deployed, the tick stages run once per control tick."""
        return {s: v for s, v in self.stages_ms.items() if s not in TICK_STAGES or self.mode is RunMode.MODEL_ONLY}

    def tick_totals_ms(self) -> list[float]:
        """End-to-end latency of each inference: the sum of its `inference_stages_ms`."""
        return [sum(column) for column in zip(*self.inference_stages_ms().values())]

    def window(self) -> tuple[float, float]:
        """(first inference start, last inference end), monotonic seconds."""
        return self.inference_boundaries[0][0], self.inference_boundaries[-1][1]

    def mean_power_w(self) -> float | None:
        """Mean power over the measured window, None without a trace."""
        if not self.power.available:
            return None
        start, end = self.window()
        return energy_figures(self.power.trace, start, end, inferences=len(self.inference_boundaries)).mean_power_w


def run_energy(power: PowerRecord, boundaries: list[tuple[float, float]], actions: int | None) -> tuple[float | None, float | None]:
    """(energy per inference J, energy per action J) over the measured window; Nones without power."""
    if not power.available or not boundaries:
        return None, None
    figures = energy_figures(power.trace, boundaries[0][0], boundaries[-1][1], len(boundaries), actions)
    return figures.per_inference_j, figures.per_action_j


class RunSummary(_Model):
    """Derived figures stored next to each run, so readers need not recompute them."""

    label: str
    stages: dict[Stage, StageSummary]
    tick_total: StageSummary
    mean_power_w: float | None
    power: str


class ProfileReport(_Model):
    """The contents of profile.json."""

    schema_version: int = SCHEMA_VERSION
    tool_version: str
    created_utc: str
    compared_from: list[str] = Field(default_factory=list, description="source profile.json files of a comparison")
    runs: list[ProfileRun]
    summaries: list[RunSummary]

    @model_validator(mode="after")
    def _one_summary_per_run(self) -> "ProfileReport":
        if len(self.summaries) != len(self.runs):
            raise ValueError(f"{len(self.summaries)} summaries for {len(self.runs)} runs")
        return self
