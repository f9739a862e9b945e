"""Small closed-form matrix operations."""

from __future__ import annotations

import torch
from torch import Tensor


def inverse_2x2(m: Tensor) -> Tensor:
    """Inverse of (..., 2, 2) matrices in closed form, adj(m) / det(m).

    Equal to ``torch.inverse`` up to round-off, without a batched LAPACK call (and its host synchronisation on
    GPUs) and exportable (ONNX has no matrix inverse). A singular matrix gives inf/nan instead of an error.
    """
    a, b, c, d = m[..., 0, 0], m[..., 0, 1], m[..., 1, 0], m[..., 1, 1]
    det = a * d - b * c
    adjugate = torch.stack([torch.stack([d, -b], dim=-1), torch.stack([-c, a], dim=-1)], dim=-2)
    return adjugate / det[..., None, None]
