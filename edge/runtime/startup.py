"""Start-up checks that run before any motion: each refusal is one line naming what to fix.

The bundle's facts (cameras, action space, prompt budget) are read through the predictor, so
a bundle and a training output (torch fp32, for development) are checked the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np

from drivers.arm import protocol as sp
from drivers.arm import ArmInfo, ArmState
from drivers.arm.serial_arm import ReplyTime, attempt_timeout_s
from edge.config import Profile
from edge.errors import EdgeError
from edge.hub import resolve_path
from edge.policy.contract import ChunkPredictor
from edge.runtime.safety import SafetyLimits

# How each action layout is commanded: TinyVLA's 10-D xyz + rot6d + gripper becomes a 7-D
# end-effector target; raw actions go to the arm as they are, in whatever space it declares.
LAYOUT_ACTION_SPACE = {"xyz_rot6d_gripper": "ee", "raw": None}

# Each tick the loop sends a target and reads the state: two serial calls. They share the tick
# but for the tick's own work (ensembling, safety, logging: p99 about 1.2 ms, benchmarks/loop_overhead.py).
TICK_WORK_RESERVE_S = 0.0015
CALLS_PER_TICK = 2
# The spec's feeding rule (docs/serial-protocol.md, section 7): a command every watchdog_ms / 3.
WATCHDOG_FEEDS_PER_PERIOD = 3


class RunRefused(EdgeError):
    """A check before motion failed; nothing was sent to the arm."""


@dataclass(frozen=True)
class ArmRequirement:
    """What the bundle commands: values per target (DOF + gripper) and the action space."""

    axes: int
    action_space: str | None  # None: any space (raw actions)

    def describe(self) -> str:
        space = {"ee": "end-effector", "joint": "joint"}.get(self.action_space or "", "")
        return f"{self.axes}-value {space + ' ' if space else ''}targets ({self.axes - 1} DOF + gripper)"


def load_run_predictor(path: Path, seed: int = 0, separate_process: bool = False,
                       torch_threads: int | None = None, cpus: frozenset[int] | None = None,
                       base: Path | None = None) -> tuple[ChunkPredictor, str]:
    """A verified bundle (manifest.json) or, for development, a TinyVLA training output run in
    torch fp32 (its base VLM from `base` or the path its config records). Returns the predictor
    and the name of the profile the bundle was built for (or '').

    With `separate_process` the model runs in a child process (`ProcessPredictor`, with
    `torch_threads` threads, on `cpus`); the caller must `close()` it. `path` may be a Hub id."""
    path = resolve_path(path)
    if not path.exists():
        raise RunRefused(f"bundle not found: {path}")
    if separate_process:
        from edge.runtime.inference_process import ProcessPredictor

        predictor = ProcessPredictor(partial(load_local_predictor, path, seed, base), torch_threads, cpus)
        return predictor, predictor.profile
    predictor = load_local_predictor(path, seed, base)
    return predictor, getattr(getattr(predictor, "manifest", None), "profile", "") or ""


def load_local_predictor(path: Path, seed: int = 0, base: Path | None = None) -> ChunkPredictor:
    """The predictor for a bundle or a training output (with its base VLM), in this process."""
    if (path / "manifest.json").is_file():
        if base is not None:
            raise RunRefused(f"{path} is a bundle, which carries its own backbone; --base is for a training output")
        from edge.bundle import load_predictor  # verifies every file's hash before loading

        return load_predictor(path, seed=seed)
    from edge.policy.checkpoint import load_training_output
    from edge.policy.predictor import TorchPredictor

    policy = load_training_output(path, base=base)  # strict: every head and projector tensor must load
    return TorchPredictor(policy, seed=seed)


def arm_requirement(predictor: ChunkPredictor) -> ArmRequirement:
    """What the bundle's robot actions need from the arm."""
    decoder = predictor.decoder
    return ArmRequirement(decoder.robot_dim, LAYOUT_ACTION_SPACE.get(decoder.layout))


