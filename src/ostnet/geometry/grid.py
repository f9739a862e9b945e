"""Normalised coordinate grids."""

from __future__ import annotations

import torch
from torch import Tensor


def make_coordinate_grid(
    height: int, width: int, dtype: torch.dtype = torch.float32, device: torch.device | str | None = None
) -> Tensor:
    """Grid of pixel-centre coordinates, shape (H, W, 2), last axis (x, y) in [-1, 1].

    ``grid[h, w] = (2 w / (W - 1) - 1, 2 h / (H - 1) - 1)``: the convention of FOMM's
    ``make_coordinate_grid`` and of ``grid_sample(align_corners=True)``. A size of 1 maps to 0.
    """
    if height < 1 or width < 1:
        raise ValueError(f"grid size must be positive, got {height}x{width}")
    xs = _linspace(width, dtype, device)
    ys = _linspace(height, dtype, device)
    yy, xx = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([xx, yy], dim=-1)


def _linspace(n: int, dtype: torch.dtype, device: torch.device | str | None) -> Tensor:
    if n == 1:
        return torch.zeros(1, dtype=dtype, device=device)
    # 2 * i / (n - 1) - 1 computed as FOMM does, so converted FOMM weights see bit-identical grids.
    return 2 * (torch.arange(n, dtype=dtype, device=device) / (n - 1)) - 1
