"""Audit of the arm emulator's log: did the arm ever accept a target outside the limits, or a
step larger than the max change per tick? (The demo's pass condition and the fault tests'.)"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edge.runtime.safety import SafetyLimits

# Events after which the arm's own target is its measured position, so the next step is
# measured from there, not from the previous accepted target.
_REFERENCE_RESETS = {"WATCHDOG", "ESTOP", "CLEAR_ESTOP"}
FLOAT32_TOLERANCE = 1e-6  # targets travel as float32


@dataclass
class AuditResult:
    accepted: int = 0
    out_of_limits: list[dict] = field(default_factory=list)
    oversized_steps: list[dict] = field(default_factory=list)
    estops: int = 0
    last_event: str | None = None

    @property
    def ok(self) -> bool:
        return not self.out_of_limits and not self.oversized_steps

    def as_dict(self) -> dict:
        return {"accepted_targets": self.accepted, "out_of_limits": len(self.out_of_limits),
                "oversized_steps": len(self.oversized_steps), "estops": self.estops,
                "last_event": self.last_event, "ok": self.ok}


def audit_arm_log(path: Path, limits: SafetyLimits) -> AuditResult:
    """Check every accepted SET_TARGET in a `SimArm` JSON-lines log against `limits`."""
    result = AuditResult()
    previous: np.ndarray | None = None
    tol_lower = limits.lower - FLOAT32_TOLERANCE * np.maximum(1.0, np.abs(limits.lower))
    tol_upper = limits.upper + FLOAT32_TOLERANCE * np.maximum(1.0, np.abs(limits.upper))
    for line in Path(path).read_text().splitlines():
        if not line.strip():
            continue
        event = json.loads(line)
        kind = event.get("type")
        result.last_event = kind
        if kind in _REFERENCE_RESETS:
            previous = None
            result.estops += kind == "ESTOP"
            continue
        if kind != "SET_TARGET" or event.get("result") != "ack":
            continue
        values = np.asarray(event["values"], np.float64)
        result.accepted += 1
        if not np.isfinite(values).all() or ((values < tol_lower) | (values > tol_upper)).any():
            result.out_of_limits.append(event)
        if previous is not None and (np.abs(values - previous) > limits.max_step * (1 + FLOAT32_TOLERANCE)).any():
            result.oversized_steps.append(event)
        previous = values
    return result
