"""Execution-latency compensation on the emulator (docs/runtime.md, "Execution latency"): with an
arm that answers late, actions sent at their due time are confirmed after it; sent the measured
latency ahead, far fewer are."""

from __future__ import annotations

import dataclasses

import pytest

from edge.runtime.loop import LoopSettings
from edge.runtime.shutdown import ShutdownAction
from edge.runtime.startup import RunRefused, TICK_WORK_RESERVE_S, exec_latency_s, plan_link_timing
from drivers.arm.serial_arm import ReplyTime
from tests.runtime.conftest import FAST
from tests.runtime.predictors import Replaying

ARM_DELAY_S = 0.008  # the emulator answers every command this late
RATE_HZ = 10.0  # a 49 ms serial budget per call: the late reply arrives within the first attempt


def test_the_profile_value_wins_and_the_default_is_measured_from_the_round_trip():
    timing = plan_link_timing(30, 1_000_000, 7)
    reply = ReplyTime(30, 0.001, 0.004, 0.005)
    assert exec_latency_s(0.05, reply, timing, deadline_s=0.5) == 0.05
    measured = exec_latency_s(None, reply, timing, deadline_s=0.5)
    assert TICK_WORK_RESERVE_S + reply.p99_s < measured < TICK_WORK_RESERVE_S + reply.p99_s + 0.001  # + wire time
    with pytest.raises(RunRefused, match="not shorter than the action deadline"):
        exec_latency_s(0.6, reply, timing, deadline_s=0.5)


def test_settings_refuse_a_latency_that_leaves_no_action():
    with pytest.raises(ValueError, match="exec_latency_s"):
        LoopSettings(rate_hz=10, action_deadline_s=0.2, exec_latency_s=0.2)


def test_compensation_leaves_fewer_targets_late_behind_an_actuation_delay(rig_factory):
    rig = rig_factory(faults=(f"delay:{ARM_DELAY_S}",), rate_hz=RATE_HZ)
    with rig.arm.longer_timeout(0.5):
        reply = rig.arm.measure_reply_time(30)
    latency = exec_latency_s(None, reply, plan_link_timing(RATE_HZ, rig.arm.baud, rig.arm.info.axes), 1.0)
    assert latency > ARM_DELAY_S
    settings = dataclasses.replace(FAST, rate_hz=RATE_HZ, duration_s=3.0, action_deadline_s=1.0,
                                   on_shutdown=ShutdownAction.HOLD)  # the second run needs the arm unlatched
    policy = Replaying(rig.predictor, 0.05)  # the model's CPU load would stretch the round trip in this process
    uncompensated = rig.run(settings, policy, log=False, exec_latency_s=0.0).report
    compensated = rig.run(settings, policy, log=False, exec_latency_s=latency).report
    policy_targets = uncompensated["link"]["accepted"] - uncompensated["safety"]["holds"]
    assert uncompensated["link"]["late"] >= policy_targets > 5  # every policy target is confirmed late
    assert compensated["link"]["late"] < uncompensated["link"]["late"] / 2
    assert compensated["exec_latency_ms"] == pytest.approx(1e3 * latency)
