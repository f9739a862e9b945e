"""Keypoints to Gaussian heat maps."""

from __future__ import annotations

from torch import Tensor

from ostnet.geometry.grid import make_coordinate_grid


def keypoints_to_gaussian(kp: Tensor, height: int, width: int, variance: float) -> Tensor:
    """Unnormalised isotropic Gaussians centred on keypoints.

    Args:
        kp: (B, K, 2) keypoints (x, y) in [-1, 1].
        height, width: size of the output maps.
        variance: sigma^2 in normalised units (FOMM's kp_variance, 0.01).

    Returns:
        (B, K, H, W) with ``exp(-||p - kp||^2 / (2 variance))``; peak value 1 at the keypoint.
    """
    if kp.dim() != 3 or kp.shape[-1] != 2:
        raise ValueError(f"keypoints must be (B, K, 2), got {tuple(kp.shape)}")
    grid = make_coordinate_grid(height, width, dtype=kp.dtype, device=kp.device)  # (H, W, 2)
    diff = grid[None, None] - kp[:, :, None, None, :]  # (B, K, H, W, 2)
    return (-0.5 * (diff**2).sum(-1) / variance).exp()
