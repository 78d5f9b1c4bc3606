"""Normalization statistics and the decoding of normalized chunks into robot commands.

numpy only: the control process decodes every blended action with this and imports no torch."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pydantic import BaseModel, ConfigDict, field_validator


class NormStats(BaseModel):
    """TinyVLA's `dataset_stats.pkl`: min–max for actions, mean/std for the state (qpos)."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True, allow_inf_nan=False)  # NaN stats: NaN actions

    action_min: list[float]
    action_max: list[float]
    qpos_mean: list[float]
    qpos_std: list[float]
    action_mean: list[float] | None = None
    action_std: list[float] | None = None
    example_qpos: list[list[float]] | None = None

    @field_validator("*", mode="before")
    @classmethod
    def _to_list(cls, v):
        if isinstance(v, np.ndarray):
            return v.astype(np.float64).tolist()
        return v

    def normalize_state(self, state: np.ndarray) -> np.ndarray:
        """(qpos − mean) / std, float32."""
        mean, std = np.asarray(self.qpos_mean, np.float32), np.asarray(self.qpos_std, np.float32)
        if state.shape[-1] != mean.shape[0]:
            raise ValueError(f"state has {state.shape[-1]} values, the policy expects {mean.shape[0]}")
        return ((state.astype(np.float32) - mean) / std).astype(np.float32)

    def denormalize_actions(self, normalized: np.ndarray) -> np.ndarray:
        """[−1, 1] → robot units: ((a + 1) / 2) · (max − min) + min (min–max, never mean/std)."""
        lo, hi = np.asarray(self.action_min, np.float32), np.asarray(self.action_max, np.float32)
        return (((normalized + 1) / 2) * (hi - lo) + lo).astype(np.float32)

    def summary(self) -> dict:
        """Ranges for `inspect`."""
        return {
            "action_dim": len(self.action_min),
            "action_min": [round(v, 4) for v in self.action_min],
            "action_max": [round(v, 4) for v in self.action_max],
            "state_dim": len(self.qpos_mean),
            "qpos_mean": [round(v, 4) for v in self.qpos_mean],
            "qpos_std": [round(v, 4) for v in self.qpos_std],
        }


# Values per robot command, by action layout; `raw` passes the actions through (action_dim).
LAYOUT_ROBOT_DIMS = {"xyz_rot6d_gripper": 7}
ROT6D_ACTION_DIM = 10


@dataclass(frozen=True)
class ActionChunk:
    """One decoded chunk: the head's output in [−1, 1], de-normalized actions, robot commands."""

    normalized: np.ndarray  # [chunk, action_dim]
    actions: np.ndarray  # [chunk, action_dim]
    robot_actions: np.ndarray  # [chunk, robot_dim]


@dataclass(frozen=True)
class ActionDecoder:
    """Normalized actions → robot commands: min–max de-normalization, then the layout's conversion.

    The one conversion of the action contract: the model process hands over the normalized chunk,
    the control process blends chunks in normalized space and decodes each blended action with
    this (numpy, no torch). `robot_dim` is what the arm must take, known without running anything."""

    stats: NormStats
    layout: str

    def __post_init__(self) -> None:
        if self.layout not in ("raw", *LAYOUT_ROBOT_DIMS):
            raise ValueError(f"unknown action layout {self.layout!r} (known: raw, {', '.join(LAYOUT_ROBOT_DIMS)})")
        if self.layout == "xyz_rot6d_gripper" and self.action_dim != ROT6D_ACTION_DIM:
            raise ValueError(f"layout xyz_rot6d_gripper needs {ROT6D_ACTION_DIM}-D actions, the stats have {self.action_dim}")

    @property
    def action_dim(self) -> int:
        return len(self.stats.action_min)

    @property
    def robot_dim(self) -> int:
        """Values per robot command (7 for TinyVLA's 10-D actions: xyz, Euler XYZ, gripper)."""
        return LAYOUT_ROBOT_DIMS.get(self.layout, self.action_dim)

    def robot_actions(self, normalized: np.ndarray) -> np.ndarray:
        """Normalized [..., action_dim] → robot commands [..., robot_dim], float32."""
        return to_robot_actions(self.stats.denormalize_actions(normalized), self.layout)

    def decode(self, normalized: np.ndarray) -> ActionChunk:
        """Normalized chunk → all three views (for reports and `inspect`)."""
        actions = self.stats.denormalize_actions(normalized)
        return ActionChunk(normalized, actions, to_robot_actions(actions, self.layout))


def to_robot_actions(actions: np.ndarray, layout: str) -> np.ndarray:
    """De-normalized actions → robot commands. For `xyz_rot6d_gripper` (10-D): xyz, Euler XYZ,
    gripper (7-D); for `raw` the actions are passed through."""
    if layout == "raw":
        return actions.astype(np.float32)
    if actions.shape[-1] != ROT6D_ACTION_DIM:
        raise ValueError(f"layout xyz_rot6d_gripper needs 10-D actions, got {actions.shape[-1]}")
    # numpy rather than torch: this runs inside the control tick, where torch's per-op overhead
    # cost milliseconds at p99 for a handful of 3-vectors.
    a = actions.astype(np.float64)
    a1, a2 = a[..., 3:6], a[..., 6:9]
    b1 = a1 / np.maximum(np.linalg.norm(a1, axis=-1, keepdims=True), 1e-12)
    b2 = a2 - (b1 * a2).sum(-1, keepdims=True) * b1
    b2 = b2 / np.maximum(np.linalg.norm(b2, axis=-1, keepdims=True), 1e-12)
    b3 = np.cross(b1, b2)
    # Euler XYZ of R whose rows are b1, b2, b3 (same formulas as matrix_to_euler_xyz).
    x = np.arctan2(-b2[..., 2], b3[..., 2])
    y = np.arcsin(np.clip(b1[..., 2], -1.0, 1.0))
    z = np.arctan2(-b1[..., 1], b1[..., 0])
    return np.concatenate([a[..., :3], np.stack([x, y, z], -1), a[..., 9:10]], axis=-1).astype(np.float32)
