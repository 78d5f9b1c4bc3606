"""Checks before motion, one by one (the CLI versions are in test_run_cli.py)."""

from __future__ import annotations

import os
import signal

import pytest

from drivers.arm import ArmInfo, ArmState
from drivers.camera_configs import RecordingConfig, SyntheticConfig
from edge.config import ArmSpec, load_profile
from edge.runtime.run import RunInterrupted, SignalStop, serial_timeout_s
from edge.runtime.safety import EstopLatch, SafetyLimits, StopReason
from edge.runtime.startup import (
    ArmRequirement, RunRefused, arm_requirement, check_arm, check_arm_state, check_instruction, check_rate,
    match_cameras,
)

NAMES = ("left", "right")


def _info(dof=6, space="ee") -> ArmInfo:
    return ArmInfo(1, "1.0.0", dof, space, (-1.0,) * dof + (0.0,), (1.0,) * dof + (1.0,), (0.1,) * (dof + 1), 0.5)


def test_named_and_unnamed_cameras_land_in_bundle_order():
    cams = match_cameras(["right=synthetic:64x48@30", "recording:/tmp/a.db3"], NAMES)
    assert [n for n, _ in cams] == ["left", "right"]
    assert isinstance(cams[0][1], RecordingConfig) and isinstance(cams[1][1], SyntheticConfig)


@pytest.mark.parametrize("specs, message", [
    (["front=synthetic", "right=synthetic"], "camera 'front' is not in the bundle"),
    (["left=synthetic"], "the bundle needs camera 'right'"),
    (["synthetic", "synthetic", "synthetic"], "3 cameras given; the bundle has 2"),
    (["left=synthetic", "left=synthetic"], "given twice"),
])
def test_camera_mismatches_are_refused(specs, message):
    with pytest.raises(RunRefused, match=message):
        match_cameras(specs, NAMES)


def test_rate_is_bounded_by_the_profile():
    profile = load_profile("cpu-dev")
    check_rate(profile.control.max_rate_hz, profile)
    with pytest.raises(RunRefused, match="above what profile cpu-dev allows"):
        check_rate(profile.control.max_rate_hz + 1, profile)
    with pytest.raises(RunRefused, match="positive"):
        check_rate(0, profile)


def test_instruction_budget(predictor):
    assert 0 < check_instruction(predictor, "pick up the red cube") <= predictor.max_prompt_tokens
    with pytest.raises(RunRefused, match="too long"):
        check_instruction(predictor, "x" * (predictor.max_prompt_tokens + 1))
    with pytest.raises(RunRefused, match="empty"):
        check_instruction(predictor, "  ")


def test_tinyvla_actions_need_a_6_dof_end_effector_arm(predictor):
    need = arm_requirement(predictor)
    assert need == ArmRequirement(axes=7, action_space="ee")
    check_arm(_info(6, "ee"), need, predictor.state_dim)
    with pytest.raises(RunRefused, match="arm mismatch"):
        check_arm(_info(6, "joint"), need, predictor.state_dim)
    with pytest.raises(RunRefused, match="arm mismatch"):
        check_arm(_info(7, "ee"), need, predictor.state_dim)


def test_arm_state_checks():
    limits = SafetyLimits.combine(_info(), ArmSpec(upper=[0.5] * 6 + [1.0]))
    inside = ArmState((0.0,) * 6, 0.5, False, False, False, True, None, 0.0)
    check_arm_state(inside, limits, clear_estop=False)
    with pytest.raises(RunRefused, match="fault"):
        check_arm_state(ArmState((0.0,) * 6, 0.5, False, True, False, False, None, 0.0), limits, False)
    latched = ArmState((0.0,) * 6, 0.5, False, False, True, False, None, 0.0)
    with pytest.raises(RunRefused, match="--clear-estop"):
        check_arm_state(latched, limits, False)
    check_arm_state(latched, limits, clear_estop=True)
    with pytest.raises(RunRefused, match="outside the limits on axis x"):
        check_arm_state(ArmState((0.7,) + (0.0,) * 5, 0.5, False, False, False, False, None, 0.0), limits, False)


def test_serial_budget_is_a_share_of_the_tick():
    assert serial_timeout_s(30) == pytest.approx(0.01)
    assert serial_timeout_s(1) == 0.1 and serial_timeout_s(1000) == 0.004


def test_a_signal_during_start_up_aborts_it_and_during_the_loop_trips_the_estop():
    with pytest.raises(RunInterrupted, match="SIGTERM received during start-up"):
        with SignalStop():
            os.kill(os.getpid(), signal.SIGTERM)
            for _ in range(1000):  # Python runs the handler between bytecodes, in this thread
                pass
    latch = EstopLatch()
    with SignalStop() as signals:
        signals.arm(latch)
        os.kill(os.getpid(), signal.SIGINT)
        for _ in range(1000):
            pass
    assert latch.stop.reason is StopReason.SIGNAL and "SIGINT" in latch.stop.message
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
