"""The safety layer: always on, between the policy and the arm.

- Limits per axis are the arm's INFO limits intersected with the profile's (the gripper range
  is the last axis). A target outside them is clamped, never sent.
- The change per tick is limited on every axis (the smaller of the arm's and the profile's
  max_step), relative to the target the arm is holding now.
- A target with NaN/Inf is rejected and the arm holds; so does a tick with no fresh action.
  Holding sends the measured state as the target: the arm stays where it is.
- ESTOP latches (`EstopLatch`): once tripped the loop commands no motion until restarted.

Every clamp, rejection and hold is counted (`SafetyCounters`) and reported per tick
(`Decision`). Targets are float32-exact (the wire format), so a value clamped to a limit is
exactly the limit on the arm's side too, never one float32 step beyond it.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from enum import Enum

import numpy as np

from drivers.arm import ArmInfo, ArmState
from edge.config import ArmSpec
from edge.errors import EdgeError

EE_AXES = ("x", "y", "z", "roll", "pitch", "yaw")


class SafetyConfigError(EdgeError):
    """Limits that cannot be combined (wrong length, empty intersection)."""


def axis_names(info: ArmInfo) -> tuple[str, ...]:
    """Human names of the target axes, gripper last."""
    if info.action_space == "ee" and info.dof == len(EE_AXES):
        return EE_AXES + ("gripper",)
    return tuple(f"j{i + 1}" for i in range(info.dof)) + ("gripper",)


def _f32_inward(values: np.ndarray, toward: float) -> np.ndarray:
    """Round to float32, moving one float32 step toward `toward` where rounding went outward."""
    rounded = values.astype(np.float32)
    outward = (rounded.astype(np.float64) - values) * np.sign(toward - values) < 0
    rounded[outward] = np.nextafter(rounded[outward], np.float32(toward))
    return rounded.astype(np.float64)


@dataclass(frozen=True)
class SafetyLimits:
    """Effective per-axis limits (float32-exact values held as float64)."""

    lower: np.ndarray
    upper: np.ndarray
    max_step: np.ndarray
    axes: tuple[str, ...]

    @classmethod
    def combine(cls, info: ArmInfo, spec: ArmSpec) -> "SafetyLimits":
        """The arm's INFO limits ∩ the profile's; SafetyConfigError if they cannot be combined."""
        n = info.axes
        lower, upper, step = (np.asarray(v, np.float64) for v in (info.lower, info.upper, info.max_step))
        for name, override in (("lower", spec.lower), ("upper", spec.upper), ("max_step", spec.max_step)):
            if override is not None and len(override) != n:
                raise SafetyConfigError(
                    f"profile arm.{name} has {len(override)} values; the arm has {n} axes ({info.dof} DOF + gripper)")
        if spec.lower is not None:
            lower = np.maximum(lower, np.asarray(spec.lower, np.float64))
        if spec.upper is not None:
            upper = np.minimum(upper, np.asarray(spec.upper, np.float64))
        if spec.max_step is not None:
            if any(s <= 0 for s in spec.max_step):
                raise SafetyConfigError("profile arm.max_step values must be positive")
            step = np.minimum(step, np.asarray(spec.max_step, np.float64))
        names = axis_names(info)
        empty = [names[i] for i in np.flatnonzero(lower > upper)]
        if empty:
            raise SafetyConfigError(f"the profile's limits and the arm's do not overlap on axis {empty[0]}")
        return cls(_f32_inward(lower, np.inf), _f32_inward(upper, -np.inf), _f32_inward(step, 0.0), names)

    def outside(self, values: np.ndarray) -> list[str]:
        """Names of the axes where `values` lies outside the limits."""
        v = np.asarray(values, np.float64)
        return [self.axes[i] for i in np.flatnonzero((v < self.lower) | (v > self.upper))]

    def describe(self) -> list[dict]:
        """One row per axis for the start-up plan and the episode log."""
        return [
            {"axis": name, "lower": float(lo), "upper": float(hi), "max_step": float(s)}
            for name, lo, hi, s in zip(self.axes, self.lower, self.upper, self.max_step)
        ]


class HoldReason(Enum):
    """Why a tick held position instead of following the policy."""

    NO_ACTION = "no_action"  # no chunk covers this tick yet (start-up, or chunks ran out)
    STALE = "stale"  # the newest chunk's observation is older than the action deadline
    NON_FINITE = "non_finite"  # the action had NaN/Inf: rejected


@dataclass(frozen=True)
class Decision:
    """What the safety layer sends this tick and what it changed."""

    target: np.ndarray  # what is sent (float32-exact)
    requested: np.ndarray | None  # the policy's action (None when holding for lack of one)
    hold: HoldReason | None = None
    limit_axes: tuple[int, ...] = ()  # axes clamped to a limit
    step_axes: tuple[int, ...] = ()  # axes clamped by the max change per tick

    @property
    def clamped(self) -> bool:
        return bool(self.limit_axes or self.step_axes)


@dataclass
class SafetyCounters:
    """Totals for the cadence report."""

    decisions: int = 0
    holds: dict[HoldReason, int] = field(default_factory=lambda: {r: 0 for r in HoldReason})
    limit_clamps: int = 0  # ticks with at least one axis clamped to a limit
    step_clamps: int = 0  # ticks with at least one axis clamped by max_step
    axis_clamps: dict[str, int] = field(default_factory=dict)

    @property
    def total_holds(self) -> int:
        return sum(self.holds.values())

    def as_dict(self) -> dict:
        return {
            "holds": self.total_holds,
            "holds_by_reason": {r.value: n for r, n in self.holds.items()},
            "rejected_non_finite": self.holds[HoldReason.NON_FINITE],
            "limit_clamps": self.limit_clamps,
            "step_clamps": self.step_clamps,
            "clamps_by_axis": dict(self.axis_clamps),
        }


class SafetyLayer:
    """Turns the policy's action (or its absence) into a target the arm may accept.

    The max change per tick is measured from the target the arm holds now: the last target it
    accepted, or its measured position after a watchdog hold, a restart or a refused step. When
    a send timed out, the arm may or may not have applied it; until an exchange settles the
    question, every next target must be within max_step of each target the arm might hold.
    """

    MAX_UNCERTAIN = 64  # timeouts in a row before the loop's own arm deadline must have stopped it

    def __init__(self, limits: SafetyLimits):
        self.limits = limits
        self.counters = SafetyCounters()
        self._references: list[np.ndarray] = []  # targets the arm may be holding now
        # The step window every reference allows (recomputed only when the references change).
        self._step_low: np.ndarray | None = None
        self._step_high: np.ndarray | None = None

    @property
    def reference(self) -> np.ndarray | None:
        """The most recent target the arm may hold (None before the first state)."""
        return self._references[-1] if self._references else None

    def _set_references(self, references: list[np.ndarray]) -> None:
        self._references = references
        refs = np.asarray(references)
        # Within max_step of every possible reference: they are pairwise within max_step, so
        # these windows always overlap.
        self._step_low = refs.max(axis=0) - self.limits.max_step
        self._step_high = refs.min(axis=0) + self.limits.max_step

    def observe(self, state: ArmState) -> None:
        """Track what the arm holds: after a watchdog hold (or before any target) it is its position."""
        if not self._references or state.watchdog_hold:
            self._set_references([np.asarray(state.as_target(), np.float64)])

    def accepted(self, target: np.ndarray) -> None:
        """The arm accepted `target`: the next step is measured from it."""
        self._set_references([np.asarray(target, np.float64)])

    def unconfirmed(self, target: np.ndarray) -> None:
        """A send timed out: the arm may hold `target` or what it held before."""
        if len(self._references) >= self.MAX_UNCERTAIN:
            raise RuntimeError("too many unconfirmed targets in a row; the arm should have been declared unresponsive")
        self._set_references(self._references + [np.asarray(target, np.float64)])

    def resync(self, state: ArmState) -> None:
        """The arm refused a step (or nothing was sent): measure the next one from where it is."""
        self._set_references([np.asarray(state.as_target(), np.float64)])

    def decide(self, action: np.ndarray | None, state: ArmState, hold: HoldReason | None = None) -> Decision:
        """The target for this tick: the action clamped, or a hold at the measured state.

        `action` None means no fresh action (`hold` says why); an action with NaN/Inf is rejected.
        """
        self.counters.decisions += 1
        if action is not None and not np.isfinite(action).all():
            action, hold = None, HoldReason.NON_FINITE
        if action is None:
            reason = hold or HoldReason.NO_ACTION
            self.counters.holds[reason] += 1
            held = self.clamp(np.asarray(state.as_target(), np.float64))
            return Decision(held.target, None, reason, held.limit_axes, held.step_axes)
        return self.clamp(np.asarray(action, np.float64))

    def clamp(self, action: np.ndarray) -> Decision:
        """`action` within the limits and within max_step of the reference(s); returns the target
        to send and which axes changed. The action must be finite (see `decide`)."""
        lim = self.limits
        if action.shape != lim.lower.shape:
            raise ValueError(f"action has {action.shape[-1]} values; the arm takes {lim.lower.size}")
        target = np.clip(action, lim.lower, lim.upper)
        limit_axes = np.flatnonzero(target != action)
        step_axes = ()
        if self._step_low is not None:
            # If a reference lies outside the limits, the limits win (the arm would refuse the target).
            stepped = np.clip(np.clip(target, self._step_low, self._step_high), lim.lower, lim.upper)
            step_axes = np.flatnonzero(stepped != target)
            target = stepped
        target32 = target.astype(np.float32)
        if self._step_low is not None:
            # Rounding to float32 may land a hair outside the step window: one float32 back inside.
            wide = target32.astype(np.float64)
            high, low = wide > self._step_high, wide < self._step_low
            if high.any() or low.any():
                target32[high] = np.nextafter(target32[high], np.float32(-np.inf))
                target32[low] = np.nextafter(target32[low], np.float32(np.inf))
                target32 = np.clip(target32, lim.lower.astype(np.float32), lim.upper.astype(np.float32))
        decision = Decision(target32.astype(np.float64), action, None, tuple(limit_axes.tolist()),
                            tuple(step_axes.tolist()) if len(step_axes) else ())
        self._count(decision)
        return decision

    def _count(self, decision: Decision) -> None:
        if not decision.clamped:
            return
        c = self.counters
        c.limit_clamps += bool(decision.limit_axes)
        c.step_clamps += bool(decision.step_axes)
        for axis in set(decision.limit_axes) | set(decision.step_axes):
            name = self.limits.axes[axis]
            c.axis_clamps[name] = c.axis_clamps.get(name, 0) + 1


class StopReason(Enum):
    """Why the control loop ended. Everything but COMPLETED is an ESTOP."""

    COMPLETED = "completed"  # duration or tick count reached
    SIGNAL = "signal"  # SIGINT / SIGTERM
    CAMERA_STALL = "camera_stall"
    ARM_ESTOP = "arm_estop"  # the arm reports its ESTOP latched (button, or another host)
    ARM_FAULT = "arm_fault"
    ARM_DISCONNECTED = "arm_disconnected"
    ARM_UNRESPONSIVE = "arm_unresponsive"
    INFERENCE_FAILED = "inference_failed"
    RUNTIME_ERROR = "runtime_error"

    @property
    def is_estop(self) -> bool:
        return self is not StopReason.COMPLETED


@dataclass(frozen=True)
class Stop:
    """The first reason the loop stopped, in words."""

    reason: StopReason
    message: str
    tick: int | None = None

    def as_dict(self) -> dict:
        return {"reason": self.reason.value, "message": self.message, "tick": self.tick, "estop": self.reason.is_estop}


class EstopLatch:
    """The first stop reason wins and stays; there is no reset (restart the run instead).

    Safe to trip from a signal handler or another thread: it only records and sets an event.
    """

    def __init__(self) -> None:
        self._stop: Stop | None = None
        self._lock = threading.Lock()
        self._event = threading.Event()

    def trip(self, reason: StopReason, message: str, tick: int | None = None) -> None:
        if self._event.is_set():
            return
        # A signal handler runs on the main thread between bytecodes: never block it on the lock.
        if not self._lock.acquire(blocking=False):
            return
        try:
            if self._stop is None:
                self._stop = Stop(reason, message, tick)
                self._event.set()
        finally:
            self._lock.release()

    @property
    def tripped(self) -> bool:
        return self._event.is_set()

    @property
    def stop(self) -> Stop | None:
        return self._stop

    def wait(self, timeout_s: float) -> bool:
        return self._event.wait(timeout_s)
