"""`tinyvla-edge run`: start-up checks, the control loop, and a safe shutdown.

Start-up, before any motion (each failure is one line and a non-zero exit):
  1. the profile and the rate it allows;
  2. the bundle verifies (every file's hash) and loads;
  3. the instruction fits the bundle's prompt budget;
  4. the cameras are the bundle's cameras, open, and deliver frames;
  5. the arm handshakes; its action space and DOF match the bundle; it is not faulted or
     latched in ESTOP, and stands inside the limits (arm INFO ∩ profile);
  6. the execution latency (the profile's, or measured from the serial round trip); warm-up
     inferences (excluded from the statistics); then the plan is printed.
`start_up` is this sequence; `profile` runs it too, so it measures what `run` deploys.
Then the loop runs until --duration, a signal (SIGINT/SIGTERM → ESTOP) or a fault (→ ESTOP).
Whatever happens, the arm is left safe, the episode log is flushed, and devices are released.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from drivers.arm import ArmInfo
from drivers.camera import Camera, open_camera
from drivers.errors import DeviceTimeoutError
from drivers.arm.serial_arm import SerialArm
from edge.config import InstallSpec, load_profile
from edge.errors import EdgeError
from edge.runtime.cameras import match_cameras
from edge.runtime.cpus import CpuPlan, run_on
from edge.runtime.episode_log import EpisodeLog, make_log_directory
from edge.runtime.loop import ControlLoop, LoopResult, LoopSettings
from edge.runtime.plan import build_plan, render_plan
from edge.runtime.safety import EstopLatch, SafetyLayer, SafetyLimits, StopReason
from edge.runtime.shutdown import ShutdownAction
from edge.runtime.sim_process import SimArmProcess
from edge.runtime.startup import (
    arm_requirement, check_arm, check_arm_state, check_instruction, check_rate, check_reply_time, check_watchdog,
    exec_latency_s, load_run_predictor, plan_link_timing,
)

SIM_ARM = "sim"
DEFAULT_PROFILE = "cpu-dev"
WARMUP_INFERENCES = 5
SERIAL_RETRIES = 2
CONNECT_ATTEMPTS = 3
REPLY_TIME_BURST = 30  # GET_STATE exchanges timed at start-up
REPLY_TIME_CALL_S = 0.5  # each may take this long, so a slow arm is measured rather than timed out


@dataclass(frozen=True)
class RunRequest:
    """What `tinyvla-edge run` was asked to do."""

    bundle: Path
    cameras: tuple[str, ...]
    arm: str  # a serial port, or "sim" for the firmware emulator
    instruction: str
    profile: str | None = None  # default: the profile the bundle was built for, else cpu-dev
    rate_hz: float | None = None  # default: the profile's control.rate_hz
    duration_s: float | None = None  # None: until SIGINT/SIGTERM
    max_ticks: int | None = None
    log_dir: Path | None = None
    dry_run: bool = False
    clear_estop: bool = False
    warmup: int = WARMUP_INFERENCES
    inference_process: bool = True  # the model in a child process (False: a thread, for debugging)
    base: Path | None = None  # base VLM of a training output (default: the path its config records)
    synthetic_cameras: bool = False  # with no `cameras`: synthetic frames at the profile's camera sizes (profile)


def connect_arm(arm: SerialArm, attempts: int = CONNECT_ATTEMPTS) -> ArmInfo:
    """Handshake, retrying a timed-out one: the per-call timeout is sized for the tick (a few ms),
    and on a busy CPU one write can outlast it even though the arm is fine."""
    return _retry_timeouts(arm.connect, attempts)


def _retry_timeouts(call, attempts: int):
    for attempt in range(1, attempts + 1):
        try:
            return call()
        except DeviceTimeoutError:
            if attempt == attempts:
                raise


def reserve_a_core_for_control() -> None:
    """With the model in a thread: let torch use every core but one, so the control thread
    always finds a free core."""
    import torch

    torch.set_num_threads(max(1, (os.cpu_count() or 2) - 1))


class RunInterrupted(EdgeError):
    """SIGINT/SIGTERM before the loop started: nothing had moved; devices are released."""

    exit_code = 130


class SignalStop:
    """SIGINT/SIGTERM handling for a whole run (main thread only; elsewhere it does nothing).

    Before the loop runs, a signal aborts start-up (RunInterrupted, so every device opened so
    far is released). Once `arm(latch)` is called, a signal trips the ESTOP latch instead and
    the loop stops at its next tick, leaving the arm safe.
    """

    def __init__(self) -> None:
        self._latch: EstopLatch | None = None
        self._previous: dict = {}

    def __enter__(self) -> "SignalStop":
        if threading.current_thread() is threading.main_thread():
            self._previous = {s: signal.signal(s, self._handle) for s in (signal.SIGINT, signal.SIGTERM)}
        return self

    def __exit__(self, *exc) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)

    def arm(self, latch: EstopLatch) -> None:
        self._latch = latch

    def _handle(self, signum, _frame) -> None:
        name = signal.Signals(signum).name
        if self._latch is None:
            raise RunInterrupted(f"{name} received during start-up; nothing was moved")
        self._latch.trip(StopReason.SIGNAL, f"{name} received")


def run_policy(request: RunRequest, say: Callable[[str], None] = lambda line: None) -> dict:
    """Run the control loop as `request` says; returns the cadence report (with plan, stop, shutdown).

    Raises `startup.RunRefused` (or another EdgeError / DriverError) for anything wrong before motion.
    """
    if request.log_dir is not None:
        make_log_directory(request.log_dir)  # an unwritable --log is refused before the model loads
    with start_up(request, say) as deployment:
        plan = deployment.plan
        log = EpisodeLog(request.log_dir).open(plan) if request.log_dir is not None else None
        loop = deployment.control_loop(episode_log=log)
        try:
            result = deployment.drive(loop)
        finally:
            log_status = _close_log(log, getattr(loop, "result", None), plan, say)
        return dict(result.report, plan=plan, **({"log": log_status} if log_status else {}))


@dataclass
class Deployment:
    """What start-up checked and opened, ready to drive; valid inside `start_up`'s with-block."""

    predictor: object
    cameras: list[Camera]
    arm: SerialArm
    limits: SafetyLimits
    settings: LoopSettings
    instruction: str
    plan: dict
    signals: "SignalStop"
    latch: EstopLatch = field(default_factory=EstopLatch)

    def control_loop(self, episode_log: EpisodeLog | None = None) -> ControlLoop:
        """The control loop over the opened devices, as `run` drives it."""
        return ControlLoop(self.predictor, self.cameras, self.arm, SafetyLayer(self.limits), self.settings,
                           self.instruction, latch=self.latch, episode_log=episode_log)

    def drive(self, loop: ControlLoop) -> LoopResult:
        """Run `loop`; from here on SIGINT/SIGTERM trip its ESTOP latch instead of aborting start-up."""
        self.signals.arm(self.latch)
        return loop.run()


