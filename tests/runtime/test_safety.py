"""The safety layer: limits = arm INFO ∩ profile, max change per tick, NaN rejection, holds, latch."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from drivers.arm import ArmInfo, ArmState
from edge.config import ArmSpec
from edge.runtime.safety import (
    EstopLatch, HoldReason, SafetyConfigError, SafetyLayer, SafetyLimits, StopReason,
)

INFO = ArmInfo(
    protocol_version=1, firmware_version="1.0.0", dof=6, action_space="ee",
    lower=(-1.0,) * 6 + (0.0,), upper=(1.0,) * 6 + (1.0,), max_step=(0.1,) * 6 + (0.5,), watchdog_s=0.5,
)


def state(values=(0.0,) * 6, gripper=0.5, watchdog_hold=False) -> ArmState:
    return ArmState(tuple(values), gripper, False, False, False, watchdog_hold, None, 0.0)


def layer(spec: ArmSpec = ArmSpec()) -> SafetyLayer:
    s = SafetyLayer(SafetyLimits.combine(INFO, spec))
    s.observe(state())
    return s


def test_limits_are_the_intersection_of_arm_and_profile():
    spec = ArmSpec(lower=[-0.5] + [-2.0] * 5 + [0.1], upper=[2.0] * 6 + [0.8], max_step=[0.05] + [1.0] * 6)
    lim = SafetyLimits.combine(INFO, spec)
    assert lim.lower[0] == np.float32(-0.5) and lim.lower[1] == -1.0 and lim.lower[6] == np.float32(0.1)
    assert lim.upper[0] == 1.0 and lim.upper[6] == pytest.approx(0.8) and lim.upper[6] <= 0.8
    assert lim.max_step[0] == pytest.approx(0.05) and lim.max_step[0] <= 0.05
    assert lim.max_step[1] == pytest.approx(0.1) and lim.max_step[1] <= 0.1
    assert lim.axes == ("x", "y", "z", "roll", "pitch", "yaw", "gripper")


def test_profile_limits_round_inward_to_float32():
    lim = SafetyLimits.combine(INFO, ArmSpec(lower=[-0.3] * 7, upper=[0.3] * 7))
    assert np.float32(lim.lower[0]) == lim.lower[0] >= -0.3
    assert np.float32(lim.upper[0]) == lim.upper[0] <= 0.3


def test_bad_profile_limits_are_refused():
    with pytest.raises(SafetyConfigError, match="7 axes"):
        SafetyLimits.combine(INFO, ArmSpec(lower=[0.0] * 6))
    with pytest.raises(SafetyConfigError, match="do not overlap"):
        SafetyLimits.combine(INFO, ArmSpec(lower=[2.0] * 7))


def test_clamp_returns_what_is_sent_and_what_changed():
    s = layer()
    d = s.clamp(np.array([5.0, 0.05, -0.2, 0, 0, 0, 0.5]))
    assert d.target[0] == pytest.approx(0.1)  # limit 1.0, then max step 0.1 from 0
    assert d.target[1] == pytest.approx(0.05)  # unchanged
    assert d.target[2] == pytest.approx(-0.1)
    assert d.limit_axes == (0,) and d.step_axes == (0, 2) and d.clamped
    assert s.counters.limit_clamps == 1 and s.counters.step_clamps == 1
    assert s.counters.axis_clamps == {"x": 1, "z": 1}


def test_steps_are_measured_from_the_last_accepted_target():
    s = layer()
    first = s.clamp(np.array([0.1, 0, 0, 0, 0, 0, 0.5]))
    s.accepted(first.target)
    second = s.clamp(np.array([0.3, 0, 0, 0, 0, 0, 0.5]))
    assert second.target[0] == pytest.approx(0.2, abs=1e-6)


def test_gripper_range_is_enforced():
    d = layer().clamp(np.array([0, 0, 0, 0, 0, 0, -0.3]))
    assert d.target[6] == 0.0 and d.limit_axes == (6,)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_action_is_rejected_and_the_arm_holds(bad):
    s = layer()
    measured = state(values=(0.05,) * 6, gripper=0.4)
    action = np.zeros(7)
    action[3] = bad
    d = s.decide(action, measured)
    assert d.hold is HoldReason.NON_FINITE and d.requested is None
    np.testing.assert_allclose(d.target, measured.as_target(), atol=1e-7)
    assert s.counters.holds[HoldReason.NON_FINITE] == 1 and s.counters.total_holds == 1


def test_no_action_holds_at_the_measured_state_and_counts():
    s = layer()
    measured = state(values=(0.02,) * 6, gripper=0.5)
    d = s.decide(None, measured, HoldReason.STALE)
    np.testing.assert_allclose(d.target, measured.as_target(), atol=1e-7)
    assert s.counters.holds[HoldReason.STALE] == 1


def test_after_a_watchdog_hold_steps_are_measured_from_the_arm_position():
    s = layer()
    s.accepted(np.array([0.9] * 6 + [0.5]))
    s.observe(state(values=(0.0,) * 6, watchdog_hold=True))
    d = s.clamp(np.array([0.9] * 6 + [0.5]))
    assert d.target[0] == pytest.approx(0.1)


finite = st.floats(-1e6, 1e6, allow_nan=False)


@settings(max_examples=200, deadline=None)
@given(action=st.lists(finite, min_size=7, max_size=7), ref=st.lists(st.floats(-1, 1), min_size=7, max_size=7),
       lo=st.floats(0, 0.4), width=st.floats(0.01, 0.6), step=st.floats(1e-6, 0.5))
def test_any_finite_action_becomes_a_target_the_arm_accepts(action, ref, lo, width, step):
    """Exactly the firmware's checks, in float32 as the wire carries the target."""
    spec = ArmSpec(lower=[lo] * 7, upper=[lo + width] * 7, max_step=[step] * 7)
    lim = SafetyLimits.combine(INFO, spec)
    s = SafetyLayer(lim)
    reference = np.clip(np.asarray(ref, np.float32).astype(np.float64), lim.lower, lim.upper)
    s.accepted(reference)
    target = s.clamp(np.asarray(action)).target
    wire = target.astype(np.float32).astype(np.float64)
    np.testing.assert_array_equal(wire, target)
    assert np.all(wire >= lim.lower) and np.all(wire <= lim.upper)
    assert np.all(np.abs(wire - reference) <= lim.max_step)


