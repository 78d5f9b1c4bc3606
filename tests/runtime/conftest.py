"""A rig for control-loop tests: the tiny policy, real pyrealsense2 recordings, the firmware
emulator on a real pty, and the real SerialArm (pyserial) talking to it."""

from __future__ import annotations

import contextlib
import dataclasses
from pathlib import Path

import pytest

from drivers.camera import open_camera
from drivers.camera.recording import record_synthetic
from drivers.arm.serial_arm import SerialArm
from drivers.sim.sim_arm import SimArm
from edge.config import ArmSpec
from edge.policy.predictor import TorchPredictor
from edge.runtime.audit import audit_arm_log
from edge.runtime.episode_log import EpisodeLog
from edge.runtime.loop import ControlLoop, LoopResult, LoopSettings
from edge.runtime.run import connect_arm
from edge.runtime.startup import serial_timeout_s
from edge.runtime.safety import SafetyLayer, SafetyLimits

# Every emulator log a test produced, for the audit across all runs (test_zz_audit.py).
ARM_LOGS: list[tuple[Path, SafetyLimits]] = []

# 25 Hz gives each serial call 12 ms (retries included): enough for the in-process emulator on a
# busy 2-core machine, where a thread can wait 10 ms for a core.
FAST = LoopSettings(rate_hz=25.0, action_deadline_s=0.4, duration_s=1.5)
# Tighter than the emulator's own limits, so the profile side of the intersection is exercised.
PROFILE_ARM = ArmSpec(lower=[-0.8, -0.8, -0.8, -3.0, -3.0, -3.0, 0.0], upper=[0.8, 0.8, 0.8, 3.0, 3.0, 3.0, 1.0],
                      max_step=[0.02, 0.02, 0.02, 0.1, 0.1, 0.1, 0.2])


@pytest.fixture(autouse=True)
def one_torch_thread():
    """As `run` does on this machine (every core but one for torch): the tick keeps a core. With
    two OpenMP threads on two busy cores, inference slows by an order of magnitude."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="session")
def recording(tmp_path_factory) -> Path:
    """One second of synthetic frames in a real RealSense recording (played looped)."""
    return record_synthetic(tmp_path_factory.mktemp("rec") / "synthetic.db3", frames=30, width=64, height=48, fps=30)


@pytest.fixture(scope="session")
def short_recording(tmp_path_factory) -> Path:
    """Half a second of frames, played once: the camera stalls when it ends."""
    return record_synthetic(tmp_path_factory.mktemp("rec") / "short.db3", frames=15, width=64, height=48, fps=30)


@pytest.fixture(scope="session")
def predictor(tiny_policy) -> TorchPredictor:
    return TorchPredictor(tiny_policy, tiny_policy.sampler(2))


@dataclasses.dataclass
class Rig:
    """Cameras + emulator + SerialArm, wired into a ControlLoop by `run`."""

    directory: Path
    predictor: object
    cameras: list
    sim: SimArm
    arm: SerialArm
    limits: SafetyLimits
    arm_log: Path

    def run(self, settings: LoopSettings = FAST, predictor=None, log: bool = True, **changes) -> LoopResult:
        settings = dataclasses.replace(settings, **changes)
        episode = EpisodeLog(self.directory / "episode").open({"test": True}) if log else None
        loop = ControlLoop(predictor or self.predictor, self.cameras, self.arm, SafetyLayer(self.limits),
                           settings, "pick up the red cube", episode_log=episode)
        self.loop = loop
        try:
            result = loop.run()
        finally:
            if episode is not None:
                episode.close(getattr(loop, "result", None) and loop.result.report)
        return result

    def audit(self):
        return audit_arm_log(self.arm_log, self.limits)

    def firmware(self, read):
        return self.sim.inspect(read)


@pytest.fixture()
def rig_factory(tmp_path, predictor, recording):
    """`make(faults=..., camera_spec=..., rate_hz=...)` → a started Rig; everything is closed after the test."""
    stack = contextlib.ExitStack()

    def make(faults=(), recording_spec: str | None = None, rate_hz: float = FAST.rate_hz, sim_options=None) -> Rig:
        spec = recording_spec or f"recording:{recording}?loop"
        cameras = [stack.enter_context(open_camera(spec, name)) for name in predictor.camera_names]
        arm_log = tmp_path / "arm.jsonl"
        sim = SimArm(dof=6, space="ee", log=arm_log, faults=faults, link=tmp_path / "arm-link", **(sim_options or {}))
        sim.start()
        stack.callback(sim.stop)
        arm = SerialArm(str(tmp_path / "arm-link"), timeout_s=serial_timeout_s(rate_hz), retries=2)
        info = connect_arm(arm)
        stack.callback(arm.close)
        limits = SafetyLimits.combine(info, PROFILE_ARM)
        ARM_LOGS.append((arm_log, limits))
        return Rig(tmp_path, predictor, cameras, sim, arm, limits, arm_log)

    with stack:
        yield make
