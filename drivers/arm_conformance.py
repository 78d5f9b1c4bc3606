"""The conformance test every `Arm` implementation runs: `check_arm_conformance(make_arm)`.

It drives an arm through its lifecycle and the firmware contract (docs/serial-protocol.md):
handshake, state, targets applied, out-of-limit targets refused (never clamped), oversized
steps refused, ESTOP latching, the watchdog hold, reconnect, close, and that no call takes
longer than its budget. Use it from a test:

    def test_my_arm_conforms(my_emulator):
        check_arm_conformance(lambda: MyArm(my_emulator.port))

It moves one axis to near its limit: run it against an emulator or a bench setup, not an arm
next to people. `make_arm` must return a new, unconnected arm, at rest and not estopped, whose
watchdog is at most `max_watchdog_s` (use a short one in tests).
"""

from __future__ import annotations

import time
from typing import Callable

from drivers.arm import Arm, ArmInfo, ArmState, RejectReason
from drivers.errors import DriverError, NotConnectedError


class ArmConformanceError(AssertionError):
    """An Arm implementation broke the contract; the message says which part."""


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ArmConformanceError(message)


class _Timed:
    """Calls arm methods, failing if one takes longer than the budget."""

    def __init__(self, arm: Arm, budget_s: float):
        self.arm = arm
        self.budget_s = budget_s

    def __call__(self, method: str, *args):
        start = time.monotonic()
        try:
            return getattr(self.arm, method)(*args)
        finally:
            took = time.monotonic() - start
            _require(took <= self.budget_s, f"{method}() took {took:.3f} s, over the {self.budget_s:.3f} s budget")


def _raises(error: type, call: Callable[[], object]) -> bool:
    try:
        call()
    except error:
        return True
    return False


def _settle(call: _Timed, target: tuple[float, ...], tolerance: tuple[float, ...], timeout_s: float) -> ArmState:
    """Poll state (feeding the watchdog) until it is within tolerance of target."""
    deadline = time.monotonic() + timeout_s
    while True:
        state = call("state")
        if all(abs(v - t) <= tol for v, t, tol in zip(state.as_target(), target, tolerance)):
            return state
        _require(time.monotonic() < deadline, f"arm did not reach {target} within {timeout_s} s (at {state.as_target()})")
        call("heartbeat")
        time.sleep(0.01)


def _walk(call: _Timed, info: ArmInfo, start: tuple[float, ...], axis: int, goal: float) -> tuple[float, ...]:
    """Send targets from `start` toward `goal` on `axis`, each within max_step; return the last one."""
    target = list(start)
    step = 0.9 * info.max_step[axis]
    while abs(goal - target[axis]) > 1e-9:
        delta = max(-step, min(step, goal - target[axis]))
        target[axis] += delta
        result = call("send_target", tuple(target))
        _require(result.accepted, f"in-limit target within max_step refused: {result}")
    return tuple(target)


