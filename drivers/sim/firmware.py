"""The arm firmware contract of serial protocol v1, as a pure state machine.

`ArmFirmware` takes decoded frames and the time, and returns replies; it does no I/O, so the
contract is testable on its own and the pty emulator (`sim_arm.py`) only moves bytes. What it
enforces (docs/serial-protocol.md, "Firmware contract"):

- watchdog: no accepted SET_TARGET or HEARTBEAT within watchdog_s -> hold the measured position
  and report WATCHDOG_HOLD until the next accepted target;
- a target outside the limits (or not finite) is NAKed OUT_OF_LIMITS, never clamped;
- a target further than max_step from the current target is NAKed STEP_TOO_LARGE;
- ESTOP latches until CLEAR_ESTOP; while latched targets are NAKed ESTOPPED;
- a retransmitted SET_TARGET (same seq as the last applied) is ACKed, not re-applied;
- HELLO starts a session: INFO back, and the last applied seq is forgotten.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

from drivers.arm import protocol as sp
from drivers.errors import DriverError

DEFAULT_AXIS_LIMIT = math.pi
DEFAULT_AXIS_STEP = 0.5
MOVING_EPSILON = 1e-4


def _f32s(values) -> tuple[float, ...]:
    # Limits live in float32, as in C firmware: a host sending back the limits it read from
    # INFO must land exactly on them, not 1e-8 outside.
    return tuple(sp.float32(float(v)) for v in values)


@dataclass(frozen=True)
class FirmwareConfig:
    """What the emulated arm declares. Limits default to +-pi per axis and [0, 1] for the gripper."""

    dof: int = 7
    space: str = "ee"
    lower: tuple[float, ...] | None = None
    upper: tuple[float, ...] | None = None
    max_step: tuple[float, ...] | None = None
    watchdog_s: float = 0.5
    time_constant_s: float = 0.05
    firmware_version: tuple[int, int, int] = (1, 0, 0)
    protocol_version: int = sp.PROTOCOL_VERSION

    def __post_init__(self) -> None:
        if not 1 <= self.dof <= sp.MAX_AXES - 1:
            raise DriverError(f"dof must be 1..{sp.MAX_AXES - 1}, got {self.dof}")
        if self.space not in ("joint", "ee"):
            raise DriverError(f"space must be 'joint' or 'ee', got {self.space!r}")
        n = self.dof + 1
        defaults = {
            "lower": (-DEFAULT_AXIS_LIMIT,) * self.dof + (0.0,),
            "upper": (DEFAULT_AXIS_LIMIT,) * self.dof + (1.0,),
            "max_step": (DEFAULT_AXIS_STEP,) * self.dof + (1.0,),
        }
        for name, default in defaults.items():
            value = getattr(self, name)
            value = default if value is None else tuple(value)
            if len(value) != n:
                raise DriverError(f"{name} needs dof + 1 = {n} values, got {len(value)}")
            object.__setattr__(self, name, _f32s(value))
        if any(not lo < hi for lo, hi in zip(self.lower, self.upper)):
            raise DriverError("every lower limit must be below its upper limit")
        if any(not s > 0 for s in self.max_step):
            raise DriverError("every max_step must be positive")
        if not 0.001 <= self.watchdog_s <= 65.535:
            raise DriverError("watchdog_s must be within 0.001 .. 65.535 s (u16 milliseconds)")
        if self.time_constant_s <= 0:
            raise DriverError("time_constant_s must be positive")

    @property
    def home(self) -> tuple[float, ...]:
        return tuple(sp.float32((lo + hi) / 2) for lo, hi in zip(self.lower, self.upper))

    def info(self) -> sp.Info:
        return sp.Info(
            protocol_version=self.protocol_version,
            firmware_version=self.firmware_version,
            dof=self.dof,
            action_space=sp.ActionSpace.JOINT if self.space == "joint" else sp.ActionSpace.EE,
            watchdog_ms=round(self.watchdog_s * 1000),
            lower=self.lower,
            upper=self.upper,
            max_step=self.max_step,
        )


@dataclass
class FirmwareStats:
    accepted: int = 0
    naks: int = 0
    frames: int = 0
    bad_frames: int = 0
    watchdog_holds: int = 0


@dataclass
class ArmFirmware:
    """The emulated arm's state and its reaction to each frame. `now` is time.monotonic()."""

    config: FirmwareConfig
    on_event: Callable[[dict], None] = lambda event: None
    measured: list[float] = field(init=False)
    target: list[float] = field(init=False)
    estop: bool = field(default=False, init=False)
    fault: bool = field(default=False, init=False)
    watchdog_hold: bool = field(default=True, init=False)  # at boot nobody commands the arm
    last_seq: int = field(default=sp.SEQ_UNKNOWN, init=False)
    stats: FirmwareStats = field(default_factory=FirmwareStats, init=False)
    _last_fed: float | None = field(default=None, init=False)
    _last_step: float | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.measured = list(self.config.home)
        self.target = list(self.config.home)

    # -- frames ---------------------------------------------------------------------------------

    def handle(self, item: sp.Received | sp.FrameRejected, now: float) -> list[tuple[int, sp.Message]]:
        """React to one decoded (or rejected) frame; return (seq, reply) pairs to send."""
        self.stats.frames += 1
        if isinstance(item, sp.FrameRejected):
            self.stats.bad_frames += 1
            return [self._nak(item.seq, item.msg_type, sp.NakReason(item.reason), None, now)]
        message, seq = item.message, item.seq
        if isinstance(message, sp.Hello):
            self.last_seq = sp.SEQ_UNKNOWN
            return [(seq, self.config.info())]
        if isinstance(message, sp.SetTarget):
            return [self._set_target(seq, message.values, now)]
        if isinstance(message, sp.Heartbeat):
            self._last_fed = now
            return [(seq, sp.Ack(sp.MsgType.HEARTBEAT))]
        if isinstance(message, sp.Estop):
            self.estop = True
            self.target = list(self.measured)
            self.on_event({"seq": seq, "type": "ESTOP", "result": "ack"})
            return [(seq, sp.Ack(sp.MsgType.ESTOP))]
        if isinstance(message, sp.ClearEstop):
            if self.estop:
                self.estop = False
                self.watchdog_hold = True  # hold where it stopped until the host commands again
                self.on_event({"seq": seq, "type": "CLEAR_ESTOP", "result": "ack"})
            return [(seq, sp.Ack(sp.MsgType.CLEAR_ESTOP))]
        if isinstance(message, sp.GetState):
            return [(seq, self.state())]
        # An arm -> host message sent to the arm.
        command = int(sp.encode_body(message)[0])
        return [self._nak(seq, command, sp.NakReason.UNKNOWN_TYPE, None, now)]

    def nak_corrupted(self, item: sp.Received, now: float) -> tuple[int, sp.Message]:
        """A NAK(BAD_CRC) for a frame the fault injector pretends was corrupted, in the spec's
        form for an unreadable frame: type 0, seq 0xFFFF."""
        self.stats.frames += 1
        self.stats.bad_frames += 1
        return self._nak(sp.SEQ_UNKNOWN, 0, sp.NakReason.BAD_CRC, None, now)

    def state(self) -> sp.State:
        flags = 0
        if self.moving:
            flags |= sp.StateFlag.MOVING
        if self.fault:
            flags |= sp.StateFlag.FAULT
        if self.estop:
            flags |= sp.StateFlag.ESTOP
        if self.watchdog_hold:
            flags |= sp.StateFlag.WATCHDOG_HOLD
        return sp.State(int(flags), self.last_seq, tuple(self.measured))

    @property
    def moving(self) -> bool:
        return any(abs(t - m) > MOVING_EPSILON for t, m in zip(self.target, self.measured))

    def _set_target(self, seq: int, values: tuple[float, ...], now: float) -> tuple[int, sp.Message]:
        cfg = self.config
        command = int(sp.MsgType.SET_TARGET)
        if self.estop:
            return self._nak(seq, command, sp.NakReason.ESTOPPED, None, now, values)
        if self.fault:
            return self._nak(seq, command, sp.NakReason.FAULT, None, now, values)
        if len(values) != cfg.dof + 1:
            return self._nak(seq, command, sp.NakReason.BAD_LENGTH, None, now, values)
        if seq == self.last_seq:
            # A retransmission of what is already applied: ACKed, and it feeds the watchdog (the
            # host is alive and commanding), but a hold is not released: nothing was applied.
            self._last_fed = now
            return seq, sp.Ack(command)
        for axis, (value, lo, hi) in enumerate(zip(values, cfg.lower, cfg.upper)):
            if not (math.isfinite(value) and lo <= value <= hi):
                return self._nak(seq, command, sp.NakReason.OUT_OF_LIMITS, axis, now, values)
        for axis, (value, current, step) in enumerate(zip(values, self.target, cfg.max_step)):
            if abs(value - current) > step:
                return self._nak(seq, command, sp.NakReason.STEP_TOO_LARGE, axis, now, values)
        self.target = list(values)
        self.last_seq = seq
        self.watchdog_hold = False
        self._last_fed = now
        self.stats.accepted += 1
        self.on_event({"seq": seq, "type": "SET_TARGET", "values": list(values), "result": "ack"})
        return seq, sp.Ack(command)

    def _nak(self, seq, command, reason, axis, now, values=None) -> tuple[int, sp.Message]:
        self.stats.naks += 1
        event = {"seq": seq, "type": _type_name(command), "result": "nak", "reason": reason.name.lower()}
        if values is not None:
            event["values"] = list(values)
        if axis is not None:
            event["axis"] = axis
        self.on_event(event)
        return seq, sp.Nak(command, int(reason), axis)

    # -- time -----------------------------------------------------------------------------------

    def step(self, now: float) -> None:
        """Advance the watchdog and first-order dynamics to `now`."""
        if self._last_step is None:
            self._last_step = now
            return
        dt = max(0.0, now - self._last_step)
        self._last_step = now
        fed_recently = self._last_fed is not None and now - self._last_fed <= self.config.watchdog_s
        if not self.watchdog_hold and not self.estop and not fed_recently:
            self.watchdog_hold = True
            self.target = list(self.measured)  # hold where it is: never keep chasing a stale target
            self.stats.watchdog_holds += 1
            self.on_event({"type": "WATCHDOG", "result": "hold"})
        if self.estop:
            self.target = list(self.measured)
        alpha = 1.0 - math.exp(-dt / self.config.time_constant_s)
        self.measured = [
            sp.float32(m + (t - m) * alpha) if abs(t - m) > MOVING_EPSILON else t
            for m, t in zip(self.measured, self.target)
        ]


def _type_name(command: int) -> str:
    try:
        return sp.MsgType(command).name
    except ValueError:
        return f"0x{command:02x}"
