"""Intel RealSense through pyrealsense2: live cameras and recordings, one pipeline code path.

pyrealsense2 is imported only when a RealSense camera is opened, through
`drivers.camera.realsense_import` (which loads the libusb it needs); a failed import says what is missing. What the field needs (peers.md §1d, §10, §11; jetson.md §5) is handled here:
warm-up frames are discarded, a camera that will not start is retried with a hardware reset
before the last try, and recordings (.bag, or .db3 as librealsense >= 2.57 writes) play through
the same pipeline via `enable_device_from_file`. Depth is streamed (and aligned to color with
`rs.align`, on the host CPU for every frame) only when the config asks for it.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from drivers.camera.base import CameraInfo, Frame
from drivers.camera.configs import RealSenseConfig, RecordingConfig
from drivers.errors import CameraNotFound, DriverError
from drivers.camera.threaded import EndOfStream
from drivers.camera.realsense_import import import_pyrealsense2

RESET_SETTLE_S = 10.0  # how long a camera may take to re-enumerate after hardware_reset


def one_line(error: BaseException) -> str:
    """An SDK message on one line, without librealsense's 'Failed to resolve request' preamble."""
    text = " ".join(str(error).split())
    return text.split("Reason: ", 1)[1] if "Reason: " in text else text


def describe_usb_devices(sysfs: Path = Path("/sys/bus/usb/devices")) -> str:
    """The USB devices the kernel sees (not hubs), for 'what is connected' in error messages."""
    found = []
    for device in sorted(sysfs.glob("*")) if sysfs.is_dir() else []:
        try:
            vendor = (device / "idVendor").read_text().strip()
            product_id = (device / "idProduct").read_text().strip()
        except OSError:
            continue
        if (device / "bDeviceClass").is_file() and (device / "bDeviceClass").read_text().strip() == "09":
            continue  # hubs
        product = (device / "product").read_text().strip() if (device / "product").is_file() else "?"
        found.append(f"{product} ({vendor}:{product_id})")
    return ", ".join(found) if found else "none"


def select_serial(devices: Sequence[tuple[str, str]], wanted: str | None) -> str:
    """Pick the serial to open from (name, serial) pairs, or say what is connected."""
    listed = ", ".join(f"{name} (serial {serial})" for name, serial in devices)
    if not devices:
        raise CameraNotFound(
            f"no RealSense camera found (USB devices: {describe_usb_devices()}); check the USB3 cable, the udev "
            "rules (99-realsense-libusb.rules) and that rs-enumerate-devices lists it"
        )
    if wanted is None:
        if len(devices) > 1:
            raise CameraNotFound(f"{len(devices)} RealSense cameras connected: {listed}; pick one with realsense:SERIAL")
        return devices[0][1]
    if wanted not in {serial for _, serial in devices}:
        raise CameraNotFound(f"no RealSense with serial {wanted}; connected: {listed}")
    return wanted


def start_with_retries(start: Callable[[], object], reset: Callable[[], None], tries: int, describe: str):
    """Call `start` up to `tries` times; before the last try call `reset` (a USB hardware reset).

    Field reports: cameras that fail to start until reset or re-plugged (lerobot #2170).
    """
    last_error: BaseException | None = None
    for attempt in range(1, tries + 1):
        if attempt == tries and attempt > 1:
            try:
                reset()
            except Exception as e:  # a failed reset must not hide the start error
                last_error = last_error or e
        try:
            return start()
        except RuntimeError as e:
            last_error = e
    raise DriverError(
        f"{describe} did not start after {tries} tries ({one_line(last_error)}); check the USB3 cable and port, "
        "and power (a powered hub helps with several cameras)"
    ) from last_error


def _to_rgb(rs, fmt) -> Callable[[np.ndarray], np.ndarray]:
    converters = {
        rs.format.rgb8: lambda a: a,
        rs.format.bgr8: lambda a: a[..., ::-1],
        rs.format.rgba8: lambda a: a[..., :3],
        rs.format.bgra8: lambda a: a[..., 2::-1],
    }
    if fmt not in converters:
        raise DriverError(f"color stream format {fmt} is not supported; record or stream rgb8 or bgr8")
    return converters[fmt]


def live_streams(rs, config: RealSenseConfig) -> list[tuple]:
    """The `rs.config.enable_stream` arguments for a live camera: color, plus depth only when the
    config asks for it."""
    streams = [(rs.stream.color, config.width, config.height, rs.format.rgb8, config.fps)]
    if config.depth:
        streams.append((rs.stream.depth, *config.depth_size, rs.format.z16, config.fps))
    return streams


