"""The conformance test every `Arm` implementation runs, and a serial arm's wire-level checks.

`check_arm_conformance(make_arm)` drives an arm through its lifecycle and the firmware contract
(docs/serial-protocol.md): handshake, state, targets applied, out-of-limit targets refused (never
clamped), oversized steps refused, ESTOP latching, the watchdog hold, reconnect, close, and that
no call takes longer than its budget. Given the arm's serial `port` it also speaks raw frames to
it: retransmission idempotence, the BAD_CRC / BAD_VERSION / UNKNOWN_TYPE / BAD_LENGTH answers,
FAULT, that GET_STATE does not feed the watchdog, that HELLO resets last_seq, and the reply time.
Use it from a test:

    def test_my_arm_conforms(my_emulator):
        check_arm_conformance(lambda: MyArm(my_emulator.port))

`run_arm_conformance` runs the same checks and returns a pass/fail table instead of raising
(`tinyvla-edge doctor --arm PORT --conformance`).

It moves one axis to near its limit: run it against an emulator or a bench setup, not an arm
next to people. `make_arm` must return a new, unconnected arm, at rest and not estopped, whose
watchdog is at most `max_watchdog_s` (use a short one in tests).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Callable

import serial

from drivers.arm import protocol as sp
from drivers.arm.base import Arm, ArmInfo, ArmState, RejectReason
from drivers.errors import DriverError, NotConnectedError
from drivers.arm.serial_port import open_serial
from drivers.arm.serial_arm import state_transfer_s, time_replies

ARM_CHECKS = (
    "not connected before connect",
    "connect declares info",
    "state shape",
    "wrong target length refused",
    "targets applied",
    "step too large refused",
    "out of limits refused, not clamped",
    "estop latches until cleared",
    "watchdog holds when commands stop",
    "reconnect re-handshakes",
    "close is idempotent and final",
)
WIRE_CHECKS = (
    "corrupted frame answered NAK BAD_CRC (type 0, seq 0xFFFF)",
    "other protocol version answered NAK BAD_VERSION",
    "unknown type answered NAK UNKNOWN_TYPE",
    "wrong body length answered NAK BAD_LENGTH",
    "retransmission acked, not re-applied",
    "HELLO resets last_seq",
    "GET_STATE does not feed the watchdog",
    "FAULT refuses targets",
    "reply time within the spec",
)
REPLY_TIME_SAMPLES = 100
REPLY_TIME_BURSTS = 3


@dataclass(frozen=True)
class ConformanceResult:
    """One row of the conformance table."""

    name: str
    status: str  # pass | fail | skip (cannot be checked from the host now) | not run (an earlier check failed)
    detail: str = ""

    def as_dict(self) -> dict:
        return asdict(self)


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


def check_arm_conformance(make_arm: Callable[[], Arm], **options) -> list[str]:
    """Run every check on arms from `make_arm` (options as for `run_arm_conformance`); return the
    names of the checks that passed. Raises ArmConformanceError at the first violation."""
    results = run_arm_conformance(make_arm, **options)
    failed = [r for r in results if r.status == "fail"]
    if failed:
        raise ArmConformanceError(failed[0].detail)
    return [r.name for r in results if r.status == "pass"]


def run_arm_conformance(
    make_arm: Callable[[], Arm],
    *,
    port: str | None = None,
    baud: int = 1_000_000,
    call_budget_s: float = 1.0,
    settle_timeout_s: float = 3.0,
    max_watchdog_s: float = 2.0,
) -> list[ConformanceResult]:
    """Every check as a table row. The Arm-level checks stop at the first failure (later ones
    depend on it); each wire-level check starts its own session (HELLO) and runs regardless."""
    passed: list[str] = []
    results: list[ConformanceResult] = []
    try:
        _arm_checks(make_arm, passed, call_budget_s, settle_timeout_s, max_watchdog_s)
    except (ArmConformanceError, DriverError) as e:
        failed = ARM_CHECKS[len(passed)]
        results = [ConformanceResult(name, "pass") for name in passed]
        results.append(ConformanceResult(failed, "fail", str(e)))
        results += [ConformanceResult(name, "not run") for name in ARM_CHECKS[len(passed) + 1:]]
    else:
        results = [ConformanceResult(name, "pass") for name in passed]
    if port is not None:
        results += [_run_wire_check(name, check, port, baud) for name, check in zip(WIRE_CHECKS, _WIRE_CHECK_FUNCTIONS)]
    return results


def _arm_checks(make_arm, passed: list[str], call_budget_s: float, settle_timeout_s: float, max_watchdog_s: float) -> None:
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


# -- the wire ---------------------------------------------------------------------------------------


class _Wire:
    """Raw frames to and from a serial arm, for what the Arm protocol cannot express."""

    def __init__(self, port: str, baud: int, timeout_s: float = 0.5):
        self.serial = open_serial(port, baud)
        self.decoder = sp.FrameDecoder(expected_version=None)
        self.timeout_s = timeout_s
        self.seq = 100

    def close(self) -> None:
        self.serial.close()

    def send_raw(self, wire: bytes) -> sp.Received:
        """Write bytes, return the first decodable reply (ArmConformanceError if none in time)."""
        try:
            return self._exchange(wire)
        except (serial.SerialException, OSError) as e:
            raise NotConnectedError(f"lost the arm's port during the wire checks: {e}") from e

    def _exchange(self, wire: bytes) -> sp.Received:
        self.serial.reset_input_buffer()
        self.decoder.reset()
        self.serial.write(b"\x00" + wire)
        deadline = time.monotonic() + self.timeout_s
        while time.monotonic() < deadline:
            data = self.serial.read(max(1, self.serial.in_waiting))
            for item in self.decoder.feed(data):
                if isinstance(item, sp.Received):
                    return item
            if not data:
                time.sleep(0.0005)
        raise ArmConformanceError(f"no reply within {self.timeout_s:.1f} s")

    def send(self, message: sp.Message, seq: int | None = None, version: int = sp.PROTOCOL_VERSION) -> sp.Received:
        if seq is None:
            self.seq = (self.seq + 1) % sp.SEQ_MODULUS
            seq = self.seq
        return self.send_raw(sp.encode(message, seq, version))

    def hello(self) -> sp.Info:
        reply = self.send(sp.Hello()).message
        _require(isinstance(reply, sp.Info), f"HELLO was answered {reply}")
        return reply

    def state(self) -> sp.State:
        reply = self.send(sp.GetState()).message
        _require(isinstance(reply, sp.State), f"GET_STATE was answered {reply}")
        return reply


def _frame(version: int, msg_type: int, seq: int, body: bytes) -> bytes:
    payload = bytes([version, msg_type]) + seq.to_bytes(2, "little") + body
    payload += sp.crc16_ccitt_false(payload).to_bytes(2, "little")
    return sp.cobs_encode(payload) + b"\x00"


def _expect_nak(reply: sp.Received, command: int, reason: sp.NakReason, seq: int) -> str:
    message = reply.message
    _require(isinstance(message, sp.Nak) and message.reason == reason and message.command == command
             and reply.seq == seq,
             f"expected NAK({command}, {reason.name}) with seq {seq:#06x}, got {message} with seq {reply.seq:#06x}")
    return f"NAK {reason.name}, seq {reply.seq:#06x}"


def _wire_bad_crc(wire: _Wire) -> str:
    good = sp.cobs_decode(sp.encode(sp.Heartbeat(), 7)[:-1])
    corrupted = good[:-1] + bytes([good[-1] ^ 0x5A])
    return _expect_nak(wire.send_raw(sp.cobs_encode(corrupted) + b"\x00"), 0, sp.NakReason.BAD_CRC, sp.SEQ_UNKNOWN)


def _wire_bad_version(wire: _Wire) -> str:
    return _expect_nak(wire.send(sp.Heartbeat(), 9, version=sp.PROTOCOL_VERSION + 1), sp.MsgType.HEARTBEAT,
                       sp.NakReason.BAD_VERSION, 9)


def _wire_unknown_type(wire: _Wire) -> str:
    return _expect_nak(wire.send_raw(_frame(sp.PROTOCOL_VERSION, 0x7F, 11, b"")), 0x7F, sp.NakReason.UNKNOWN_TYPE, 11)


def _wire_bad_length(wire: _Wire) -> str:
    _expect_nak(wire.send_raw(_frame(sp.PROTOCOL_VERSION, sp.MsgType.HEARTBEAT, 12, b"\x01")), sp.MsgType.HEARTBEAT,
                sp.NakReason.BAD_LENGTH, 12)
    info = wire.hello()
    too_many = sp.SetTarget(tuple(wire.state().values) + (0.0,)) if info.dof + 2 <= sp.MAX_AXES else None
    if too_many is not None:
        _expect_nak(wire.send(too_many, 13), sp.MsgType.SET_TARGET, sp.NakReason.BAD_LENGTH, 13)
    return "HEARTBEAT with a body" + (", SET_TARGET with n + 1 values" if too_many else "")


def _beyond_upper(info: sp.Info, values: tuple[float, ...]) -> tuple[float, ...]:
    return (info.upper[0] + info.max_step[0],) + tuple(values[1:])


def _wire_retransmission(wire: _Wire) -> str:
    info = wire.hello()
    here = tuple(wire.state().values)
    reply = wire.send(sp.SetTarget(here), 20).message
    _require(reply == sp.Ack(sp.MsgType.SET_TARGET), f"holding the measured pose was answered {reply}")
    # The same seq with values the arm would refuse: a retransmission is ACKed before any limit check.
    reply = wire.send(sp.SetTarget(_beyond_upper(info, here)), 20).message
    _require(reply == sp.Ack(sp.MsgType.SET_TARGET),
             f"a retransmission (seq of the last applied target) must be ACKed without re-checking, got {reply}")
    state = wire.state()
    _require(state.last_seq == 20, f"last_seq is {state.last_seq}, expected 20")
    _require(all(v <= hi for v, hi in zip(state.values, info.upper)), "the retransmitted values were applied")
    return "ACKed, last_seq unchanged"


def _wire_hello_resets(wire: _Wire) -> str:
    wire.hello()
    here = tuple(wire.state().values)
    _require(wire.send(sp.SetTarget(here), 30).message == sp.Ack(sp.MsgType.SET_TARGET), "target refused")
    info = wire.hello()
    state = wire.state()
    _require(state.last_seq == sp.SEQ_UNKNOWN, f"after HELLO last_seq is {state.last_seq:#06x}, expected 0xFFFF")
    # After HELLO the same seq is a new command: checked (and here refused) like any other.
    reply = wire.send(sp.SetTarget(_beyond_upper(info, here)), 30).message
    _require(isinstance(reply, sp.Nak) and reply.reason == sp.NakReason.OUT_OF_LIMITS,
             f"after HELLO, seq 30 must be a new command (NAK OUT_OF_LIMITS), got {reply}")
    return "last_seq 0xFFFF; the old seq is a new command"


def _wire_get_state_does_not_feed(wire: _Wire) -> str:
    info = wire.hello()
    _require(info.watchdog_ms <= 2000, f"watchdog {info.watchdog_ms} ms is too long to test")
    here = tuple(wire.state().values)
    _require(wire.send(sp.SetTarget(here), 40).message == sp.Ack(sp.MsgType.SET_TARGET), "target refused")
    watchdog_s = info.watchdog_ms / 1000
    until = time.monotonic() + 1.5 * watchdog_s + 0.05
    while time.monotonic() < until:
        wire.state()
        time.sleep(watchdog_s / 4)
    _require(wire.state().flags & sp.StateFlag.WATCHDOG_HOLD, "polling GET_STATE kept the watchdog from holding")
    return f"WATCHDOG_HOLD after {1.5 * watchdog_s:.2f} s of GET_STATE only"


def _wire_fault(wire: _Wire) -> str:
    wire.hello()
    state = wire.state()
    if not state.flags & sp.StateFlag.FAULT:
        raise _Skip("the arm reports no FAULT now: FAULT can only be checked while the arm has one")
    reply = wire.send(sp.SetTarget(tuple(state.values)), 50)
    return _expect_nak(reply, sp.MsgType.SET_TARGET, sp.NakReason.FAULT, 50)


def _wire_reply_time(wire: _Wire) -> str:
    info = wire.hello()
    transfer_s = state_transfer_s(info.dof + 1, wire.serial.baudrate)
    # Best of a few bursts: a host hiccup inflates one burst's p99, a slow firmware is slow in all.
    for _ in range(REPLY_TIME_BURSTS):
        measured = time_replies(wire.state, REPLY_TIME_SAMPLES, transfer_s)
        if measured.within_spec:
            break
    _require(measured.within_spec, f"reply time p99 {1e3 * measured.p99_s:.2f} ms over the spec's "
                                   f"{1e3 * sp.REPLY_BUDGET_S:g} ms")
    return f"p99 {1e3 * measured.p99_s:.2f} ms (spec {1e3 * sp.REPLY_BUDGET_S:g} ms)"


class _Skip(Exception):
    """A check that cannot be made from the host right now."""


_WIRE_CHECK_FUNCTIONS = (_wire_bad_crc, _wire_bad_version, _wire_unknown_type, _wire_bad_length,
                         _wire_retransmission, _wire_hello_resets, _wire_get_state_does_not_feed, _wire_fault,
                         _wire_reply_time)


def _run_wire_check(name: str, check: Callable[[_Wire], str], port: str, baud: int) -> ConformanceResult:
    try:
        wire = _Wire(port, baud)
    except DriverError as e:
        return ConformanceResult(name, "fail", str(e))
    try:
        return ConformanceResult(name, "pass", check(wire))
    except _Skip as e:
        return ConformanceResult(name, "skip", str(e))
    except (ArmConformanceError, DriverError) as e:
        return ConformanceResult(name, "fail", str(e))
    finally:
        wire.close()