def check_rate(rate_hz: float, profile: Profile) -> None:
    if not rate_hz > 0:
        raise RunRefused(f"rate must be positive, got {rate_hz:g} Hz")
    if rate_hz > profile.control.max_rate_hz:
        raise RunRefused(f"rate {rate_hz:g} Hz is above what profile {profile.name} allows "
                         f"(control.max_rate_hz = {profile.control.max_rate_hz:g} Hz)")


def serial_timeout_s(rate_hz: float) -> float:
    """Per-call serial budget (all attempts) for a loop at `rate_hz`."""
    return (1.0 / rate_hz - TICK_WORK_RESERVE_S) / CALLS_PER_TICK


@dataclass(frozen=True)
class LinkTiming:
    """Whether the tick's serial work fits the tick, with an arm that uses all the spec allows."""

    rate_hz: float
    baud: int
    axes: int
    call_timeout_s: float  # each call's budget: serial_timeout_s(rate_hz)
    target_attempt_s: float  # one SET_TARGET attempt against an arm at the spec's reply budget
    state_attempt_s: float  # one GET_STATE attempt, likewise

    @property
    def exchange_s(self) -> float:
        """One tick's target + state, one attempt each, at the spec's limit."""
        return self.target_attempt_s + self.state_attempt_s

    @property
    def attempts_that_fit(self) -> int:
        """Whole spec-length attempts per call within the call's budget (1: no time to resend on silence)."""
        return int(self.call_timeout_s / max(self.target_attempt_s, self.state_attempt_s) + 1e-9)

    @property
    def max_rate_hz(self) -> float:
        return 1.0 / (CALLS_PER_TICK * max(self.target_attempt_s, self.state_attempt_s) + TICK_WORK_RESERVE_S)

    def as_dict(self) -> dict:
        return {"rate_hz": self.rate_hz, "baud": self.baud, "call_timeout_ms": round(1e3 * self.call_timeout_s, 3),
                "target_attempt_ms": round(1e3 * self.target_attempt_s, 3),
                "state_attempt_ms": round(1e3 * self.state_attempt_s, 3),
                "attempts_that_fit": self.attempts_that_fit, "max_rate_hz": round(self.max_rate_hz, 1)}


def plan_link_timing(rate_hz: float, baud: int, axes: int) -> LinkTiming:
    """The serial budget at `rate_hz`; RunRefused when not even one attempt per call fits, i.e.
    an arm replying inside the spec would time out every tick."""
    timing = LinkTiming(rate_hz, baud, axes, serial_timeout_s(rate_hz),
                        attempt_timeout_s(sp.MsgType.SET_TARGET, axes, baud),
                        attempt_timeout_s(sp.MsgType.GET_STATE, axes, baud))
    if timing.attempts_that_fit < 1:
        raise RunRefused(
            f"rate {rate_hz:g} Hz is too fast for the serial link: each tick sends a target and reads the state, "
            f"{1e3 * timing.call_timeout_s:.2f} ms each (the {1e3 / rate_hz:.1f} ms tick less "
            f"{1e3 * TICK_WORK_RESERVE_S:g} ms for its own work), "
            f"but an arm replying within the protocol's {1e3 * sp.REPLY_BUDGET_S:g} ms needs up to "
            f"{1e3 * max(timing.target_attempt_s, timing.state_attempt_s):.2f} ms per call at {baud} baud; "
            f"use --rate {int(timing.max_rate_hz)} or lower")
    return timing


def exec_latency_s(configured: float | None, reply: ReplyTime, timing: LinkTiming, deadline_s: float) -> float:
    """How long before its due time a tick's action must leave: the profile's
    `control.exec_latency_s`, or, when it sets none, the tick's own work before it sends plus one
    SET_TARGET exchange at the arm's measured reply time (p99 of the start-up burst): by then the
    arm has confirmed the target. Actuation beyond the confirmation (servo lag) is the profile's
    to add."""
    latency = configured
    if latency is None:
        on_wire = 1 + sp.wire_size(sp.MsgType.SET_TARGET, timing.axes) + sp.wire_size(sp.MsgType.ACK, timing.axes)
        latency = TICK_WORK_RESERVE_S + reply.p99_s + sp.transfer_s(on_wire, timing.baud)
    if latency >= deadline_s:
        source = "control.exec_latency_s" if configured is not None else "the measured serial round trip"
        raise RunRefused(f"execution latency {1e3 * latency:.1f} ms ({source}) is not shorter than the action "
                         f"deadline {1e3 * deadline_s:.0f} ms: every action would be dropped")
    return latency


