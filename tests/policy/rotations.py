"""Torch reference rotations (pytorch3d's formulas) to check the runtime's numpy conversion."""

import torch


def matrix_to_euler_xyz(m: torch.Tensor) -> torch.Tensor:
    """Euler XYZ angles (R = Rx·Ry·Rz), as pytorch3d's `matrix_to_euler_angles(m, "XYZ")`."""
    x = torch.atan2(-m[..., 1, 2], m[..., 2, 2])
    y = torch.asin(m[..., 0, 2].clamp(-1.0, 1.0))
    z = torch.atan2(-m[..., 0, 1], m[..., 0, 0])
    return torch.stack((x, y, z), dim=-1)


def euler_xyz_to_matrix(e: torch.Tensor) -> torch.Tensor:
    """Inverse of `matrix_to_euler_xyz` (R = Rx·Ry·Rz)."""
    cx, cy, cz = torch.cos(e[..., 0]), torch.cos(e[..., 1]), torch.cos(e[..., 2])
    sx, sy, sz = torch.sin(e[..., 0]), torch.sin(e[..., 1]), torch.sin(e[..., 2])
    one, zero = torch.ones_like(cx), torch.zeros_like(cx)
    rx = torch.stack([one, zero, zero, zero, cx, -sx, zero, sx, cx], -1).reshape(*e.shape[:-1], 3, 3)
    ry = torch.stack([cy, zero, sy, zero, one, zero, -sy, zero, cy], -1).reshape(*e.shape[:-1], 3, 3)
    rz = torch.stack([cz, -sz, zero, sz, cz, zero, zero, zero, one], -1).reshape(*e.shape[:-1], 3, 3)
    return rx @ ry @ rz
