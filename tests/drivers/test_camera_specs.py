"""Camera spec strings -> frozen, self-validating configs; names for several cameras."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from drivers.camera.base import (
    CAMERA_FACTORIES,
    RealSenseConfig,
    RecordingConfig,
    SyntheticConfig,
    open_camera,
    parse_camera_spec,
    parse_named_specs,
)
from drivers.errors import DriverError, SpecError


@pytest.mark.parametrize(
    "text, expected",
    [
        ("realsense", RealSenseConfig()),
        ("realsense:123456789012", RealSenseConfig(serial="123456789012")),
        ("realsense:1280x720@15", RealSenseConfig(width=1280, height=720, fps=15)),
        ("realsense:123:848x480", RealSenseConfig(serial="123", width=848, height=480)),
        ("recording:/data/run.db3", RecordingConfig(Path("/data/run.db3"))),
        ("recording:old.BAG", RecordingConfig(Path("old.BAG"))),
        ("recording:/a:b/run.db3?loop", RecordingConfig(Path("/a:b/run.db3"), loop=True)),
        ("recording:run.db3?loop&realtime=0", RecordingConfig(Path("run.db3"), loop=True, real_time=False)),
        ("synthetic", SyntheticConfig()),
        ("synthetic:320x240", SyntheticConfig(320, 240, 30.0)),
        ("synthetic:64x48@12.5", SyntheticConfig(64, 48, 12.5)),
        ("  SYNTHETIC:64x48@10 ", SyntheticConfig(64, 48, 10.0)),
    ],
)
def test_specs_parse_to_configs(text, expected):
    assert parse_camera_spec(text) == expected


@pytest.mark.parametrize(
    "text, message",
    [
        ("webcam:0", "unknown camera spec 'webcam:0'; valid: realsense"),
        ("intelrealsense", "unknown camera spec"),
        ("recording:", "needs a path"),
        ("recording:movie.mp4", "not a RealSense recording: expected a .bag or .db3"),
        ("recording:run.db3?speed=2", "unknown camera option 'speed=2'"),
        ("synthetic:64by48", "expected WxH or WxH@FPS"),
        ("synthetic:0x48", "not within 1..8192"),
        ("synthetic:64x48@0", "fps 0.0 is not within"),
        ("realsense:12 34", "serial"),
        ("realsense:640x480@7.5", "whole number"),
        ("realsense:a:b:640x480", "expected realsense[:SERIAL][:WxH@FPS]"),
    ],
)
def test_bad_specs_say_what_is_valid(text, message):
    with pytest.raises(SpecError) as e:
        parse_camera_spec(text)
    assert message in str(e.value)
    assert "\n" not in str(e.value)


def test_configs_are_frozen_and_validate_when_built_directly():
    config = SyntheticConfig(64, 48, 30)
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.width = 1
    with pytest.raises(SpecError, match="both depth_width and depth_height"):
        RealSenseConfig(depth_width=320)
    with pytest.raises(SpecError, match="connect_retries"):
        RealSenseConfig(connect_retries=0)
    assert RealSenseConfig(depth_width=320, depth_height=240).depth_size == (320, 240)
    assert RealSenseConfig().depth_size == (640, 480)


def test_spec_property_round_trips():
    for text in ["realsense:123:848x480@15", "recording:run.db3?loop&realtime=0", "synthetic:64x48@12.5"]:
        config = parse_camera_spec(text)
        assert parse_camera_spec(config.spec) == config


def test_named_specs():
    configs = parse_named_specs(["left=realsense:111", "right=realsense:222", "recording:/x/a=b.db3"])
    assert configs == {
        "left": RealSenseConfig(serial="111"),
        "right": RealSenseConfig(serial="222"),
        "recording": RecordingConfig(Path("/x/a=b.db3")),  # '=' inside a path is not a name
    }
    assert parse_named_specs({"front": "synthetic:32x24"}) == {"front": SyntheticConfig(32, 24)}
    assert parse_named_specs("synthetic") == {"synthetic": SyntheticConfig()}
    assert list(parse_named_specs({"b": SyntheticConfig(), "a": "synthetic"})) == ["b", "a"]


@pytest.mark.parametrize(
    "specs, message",
    [
        (["realsense:1", "realsense:2"], "two cameras named 'realsense'; name them"),
        (["a=synthetic", "a=synthetic"], "two cameras named 'a'"),
        ([], "no camera given"),
        ({"9lives": "synthetic"}, "must start with a letter"),
        ({"x": object()}, "is not a camera config"),
    ],
)
def test_bad_named_specs(specs, message):
    with pytest.raises(SpecError, match=message):
        parse_named_specs(specs)


def test_one_explicit_factory_per_config_type():
    assert set(CAMERA_FACTORIES) == {RealSenseConfig, RecordingConfig, SyntheticConfig}
    with pytest.raises(DriverError, match="not a camera config"):
        open_camera(object(), "x")
