"""Cameras stream color only unless the profile or the spec asks for depth: a live RealSense
enables no depth stream, and a recording plays no depth and builds no `rs.align`."""

from __future__ import annotations

import pytest

from drivers.camera import open_camera
from drivers.camera.configs import RealSenseConfig, StreamSettings, parse_camera_spec
from drivers.camera.realsense import live_streams
from drivers.errors import SpecError


def test_a_live_realsense_enables_only_the_color_stream_by_default(rs):
    assert RealSenseConfig().depth is False
    for spec in ("realsense", "realsense:123", "realsense:123:848x480@15"):
        config = parse_camera_spec(spec)
        assert live_streams(rs, config) == [(rs.stream.color, config.width, config.height, rs.format.rgb8, config.fps)]


def test_depth_streams_when_the_spec_or_the_profile_asks_for_it(rs):
    asked = [parse_camera_spec("realsense:123?depth=1"),
             parse_camera_spec("realsense:123", StreamSettings(640, 480, 30, depth=True)),
             RealSenseConfig(depth=True, depth_width=320, depth_height=240)]
    streams = [live_streams(rs, config) for config in asked]
    assert [[s[0] for s in each] for each in streams] == [[rs.stream.color, rs.stream.depth]] * 3
    assert streams[2][1] == (rs.stream.depth, 320, 240, rs.format.z16, 30)
    assert parse_camera_spec("realsense:123", StreamSettings(640, 480, 30, depth=False)).depth is False


def test_depth_zero_is_not_an_option_a_profile_could_be_overridden_with():
    with pytest.raises(SpecError, match="unknown camera option 'depth=0'"):
        parse_camera_spec("realsense?depth=0")


def test_a_recording_with_depth_plays_color_only_and_never_aligns(rs, db3_recording, monkeypatch):
    def no_align(*args):
        raise AssertionError("rs.align was built for a color-only camera")

    monkeypatch.setattr(rs, "align", no_align)
    with open_camera(f"recording:{db3_recording}?realtime=0", "rec") as camera:
        assert camera.info.depth is False
        frame = camera.wait_newer(0, 5.0)
    assert frame.depth is None and frame.depth_scale == 0.0


def test_a_recording_plays_its_depth_when_asked(rs, db3_recording):
    with open_camera(f"recording:{db3_recording}?realtime=0&depth=1", "rec") as camera:
        assert camera.info.depth is True
        frame = camera.wait_newer(0, 5.0)
    assert frame.depth is not None and frame.depth.shape == frame.color.shape[:2]
