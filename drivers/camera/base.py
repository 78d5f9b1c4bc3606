"""Cameras: the `Frame` they produce, the small `Camera` protocol, and `open_camera`.

Every backend (RealSense live, RealSense recording, synthetic) is a `ThreadedCamera`: a
background thread keeps the newest frame (and a short history for multi-camera alignment),
never an unbounded queue. Backends are imported when opened, so importing this module loads
no vendor SDK.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Optional, Protocol

import numpy as np

from drivers.camera.configs import (
    CAMERA_SPEC_SYNTAX,
    CameraConfig,
    RealSenseConfig,
    RecordingConfig,
    SyntheticConfig,
    parse_camera_spec,
    parse_named_specs,
)
from drivers.errors import SpecError

__all__ = [
    "CAMERA_SPEC_SYNTAX",
    "Camera",
    "CameraConfig",
    "CameraInfo",
    "CameraStats",
    "Frame",
    "RealSenseConfig",
    "RecordingConfig",
    "SyntheticConfig",
    "open_camera",
    "parse_camera_spec",
    "parse_named_specs",
]


@dataclass(frozen=True, eq=False)  # eq on arrays is ambiguous; frames compare by identity
class Frame:
    """One capture. Arrays are read-only: a frame may be shared by several consumers.

    color: uint8 HxWx3 RGB. depth: uint16 HxW aligned to color (or None); meters = depth * depth_scale.
    device_time_s: the camera's timestamp. host_time_s: time.monotonic() when it was received.
    frame_number: increases per frame (gaps mean dropped frames); camera: the camera's name.
    """

    color: np.ndarray
    depth: Optional[np.ndarray]
    depth_scale: float
    device_time_s: float
    host_time_s: float
    frame_number: int
    camera: str

    def __post_init__(self) -> None:
        if self.color.dtype != np.uint8 or self.color.ndim != 3 or self.color.shape[2] != 3:
            raise ValueError(f"color must be uint8 HxWx3, got {self.color.dtype} {self.color.shape}")
        if self.depth is not None:
            if self.depth.dtype != np.uint16 or self.depth.shape != self.color.shape[:2]:
                raise ValueError(f"depth must be uint16 {self.color.shape[:2]}, got {self.depth.dtype} {self.depth.shape}")
            self.depth.setflags(write=False)
        self.color.setflags(write=False)
        if not math.isfinite(self.depth_scale) or self.depth_scale < 0:
            raise ValueError(f"depth_scale must be a finite number >= 0, got {self.depth_scale}")

    @property
    def height(self) -> int:
        return self.color.shape[0]

    @property
    def width(self) -> int:
        return self.color.shape[1]


@dataclass(frozen=True)
class CameraStats:
    """Counters since open: frames received, frames dropped (frame-number gaps), stall episodes."""

    received: int = 0
    dropped: int = 0
    stalls: int = 0


@dataclass(frozen=True)
class CameraInfo:
    """What an opened camera delivers."""

    width: int
    height: int
    fps: float
    depth: bool
    description: str  # e.g. "Intel RealSense D435 (serial 123)" or "recording demo.db3"


# Not runtime_checkable: before Python 3.12 isinstance() evaluates properties, and `info`
# rightly raises NotConnectedError on a closed device.
class Camera(Protocol):
    """A source of Frames. Open it (or use it as a context manager) before reading."""

    name: str

    def open(self) -> "Camera":
        """Start streaming; returns once the first frame arrived. Idempotent."""
        ...

    def close(self) -> None:
        """Stop streaming and release the device. Idempotent."""
        ...

    def __enter__(self) -> "Camera": ...

    def __exit__(self, *exc) -> None: ...

    @property
    def info(self) -> CameraInfo: ...

    @property
    def stats(self) -> CameraStats: ...

    def latest(self, max_age_s: float) -> Frame:
        """The newest frame; CameraStalled if it is older than max_age_s or the stream stalled or ended."""
        ...

    def wait_newer(self, after_frame: int, timeout_s: float) -> Frame:
        """The newest frame with frame_number > after_frame, waiting up to timeout_s (CameraStalled)."""
        ...

    def frame_before(self, t: float) -> Optional[Frame]:
        """The newest retained frame received at or before monotonic time t; None if none is that old."""
        ...


def _open_synthetic(config: SyntheticConfig, name: str) -> Camera:
    from drivers.camera.synthetic import SyntheticSource
    from drivers.camera.threaded import ThreadedCamera

    return ThreadedCamera(name, SyntheticSource(config, name))


def _open_realsense(config: RealSenseConfig, name: str) -> Camera:
    from drivers.camera.realsense import RealSenseSource
    from drivers.camera.threaded import ThreadedCamera

    # The first frame can take seconds after a hardware reset; the source itself waits for it.
    return ThreadedCamera(name, RealSenseSource(config, name), first_frame_timeout_s=config.first_frame_timeout_s)


def _open_recording(config: RecordingConfig, name: str) -> Camera:
    from drivers.camera.realsense import RealSenseSource
    from drivers.camera.threaded import ThreadedCamera

    return ThreadedCamera(name, RealSenseSource(config, name), lockstep=not config.real_time)


# The one place a config type meets its implementation.
CAMERA_FACTORIES: dict[type, Callable[..., Camera]] = {
    SyntheticConfig: _open_synthetic,
    RealSenseConfig: _open_realsense,
    RecordingConfig: _open_recording,
}


def open_camera(config: CameraConfig | str, name: str = "camera") -> Camera:
    """Open the camera a config (or spec string) describes; returns it streaming.

    Use as `with open_camera(cfg, "front") as cam: ...` so it is closed on exit.
    """
    if isinstance(config, str):
        config = parse_camera_spec(config)
    factory = CAMERA_FACTORIES.get(type(config))
    if factory is None:
        raise SpecError(f"{config!r} is not a camera config; valid specs: {CAMERA_SPEC_SYNTAX}")
    camera = factory(config, name)
    return camera.open()
