"""Thin-plate splines.

Two uses in OSTNet:

* ``TPSGridGenerator``: the grid generator of the scale transformation (Sec. 3.2, "we adopt the grid
  generator from [15, 8]", i.e. RARE/STN). T fiducial points C predicted by the localisation network define
  a TPS that maps every output (rectified) pixel p' to a sampling location p in the driving image. The
  base points C' and the (T+3)x(T+3) system are fixed, so the matrix ``P^ Delta^{-1}`` is precomputed once
  per output size and the grid is one matrix product: ``grid = M @ C``.
* ``RandomTPS``: FOMM's random affine + TPS transform for the equivariance loss (Eq. 8,
  reference-architecture.md §6.2).
"""

from __future__ import annotations

import torch
from torch import Tensor

from ostnet.geometry.grid import make_coordinate_grid
from ostnet.geometry.matrix import solve
from ostnet.geometry.warp import warp


def base_fiducial_points(num_points: int, dtype: torch.dtype = torch.float32) -> Tensor:
    """RARE's base fiducial points C': T/2 evenly spaced on the top edge, T/2 on the bottom edge.

    Returns (T, 2), (x, y) in [-1, 1]; the first T/2 rows are the top row (y = -1) left to right.
    """
    if num_points < 4 or num_points % 2:
        raise ValueError(f"the number of fiducial points must be even and >= 4, got {num_points}")
    half = num_points // 2
    xs = torch.linspace(-1.0, 1.0, half, dtype=torch.float64)
    top = torch.stack([xs, -torch.ones(half, dtype=torch.float64)], dim=-1)
    bottom = torch.stack([xs, torch.ones(half, dtype=torch.float64)], dim=-1)
    return torch.cat([top, bottom], dim=0).to(dtype)


def tps_kernel(sq_dist: Tensor) -> Tensor:
    """RARE's radial basis U(r) = r^2 log r^2, as a function of r^2, with U(0) = 0."""
    safe = torch.where(sq_dist > 0, sq_dist, torch.ones_like(sq_dist))
    return torch.where(sq_dist > 0, sq_dist * torch.log(safe), torch.zeros_like(sq_dist))


def _system_matrix(base: Tensor) -> Tensor:
    """Delta_{C'} of RARE, (T+3, T+3), in float64."""
    t = base.shape[0]
    ones = torch.ones(t, 1, dtype=base.dtype)
    kernel = tps_kernel(torch.cdist(base, base) ** 2)  # (T, T)
    top = torch.cat([ones, base, kernel], dim=1)  # (T, T+3)
    bottom = torch.cat([torch.zeros(3, 3, dtype=base.dtype), torch.cat([ones, base], dim=1).T], dim=1)
    return torch.cat([top, bottom], dim=0)


def tps_grid_matrix(base: Tensor, height: int, width: int) -> Tensor:
    """The (H*W, T) matrix M with grid = M @ C for fiducial points C (float64).

    M = P^ . Delta^{-1}[:, :T], where the rows of P^ are [1, x', y', U(||p' - c'_1||), ...] for every output
    pixel p' (reference-architecture.md §5.2). The zero right-hand-side rows of [C; 0] drop out.
    """
    base = base.to(torch.float64)
    delta_inv = torch.linalg.inv(_system_matrix(base))  # (T+3, T+3)
    points = make_coordinate_grid(height, width, dtype=torch.float64).reshape(-1, 2)  # (HW, 2)
    kernel = tps_kernel(torch.cdist(points, base) ** 2)  # (HW, T)
    p_hat = torch.cat([torch.ones(points.shape[0], 1, dtype=torch.float64), points, kernel], dim=1)
    return p_hat @ delta_inv[:, : base.shape[0]]


class TPSGridGenerator:
    """Grid generator of Sec. 3.2: fiducial points (B, T, 2) -> sampling grid M_tran (B, H, W, 2).

    The matrix for each (H, W, device, dtype) is computed once and cached. ``C = C'`` gives the identity grid;
    ``C = s C' + t`` gives exactly the affine grid ``s p' + t``.
    """

    def __init__(self, num_points: int) -> None:  # T (config.ScaleTransformConfig.num_fiducial)
        self.num_points = num_points
        self.base = base_fiducial_points(num_points, dtype=torch.float64)
        self._cache: dict[tuple[int, int, str, torch.dtype], Tensor] = {}

    def matrix(self, height: int, width: int, device: torch.device, dtype: torch.dtype) -> Tensor:
        key = (height, width, str(device), dtype)
        if key not in self._cache:
            self._cache[key] = tps_grid_matrix(self.base, height, width).to(device=device, dtype=dtype)
        return self._cache[key]

    def __call__(self, fiducial: Tensor, height: int, width: int) -> Tensor:
        if fiducial.dim() != 3 or fiducial.shape[1:] != (self.num_points, 2):
            raise ValueError(f"fiducial points must be (B, {self.num_points}, 2), got {tuple(fiducial.shape)}")
        m = self.matrix(height, width, fiducial.device, fiducial.dtype)  # (HW, T)
        # M @ C' is the identity grid, so grid = identity + M @ (C - C'): the same function, but C = C' gives
        # the identity grid exactly instead of up to float32 round-off of the matrix product.
        offsets = fiducial - self.base.to(fiducial.device, fiducial.dtype)
        identity = make_coordinate_grid(height, width, dtype=fiducial.dtype, device=fiducial.device)
        grid = identity.reshape(1, -1, 2) + torch.einsum("pt,btc->bpc", m, offsets)  # (B, HW, 2)
        return grid.reshape(fiducial.shape[0], height, width, 2)