def test_estop_latch_keeps_the_first_reason():
    latch = EstopLatch()
    assert not latch.tripped
    latch.trip(StopReason.CAMERA_STALL, "camera left stalled", 12)
    latch.trip(StopReason.SIGNAL, "SIGTERM received")
    assert latch.tripped and latch.stop.reason is StopReason.CAMERA_STALL and latch.stop.tick == 12
    assert latch.stop.as_dict()["estop"] is True
    assert not StopReason.COMPLETED.is_estop


@settings(max_examples=200, deadline=None)
@given(actions=st.lists(st.lists(finite, min_size=7, max_size=7), min_size=2, max_size=6), step=st.floats(1e-4, 0.5))
def test_after_lost_replies_targets_stay_within_a_step_of_every_target_the_arm_may_hold(actions, step):
    """Each send times out (the arm may or may not have applied it): every later target must be a
    legal step from whichever target the arm actually holds."""
    s = SafetyLayer(SafetyLimits.combine(INFO, ArmSpec(max_step=[step] * 7)))
    s.observe(state())
    possible = [np.asarray(state().as_target(), np.float64)]
    for action in actions:
        target = s.clamp(np.asarray(action)).target
        for held in possible:
            assert np.all(np.abs(target - held) <= s.limits.max_step)
        s.unconfirmed(target)
        possible.append(target)
