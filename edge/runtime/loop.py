"""The control loop: a fixed-rate tick that blends chunks, applies safety, and drives the arm.

One tick (DESIGN.md, "The control loop, in one tick"):

    check stops → take finished chunks → blend for now → convert → safety → send → read state → log

The tick never waits for inference (the worker runs on its own thread) and never replays old
actions: with no fresh chunk it holds. Any ESTOP condition ends the loop; `run()` always leaves
the arm safe on the way out, including when the tick raises.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from drivers.arm import Arm, ArmState, RejectReason
from drivers.camera import Camera
from drivers.errors import DeviceTimeoutError, DriverError, NotConnectedError
from edge.policy.contract import ChunkPredictor
from edge.runtime.chunks import ChunkBuffer, TimedChunk
from edge.runtime.episode_log import EpisodeLog
from edge.runtime.observation import ObservationSource, StateHistory
from edge.runtime.pacing import DEFAULT_SPIN_S, TickSchedule, now, sleep_until
from edge.runtime.safety import Decision, EstopLatch, HoldReason, SafetyLayer, Stop, StopReason
from edge.runtime.shutdown import ShutdownAction, ShutdownReport, leave_arm_safe
from edge.runtime.telemetry import Telemetry, TickTimes
from edge.runtime.worker import InferenceWorker

# Python hands the GIL between threads every 5 ms by default: a tick waking while the worker
# runs Python code could start 5 ms late. 0.5 ms keeps the start error well under a millisecond.
SWITCH_INTERVAL_S = 0.0005
CAMERA_POLL_FRACTION = 0.2  # poll camera freshness every fifth of the deadline (a stall is caught within 1.2x it)


@dataclass(frozen=True)
class LoopSettings:
    """How the loop runs. Deadlines default to the profile's `control.action_deadline_s`."""

    rate_hz: float
    ensemble_k: float = 0.01
    action_deadline_s: float = 0.5  # no action from an observation this recent → hold
    # Serial + actuation latency: the action due at t is sent at t - exec_latency_s, and actions
    # due before now + exec_latency_s are dropped (diffusion_policy's latency matching).
    exec_latency_s: float = 0.0
    camera_deadline_s: float | None = None  # no new frame for this long → ESTOP (default: action deadline)
    arm_deadline_s: float | None = None  # serial timeouts for this long → ESTOP (default: action deadline)
    duration_s: float | None = None
    max_ticks: int | None = None
    dry_run: bool = False  # everything but sending targets: the arm gets heartbeats
    on_shutdown: ShutdownAction = ShutdownAction.ESTOP  # after a completed run
    reconnect_budget_s: float = 5.0
    spin_s: float = DEFAULT_SPIN_S
    chunk_capacity: int | None = None  # default: the chunk size (one chunk per tick)
    frame_timeout_s: float = 0.1

    def __post_init__(self) -> None:
        if not self.rate_hz > 0:
            raise ValueError("rate_hz must be positive")
        if not self.action_deadline_s > 0:
            raise ValueError("action_deadline_s must be positive")
        if not 0 <= self.exec_latency_s < self.action_deadline_s:
            raise ValueError("exec_latency_s must be at least 0 and shorter than the action deadline")

    @property
    def period_s(self) -> float:
        return 1.0 / self.rate_hz


@dataclass
class LoopResult:
    """How the loop ended and what it measured."""

    stop: Stop
    shutdown: ShutdownReport
    report: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.stop.reason.is_estop and self.shutdown.arm_safe