@contextlib.contextmanager
def start_up(request: RunRequest, say: Callable[[str], None] = lambda line: None) -> Iterator[Deployment]:
    """The one start-up path of `run` and `profile` (module docstring, steps 1-6): service priority,
    the CPU plan with the model in its own process, the serial budget, every check before motion,
    the measured execution latency and warm-up. Prints the plan through `say`. Everything opened
    is released when the block ends."""
    with _service_priority(request.profile), _cpu_plan(request) as cpus, contextlib.ExitStack() as stack:
        signals = stack.enter_context(SignalStop())
        yield _start(request, say, cpus, stack, signals)


@contextlib.contextmanager
def _service_priority(profile_name: str | None):
    """Run at the niceness the installed service gets (`install.nice` of the profile, -10 by
    default) where this user may, so other work on the machine does not delay ticks; threads
    started inside (cameras, worker, emulator) inherit it. Restored afterwards."""
    nice = load_profile(profile_name).install.nice if profile_name else InstallSpec().nice
    before = os.getpriority(os.PRIO_PROCESS, 0)
    try:
        if nice < before:
            os.setpriority(os.PRIO_PROCESS, 0, nice)
    except OSError:
        pass  # not permitted (no CAP_SYS_NICE): run at the inherited priority
    try:
        yield
    finally:
        try:
            os.setpriority(os.PRIO_PROCESS, 0, before)
        except OSError:
            pass


@contextlib.contextmanager
def _cpu_plan(request: RunRequest) -> Iterator[CpuPlan | None]:
    """Control on its own CPUs, the model process on the rest; None with the model in a thread."""
    if not request.inference_process:
        yield None
        return
    cpus = CpuPlan.for_this_process()
    with run_on(cpus.control):  # cameras, worker and emulator threads started inside inherit it
        yield cpus


