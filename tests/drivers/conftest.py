"""Drivers fixtures: real RealSense recordings made with the SDK, real ptys with the emulator."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from drivers.sim.sim_arm import SimArm

FIXTURES = Path(__file__).parent / "fixtures"
RECORDED_FRAMES = 30
RECORDED_GAP = (10, 11)  # frame numbers missing from the recording: two dropped frames
RECORDED_SIZE = (64, 48)
RECORDED_DEPTH_SIZE = (32, 24)  # depth at another resolution, so alignment has work to do


@pytest.fixture(scope="session")
def rs():
    """pyrealsense2 through the drivers' import (libusb loaded first); skipped only where not installed."""
    from importlib.util import find_spec

    from drivers.camera.realsense_import import import_pyrealsense2

    if find_spec("pyrealsense2") is None:
        pytest.skip("pyrealsense2 is not installed (the test extra installs it on x86_64)")
    return import_pyrealsense2()


@pytest.fixture(scope="session")
def db3_recording(rs, tmp_path_factory) -> Path:
    """A paced 30-frame color + depth recording written by the installed librealsense (1 s)."""
    from drivers.camera.recording import record_synthetic

    path = tmp_path_factory.mktemp("recordings") / "synthetic.db3"
    return record_synthetic(
        path,
        frames=RECORDED_FRAMES,
        width=RECORDED_SIZE[0],
        height=RECORDED_SIZE[1],
        fps=30,
        skip_frame_numbers=RECORDED_GAP,
        depth_size=RECORDED_DEPTH_SIZE,
    )


@pytest.fixture
def sim_arm():
    """Start SimArms (short watchdog, fast dynamics); all are stopped after the test."""
    started: list[SimArm] = []

    def start(**kwargs) -> SimArm:
        kwargs.setdefault("watchdog_s", 0.2)
        kwargs.setdefault("time_constant_s", 0.02)
        sim = SimArm(**kwargs)
        sim.start()
        started.append(sim)
        return sim

    yield start
    for sim in started:
        sim.stop()


@pytest.fixture(autouse=True)
def no_leftover_driver_threads():
    """Every camera reader and emulator thread a test starts must be gone when it ends."""
    before = set(threading.enumerate())
    yield
    deadline = time.monotonic() + 3.0
    while True:
        leftover = [
            t for t in threading.enumerate()
            if t not in before and t.is_alive() and (t.name.startswith("camera-") or t.name == "sim-arm")
        ]
        if not leftover or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    assert not leftover, f"threads still running after the test: {[t.name for t in leftover]}"
