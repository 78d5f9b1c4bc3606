"""Checkpoints of a distillation run, and refusing to resume one under different settings.

One file, `distill-state.pt` in the checkpoint directory, written by rank 0 atomically (temp file
+ rename, so a crash mid-write leaves the previous checkpoint). It holds only tensors, numbers,
strings and lists, and is read back with `weights_only=True`.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from pydantic import BaseModel, ConfigDict

from edge.errors import EdgeError

STATE_FILE = "distill-state.pt"
STATE_FORMAT = "tinyvla-edge-distill-state"
STATE_VERSION = 1


class RunSettings(BaseModel):
    """Everything that decides what a run computes; a resumed run must match it exactly."""

    model_config = ConfigDict(frozen=True)

    method: str
    steps: int
    teacher_steps: int
    student_timesteps: list[int]
    iterations: int
    batch_size: int
    learning_rate: float
    seed: int
    holdout: float
    world_size: int
    conditions_sha256: str
    teacher_sha256: str


def differing_settings(saved: dict, current: RunSettings) -> list[str]:
    """Names of the settings that differ, as `name (checkpoint X, now Y)`."""
    out = []
    for name, value in current.model_dump().items():
        if saved.get(name) != value:
            old, new = saved.get(name), value
            if isinstance(value, str) and len(value) > 16:
                old, new = str(old)[:12] + "…", value[:12] + "…"
            out.append(f"{name} (checkpoint {old}, now {new})")
    return out


def save_state(directory: Path, state: dict) -> Path:
    """Write `state` to directory/distill-state.pt atomically."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / STATE_FILE
    tmp = path.with_suffix(".tmp")
    torch.save({"format": STATE_FORMAT, "version": STATE_VERSION, **state}, tmp)
    os.replace(tmp, path)
    return path


def load_state(directory: Path) -> dict | None:
    """The saved state, or None when the directory holds none."""
    path = Path(directory) / STATE_FILE
    if not path.is_file():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # a truncated or foreign file: say which, never unpickle arbitrary code
        raise EdgeError(f"{path}: not a readable distillation checkpoint ({type(e).__name__})") from e
    if state.get("format") != STATE_FORMAT or state.get("version") != STATE_VERSION:
        raise EdgeError(f"{path}: unsupported checkpoint format {state.get('format')} v{state.get('version')}")
    return state


def check_resumable(state: dict, settings: RunSettings, path: Path) -> None:
    """Refuse a resume whose settings differ from the checkpoint's, naming each difference."""
    diff = differing_settings(state["settings"], settings)
    if diff:
        raise EdgeError(f"cannot resume {path}: settings differ: " + "; ".join(diff))