class ControlLoop:
    """Drives `arm` from `predictor` at a fixed rate, through `safety`. Wired by constructor.

    cameras: in the predictor's camera order (the first one paces inference).
    latch: shared with whoever may stop the loop (signal handlers, tests).
    """

    def __init__(
        self,
        predictor: ChunkPredictor,
        cameras: Sequence[Camera],
        arm: Arm,
        safety: SafetyLayer,
        settings: LoopSettings,
        instruction: str,
        latch: EstopLatch | None = None,
        episode_log: EpisodeLog | None = None,
    ):
        self.predictor = predictor
        self.cameras = tuple(cameras)
        self.arm = arm
        self.safety = safety
        self.settings = settings
        self.latch = latch or EstopLatch()
        self.episode_log = episode_log
        self.telemetry = Telemetry(settings.rate_hz)
        self.states = StateHistory()
        self.buffer = ChunkBuffer(predictor.chunk_size, predictor.action_dim, settings.chunk_capacity, settings.ensemble_k)
        self.worker = InferenceWorker(
            predictor, ObservationSource(self.cameras, self.states), instruction,
            frame_timeout_s=settings.frame_timeout_s, on_chunk=self._on_chunk,
        )
        self.schedule: TickSchedule | None = None
        self._state: ArmState | None = None
        self._serial_failing_since: float | None = None
        self._camera_deadline = settings.camera_deadline_s or settings.action_deadline_s
        self._arm_deadline = settings.arm_deadline_s or settings.action_deadline_s
        self._cameras_checked_at = float("-inf")

    # -- running --------------------------------------------------------------------------------

    def run(self) -> LoopResult:
        """Run until the duration/tick count is reached or an ESTOP condition; leave the arm safe."""
        stop: Stop | None = None
        previous_interval = sys.getswitchinterval()
        sys.setswitchinterval(SWITCH_INTERVAL_S)
        try:
            self._read_initial_state()
            self.worker.start()
            self.schedule = TickSchedule.at_rate(self.settings.rate_hz)
            self._event("start", rate_hz=self.settings.rate_hz, t0=self.schedule.start)
            stop = self._ticks()
        except BaseException as e:  # noqa: BLE001 - re-raised; the arm is made safe below first
            self.latch.trip(StopReason.RUNTIME_ERROR, f"{type(e).__name__}: {e}")
            stop = self.latch.stop
            raise
        finally:
            self.worker.stop()
            stop = stop or self.latch.stop or Stop(StopReason.RUNTIME_ERROR, "the loop ended without a reason")
            shutdown = self._shutdown(stop)
            sys.setswitchinterval(previous_interval)
            self.result = LoopResult(stop, shutdown, self._report(stop, shutdown))
        return self.result

    def _ticks(self) -> Stop:
        s, schedule = self.settings, self.schedule
        while True:
            due = schedule.due()
            sleep_until(due, s.spin_s)
            self._tick(schedule.index, due)
            if self.latch.tripped:
                return self.latch.stop
            t = now()
            if s.max_ticks is not None and self.telemetry.ticks >= s.max_ticks:
                return Stop(StopReason.COMPLETED, f"{self.telemetry.ticks} ticks", schedule.index)
            if s.duration_s is not None and t - schedule.start >= s.duration_s:
                return Stop(StopReason.COMPLETED, f"{s.duration_s:g} s", schedule.index)
            schedule.advance(t)

    def _tick(self, tick: int, due: float) -> None:
        start = now()
        self._check_stops(tick, start)
        if self.latch.tripped:
            return
        self._admit(self.worker.take(), tick)
        blend = self.buffer.blend(tick)
        t_chunks = now()
        action, hold = None, None
        if blend is None:
            hold = HoldReason.NO_ACTION
        elif start - blend.newest_obs_time > self.settings.action_deadline_s:
            hold = HoldReason.STALE
        else:
            robot = self.predictor.decoder.robot_actions(blend.normalized.astype(np.float32))
            action = np.asarray(robot, np.float64)
        t_convert = now()
        decision = self.safety.decide(action, self._state, hold)
        t_safety = now()
        sent = self._drive(decision, tick, due)
        t_serial = now()
        stages_ms = {"chunks": (t_chunks - start) * 1e3, "convert": (t_convert - t_chunks) * 1e3,
                     "safety": (t_safety - t_convert) * 1e3, "serial": (t_serial - t_safety) * 1e3}
        if self.episode_log is not None:
            self.episode_log.tick(self._tick_record(tick, due, start, blend, decision, sent, stages_ms))
        end = now()
        self.telemetry.record_tick(start, TickTimes(
            start_error=(start - due) * 1e3, log=(end - t_serial) * 1e3, work=(end - start) * 1e3, **stages_ms,
        ))

    # -- the parts of a tick --------------------------------------------------------------------

    def _check_stops(self, tick: int, t: float) -> None:
        if self.worker.failure is not None:
            self.latch.trip(StopReason.INFERENCE_FAILED, f"inference failed: {self.worker.failure}", tick)
        # Cameras are polled a few times per deadline, not every tick: each poll takes the camera's
        # lock, which its reader thread may hold, and the deadline is far longer than a tick.
        if t - self._cameras_checked_at < self._camera_deadline * CAMERA_POLL_FRACTION:
            return
        self._cameras_checked_at = t
        for camera in self.cameras:
            frame = camera.frame_before(t)
            age = t - frame.host_time_s if frame is not None else float("inf")
            if age > self._camera_deadline:
                why = f"; {self.worker.camera_error}" if self.worker.camera_error else ""
                self.latch.trip(StopReason.CAMERA_STALL,
                                f"camera {camera.name}: no new frame for {1e3 * age:.0f} ms "
                                f"(deadline {1e3 * self._camera_deadline:.0f} ms){why}", tick)

    def _admit(self, chunks: list[TimedChunk], tick: int) -> None:
        counters = self.telemetry.chunks
        for chunk in chunks:
            counters.published += 1
            self.telemetry.record_inference(chunk.timings_ms, chunk.obs_time, chunk.published_at)
            # Action i is due at obs_time + i·dt and is sent exec_latency_s before that: the
            # chunk starts at the tick nearest obs_time - exec_latency_s, and rows for ticks
            # already past (due before now + exec_latency_s) are dropped and counted.
            start_tick = self.schedule.tick_at(chunk.obs_time - self.settings.exec_latency_s)
            admission = self.buffer.add(chunk, start_tick, tick)
            counters.admitted += admission.accepted
            counters.stale_actions += admission.stale_actions
            counters.rejected_non_finite += admission.rejected_non_finite
            counters.stale_chunks += not admission.accepted and not admission.rejected_non_finite

    def _drive(self, decision: Decision, tick: int, due: float) -> bool:
        """Send the target (or a heartbeat in a dry run), read the state. True if a target was accepted."""
        link = self.telemetry.link
        accepted = False
        sending = False
        try:
            if self.settings.dry_run:
                self.arm.heartbeat()
            else:
                link.sent += 1
                sending = True
                result = self.arm.send_target(decision.target)
                sending = False
                link.retried += result.attempts - 1  # frames resent
                accepted = result.accepted
                if accepted:
                    link.accepted += 1
                    # The action was for due + exec latency: confirmed after that, it came late.
                    link.late += decision.hold is None and now() > due + self.settings.exec_latency_s
                    self.safety.accepted(decision.target)
                else:
                    link.nak(result.reason.value if result.reason else "unknown")
            state = self.arm.state()
        except NotConnectedError as e:
            self.latch.trip(StopReason.ARM_DISCONNECTED, f"arm disconnected: {e}", tick)
            return False
        except DeviceTimeoutError as e:
            link.timeouts += 1
            if sending:  # the target may have arrived and only the reply got lost
                self.safety.unconfirmed(decision.target)
            t = now()
            self._serial_failing_since = self._serial_failing_since or t
            if t - self._serial_failing_since > self._arm_deadline:
                self.latch.trip(StopReason.ARM_UNRESPONSIVE, f"arm unresponsive for "
                                f"{1e3 * (t - self._serial_failing_since):.0f} ms: {e}", tick)
            return accepted
        except DriverError as e:
            self.latch.trip(StopReason.ARM_FAULT, f"arm error: {e}", tick)
            return False
        self._serial_failing_since = None
        self._observe(state, tick)
        if not accepted and not self.settings.dry_run and result.reason is RejectReason.STEP_TOO_LARGE:
            self.safety.resync(state)
        elif not accepted and not self.settings.dry_run and result.reason is RejectReason.ESTOPPED:
            self.latch.trip(StopReason.ARM_ESTOP, "the arm refused a target: its ESTOP is latched", tick)
        elif self.settings.dry_run:
            self.safety.resync(state)  # nothing was sent: steps are measured from where the arm is
        return accepted

    def _observe(self, state: ArmState, tick: int | None) -> None:
        self._state = state
        self.states.push(state)
        self.safety.observe(state)
        if state.estop:
            self.latch.trip(StopReason.ARM_ESTOP, "the arm reports its ESTOP latched", tick)
        elif state.fault:
            self.latch.trip(StopReason.ARM_FAULT, "the arm reports a fault", tick)

    def _read_initial_state(self) -> None:
        """The arm's state before the first tick; a lost reply is retried until the arm deadline."""
        give_up = now() + self._arm_deadline
        while True:
            try:
                self._observe(self.arm.state(), None)
                return
            except DeviceTimeoutError:
                if now() >= give_up:
                    raise

    def _on_chunk(self, chunk: TimedChunk, observation) -> None:
        if self.episode_log is not None:
            self.episode_log.chunk(chunk, observation)

    # -- the end --------------------------------------------------------------------------------

    def _shutdown(self, stop: Stop) -> ShutdownReport:
        if stop.reason.is_estop:
            action = ShutdownAction.ESTOP
        elif self.settings.dry_run:
            action = ShutdownAction.NONE
        else:
            action = self.settings.on_shutdown
        report = leave_arm_safe(self.arm, self.safety, action, self.settings.reconnect_budget_s)
        self._event("stop", **stop.as_dict())
        self._event("shutdown", **report.as_dict())
        return report

    def _report(self, stop: Stop, shutdown: ShutdownReport) -> dict:
        schedule = self.schedule
        return self.telemetry.report(schedule.missed if schedule else 0, {
            "safety": self.safety.counters.as_dict(),
            "stop": stop.as_dict(),
            "shutdown": shutdown.as_dict(),
            "dry_run": self.settings.dry_run,
            "exec_latency_ms": self.settings.exec_latency_s * 1e3,
        })

    def _event(self, kind: str, **fields) -> None:
        if self.episode_log is not None:
            self.episode_log.event(kind, time=now(), **fields)

    def _tick_record(self, tick: int, due: float, start: float, blend, decision: Decision, accepted: bool,
                     stages_ms: dict[str, float]) -> dict:
        state = self._state
        return {
            "tick": tick,
            "due": due,
            "start_error_ms": (start - due) * 1e3,
            "obs_time": blend.newest_obs_time if blend else None,
            "chunks": list(blend.chunk_ids) if blend else [],
            "action": decision.requested.tolist() if decision.requested is not None else None,
            "target": decision.target.tolist(),
            "sent": not self.settings.dry_run,
            "accepted": accepted,
            "hold": decision.hold.value if decision.hold else None,
            "limit_clamped": [self.safety.limits.axes[i] for i in decision.limit_axes],
            "step_clamped": [self.safety.limits.axes[i] for i in decision.step_axes],
            "state": list(state.as_target()) if state else None,
            "state_time": state.host_time_s if state else None,
            "arm_flags": {"moving": state.moving, "estop": state.estop, "fault": state.fault,
                          "watchdog_hold": state.watchdog_hold} if state else None,
            "stages_ms": stages_ms,
        }
