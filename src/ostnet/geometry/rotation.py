"""Head rotations: yaw, pitch, roll in degrees <-> 3x3 rotation matrices (torch), one convention everywhere.

Camera coordinates: x right, y down (image axes), z away from the camera (right-handed). A head at zero pose
looks at the camera. The angles, as a user sees them:

* yaw > 0: the face turns towards the image's right (the nose moves to +x);
* pitch > 0: the face turns up (the nose moves to -y);
* roll > 0: the face tilts clockwise on the screen (a rotation by +roll in the y-down image plane).

``rotation_matrix(yaw, pitch, roll) = R_z(roll) @ R_x(pitch) @ R_y(yaw)`` acts on column vectors of head
coordinates: yaw first, then pitch, then the in-plane roll, so that rotating an image in-plane by theta changes
the roll alone by theta. ``euler_angles`` inverts it for |pitch| < 90 degrees.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

_RADIANS = math.pi / 180.0  # a product, not torch.deg2rad, which ONNX cannot export


def _stack(rows: list[list[Tensor]]) -> Tensor:
    return torch.stack([torch.stack(row, dim=-1) for row in rows], dim=-2)


def rotation_matrix(yaw: Tensor, pitch: Tensor, roll: Tensor) -> Tensor:
    """Angles in degrees, any (equal) shape (...) -> rotation matrices (..., 3, 3)."""
    y, p, r = (torch.as_tensor(a, dtype=torch.float32) * _RADIANS for a in (yaw, pitch, roll))
    y, p, r = torch.broadcast_tensors(y, p, r)
    one, zero = torch.ones_like(y), torch.zeros_like(y)
    # R_y(-yaw) in the textbook form: the nose (0, 0, -1) goes to (+sin yaw, 0, -cos yaw).
    ry = _stack([[y.cos(), zero, -y.sin()], [zero, one, zero], [y.sin(), zero, y.cos()]])
    # pitch > 0 lifts the nose: (0, 0, -1) -> (0, -sin pitch, -cos pitch).
    rx = _stack([[one, zero, zero], [zero, p.cos(), p.sin()], [zero, -p.sin(), p.cos()]])
    rz = _stack([[r.cos(), -r.sin(), zero], [r.sin(), r.cos(), zero], [zero, zero, one]])
    return rz @ rx @ ry


def euler_angles(rotation: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Rotation matrices (..., 3, 3) -> (yaw, pitch, roll) in degrees, the inverse of ``rotation_matrix``."""
    m = rotation
    # R = Rz Rx Ry has third row (cos p sin y, -sin p, cos p cos y) and second column
    # (-sin r cos p, cos r cos p, -sin p).
    pitch = torch.asin((-m[..., 2, 1]).clamp(-1.0, 1.0))
    yaw = torch.atan2(m[..., 2, 0], m[..., 2, 2])
    roll = torch.atan2(-m[..., 0, 1], m[..., 1, 1])
    return torch.rad2deg(yaw), torch.rad2deg(pitch), torch.rad2deg(roll)


def rotate_points_2d(points: Tensor, degrees: float | Tensor, center: Tensor | None = None) -> Tensor:
    """Rotate (..., N, 2) image-plane points (x right, y down) by ``degrees`` (clockwise on screen) about
    ``center`` (..., 1, 2) (default: their mean)."""
    angle = torch.deg2rad(torch.as_tensor(degrees, dtype=points.dtype, device=points.device))
    c, s = angle.cos(), angle.sin()
    center = points.mean(dim=-2, keepdim=True) if center is None else center
    d = points - center
    x = c * d[..., 0] - s * d[..., 1]
    y = s * d[..., 0] + c * d[..., 1]
    return torch.stack([x, y], dim=-1) + center
