"""`tinyvla-edge capture`: save frames from cameras or recordings to a directory.

Layout (docs/capture-format.md):

    OUTPUT/frames.jsonl                  one line per captured set
    OUTPUT/<camera>/000000.png           color, 8-bit RGB
    OUTPUT/<camera>/000000_depth.png     depth aligned to color, 16-bit grayscale (raw units)

Recordings are read frame by frame (not in real time), so a capture of a recording holds
consecutive recorded frames whatever the machine's speed.
"""

from __future__ import annotations

import dataclasses
import json
from contextlib import ExitStack
from pathlib import Path
from typing import Mapping, Sequence

from PIL import Image

from drivers.camera.base import Camera, Frame, RecordingConfig, open_camera, parse_named_specs
from drivers.errors import CameraStalled, DriverError

INDEX_FILE = "frames.jsonl"
FRAME_TIMEOUT_S = 2.0


def color_file(camera: str, index: int) -> str:
    """Path of a color image, relative to the capture directory."""
    return f"{camera}/{index:06d}.png"


def depth_file(camera: str, index: int) -> str:
    """Path of a depth image, relative to the capture directory."""
    return f"{camera}/{index:06d}_depth.png"


def _for_capture(config):
    if isinstance(config, RecordingConfig):
        return dataclasses.replace(config, real_time=False)
    return config


def _write_frame(output: Path, name: str, index: int, frame: Frame) -> dict:
    color_path = color_file(name, index)
    # compress_level 1: capture must keep up with the camera; PNG stays lossless at any level.
    Image.fromarray(frame.color).save(output / color_path, compress_level=1)
    depth_path = None
    if frame.depth is not None:
        depth_path = depth_file(name, index)
        Image.fromarray(frame.depth).save(output / depth_path, compress_level=1)
    return {
        "frame_number": frame.frame_number,
        "device_time_s": frame.device_time_s,
        "host_time_s": frame.host_time_s,
        "color": color_path,
        "depth": depth_path,
        "depth_scale": frame.depth_scale if frame.depth is not None else None,
    }


def capture(camera_specs: Mapping[str, str] | Sequence[str] | str, frames: int, output: Path) -> dict:
    """Capture `frames` sets (one new frame per camera each) into `output`; return a summary.

    Stops early, saying why in "stopped", if a camera stalls or a recording ends.
    """
    if frames < 1:
        raise DriverError(f"--frames must be at least 1, got {frames}")
    configs = {name: _for_capture(config) for name, config in parse_named_specs(camera_specs).items()}
    output = Path(output)
    if (output / INDEX_FILE).exists():
        raise DriverError(f"{output} already holds a capture ({INDEX_FILE}); choose another --output")
    captured, stopped = 0, None
    with ExitStack() as stack:
        cameras: dict[str, Camera] = {name: stack.enter_context(open_camera(cfg, name)) for name, cfg in configs.items()}
        for name in cameras:
            (output / name).mkdir(parents=True, exist_ok=True)
        last_number = {name: -1 for name in cameras}
        with open(output / INDEX_FILE, "w", encoding="utf-8") as index_file:
            for index in range(frames):
                try:
                    # Take every camera's frame before writing any, so a stall never leaves a half set.
                    taken = {name: cam.wait_newer(last_number[name], FRAME_TIMEOUT_S) for name, cam in cameras.items()}
                except CameraStalled as e:
                    stopped = str(e)
                    break
                record = {"index": index, "cameras": {}}
                for name, frame in taken.items():
                    last_number[name] = frame.frame_number
                    record["cameras"][name] = _write_frame(output, name, index, frame)
                index_file.write(json.dumps(record) + "\n")
                captured += 1
        summary_cameras = {
            name: {
                "spec": configs[name].spec,
                "width": cam.info.width,
                "height": cam.info.height,
                "depth": cam.info.depth,
                "received": cam.stats.received,
                "dropped": cam.stats.dropped,
                "stalls": cam.stats.stalls,
            }
            for name, cam in cameras.items()
        }
    return {
        "output": str(output),
        "index": str(output / INDEX_FILE),
        "requested": frames,
        "frames": captured,
        "complete": captured == frames,
        "stopped": stopped,
        "cameras": summary_cameras,
    }


def render_capture_summary(result: dict) -> str:
    """Human-readable lines for the CLI."""
    lines = [f"captured {result['frames']}/{result['requested']} frame sets into {result['output']}"]
    for name, cam in result["cameras"].items():
        depth = "color+depth" if cam["depth"] else "color"
        lines.append(
            f"  {name}: {cam['spec']} {cam['width']}x{cam['height']} {depth}, "
            f"received {cam['received']}, dropped {cam['dropped']}, stalls {cam['stalls']}"
        )
    if result["stopped"]:
        lines.append(f"stopped early: {result['stopped']}")
    return "\n".join(lines)
