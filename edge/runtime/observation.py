"""Observations for the inference worker: camera frames aligned by capture time, plus arm state.

The first camera paces inference: the worker waits for its next frame, then takes from every
other camera the newest frame received at or before it (`Camera.frame_before`), and the arm
state measured nearest before it (diffusion_policy's alignment, style.md §5). The observation
is stamped with the first camera's receive time: the time its actions are scheduled from.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from drivers.arm import ArmState
from drivers.camera import Camera, Frame
from drivers.errors import CameraStalled


@dataclass(frozen=True)
class Observation:
    """What one inference sees."""

    frames: tuple[Frame, ...]  # in the policy's camera order
    state: ArmState
    obs_time: float  # monotonic; the pacing camera's frame time

    @property
    def images(self) -> list[np.ndarray]:
        return [f.color for f in self.frames]

    @property
    def state_vector(self) -> np.ndarray:
        """The policy's state input: measured values + gripper (TinyVLA's 7-D qpos for an EE arm)."""
        return np.asarray(self.state.as_target(), np.float32)

    @property
    def frame_numbers(self) -> tuple[int, ...]:
        return tuple(f.frame_number for f in self.frames)


class StateHistory:
    """The last few arm states, written by the control thread and read by the worker."""

    def __init__(self, size: int = 64):
        self._states: deque[ArmState] = deque(maxlen=size)
        self._lock = threading.Lock()

    def push(self, state: ArmState) -> None:
        with self._lock:
            self._states.append(state)

    def newest(self) -> ArmState | None:
        with self._lock:
            return self._states[-1] if self._states else None

    def before(self, t: float) -> ArmState | None:
        """The newest state measured at or before `t`; the oldest one if all are newer; None if empty."""
        with self._lock:
            for state in reversed(self._states):
                if state.host_time_s <= t:
                    return state
            return self._states[0] if self._states else None


class ObservationSource:
    """Builds aligned observations from cameras (policy order) and the state history."""

    def __init__(self, cameras: Sequence[Camera], states: StateHistory):
        if not cameras:
            raise ValueError("at least one camera is needed")
        self.cameras = tuple(cameras)
        self.states = states
        self._last_frame_number = 0
        self.last_stall: str | None = None  # why the last call found no new frame

    def next(self, timeout_s: float) -> Observation | None:
        """The next observation after the last one, or None if no new frame (or no arm state yet)
        came within `timeout_s`. Camera errors other than a stall propagate."""
        try:
            lead = self.cameras[0].wait_newer(self._last_frame_number, timeout_s)
            frames = [lead]
            for camera in self.cameras[1:]:
                frame = camera.frame_before(lead.host_time_s)
                if frame is None:  # nothing this camera holds is that old (it just started): take its newest
                    frame = camera.wait_newer(0, timeout_s)
                frames.append(frame)
        except CameraStalled as e:
            self.last_stall = str(e)
            return None  # the control thread decides when a stall is long enough to stop
        self._last_frame_number = lead.frame_number
        state = self.states.before(lead.host_time_s)
        if state is None:
            return None
        return Observation(tuple(frames), state, lead.host_time_s)
