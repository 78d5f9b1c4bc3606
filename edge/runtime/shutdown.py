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


# Shutdown is not bound by the tick: each call gets this long, so a slow but live arm answers.
SHUTDOWN_CALL_TIMEOUT_S = 0.5
# Between rounds (ESTOP + state read) the wait doubles from the first to the last value, so a
# struggling arm is sent a few frames per second, not hundreds.
FIRST_BACKOFF_S = 0.05
MAX_BACKOFF_S = 1.0


def leave_arm_safe(arm: Arm, safety: SafetyLayer, action: ShutdownAction, reconnect_budget_s: float = 5.0) -> ShutdownReport:
    """Send ESTOP (or a hold at the measured position) and confirm it from the arm's state."""
    if action is ShutdownAction.NONE:
        return ShutdownReport(action, True, detail="dry run: no target was ever sent")
    deadline = time.monotonic() + reconnect_budget_s
    reconnects = 0
    last_error = ""
    backoff_s = FIRST_BACKOFF_S
    with arm.longer_timeout(SHUTDOWN_CALL_TIMEOUT_S):
        while True:
            try:
                if action is ShutdownAction.ESTOP:
                    if _estop_confirmed(arm):
                        return ShutdownReport(action, True, reconnects)
                    last_error = "the arm did not report ESTOP latched"
                else:
                    return _hold(arm, safety, reconnects)
            except NotConnectedError as e:
                last_error = str(e)
                if time.monotonic() >= deadline:
                    break
                reconnects += 1
                try:
                    arm.reconnect()
                    continue
                except DriverError as again:
                    last_error = str(again)
            except (DeviceTimeoutError, DriverError) as e:
                last_error = str(e)
            if time.monotonic() + backoff_s >= deadline:
                break
            time.sleep(backoff_s)
            backoff_s = min(MAX_BACKOFF_S, 2 * backoff_s)
    return ShutdownReport(action, False, reconnects, f"could not confirm {action.value}: {last_error}")


def _estop_confirmed(arm: Arm) -> bool:
    """Send ESTOP and read the state back. A lost ESTOP reply is not a failure: the arm may have
    latched it (a slow arm answers late), and only its state can say."""
    try:
        arm.estop()
    except DeviceTimeoutError:
        pass
    return arm.state().estop


def _hold(arm: Arm, safety: SafetyLayer, reconnects: int) -> ShutdownReport:
    state = arm.state()
    safety.observe(state)
    decision = safety.decide(None, state)
    result = arm.send_target(decision.target)
    # A refused hold is still a stop: the arm's watchdog holds once targets cease.
    return ShutdownReport(ShutdownAction.HOLD, True, reconnects,
                          "" if result.accepted else f"hold refused ({result.reason.value}); arm watchdog holds")
