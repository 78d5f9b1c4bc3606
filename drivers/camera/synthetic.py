"""A synthetic camera: a deterministic moving pattern with depth, for demos and profiling.

`synthetic_pattern(n, w, h)` is a pure function of the frame number, so a test can check any
frame pixel for pixel, including frames that went through a RealSense recording.
"""

from __future__ import annotations

import time
from functools import lru_cache

import numpy as np

from drivers.camera.base import CameraInfo, Frame
from drivers.camera.configs import SyntheticConfig

DEPTH_SCALE_M = 0.001  # depth units: millimeters, as RealSense D4xx cameras default to
BACKGROUND_NEAR_MM, BACKGROUND_FAR_MM = 800, 1200  # a tilted plane, far at the top
SQUARE_MM = 500  # the moving square is closer than the background


@lru_cache(maxsize=8)
def _background(width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    x = np.arange(width, dtype=np.uint32)[None, :]
    y = np.arange(height, dtype=np.uint32)[:, None]
    color = np.empty((height, width, 3), np.uint8)
    color[..., 0] = (x * 255 // max(1, width - 1)).astype(np.uint8)
    color[..., 1] = (y * 255 // max(1, height - 1)).astype(np.uint8)
    color[..., 2] = 0
    depth = np.empty((height, width), np.uint16)
    depth[...] = (BACKGROUND_FAR_MM - y * (BACKGROUND_FAR_MM - BACKGROUND_NEAR_MM) // max(1, height - 1)).astype(np.uint16)
    color.setflags(write=False)
    depth.setflags(write=False)
    return color, depth


def square_box(frame_number: int, width: int, height: int) -> tuple[int, int, int]:
    """(x0, y0, side) of the moving square in frame `frame_number`."""
    side = max(1, min(width, height) // 4)
    x0 = (2 * frame_number) % max(1, width - side + 1)
    y0 = (height - side) // 2
    return x0, y0, side


def synthetic_pattern(frame_number: int, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """(color uint8 HxWx3, depth uint16 HxW in mm) of frame `frame_number`.

    Red and green are x/y gradients, blue encodes the frame number (4 x n mod 256), a white
    square moves 2 px per frame; depth is a tilted plane with the square nearer.
    """
    base_color, base_depth = _background(width, height)
    color = base_color.copy()
    depth = base_depth.copy()
    color[..., 2] = (4 * frame_number) % 256
    x0, y0, side = square_box(frame_number, width, height)
    color[y0 : y0 + side, x0 : x0 + side] = 255
    depth[y0 : y0 + side, x0 : x0 + side] = SQUARE_MM
    return color, depth


class SyntheticSource:
    """FrameSource producing `synthetic_pattern` frames at the configured rate, numbered from 1."""

    def __init__(self, config: SyntheticConfig, name: str):
        self.config = config
        self.name = name
        self._start = 0.0
        self._next_number = 1

    def open(self) -> CameraInfo:
        self._start = time.monotonic()
        self._next_number = 1
        c = self.config
        return CameraInfo(c.width, c.height, c.fps, c.depth, f"synthetic {c.width}x{c.height}@{c.fps:g}")

    def read(self, timeout_s: float):
        n = self._next_number
        due = self._start + (n - 1) / self.config.fps
        wait = due - time.monotonic()
        if wait > timeout_s:
            time.sleep(timeout_s)
            return None
        if wait > 0:
            time.sleep(wait)
        color, depth = synthetic_pattern(n, self.config.width, self.config.height)
        self._next_number += 1
        return Frame(
            color=color,
            depth=depth if self.config.depth else None,
            depth_scale=DEPTH_SCALE_M if self.config.depth else 0.0,
            device_time_s=n / self.config.fps,
            host_time_s=time.monotonic(),
            frame_number=n,
            camera=self.name,
        )

    def close(self) -> None:
        pass
