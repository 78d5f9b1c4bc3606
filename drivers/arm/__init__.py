"""Arms: the `Arm` protocol and its values (drivers.arm.base), serial protocol v1 (protocol,
serial_port, serial_arm) and the conformance check any implementation can run (conformance)."""

from drivers.arm.base import Arm, ArmInfo, ArmState, RejectReason, TargetResult

__all__ = ["Arm", "ArmInfo", "ArmState", "RejectReason", "TargetResult"]
