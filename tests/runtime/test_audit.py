"""The emulator-log audit used by the demo and the fault tests."""

from __future__ import annotations

import json

import numpy as np

from edge.runtime.audit import audit_arm_log
from edge.runtime.safety import SafetyLimits

LIMITS = SafetyLimits(lower=np.array([-1.0, 0.0]), upper=np.array([1.0, 1.0]), max_step=np.array([0.1, 0.5]),
                      axes=("j1", "gripper"))


def _log(tmp_path, events):
    path = tmp_path / "arm.jsonl"
    path.write_text("".join(json.dumps(e) + "\n" for e in events))
    return path


def test_a_clean_log_passes(tmp_path):
    path = _log(tmp_path, [
        {"type": "SET_TARGET", "result": "ack", "values": [0.0, 0.5]},
        {"type": "SET_TARGET", "result": "ack", "values": [0.1, 0.5]},
        {"type": "SET_TARGET", "result": "nak", "reason": "out_of_limits", "values": [5.0, 0.5]},
        {"type": "WATCHDOG", "result": "hold"},
        {"type": "SET_TARGET", "result": "ack", "values": [0.5, 0.5]},  # after a hold: from the measured position
        {"type": "ESTOP", "result": "ack"},
    ])
    result = audit_arm_log(path, LIMITS)
    assert result.ok and result.accepted == 3 and result.estops == 1 and result.last_event == "ESTOP"


def test_accepted_targets_outside_limits_or_oversized_steps_are_found(tmp_path):
    path = _log(tmp_path, [
        {"type": "SET_TARGET", "result": "ack", "values": [0.0, 0.5]},
        {"type": "SET_TARGET", "result": "ack", "values": [0.3, 0.5]},
        {"type": "SET_TARGET", "result": "ack", "values": [0.3, 1.5]},
        {"type": "SET_TARGET", "result": "ack", "values": [float("nan"), 0.5]},
    ])
    result = audit_arm_log(path, LIMITS)
    assert not result.ok
    assert len(result.oversized_steps) == 3 and len(result.out_of_limits) == 2  # NaN counts as outside
