"""Warning rules: conditions under which a latency or power figure cannot be trusted.

Each rule is a pure function of measured facts that returns a `MeasurementWarning` or None.
`evaluate_warnings` applies all of them to a run.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence

from edge.profiling.model import MeasurementWarning, ProfileRun, ThermalSample, WarningKind
from edge.profiling.stats import summarize_stage

# Not in the platform reference: Orin's software throttling trips around 99 C (tj), so readings
# at or above 95 C mean the run was at, or about to be at, reduced clocks. Pass the device's
# own trip point where it is known.
THROTTLE_TEMP_C = 95.0
# jetson_clocks pins clocks; a locked clock that still falls this far below its own maximum
# during the run was pulled down by thermal or power capping.
LOCKED_CLOCK_DROP = 0.10

# Warm-up rule: the first WARMUP_HEAD_FRACTION of measured ticks (at least WARMUP_HEAD_MIN)
# against the second half of the run. Medians, so single outliers do not trigger it.
WARMUP_HEAD_FRACTION = 0.10
WARMUP_HEAD_MIN = 5
WARMUP_MIN_TICKS = 20
WARMUP_SLOWDOWN = 1.20

# Contention rule. A 1-minute load average at or above the CPU count before the model loaded means
# other work already kept every core busy. A tick p90 more than twice its p50 means latency was
# not steady: a pipeline that runs alone repeats itself to within a few tens of percent.
CONTENDED_LOAD_PER_CPU = 1.0
UNSTEADY_P90_OVER_P50 = 2.0
CONTENTION_MIN_TICKS = 20  # fewer ticks make p90 one or two samples


def check_power_mode(expected: str | None, actual: str | None) -> MeasurementWarning | None:
    """Warn when the profile names a power mode and the device ran in another (or an unknown) one."""
    if expected is None:
        return None
    if actual is None:
        return MeasurementWarning(
            kind=WarningKind.POWER_MODE_MISMATCH,
            message=f"the profile wants power mode {expected} but the current mode could not be read",
        )
    if actual.strip().upper() != expected.strip().upper():
        return MeasurementWarning(
            kind=WarningKind.POWER_MODE_MISMATCH,
            message=f"power mode is {actual}, the profile wants {expected}: rerun with --set-power-mode",
        )
    return None


def check_clocks_locked(is_jetson: bool, clocks_locked: bool | None) -> MeasurementWarning | None:
    """Warn when a Jetson ran with clocks not locked (or unknown): DVFS makes latency wander."""
    if not is_jetson or clocks_locked:
        return None
    state = "not locked" if clocks_locked is False else "in an unknown state"
    return MeasurementWarning(
        kind=WarningKind.CLOCKS_NOT_LOCKED,
        message=f"clocks were {state} on a Jetson: latency depends on DVFS; run jetson_clocks or --set-power-mode",
    )


def check_thermal_throttling(
    thermal: Sequence[ThermalSample],
    clocks_locked: bool | None,
    throttle_temp_c: float = THROTTLE_TEMP_C,
    locked_clock_drop: float = LOCKED_CLOCK_DROP,
) -> MeasurementWarning | None:
    """Warn when a temperature reached the throttle point, or a locked clock dropped during the run."""
    hottest = max(
        ((name, c) for sample in thermal for name, c in sample.temperatures_c.items()),
        key=lambda item: item[1],
        default=None,
    )
    if hottest is not None and hottest[1] >= throttle_temp_c:
        return MeasurementWarning(
            kind=WarningKind.THERMAL_THROTTLING,
            message=f"{hottest[0]} reached {hottest[1]:.1f} C (throttle point {throttle_temp_c:.0f} C): "
            "improve cooling or shorten the run",
        )
    if clocks_locked:
        clocks: dict[str, list[float]] = {}
        for sample in thermal:
            for name, mhz in sample.clocks_mhz.items():
                clocks.setdefault(name, []).append(mhz)
        for name, values in clocks.items():
            if max(values) > 0 and min(values) < (1 - locked_clock_drop) * max(values):
                return MeasurementWarning(
                    kind=WarningKind.THERMAL_THROTTLING,
                    message=f"locked clock {name} fell from {max(values):.0f} to {min(values):.0f} MHz during the run: "
                    "thermal or power capping",
                )
    return None


def check_warmup(tick_totals_ms: Sequence[float], warmup: int) -> MeasurementWarning | None:
    """Warn when latency was still dropping after warm-up.

    The rule: with at least 20 measured ticks, the median of the first 10% (at least 5 ticks)
    exceeds the median of the second half by more than 20%. A sufficient warm-up leaves the
    first measured ticks at steady state; lazy initialisation, allocator growth, cuDNN/TensorRT
    autotuning and caches make early ticks slow.
    """
    n = len(tick_totals_ms)
    if n < WARMUP_MIN_TICKS:
        return None
    head = max(WARMUP_HEAD_MIN, round(n * WARMUP_HEAD_FRACTION))
    early = statistics.median(tick_totals_ms[:head])
    steady = statistics.median(tick_totals_ms[n // 2 :])
    if steady > 0 and early > WARMUP_SLOWDOWN * steady:
        return MeasurementWarning(
            kind=WarningKind.WARMUP_TOO_SHORT,
            message=f"warm-up too short: the first {head} measured ticks took {early:.2f} ms (median) against "
            f"{steady:.2f} ms at steady state, latency was still dropping; raise --warmup (was {warmup})",
        )
    return None


def check_power_sampling(run: ProfileRun) -> MeasurementWarning | None:
    """Warn when a power source was chosen but delivered nothing (the reason says why)."""
    if run.power.available or run.power.source == "none":
        return None
    return MeasurementWarning(kind=WarningKind.POWER_SAMPLING_FAILED, message=f"{run.power.describe()}")


def check_contention(
    load_average: tuple[float, float, float] | None, cpu_count: int | None, tick_totals_ms: Sequence[float]
) -> MeasurementWarning | None:
    """Warn when other load shared the CPUs or tick latency was unsteady (p90 over twice p50)."""
    causes = []
    if load_average is not None and cpu_count and load_average[0] >= CONTENDED_LOAD_PER_CPU * cpu_count:
        causes.append(f"load average {load_average[0]:.1f} on {cpu_count} CPUs before the run")
    if len(tick_totals_ms) >= CONTENTION_MIN_TICKS:
        total = summarize_stage(tick_totals_ms)
        if total.p50 > 0 and total.p90 > UNSTEADY_P90_OVER_P50 * total.p50:
            causes.append(f"tick p90 is {total.p90 / total.p50:.1f}x p50 ({total.p90:.2f} vs {total.p50:.2f} ms)")
    if not causes:
        return None
    return MeasurementWarning(
        kind=WarningKind.CPU_CONTENTION,
        message="CPU contention: " + " and ".join(causes) + "; latency is not the pipeline's own: "
        "stop other work (or pin CPUs) and rerun",
    )


def check_power_budget(mean_power_w: float | None, budget_w: float | None) -> MeasurementWarning | None:
    """Warn when the run's mean power exceeded the profile's `power.budget_w`."""
    if mean_power_w is None or budget_w is None or mean_power_w <= budget_w:
        return None
    return MeasurementWarning(
        kind=WarningKind.POWER_OVER_BUDGET,
        message=f"mean power {mean_power_w:.1f} W exceeds the profile's budget of {budget_w:.1f} W: "
        "use a lower power mode, precision or control rate, or raise power.budget_w",
    )


def evaluate_warnings(run: ProfileRun) -> list[MeasurementWarning]:
    """Every rule applied to a run, in a fixed order."""
    env = run.environment
    found = [
        check_power_mode(run.expected_power_mode, env.power_mode),
        check_clocks_locked(env.is_jetson, env.clocks_locked),
        check_thermal_throttling(run.thermal, env.clocks_locked),
        check_warmup(run.tick_totals_ms(), run.warmup),
        check_power_sampling(run),
        check_contention(env.load_average, env.cpu_count, run.tick_totals_ms()),
        check_power_budget(run.mean_power_w(), run.power_budget_w),
    ]
    return [w for w in found if w is not None]


def with_warnings(run: ProfileRun) -> ProfileRun:
    """The run with the rules' warnings added to the ones it already carries (no duplicates)."""
    merged = list(run.warnings)
    merged += [w for w in evaluate_warnings(run) if w not in merged]
    return run.model_copy(update={"warnings": merged})
