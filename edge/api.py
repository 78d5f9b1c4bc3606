"""The Python API: the few entry points a script, a notebook or a ROS 2 node needs.

    policy = load_policy("tinyvla-bundle")                 # verify, load
    prediction = policy.predict(images, state, instruction) # one normalized chunk from numpy
    actions = policy.decoder.robot_actions(prediction.normalized)  # in robot units
    camera = open_camera("synthetic:64x48@30", "left")      # or realsense:SERIAL, recording:PATH
    arm = connect_arm("/dev/tinyvla-arm")                   # or SimArm(): the firmware emulator
    report = run_loop(policy, [camera, ...], arm, instruction, on_tick=callback, log_dir="episode")
    export_log("episode", "episode.mcap")                   # the episode log as MCAP

Everything here is a stable name for something that lives elsewhere; docs/python-api.md shows it
in use (and tests/test_python_api_doc.py runs that page). The policy server and its client are
`edge.serve.server.PolicyServer` and `edge.serve.client.PolicyClient`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

from drivers.camera import Camera, Frame, open_camera
from drivers.errors import DeviceTimeoutError
from drivers.arm.serial_arm import SerialArm
from drivers.sim.sim_arm import SimArm
from edge.config import load_profile
from edge.hub import resolve_path
from edge.runtime.episode_log import EpisodeLog
from edge.runtime.export import export_log
from edge.runtime.loop import ControlLoop, LoopSettings
from edge.runtime.run import CONNECT_ATTEMPTS, REPLY_TIME_BURST, REPLY_TIME_CALL_S, SERIAL_RETRIES
from edge.runtime.startup import serial_timeout_s
from edge.runtime.run import connect_arm as _handshake
from edge.runtime.safety import SafetyLayer, SafetyLimits
from edge.runtime.shutdown import ShutdownAction
from edge.runtime.startup import (
    arm_requirement, check_arm, check_arm_state, check_instruction, exec_latency_s, load_local_predictor, plan_link_timing,
)

__all__ = ["Camera", "Frame", "SimArm", "SerialArm", "connect_arm", "export_log", "load_policy", "open_camera", "run_loop"]

DEFAULT_RATE_HZ = 30.0


def load_policy(path: str | Path, seed: int = 0):
    """A policy to call `predict(images, state, instruction)` on.

    `path` is a bundle (every file's sha256 is verified before anything loads) or, for
    development, a TinyVLA training output run in torch fp32. The result has `camera_names`,
    `state_dim`, `action_dim`, `chunk_size`, `head_steps`, `max_prompt_tokens`, and
    `predict(images, state, instruction) -> Prediction` where images are uint8 HxWx3 RGB in
    `camera_names` order and `Prediction.normalized` is the head's chunk [chunk_size, action_dim]
    in [-1, 1]; `decoder.robot_actions(prediction.normalized)` gives the robot commands
    [chunk_size, decoder.robot_dim]."""
    return load_local_predictor(resolve_path(path), seed)


def connect_arm(port: str, rate_hz: float = DEFAULT_RATE_HZ, baud: int = 115200) -> SerialArm:
    """A connected `SerialArm` on `port` (a serial device, or `SimArm().port`), with serial
    timeouts sized for a loop at `rate_hz`. Close it (or use `with`) when done."""
    arm = SerialArm(port, baud=baud, timeout_s=serial_timeout_s(rate_hz), retries=SERIAL_RETRIES)
    try:
        _handshake(arm, CONNECT_ATTEMPTS)
    except BaseException:
        arm.close()
        raise
    return arm


def _measured_state(arm: SerialArm):
    """The arm's state, retrying a timed-out read: its timeout is sized for one tick (a few ms),
    and on a busy CPU one exchange can outlast it although the arm is fine."""
    for attempt in range(1, CONNECT_ATTEMPTS + 1):
        try:
            return arm.state()
        except DeviceTimeoutError:
            if attempt == CONNECT_ATTEMPTS:
                raise


class _TickTap:
    """Stands where the loop's episode log goes: hands each tick record to `on_tick` and passes
    everything on to a real log when there is one."""

    def __init__(self, on_tick: Callable[[dict], None] | None, log: EpisodeLog | None):
        self.on_tick, self.log = on_tick, log

    def tick(self, record: dict) -> None:
        if self.log is not None:
            self.log.tick(record)
        if self.on_tick is not None:
            self.on_tick(record)

    def chunk(self, chunk, observation) -> None:
        if self.log is not None:
            self.log.chunk(chunk, observation)

    def event(self, kind: str, **fields) -> None:
        if self.log is not None:
            self.log.event(kind, **fields)


def run_loop(policy, cameras: Sequence[Camera], arm: SerialArm, instruction: str, profile: str = "cpu-dev",
             rate_hz: float | None = None, max_ticks: int | None = None, duration_s: float | None = None,
             on_tick: Callable[[dict], None] | None = None, log_dir: str | Path | None = None) -> dict:
    """Run the control loop (the one `tinyvla-edge run` runs) on open cameras and a connected arm.

    The same checks come first: the instruction fits, the arm takes what the policy commands, it
    is free of faults and ESTOP and inside the limits (arm INFO ∩ the profile's). Stops after
    `max_ticks` or `duration_s` (one is required) and leaves the arm safe. `on_tick(record)`
    receives every tick's record (the fields of docs/episode-log.md's ticks.jsonl) on the control
    thread: keep it short; an exception in it stops the loop with an ESTOP. `log_dir` writes an
    episode log (docs/episode-log.md). Returns the cadence report (`stop`, `shutdown`, `ticks`,
    `achieved_rate_hz`, ...)."""
    if max_ticks is None and duration_s is None:
        raise ValueError("run_loop needs max_ticks or duration_s")
    prof = load_profile(profile)
    prof.model.check_chunk_size(policy.chunk_size)
    check_instruction(policy, instruction)
    check_arm(arm.info, arm_requirement(policy), policy.state_dim)
    limits = SafetyLimits.combine(arm.info, prof.arm)
    check_arm_state(_measured_state(arm), limits, clear_estop=False)
    rate_hz = rate_hz or prof.control.rate_hz
    with arm.longer_timeout(REPLY_TIME_CALL_S):  # the execution latency, measured as `run` measures it
        reply = arm.measure_reply_time(REPLY_TIME_BURST)
    latency_s = exec_latency_s(prof.control.exec_latency_s, reply, plan_link_timing(rate_hz, arm.baud, arm.info.axes),
                               prof.control.action_deadline_s)
    settings = LoopSettings(rate_hz=rate_hz, ensemble_k=prof.control.ensemble_k, exec_latency_s=latency_s,
                            action_deadline_s=prof.control.action_deadline_s, duration_s=duration_s,
                            max_ticks=max_ticks, on_shutdown=ShutdownAction(prof.arm.on_shutdown))
    plan = {"profile": prof.name, "instruction": instruction, "rate_hz": settings.rate_hz, "limits": limits.describe()}
    log = EpisodeLog(Path(log_dir)).open(plan) if log_dir else None
    loop = ControlLoop(policy, cameras, arm, SafetyLayer(limits), settings, instruction, episode_log=_TickTap(on_tick, log))
    try:
        result = loop.run()
    finally:
        if log is not None:
            log.close(getattr(getattr(loop, "result", None), "report", None))
    return result.report
