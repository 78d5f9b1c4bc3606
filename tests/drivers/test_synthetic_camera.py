"""The synthetic camera through ThreadedCamera: frames, timing, stalls, history, lifecycle."""

from __future__ import annotations

import time

import numpy as np
import pytest

from drivers.camera import Camera, Frame, SyntheticConfig, open_camera
from drivers.errors import CameraStalled, NotConnectedError
from drivers.camera.synthetic import SQUARE_MM, SyntheticSource, square_box, synthetic_pattern
from drivers.camera.threaded import ThreadedCamera

from .protocols import implements


def test_pattern_is_deterministic_and_moves():
    color1, depth1 = synthetic_pattern(5, 64, 48)
    color1b, _ = synthetic_pattern(5, 64, 48)
    color2, depth2 = synthetic_pattern(6, 64, 48)
    assert np.array_equal(color1, color1b)
    assert color1.dtype == np.uint8 and color1.shape == (48, 64, 3)
    assert depth1.dtype == np.uint16 and depth1.shape == (48, 64)
    assert not np.array_equal(color1, color2)
    x0, y0, side = square_box(5, 64, 48)
    assert depth1[y0 + side // 2, x0 + side // 2] == SQUARE_MM
    assert square_box(6, 64, 48)[0] == x0 + 2


def test_open_camera_streams_frames_in_order():
    with open_camera(SyntheticConfig(32, 24, 60, depth=True), "front") as camera:
        assert implements(camera, Camera)
        assert (camera.info.width, camera.info.height, camera.info.depth) == (32, 24, True)
        first = camera.latest(max_age_s=0.5)
        assert first.camera == "front"
        second = camera.wait_newer(first.frame_number, timeout_s=1.0)
        assert second.frame_number > first.frame_number
        assert second.host_time_s > first.host_time_s
        color, depth = synthetic_pattern(second.frame_number, 32, 24)
        assert np.array_equal(second.color, color) and np.array_equal(second.depth, depth)
        assert second.depth_scale == pytest.approx(0.001)
        assert second.device_time_s == pytest.approx(second.frame_number / 60)
        time.sleep(0.1)
        stats = camera.stats
        assert stats.received >= 5 and stats.dropped == 0 and stats.stalls == 0


def test_frames_are_read_only_and_validated():
    with open_camera("synthetic:16x12@60", "cam") as camera:
        frame = camera.latest(1.0)
    with pytest.raises(ValueError):
        frame.color[0, 0, 0] = 1
    with pytest.raises(ValueError, match="color must be uint8"):
        Frame(np.zeros((2, 2, 3), np.float32), None, 0.0, 0.0, 0.0, 1, "x")
    with pytest.raises(ValueError, match="depth must be uint16"):
        Frame(np.zeros((2, 2, 3), np.uint8), np.zeros((3, 2), np.uint16), 0.001, 0.0, 0.0, 1, "x")


def test_depth_is_off_unless_asked_for():
    with open_camera(SyntheticConfig(16, 12, 60), "cam") as camera:
        frame = camera.latest(1.0)
    assert frame.depth is None and frame.depth_scale == 0.0


def test_latest_refuses_a_frame_older_than_max_age():
    with open_camera(SyntheticConfig(16, 12, 2), "slow") as camera:  # frame 1 at open, frame 2 500 ms later
        assert camera.latest(max_age_s=1.0).frame_number == 1
        time.sleep(0.05)
        with pytest.raises(CameraStalled, match=r"newest frame is \d+ ms old \(max 10 ms\)"):
            camera.latest(max_age_s=0.01)


def test_frame_before_picks_the_newest_frame_received_by_then():
    with open_camera(SyntheticConfig(16, 12, 100), "cam") as camera:
        a = camera.wait_newer(-1, 1.0)
        b = camera.wait_newer(a.frame_number, 1.0)
        c = camera.wait_newer(b.frame_number, 1.0)
        picked = camera.frame_before(b.host_time_s)
        assert picked.frame_number == b.frame_number
        assert camera.frame_before((b.host_time_s + c.host_time_s) / 2).frame_number in (b.frame_number, b.frame_number + 1)
        assert camera.frame_before(a.host_time_s - 10.0) is None


class _StopsAfter(SyntheticSource):
    """A real synthetic source that goes quiet after `n` frames, like an unplugged camera."""

    def __init__(self, n: int):
        super().__init__(SyntheticConfig(16, 12, 50), "quiet")
        self.n = n

    def read(self, timeout_s):
        if self._next_number > self.n:
            time.sleep(timeout_s)
            return None
        return super().read(timeout_s)


def test_a_camera_that_stops_delivering_is_reported_stalled_within_two_periods():
    with ThreadedCamera("quiet", _StopsAfter(3)) as camera:
        camera.wait_newer(2, 1.0)
        deadline = time.monotonic() + 1.0
        while camera.stats.stalls == 0 and time.monotonic() < deadline:
            time.sleep(0.005)
        stalled_after = time.monotonic()
        assert camera.stats.stalls == 1
        with pytest.raises(CameraStalled, match="no frame for"):
            camera.latest(max_age_s=10.0)  # a stall is reported whatever age is allowed
        with pytest.raises(CameraStalled, match="no frame after #3"):
            camera.wait_newer(3, timeout_s=0.05)
        newest = camera.frame_before(stalled_after)
        assert newest.frame_number == 3
        # 2 periods at 50 fps = 40 ms after the last frame, give or take scheduling
        assert stalled_after - newest.host_time_s < 0.5


def test_lifecycle():
    camera = ThreadedCamera("cam", SyntheticSource(SyntheticConfig(16, 12, 60), "cam"))
    with pytest.raises(NotConnectedError, match="not open"):
        camera.latest(1.0)
    with pytest.raises(NotConnectedError):
        camera.info
    camera.open()
    assert camera.open() is camera  # idempotent
    camera.latest(1.0)
    camera.close()
    camera.close()  # idempotent
    with pytest.raises(NotConnectedError):
        camera.latest(1.0)
    with camera:  # reopens, with fresh counters
        assert camera.wait_newer(-1, 1.0).frame_number >= 1
