"""Leaving the arm safe when the loop ends, whatever ended it.

An ESTOP stop (signal, fault, disconnect) always sends ESTOP; a completed run does what the
profile says (`arm.on_shutdown`: estop, or hold where it is). A vanished arm is reconnected
for a bounded time so the ESTOP still reaches it; the outcome is confirmed by reading the
arm's state back, and reported.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from enum import Enum

from drivers.arm import Arm
from drivers.errors import DeviceTimeoutError, DriverError, NotConnectedError
from edge.runtime.safety import SafetyLayer


class ShutdownAction(Enum):
    ESTOP = "estop"
    HOLD = "hold"
    NONE = "none"  # a dry run that ended normally: the arm was never commanded


@dataclass(frozen=True)
class ShutdownReport:
    action: ShutdownAction
    arm_safe: bool
    reconnect_attempts: int = 0
    detail: str = ""

    def as_dict(self) -> dict:
        return {"action": self.action.value, "arm_safe": self.arm_safe,
                "reconnect_attempts": self.reconnect_attempts, "detail": self.detail}


def leave_arm_safe(arm: Arm, safety: SafetyLayer, action: ShutdownAction, reconnect_budget_s: float = 5.0) -> ShutdownReport:
    """Send ESTOP (or a hold at the measured position) and confirm it from the arm's state."""
    if action is ShutdownAction.NONE:
        return ShutdownReport(action, True, detail="dry run: no target was ever sent")
    deadline = time.monotonic() + reconnect_budget_s
    reconnects = 0
    last_error = ""
    while True:
        try:
            if action is ShutdownAction.ESTOP:
                arm.estop()
                state = arm.state()
                if state.estop:
                    return ShutdownReport(action, True, reconnects)
                last_error = "the arm did not report ESTOP latched"
                time.sleep(0.01)
            else:
                state = arm.state()
                safety.observe(state)
                decision = safety.decide(None, state)
                result = arm.send_target(decision.target)
                # A refused hold is still a stop: the arm's watchdog holds once targets cease.
                return ShutdownReport(action, True, reconnects,
                                      "" if result.accepted else f"hold refused ({result.reason.value}); arm watchdog holds")
        except NotConnectedError as e:
            last_error = str(e)
            if time.monotonic() >= deadline:
                break
            reconnects += 1
            try:
                arm.reconnect()
            except DriverError as again:
                last_error = str(again)
                time.sleep(0.05)
            continue
        except (DeviceTimeoutError, DriverError) as e:
            last_error = str(e)
        if time.monotonic() >= deadline:
            break
    return ShutdownReport(action, False, reconnects, f"could not confirm {action.value}: {last_error}")
