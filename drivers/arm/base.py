"""What the runtime knows about an arm: the `Arm` protocol and the values it exchanges.

The runtime talks to `Arm`, never to a concrete class. `SerialArm` (our serial protocol v1) is
the first implementation; a bus-servo arm (Feetech STS/SCS on SO-100/SO-101, Dynamixel) can be a
second one by implementing these methods: nothing here mentions bytes, ports or registers.
Any implementation can prove itself with `drivers.arm.conformance.check_arm_conformance`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum
from typing import ContextManager, Protocol, Sequence

from drivers.errors import DriverError


class RejectReason(Enum):
    """Why an arm refused a target. Values are stable strings for logs and JSON."""

    CORRUPTED = "corrupted"  # the arm could not read the command (retried before being reported)
    OUT_OF_LIMITS = "out_of_limits"
    ESTOPPED = "estopped"
    STEP_TOO_LARGE = "step_too_large"
    FAULT = "fault"
    UNSUPPORTED = "unsupported"  # the arm did not understand the command (type, length, version)


@dataclass(frozen=True)
class ArmInfo:
    """What an arm declares at connect time. Limit tuples have dof + 1 entries, gripper last."""

    protocol_version: int
    firmware_version: str
    dof: int
    action_space: str  # "joint" (joint positions) or "ee" (end-effector pose)
    lower: tuple[float, ...]
    upper: tuple[float, ...]
    max_step: tuple[float, ...]
    watchdog_s: float

    def __post_init__(self) -> None:
        n = self.dof + 1
        if self.dof < 1:
            raise DriverError(f"arm declares {self.dof} degrees of freedom; at least 1 is needed")
        if self.action_space not in ("joint", "ee"):
            raise DriverError(f"arm declares action space {self.action_space!r}; expected 'joint' or 'ee'")
        for name in ("lower", "upper", "max_step"):
            if len(getattr(self, name)) != n:
                raise DriverError(f"arm declares {len(getattr(self, name))} {name} values; expected dof + 1 = {n}")
        if any(not lo < hi for lo, hi in zip(self.lower, self.upper)):
            raise DriverError("arm declares a lower limit that is not below its upper limit")
        if any(not step > 0 for step in self.max_step):
            raise DriverError("arm declares a max_step that is not positive")
        if not self.watchdog_s > 0:
            raise DriverError("arm declares no watchdog period; the firmware contract requires one")

    @property
    def axes(self) -> int:
        """Values per target: dof + gripper."""
        return self.dof + 1

    def check_target(self, values: Sequence[float]) -> tuple[float, ...]:
        """`values` as a tuple of floats, or a DriverError if the count is wrong or a value is not finite.

        Limits are the arm's to enforce (it NAKs); this only catches what cannot be a target.
        """
        values = tuple(float(v) for v in values)
        if len(values) != self.axes:
            raise DriverError(
                f"target has {len(values)} values but the arm takes {self.axes} ({self.dof} DOF + gripper); "
                "check the policy's action dimension against the arm"
            )
        if not all(math.isfinite(v) for v in values):
            raise DriverError(f"target contains a value that is not finite: {values}")
        return values


@dataclass(frozen=True)
class ArmState:
    """One measurement. `values` has dof entries; the gripper is separate."""

    values: tuple[float, ...]
    gripper: float
    moving: bool
    fault: bool
    estop: bool
    watchdog_hold: bool  # the arm holds position because no command or heartbeat came in time
    last_seq: int | None  # sequence number of the last target applied (None: none since connect)
    host_time_s: float  # time.monotonic() when the state was received

    def as_target(self) -> tuple[float, ...]:
        """The measured pose as a target vector (values + gripper), e.g. to hold in place."""
        return self.values + (self.gripper,)


@dataclass(frozen=True)
class TargetResult:
    """What happened to one target. A refused target is a result, not an exception: the
    runtime decides what to do; timeouts and disconnects do raise."""

    accepted: bool
    seq: int
    reason: RejectReason | None = None
    axis: int | None = None  # the offending axis for OUT_OF_LIMITS / STEP_TOO_LARGE
    attempts: int = 1


# Not runtime_checkable: before Python 3.12 isinstance() evaluates properties, and `info`
# rightly raises NotConnectedError on a closed device.
class Arm(Protocol):
    """An arm the runtime can drive. Every call returns or raises within its timeout.

    Raises: NotConnectedError before connect(), after close() or once the device vanished
    (then reconnect()); DeviceTimeoutError when the arm does not answer in time.
    """

    def connect(self) -> ArmInfo:
        """Open the device, handshake, return what the arm declares."""
        ...

    @property
    def info(self) -> ArmInfo:
        """The ArmInfo from the last handshake."""
        ...

    def send_target(self, values: Sequence[float]) -> TargetResult:
        """Command one target (dof values + gripper); the arm accepts it or says why not."""
        ...

    def state(self) -> ArmState:
        """Measure the arm now."""
        ...

    def heartbeat(self) -> None:
        """Keep the arm's watchdog fed while no target is due."""
        ...

    def estop(self) -> None:
        """Stop now; latched until clear_estop()."""
        ...

    def clear_estop(self) -> None:
        """Release a latched ESTOP; the arm holds until the next target."""
        ...

    def reconnect(self) -> ArmInfo:
        """Reopen the device (e.g. after an unplug) and handshake again."""
        ...

    def longer_timeout(self, timeout_s: float) -> ContextManager[None]:
        """Within the block every call may take up to timeout_s (shutdown: a slow arm gets time)."""
        ...

    def close(self) -> None:
        """Release the device. Idempotent."""
        ...