def check_watchdog(info: ArmInfo, rate_hz: float) -> None:
    """The tick must feed the arm's watchdog as often as the spec asks (every watchdog / 3)."""
    feed_every_s = info.watchdog_s / WATCHDOG_FEEDS_PER_PERIOD
    if 1.0 / rate_hz > feed_every_s + 1e-9:
        raise RunRefused(
            f"the arm's watchdog is {1e3 * info.watchdog_s:g} ms: the protocol asks for a command every "
            f"{1e3 * feed_every_s:.1f} ms (watchdog / {WATCHDOG_FEEDS_PER_PERIOD}), but a tick at {rate_hz:g} Hz is "
            f"{1e3 / rate_hz:.1f} ms; run at --rate {WATCHDOG_FEEDS_PER_PERIOD / info.watchdog_s:.0f} or more, "
            "or lengthen the arm's watchdog")


def check_reply_time(measured: ReplyTime, timing: LinkTiming) -> list[str]:
    """Warnings for an arm slower than the spec; RunRefused when most calls would time out."""
    attempt_s = max(timing.target_attempt_s, timing.state_attempt_s)
    if measured.p50_s > timing.call_timeout_s:
        raise RunRefused(
            f"the arm replies in {1e3 * measured.p50_s:.1f} ms (median of {measured.count}); the protocol allows "
            f"{1e3 * sp.REPLY_BUDGET_S:g} ms and a call at {timing.rate_hz:g} Hz has {1e3 * timing.call_timeout_s:.1f} ms: "
            "most calls would time out; fix the firmware's reply time or lower --rate")
    if measured.p99_s > sp.REPLY_BUDGET_S:
        resent = "frames will be resent" if measured.p99_s > attempt_s else "it still fits this rate's budget"
        return [f"the arm's reply time p99 {1e3 * measured.p99_s:.1f} ms is over the protocol's "
                f"{1e3 * sp.REPLY_BUDGET_S:g} ms ({resent})"]
    return []


def check_instruction(predictor: ChunkPredictor, instruction: str) -> int:
    """The instruction's token count; RunRefused if it is empty or over the bundle's prompt budget."""
    if not instruction.strip():
        raise RunRefused("the instruction is empty; say what the robot should do with --instruction")
    count = predictor.prompt_tokens(instruction)
    if count > predictor.max_prompt_tokens:
        raise RunRefused(f"instruction is too long: {count} prompt tokens, the bundle's budget is "
                         f"{predictor.max_prompt_tokens}; shorten it")
    return count


def check_arm(info: ArmInfo, need: ArmRequirement, state_dim: int) -> None:
    """The arm must take what the bundle commands (same number of values, same action space)
    and report the state the bundle reads (its measured values + gripper)."""
    if info.axes != need.axes or (need.action_space is not None and info.action_space != need.action_space):
        raise RunRefused(
            f"arm mismatch: the arm takes {info.axes}-value {info.action_space} targets ({info.dof} DOF + gripper), "
            f"the bundle commands {need.describe()}; refusing to move"
        )
    if info.axes != state_dim:
        raise RunRefused(f"arm mismatch: the arm reports {info.axes} state values ({info.dof} DOF + gripper), "
                         f"the bundle reads a {state_dim}-value state; refusing to move")


def check_arm_state(state: ArmState, limits: SafetyLimits, clear_estop: bool) -> None:
    """The arm must be free of faults, not latched in ESTOP (unless asked to clear it), and inside the limits."""
    if state.fault:
        raise RunRefused("the arm reports a fault; clear it on the arm before running")
    if state.estop and not clear_estop:
        raise RunRefused("the arm's ESTOP is latched (from a previous stop); make the scene safe, then run "
                         "again with --clear-estop")
    outside = limits.outside(np.asarray(state.as_target()))
    if outside:
        raise RunRefused(f"the arm is outside the limits on axis {outside[0]} (arm INFO ∩ profile); "
                         "move it inside before running")