def _start(request: RunRequest, say: Callable[[str], None], cpus: CpuPlan | None, stack: contextlib.ExitStack,
           signals: SignalStop) -> Deployment:
    profile = load_profile(request.profile) if request.profile else None
    if profile is not None:
        check_rate(request.rate_hz or profile.control.rate_hz, profile)
    predictor, bundle_profile = load_run_predictor(
        request.bundle, separate_process=cpus is not None,
        torch_threads=len(cpus.model) if cpus else None, cpus=cpus.model if cpus else None, base=request.base)
    stack.callback(getattr(predictor, "close", lambda: None))
    if profile is None:
        profile = load_profile(bundle_profile or DEFAULT_PROFILE)
    rate_hz = request.rate_hz or profile.control.rate_hz
    check_rate(rate_hz, profile)
    profile.model.check_chunk_size(predictor.chunk_size)
    prompt_tokens = check_instruction(predictor, request.instruction)
    specs = list(request.cameras)
    if not specs and request.synthetic_cameras:
        specs = [f"{name}=synthetic" for name in predictor.camera_names]  # streamed at the profile's sizes
    camera_configs = match_cameras(specs, tuple(predictor.camera_names), profile)
    need = arm_requirement(predictor)
    cameras = [_open(stack, config, name) for name, config in camera_configs]
    for camera in cameras:  # frames are flowing (a frame newer than the first, within the deadline)
        first = camera.wait_newer(0, profile.control.action_deadline_s)
        camera.wait_newer(first.frame_number, profile.control.action_deadline_s + 1.0 / camera.info.fps)
    port = request.arm
    if port == SIM_ARM:
        sim_log = request.log_dir / "sim-arm.jsonl" if request.log_dir else None
        sim = SimArmProcess(dof=need.axes - 1, space=need.action_space or "joint", log=sim_log)
        port = sim.start()
        stack.callback(sim.stop)
    link_timing = plan_link_timing(rate_hz, profile.arm.baud, need.axes)
    arm = SerialArm(port, baud=profile.arm.baud, timeout_s=link_timing.call_timeout_s, retries=SERIAL_RETRIES)
    stack.callback(arm.close)
    info = connect_arm(arm)
    check_arm(info, need, predictor.state_dim)
    check_watchdog(info, rate_hz)
    with arm.longer_timeout(REPLY_TIME_CALL_S):
        reply_time = arm.measure_reply_time(REPLY_TIME_BURST)
    for warning in check_reply_time(reply_time, link_timing):
        say(f"warning: {warning}")
    latency_s = exec_latency_s(profile.control.exec_latency_s, reply_time, link_timing,
                               profile.control.action_deadline_s)
    limits = SafetyLimits.combine(info, profile.arm)
    state = _retry_timeouts(arm.state, CONNECT_ATTEMPTS)
    check_arm_state(state, limits, request.clear_estop)
    if state.estop:
        arm.clear_estop()  # asked for explicitly with --clear-estop; the arm holds until targeted

    if cpus is None:
        reserve_a_core_for_control()
    warmup_ms = _warm_up(predictor, cameras, np.asarray(state.as_target(), np.float32),
                         request.instruction, request.warmup)
    settings = LoopSettings(
        rate_hz=rate_hz,
        ensemble_k=profile.control.ensemble_k,
        action_deadline_s=profile.control.action_deadline_s,
        exec_latency_s=latency_s,
        duration_s=request.duration_s,
        max_ticks=request.max_ticks,
        dry_run=request.dry_run,
        on_shutdown=ShutdownAction(profile.arm.on_shutdown),
        chunk_capacity=_chunk_capacity(predictor.chunk_size, rate_hz, cameras),
    )
    plan = build_plan(request, profile, predictor, info, limits, settings, port, prompt_tokens, warmup_ms, cpus)
    plan["cameras"] = {name: config.spec for name, config in camera_configs}
    plan["serial"] = dict(link_timing.as_dict(), reply_time=reply_time.as_dict())
    plan["exec_latency"] = {"ms": round(1e3 * latency_s, 3),
                            "source": "profile" if profile.control.exec_latency_s is not None else "measured"}
    say(render_plan(plan))
    return Deployment(predictor, cameras, arm, limits, settings, request.instruction, plan, signals)


def _close_log(log: EpisodeLog | None, result, plan: dict, say: Callable[[str], None]) -> dict | None:
    """Close the episode log; failed writes (a full disk) are reported on one line, never raised,
    so the shutdown report and the arm's safety still reach the user."""
    if log is None:
        return None
    status = log.close(dict(result.report, plan=plan) if result else {"plan": plan, "error": "the loop raised"})
    if status["write_errors"]:
        say(f"warning: episode log {log.directory}: {status['write_errors']} writes failed ({status['first_error']}); "
            f"report.json {'written' if status['report_written'] else 'NOT written'}")
    return status


def _open(stack: contextlib.ExitStack, config, name: str) -> Camera:
    camera = open_camera(config, name)
    stack.callback(camera.close)
    return camera


def _warm_up(predictor, cameras, state: np.ndarray, instruction: str, count: int) -> list[float]:
    """A few inferences on live frames: first-call costs (allocation, kernel selection, engine
    builds) happen here, not in the first ticks, and are left out of the statistics."""
    times = []
    for _ in range(count):
        images = [c.wait_newer(0, 1.0).color for c in cameras]
        start = time.perf_counter()
        predictor.predict(images, state, instruction)
        times.append((time.perf_counter() - start) * 1e3)
    return times


def _chunk_capacity(chunk_size: int, rate_hz: float, cameras) -> int:
    """Ring size from rates: chunks arrive at most at the fastest camera's rate, and each covers
    chunk_size ticks, so this many can cover one tick."""
    fastest = max(c.info.fps for c in cameras)
    return chunk_size * max(1, int(np.ceil(fastest / rate_hz)))


class RunStopped(EdgeError):
    """The loop ran but a fault stopped it (ESTOP), or the arm could not be confirmed safe."""

    exit_code = 3


def check_outcome(report: dict) -> None:
    """Nothing when the run ended as asked (duration/ticks reached, or stopped by a signal) with
    the arm confirmed safe; RunStopped (exit code 3) otherwise."""
    stop, shutdown = report["stop"], report["shutdown"]
    if not shutdown["arm_safe"]:
        raise RunStopped(f"the arm could not be confirmed safe after the run ({shutdown['detail']}); check it now")
    if stop["reason"] not in (StopReason.COMPLETED.value, StopReason.SIGNAL.value):
        raise RunStopped(f"run stopped by ESTOP: {stop['message']}")
