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


def solve(a: Tensor, b: Tensor) -> Tensor:
    """x with a @ x = b for (..., n, n) ``a`` and (..., n, k) ``b``: ``torch.linalg.solve``, or, while an ONNX
    export traces the model, ``solve_unrolled`` (ONNX has no linear solver, opset 17)."""
    return solve_unrolled(a, b) if torch.onnx.is_in_onnx_export() else torch.linalg.solve(a, b)


def solve_unrolled(a: Tensor, b: Tensor) -> Tensor:
    """Gauss-Jordan elimination with partial pivoting, unrolled over the n columns, in elementwise operations only.

    Equal to ``torch.linalg.solve`` up to round-off for any nonsingular ``a``, including systems with a zero
    diagonal block such as a thin-plate spline's (the pivoting swaps rows). Rows are swapped with one-hot masks
    instead of in-place indexing, so the traced graph exports to ONNX. A singular ``a`` gives inf/nan.
    """
    n = a.shape[-1]
    m = torch.cat([a, b], dim=-1)  # (..., n, n + k)
    rows = torch.arange(n, device=a.device)
    for k in range(n):
        pivot = m[..., k:, k].abs().argmax(dim=-1, keepdim=True) + k  # (..., 1)
        chosen = (rows == pivot).to(m.dtype)[..., None]  # (..., n, 1): one-hot of the pivot row
        current = (rows == k).to(m.dtype)[..., None]
        row_p = (chosen * m).sum(dim=-2, keepdim=True)  # (..., 1, n + k)
        row_k = m[..., k : k + 1, :]
        m = m + (current - chosen) * (row_p - row_k)  # swap rows k and pivot (nothing when they are the same)
        factors = m[..., :, k : k + 1] / m[..., k : k + 1, k : k + 1]  # (..., n, 1)
        factors = factors * (1.0 - current)  # every row but the pivot's
        m = m - factors * m[..., k : k + 1, :]
    diagonal = (m[..., :n] * (rows[:, None] == rows).to(m.dtype)).sum(dim=-1, keepdim=True)  # no aten::diagonal:
    return m[..., n:] / diagonal  # its ONNX form holds an If whose output type onnxruntime rejects in float64