class RealSenseSource:
    """FrameSource over an rs.pipeline, live (RealSenseConfig) or from a file (RecordingConfig)."""

    def __init__(self, config: RealSenseConfig | RecordingConfig, name: str):
        self.config = config
        self.name = name
        self._rs = None
        self._pipeline = None
        self._playback = None
        self._align = None
        self._convert = None
        self._depth_scale = 0.0
        self._has_depth = False
        self._last_raw_number = -1
        self._number_offset = 0

    # -- open -----------------------------------------------------------------------------------

    def open(self) -> CameraInfo:
        rs = self._rs = import_pyrealsense2()
        self._last_raw_number, self._number_offset = -1, 0
        try:
            if isinstance(self.config, RecordingConfig):
                profile, description = self._start_playback(rs, self.config)
            else:
                profile, description = self._start_live(rs, self.config)
            return self._configure_streams(rs, profile, description)
        except BaseException:
            self.close()
            raise

    def _start_playback(self, rs, config: RecordingConfig):
        path = config.path
        if not path.is_file():
            raise DriverError(f"recording {path} not found")
        pipeline = rs.pipeline()
        rs_config = rs.config()
        rs_config.enable_device_from_file(str(path), repeat_playback=config.loop)
        if not config.depth:
            rs_config.enable_stream(rs.stream.color)  # only color plays: no depth frames, no alignment
        try:
            # Resolve first and set the pace on that device: pipeline.start() reuses it, so not a
            # single frame plays in real time before set_real_time(False) takes effect.
            resolved = rs_config.resolve(rs.pipeline_wrapper(pipeline))
            resolved.get_device().as_playback().set_real_time(config.real_time)
            profile = pipeline.start(rs_config)
        except RuntimeError as e:
            raise DriverError(f"{path} is not a readable RealSense recording: {one_line(e)}") from e
        self._pipeline = pipeline
        self._playback = profile.get_device().as_playback()
        return profile, f"recording {path.name}"

    def _start_live(self, rs, config: RealSenseConfig):
        context = rs.context()
        devices = [
            (d.get_info(rs.camera_info.name), d.get_info(rs.camera_info.serial_number)) for d in context.query_devices()
        ]
        serial = select_serial(devices, config.serial)
        name = dict((s, n) for n, s in devices)[serial]
        rs_config = rs.config()
        rs_config.enable_device(serial)
        for stream in live_streams(rs, config):
            rs_config.enable_stream(*stream)
        if not rs_config.can_resolve(rs.pipeline_wrapper(rs.pipeline(context))):
            raise DriverError(
                f"{name} (serial {serial}) cannot stream color {config.width}x{config.height}@{config.fps}"
                + (f" with depth {config.depth_size[0]}x{config.depth_size[1]}" if config.depth else "")
                + "; pick a mode rs-enumerate-devices lists"
            )

        def start():
            pipeline = rs.pipeline(context)
            profile = pipeline.start(rs_config)
            try:
                # Warm-up: auto-exposure settles, and the first frames after a start are the
                # ones that arrive late or corrupt. A camera that cannot deliver them is retried.
                for _ in range(max(1, config.warmup_frames)):
                    pipeline.wait_for_frames(int(config.first_frame_timeout_s * 1000))
            except RuntimeError:
                pipeline.stop()
                raise
            return pipeline, profile

        def reset():
            for device in context.query_devices():
                if device.get_info(rs.camera_info.serial_number) == serial:
                    device.hardware_reset()
            deadline = time.monotonic() + RESET_SETTLE_S
            time.sleep(1.0)  # the device drops off the bus first; do not find the old handle
            while time.monotonic() < deadline:
                if any(d.get_info(rs.camera_info.serial_number) == serial for d in context.query_devices()):
                    return
                time.sleep(0.25)

        description = f"{name} (serial {serial})"
        self._pipeline, profile = start_with_retries(start, reset, config.connect_retries, description)
        return profile, description

    def _configure_streams(self, rs, profile, description: str) -> CameraInfo:
        streams = {s.stream_type(): s.as_video_stream_profile() for s in profile.get_streams() if s.is_video_stream_profile()}
        color = streams.get(rs.stream.color)
        if color is None:
            raise DriverError(f"{description} has no color stream")
        self._convert = _to_rgb(rs, color.format())
        self._has_depth = self.config.depth and rs.stream.depth in streams
        if self._has_depth:
            self._depth_scale = float(profile.get_device().first_depth_sensor().get_depth_scale())
            self._align = rs.align(rs.stream.color)
        return CameraInfo(color.width(), color.height(), float(color.fps()), self._has_depth, description)

    # -- read -----------------------------------------------------------------------------------

    def read(self, timeout_s: float):
        rs = self._rs
        ok, frames = self._pipeline.try_wait_for_frames(max(1, int(timeout_s * 1000)))
        host_time_s = time.monotonic()
        if not ok:
            if self._playback is not None and self._playback.current_status() == rs.playback_status.stopped:
                raise EndOfStream()
            return None
        if self._align is not None:
            frames = self._align.process(frames)
        color = frames.get_color_frame()
        if not color:
            return None
        depth = frames.get_depth_frame() if self._has_depth else None
        # copy(): the SDK recycles frame memory once the frame object is released.
        color_array = np.ascontiguousarray(self._convert(np.asanyarray(color.get_data()))).copy()
        depth_array = np.asanyarray(depth.get_data()).copy() if depth else None
        return Frame(
            color=color_array,
            depth=depth_array,
            depth_scale=self._depth_scale if depth_array is not None else 0.0,
            device_time_s=color.get_timestamp() / 1000.0,
            host_time_s=host_time_s,
            frame_number=self._monotonic_number(color.get_frame_number()),
            camera=self.name,
        )

    def _monotonic_number(self, raw: int) -> int:
        # A looping recording restarts its frame numbers; continue counting instead, so frame
        # numbers stay increasing and the restart is not counted as dropped frames.
        looping = isinstance(self.config, RecordingConfig) and self.config.loop
        if looping and raw < self._last_raw_number:
            self._number_offset += self._last_raw_number
        self._last_raw_number = raw
        return raw + self._number_offset

    def close(self) -> None:
        if self._pipeline is not None:
            try:
                self._pipeline.stop()
            except RuntimeError:
                pass  # already stopped (e.g. the device vanished); nothing left to release
            self._pipeline = None
        self._playback = None
        self._align = None
