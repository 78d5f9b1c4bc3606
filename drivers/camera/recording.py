"""Write real RealSense recordings without a camera: `rs.software_device` + `rs.recorder`.

The frames are `synthetic_pattern` frames, so whoever plays the file back can check every pixel.
librealsense >= 2.57 writes ROS2 `.db3` files (and refuses other names); older versions write
ROS1 `.bag`. Both play back through `RealSenseSource`.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Iterable

import numpy as np

from drivers.camera.configs import RECORDING_SUFFIXES
from drivers.errors import DriverError
from drivers.camera.realsense import one_line
from drivers.camera.synthetic import DEPTH_SCALE_M, synthetic_pattern
from drivers.camera.realsense_import import import_pyrealsense2


def _intrinsics(rs, width: int, height: int):
    intrinsics = rs.intrinsics()
    intrinsics.width, intrinsics.height = width, height
    intrinsics.ppx, intrinsics.ppy = width / 2, height / 2
    # The same field of view at any resolution, so depth of another size aligns onto color.
    intrinsics.fx = intrinsics.fy = 0.8 * width
    intrinsics.model = rs.distortion.none
    intrinsics.coeffs = [0.0] * 5
    return intrinsics


def _video_stream(rs, stream, fmt, bpp: int, width: int, height: int, fps: int, uid: int):
    vs = rs.video_stream()
    vs.type, vs.fmt, vs.bpp = stream, fmt, bpp
    vs.width, vs.height, vs.fps = width, height, fps
    vs.intrinsics = _intrinsics(rs, width, height)
    vs.index, vs.uid = 0, uid
    return vs


def _push(rs, sensor, profile, pixels, bpp: int, width: int, number: int, timestamp_ms: float) -> None:
    frame = rs.software_video_frame()
    frame.pixels = pixels.tobytes()
    frame.bpp = bpp
    frame.stride = width * bpp
    frame.timestamp = timestamp_ms
    frame.domain = rs.timestamp_domain.hardware_clock
    frame.frame_number = number
    frame.profile = profile
    sensor.on_video_frame(frame)


def record_synthetic(
    path: str | Path,
    frames: int = 30,
    width: int = 64,
    height: int = 48,
    fps: int = 30,
    depth: bool = True,
    skip_frame_numbers: Iterable[int] = (),
    *,
    depth_size: tuple[int, int] | None = None,
    pace: bool = True,
) -> Path:
    """Record frames 1..`frames` of the synthetic pattern (minus `skip_frame_numbers`) to `path`.

    Color is rgb8, depth z16 in millimeters (depth units 0.001 m) at `depth_size` (default: the
    color size), with intrinsics that align depth onto color. `pace` spaces frames 1/fps apart
    in time, so the file also plays back correctly in real time (30 frames take a second);
    without it the whole recording spans a few milliseconds.
    """
    rs = import_pyrealsense2()
    path = Path(path)
    if path.suffix.lower() not in RECORDING_SUFFIXES:
        raise DriverError(f"recording path {path} must end in .db3 (librealsense >= 2.57) or .bag (older)")
    if frames < 1 or fps < 1:
        raise DriverError("a recording needs at least one frame and fps >= 1")
    skip = set(skip_frame_numbers)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        path.unlink()  # the recorder does not overwrite; replacing is what the caller asked for

    device = rs.software_device()
    device.register_info(rs.camera_info.name, "tinyvla-edge synthetic")
    device.register_info(rs.camera_info.serial_number, "000000000000")
    color_sensor = device.add_sensor("Color")
    color_profile = color_sensor.add_video_stream(
        _video_stream(rs, rs.stream.color, rs.format.rgb8, 3, width, height, fps, uid=1)
    ).as_video_stream_profile()
    sensors = [(color_sensor, color_profile)]
    if depth:
        depth_w, depth_h = depth_size or (width, height)
        depth_sensor = device.add_sensor("Depth")
        depth_profile = depth_sensor.add_video_stream(
            _video_stream(rs, rs.stream.depth, rs.format.z16, 2, depth_w, depth_h, fps, uid=2)
        ).as_video_stream_profile()
        depth_sensor.add_read_only_option(rs.option.depth_units, DEPTH_SCALE_M)
        extrinsics = rs.extrinsics()
        extrinsics.rotation = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
        extrinsics.translation = [0.0, 0.0, 0.0]
        depth_profile.register_extrinsics_to(color_profile, extrinsics)
        sensors.append((depth_sensor, depth_profile))
    device.create_matcher(rs.matchers.default)

    try:
        recorder = rs.recorder(str(path), device)
    except RuntimeError as e:
        raise DriverError(f"cannot record to {path}: {one_line(e)}") from e
    for sensor, profile in sensors:
        sensor.open(profile)
        sensor.start(lambda frame: None)  # the recorder captures frames on their way to this sink
    start = time.monotonic()
    try:
        for number in range(1, frames + 1):
            if pace:
                time.sleep(max(0.0, start + (number - 1) / fps - time.monotonic()))
            if number in skip:
                continue
            color, depth_mm = synthetic_pattern(number, width, height)
            timestamp_ms = number * 1000.0 / fps
            _push(rs, color_sensor, color_profile, color, 3, width, number, timestamp_ms)
            if depth:
                depth_mm = resample_nearest(depth_mm, depth_w, depth_h)
                _push(rs, depth_sensor, depth_profile, depth_mm, 2, depth_w, number, timestamp_ms)
    finally:
        for sensor, _ in sensors:
            sensor.stop()
            sensor.close()
        del recorder  # the file is finalized when the recorder is released
    return path


def resample_nearest(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """`image` (HxW) resized to width x height by nearest neighbour: the same scene at another resolution."""
    rows = (np.arange(height) * image.shape[0]) // height
    cols = (np.arange(width) * image.shape[1]) // width
    return np.ascontiguousarray(image[rows][:, cols])