class RandomTPS:
    """FOMM's random transform for the equivariance loss (reference-architecture.md §6.2).

    T(p) = theta [p; 1] + sum_m w_m r_m^2 log(r_m + 1e-6) (1, 1)^T with r_m = |p - c_m|_1, where theta is the
    identity plus N(0, sigma_affine^2) noise and w_m ~ N(0, sigma_tps^2) on a ``points`` x ``points`` grid c_m.
    T maps coordinates of the transformed frame to coordinates of the original frame.
    """

    def __init__(
        self,
        batch: int,
        sigma_affine: float,  # the values: config.LossConfig.tps_sigma_affine, tps_sigma_tps, tps_points
        sigma_tps: float,
        points: int,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
        generator: torch.Generator | None = None,
    ) -> None:
        noise = torch.randn(batch, 2, 3, generator=generator, dtype=dtype) * sigma_affine
        self.theta = (noise + torch.eye(2, 3, dtype=dtype)).to(device)  # (B, 2, 3)
        self.control_points = make_coordinate_grid(points, points, dtype=dtype).reshape(-1, 2).to(device)
        params = torch.randn(batch, 1, points * points, generator=generator, dtype=dtype) * sigma_tps
        self.control_params = params.to(device)  # (B, 1, M)

    def transform_points(self, coords: Tensor) -> Tensor:
        """(B, N, 2) -> (B, N, 2)."""
        theta = self.theta.to(coords.dtype)
        out = torch.einsum("bij,bnj->bni", theta[:, :, :2], coords) + theta[:, None, :, 2]
        dist = (coords[:, :, None, :] - self.control_points.to(coords.dtype)[None, None]).abs().sum(-1)
        radial = dist**2 * torch.log(dist + 1e-6) * self.control_params.to(coords.dtype)  # (B, N, M)
        return out + radial.sum(-1, keepdim=True)

    def jacobian(self, coords: Tensor) -> Tensor:
        """d T / d p at ``coords``: (B, N, 2, 2), rows = output (x, y), columns = input (x, y).

        Computed with autograd and ``create_graph=True`` so losses can back-propagate through it.
        """
        if not coords.requires_grad:
            coords = coords.detach().requires_grad_(True)
        out = self.transform_points(coords)
        gx = torch.autograd.grad(out[..., 0].sum(), coords, create_graph=True)[0]
        gy = torch.autograd.grad(out[..., 1].sum(), coords, create_graph=True)[0]
        return torch.stack([gx, gy], dim=-2)

    def warp_image(self, image: Tensor) -> Tensor:
        """X'(p) = X(T(p)) with reflection padding. image: (B, C, H, W)."""
        b, _, h, w = image.shape
        grid = make_coordinate_grid(h, w, dtype=image.dtype, device=image.device).reshape(1, -1, 2)
        sampled = self.transform_points(grid.expand(b, -1, -1)).reshape(b, h, w, 2)
        return warp(image, sampled, padding_mode="reflection")


def tps_transform_points(source: Tensor, target: Tensor, points: Tensor, regularization: float = 0.0) -> Tensor:
    """The thin-plate spline f with f(source_i) ~ target_i (exactly for ``regularization`` 0), at ``points``.

    source, target: (B, N, 2) control points; points: (B, M, 2) -> (B, M, 2). Solved per batch in float64
    (RARE's system with U(r) = r^2 log r^2, plus ``regularization`` on the kernel's diagonal).
    """
    b, n, _ = source.shape
    src = source.double()
    kernel = tps_kernel(torch.cdist(src, src) ** 2) + regularization * torch.eye(n, dtype=src.dtype, device=src.device)
    affine = torch.cat([torch.ones(b, n, 1, dtype=src.dtype, device=src.device), src], dim=2)  # (B, N, 3)
    top = torch.cat([kernel, affine], dim=2)
    bottom = torch.cat([affine.transpose(1, 2), torch.zeros(b, 3, 3, dtype=src.dtype, device=src.device)], dim=2)
    rhs = torch.cat([target.double(), torch.zeros(b, 3, 2, dtype=src.dtype, device=src.device)], dim=1)
    params = solve(torch.cat([top, bottom], dim=1), rhs)  # (B, N + 3, 2)
    pts = points.double()
    basis = tps_kernel(torch.cdist(pts, src) ** 2)  # (B, M, N)
    lin = torch.cat([torch.ones_like(pts[..., :1]), pts], dim=2)  # (B, M, 3)
    return (basis @ params[:, :n] + lin @ params[:, n:]).to(points.dtype)


def tps_flow(source: Tensor, target: Tensor, height: int, width: int, regularization: float = 0.0) -> Tensor:
    """A (B, H, W, 2) sampling grid from control points: grid(target_i) = source_i (a backward flow: for each
    output pixel, where to sample the source when ``target`` are the points' positions in the output)."""
    grid = make_coordinate_grid(height, width, dtype=source.dtype, device=source.device).reshape(1, -1, 2)
    flow = tps_transform_points(target, source, grid.expand(source.shape[0], -1, -1), regularization)
    return flow.reshape(source.shape[0], height, width, 2)
