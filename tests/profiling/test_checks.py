"""Each warning rule, both ways."""

from __future__ import annotations

from edge.profiling import ThermalSample, WarningKind, evaluate_warnings, with_warnings
from edge.profiling.checks import (
    check_clocks_locked,
    check_power_mode,
    check_thermal_throttling,
    check_warmup,
)
from tests.profiling.runs import make_run


def test_power_mode_matches_or_is_not_asked_for():
    assert check_power_mode(None, "15W") is None
    assert check_power_mode("MAXN_SUPER", "maxn_super") is None


def test_power_mode_differs_from_the_profile():
    warning = check_power_mode("25W", "15W")
    assert warning.kind is WarningKind.POWER_MODE_MISMATCH
    assert "15W" in warning.message and "25W" in warning.message


def test_power_mode_unreadable_when_the_profile_names_one():
    assert check_power_mode("MAXN", None).kind is WarningKind.POWER_MODE_MISMATCH


def test_clocks_not_locked_on_a_jetson():
    assert check_clocks_locked(True, False).kind is WarningKind.CLOCKS_NOT_LOCKED
    assert "unknown" in check_clocks_locked(True, None).message
    assert check_clocks_locked(True, True) is None
    assert check_clocks_locked(False, None) is None  # x86: no jetson_clocks


def samples(temps, clocks):
    return [ThermalSample(t=float(i), temperatures_c={"tj": c}, clocks_mhz={"gpu": f}) for i, (c, f) in enumerate(zip(temps, clocks))]


def test_thermal_throttling_by_temperature():
    warning = check_thermal_throttling(samples([60, 80, 96.5], [1020] * 3), clocks_locked=False)
    assert warning.kind is WarningKind.THERMAL_THROTTLING and "tj reached 96.5 C" in warning.message
    assert check_thermal_throttling(samples([60, 80, 90], [1020] * 3), clocks_locked=False) is None


def test_thermal_throttling_by_a_locked_clock_dropping():
    thermal = samples([70, 75, 80], [1020, 1020, 816])
    warning = check_thermal_throttling(thermal, clocks_locked=True)
    assert warning.kind is WarningKind.THERMAL_THROTTLING and "gpu fell from 1020 to 816" in warning.message
    # Unlocked clocks move with DVFS: not evidence of throttling.
    assert check_thermal_throttling(thermal, clocks_locked=False) is None
    assert check_thermal_throttling(samples([70] * 3, [1020, 1000, 1020]), clocks_locked=True) is None


def test_warmup_too_short_when_early_ticks_are_slower():
    # 100 ticks: the first few still 3x slower and decaying towards 10 ms.
    ticks = [10.0 + 20.0 * 0.6**k for k in range(100)]
    warning = check_warmup(ticks, warmup=2)
    assert warning.kind is WarningKind.WARMUP_TOO_SHORT and "raise --warmup (was 2)" in warning.message


def test_warmup_sufficient_for_a_flat_noisy_run():
    ticks = [10.0 + (1.5 if k % 7 == 0 else -0.3) for k in range(100)]
    assert check_warmup(ticks, warmup=20) is None


def test_warmup_single_slow_tick_is_not_a_trend():
    ticks = [10.0] * 100
    ticks[0] = 80.0  # one outlier; the median of the first 10 ticks is still 10 ms
    assert check_warmup(ticks, warmup=20) is None


def test_warmup_not_judged_on_too_few_ticks():
    assert check_warmup([50.0, 10.0, 10.0], warmup=0) is None


def test_clean_x86_run_has_no_warnings():
    assert evaluate_warnings(make_run()) == []


def test_jetson_run_collects_every_applicable_warning():
    run = make_run(
        is_jetson=True,
        power_mode="15W",
        expected_power_mode="25W",
        clocks_locked=False,
        thermal=samples([99.0], [612.0]),
    )
    kinds = [w.kind for w in evaluate_warnings(run)]
    assert kinds == [WarningKind.POWER_MODE_MISMATCH, WarningKind.CLOCKS_NOT_LOCKED, WarningKind.THERMAL_THROTTLING]


def test_with_warnings_does_not_duplicate():
    run = make_run(is_jetson=True, clocks_locked=False)
    once = with_warnings(run)
    assert with_warnings(once).warnings == once.warnings
    assert [w.kind for w in once.warnings] == [WarningKind.CLOCKS_NOT_LOCKED]