def check_arm_conformance(
    make_arm: Callable[[], Arm],
    *,
    call_budget_s: float = 1.0,
    settle_timeout_s: float = 3.0,
    max_watchdog_s: float = 2.0,
) -> list[str]:
    """Run every check on arms from `make_arm`; return the names of the checks (all passed).

    Raises ArmConformanceError at the first violation.
    """
    passed: list[str] = []
    arm = make_arm()
    call = _Timed(arm, call_budget_s)
    try:
        # -- lifecycle: nothing works before connect ------------------------------------------
        _require(_raises(NotConnectedError, lambda: arm.state()), "state() before connect() must raise NotConnectedError")
        _require(_raises(NotConnectedError, lambda: arm.info), "info before connect() must raise NotConnectedError")
        passed.append("not connected before connect")

        info = call("connect")
        _require(isinstance(info, ArmInfo), f"connect() must return ArmInfo, got {type(info).__name__}")
        _require(arm.info == info, "info must equal what connect() returned")
        _require(info.watchdog_s <= max_watchdog_s, f"watchdog {info.watchdog_s} s is too long to test; use <= {max_watchdog_s} s")
        n = info.axes
        passed.append("connect declares info")

        # -- state ----------------------------------------------------------------------------
        state = call("state")
        _require(isinstance(state, ArmState), "state() must return ArmState")
        _require(len(state.values) == info.dof, f"state has {len(state.values)} values, dof is {info.dof}")
        _require(not state.estop, "a fresh arm must not be estopped")
        _require(abs(state.host_time_s - time.monotonic()) < call_budget_s, "host_time_s must be time.monotonic()")
        _require(
            all(lo <= v <= hi for v, lo, hi in zip(state.as_target(), info.lower, info.upper)),
            f"measured {state.as_target()} outside the declared limits",
        )
        passed.append("state shape")

        # -- targets --------------------------------------------------------------------------
        _require(
            _raises(DriverError, lambda: arm.send_target(state.as_target() + (0.0,))),
            f"a target with {n + 1} values (arm takes {n}) must raise DriverError",
        )
        passed.append("wrong target length refused")

        here = state.as_target()
        result = call("send_target", here)
        _require(result.accepted, f"holding the measured pose must be accepted: {result}")
        axis = 0
        mid = (info.lower[axis] + info.upper[axis]) / 2
        direction = 1.0 if here[axis] <= mid else -1.0
        step_target = list(here)
        step_target[axis] += direction * 0.5 * info.max_step[axis]
        step_target = tuple(step_target)
        result = call("send_target", step_target)
        _require(result.accepted, f"a half-max_step target must be accepted: {result}")
        tolerance = tuple(0.1 * s for s in info.max_step)
        _settle(call, step_target, tolerance, settle_timeout_s)
        passed.append("targets applied")

        too_far = list(step_target)
        too_far[axis] += direction * 1.5 * info.max_step[axis]
        if not info.lower[axis] <= too_far[axis] <= info.upper[axis]:
            too_far[axis] = step_target[axis] - direction * 1.5 * info.max_step[axis]
        result = call("send_target", tuple(too_far))
        _require(
            not result.accepted and result.reason is RejectReason.STEP_TOO_LARGE and result.axis == axis,
            f"a step of 1.5 x max_step must be refused STEP_TOO_LARGE on axis {axis}: {result}",
        )
        passed.append("step too large refused")

        # Walk to a quarter step inside the upper limit, then ask for a quarter step beyond it:
        # a step the arm would accept, so only the limit can refuse it.
        near_limit = _walk(call, info, step_target, axis, info.upper[axis] - 0.25 * info.max_step[axis])
        beyond = list(near_limit)
        beyond[axis] = info.upper[axis] + 0.25 * info.max_step[axis]
        result = call("send_target", tuple(beyond))
        _require(
            not result.accepted and result.reason is RejectReason.OUT_OF_LIMITS and result.axis == axis,
            f"a target beyond the upper limit must be refused OUT_OF_LIMITS on axis {axis} (never clamped): {result}",
        )
        settled = _settle(call, near_limit, tolerance, settle_timeout_s)
        _require(settled.as_target()[axis] <= info.upper[axis], "the arm moved beyond its upper limit")
        home = _walk(call, info, near_limit, axis, here[axis])
        _settle(call, home, tolerance, settle_timeout_s)
        passed.append("out of limits refused, not clamped")

        # -- ESTOP latches ----------------------------------------------------------------------
        call("estop")
        _require(call("state").estop, "state must report estop after estop()")
        result = call("send_target", home)
        _require(
            not result.accepted and result.reason is RejectReason.ESTOPPED,
            f"targets must be refused ESTOPPED while estopped: {result}",
        )
        call("heartbeat")
        time.sleep(min(info.watchdog_s * 1.5, 0.5))
        _require(call("state").estop, "ESTOP must stay latched until clear_estop()")
        call("clear_estop")
        state = call("state")
        _require(not state.estop, "clear_estop() must release the ESTOP")
        result = call("send_target", state.as_target())
        _require(result.accepted, f"targets must be accepted again after clear_estop(): {result}")
        passed.append("estop latches until cleared")

        # -- watchdog ---------------------------------------------------------------------------
        fed_until = time.monotonic() + 1.5 * info.watchdog_s
        while time.monotonic() < fed_until:
            call("heartbeat")
            time.sleep(info.watchdog_s / 4)
        _require(not call("state").watchdog_hold, "heartbeats every watchdog/4 must keep the watchdog from holding")
        result = call("send_target", call("state").as_target())
        _require(result.accepted, f"target refused: {result}")
        time.sleep(1.5 * info.watchdog_s + 0.05)
        held = call("state")
        _require(held.watchdog_hold, f"no command for 1.5 x watchdog ({info.watchdog_s} s) must report watchdog_hold")
        _require(not held.moving, "an arm in watchdog hold must not move")
        passed.append("watchdog holds when commands stop")

        # -- reconnect and close ----------------------------------------------------------------
        again = call("reconnect")
        _require(again == info, "reconnect() must handshake again and return the same ArmInfo")
        call("state")
        passed.append("reconnect re-handshakes")

        call("close")
        call("close")
        _require(_raises(NotConnectedError, lambda: arm.state()), "state() after close() must raise NotConnectedError")
        passed.append("close is idempotent and final")
    finally:
        try:
            arm.close()
        except DriverError:
            pass
    return passed
