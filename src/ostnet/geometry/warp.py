"""The one warp function of the project: every image/feature resampling by a flow goes through here."""

from __future__ import annotations

from typing import Literal

import torch.nn.functional as F
from torch import Tensor


def warp(
    image: Tensor,
    grid: Tensor,
    padding_mode: Literal["zeros", "border", "reflection"] = "zeros",
) -> Tensor:
    """Backward-warp ``image`` by a sampling grid.

    Args:
        image: (B, C, H_in, W_in).
        grid: (B, H, W, 2) sampling locations (x, y) in [-1, 1] of the input; if its spatial size differs
            from the input's it is used as is (the output has the grid's size).
        padding_mode: value outside the input (``zeros`` as FOMM, ``border`` for the TPS rectification,
            ``reflection`` for the equivariance transform).

    Returns:
        (B, C, H, W), bilinear, ``align_corners=True``.
    """
    if image.dim() != 4 or grid.dim() != 4 or grid.shape[-1] != 2:
        raise ValueError(f"warp expects (B,C,H,W) and (B,H,W,2); got {tuple(image.shape)}, {tuple(grid.shape)}")
    if grid.dtype != image.dtype:
        grid = grid.to(image.dtype)
    return F.grid_sample(image, grid, mode="bilinear", padding_mode=padding_mode, align_corners=True)


def resize_map(x: Tensor, height: int, width: int, align_corners: bool = True) -> Tensor:
    """Bilinearly resize a (B, C, h, w) map (an occlusion map, a flow in channel-first layout) to (H, W).

    ``align_corners=True`` is the project convention. ``False`` exists for one reason: FOMM resized its
    deformation that way (see ``ostnet.models.generator_fomm``), and FOMM weights must see the same maps.
    """
    if x.shape[-2:] == (height, width):
        return x
    return F.interpolate(x, size=(height, width), mode="bilinear", align_corners=align_corners)


def resize_flow(flow: Tensor, height: int, width: int, align_corners: bool = True) -> Tensor:
    """Bilinearly resize a (B, h, w, 2) sampling grid to (B, H, W, 2) (values are coordinates, unchanged)."""
    if flow.shape[1] == height and flow.shape[2] == width:
        return flow
    return resize_map(flow.permute(0, 3, 1, 2), height, width, align_corners).permute(0, 2, 3, 1)
