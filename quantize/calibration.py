"""Calibration observations: real camera frames (with optional states and instructions).

Layout (what `tinyvla-edge capture` writes, see docs/capture-format.md):
`DIR/<camera>/000000.png` (color; `*_depth.png` ignored), optionally `DIR/observations.jsonl`
with one `{"index", "instruction", "state"}` per line. Without states the dataset's example
state is used; without instructions a neutral one — both are recorded in the report. Images
are never replaced by noise: no frames means no int8 calibration.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
from PIL import Image

from edge.errors import EdgeError

DEFAULT_INSTRUCTION = "pick up the object"


class Observation(NamedTuple):
    images: list[np.ndarray]  # camera order
    state: np.ndarray  # raw (not normalized)
    instruction: str


@dataclass(frozen=True)
class CalibrationSet:
    observations: list[Observation]
    source: str
    states_from: str  # "observations.jsonl" or "dataset example_qpos"
    instructions_from: str


def _frames(camera_dir: Path) -> list[Path]:
    return sorted(p for p in camera_dir.glob("*.png") if not p.stem.endswith("_depth"))


def check_camera_folders(directory: Path, camera_names: list[str]) -> None:
    """Refuse a calibration directory that is missing, or has no PNG frames for one of the cameras."""
    if not directory.is_dir():
        raise EdgeError(f"calibration directory not found: {directory}")
    for name in camera_names:
        if not _frames(directory / name):
            found = sorted(p.name for p in directory.iterdir() if p.is_dir()) or ["none"]
            raise EdgeError(f"{directory}: no PNG frames for camera '{name}' (camera folders found: {', '.join(found)})")


def read_calibration_dir(
    directory: Path, camera_names: list[str], default_state: np.ndarray,
    resolution: dict[str, tuple[int, int]] | None = None, instruction: str | None = DEFAULT_INSTRUCTION,
) -> CalibrationSet:
    """Load calibration observations for the given cameras (H, W checked against `resolution`).

    Frames are matched across cameras by file name; a frame without an observations.jsonl line
    gets `default_state` and `instruction` (None: every frame must have its own instruction)."""
    directory = Path(directory)
    check_camera_folders(directory, camera_names)
    stems: set[str] | None = None
    for name in camera_names:
        frames = {p.stem for p in _frames(directory / name)}
        stems = frames if stems is None else stems & frames
    if not stems:
        raise EdgeError(f"{directory}: no frame name is present for every camera ({', '.join(camera_names)})")
    meta = _read_observations(directory / "observations.jsonl")
    observations = []
    for stem in sorted(stems):
        entry = meta.get(int(stem), {}) if stem.isdigit() else {}
        text = entry.get("instruction", instruction)
        if text is None:
            raise EdgeError(f"{directory}: frame {stem} has no instruction: add observations.jsonl or pass --instruction")
        images = [_load_rgb(directory / name / f"{stem}.png", name, resolution) for name in camera_names]
        state = np.asarray(entry.get("state", default_state), dtype=np.float32)
        observations.append(Observation(images, state, str(text)))
    return CalibrationSet(
        observations, str(directory),
        "observations.jsonl" if any("state" in m for m in meta.values()) else "dataset example_qpos",
        "observations.jsonl" if any("instruction" in m for m in meta.values()) else f"default '{instruction}'",
    )


def _load_rgb(path: Path, camera: str, resolution: dict[str, tuple[int, int]] | None) -> np.ndarray:
    try:
        img = np.asarray(Image.open(path).convert("RGB"))
    except OSError as e:
        raise EdgeError(f"{path}: not a readable image: {e}") from e
    if resolution and camera in resolution and img.shape[:2] != tuple(resolution[camera]):
        h, w = resolution[camera]
        raise EdgeError(f"{path}: image is {img.shape[1]}x{img.shape[0]}, the profile's camera '{camera}' is {w}x{h}")
    return img


def _read_observations(path: Path) -> dict[int, dict]:
    if not path.is_file():
        return {}
    out = {}
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
            out[int(entry.get("index", n - 1))] = entry
        except (json.JSONDecodeError, ValueError, TypeError) as e:
            raise EdgeError(f"{path}:{n}: not a valid observation line: {e}") from e
    return out


def split_holdout(observations: list[Observation], fraction: float = 0.25, minimum: int = 2) -> tuple[list, list]:
    """(calibration, held-out): the last `fraction` is held out for the fidelity report."""
    held = max(1, int(round(len(observations) * fraction)))
    if len(observations) - held < minimum:
        raise EdgeError(f"calibration has {len(observations)} observations; at least {minimum + held} are needed "
                        f"({minimum} to calibrate, {held} held out for the fidelity report)")
    return observations[:-held], observations[-held:]
