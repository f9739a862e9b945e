"""TPS grid generator (Sec. 3.2) and FOMM's random TPS (Eq. 8): identity, analytic affine case, gradients."""

import pytest
import torch

from ostnet.geometry import RandomTPS, TPSGridGenerator, base_fiducial_points, make_coordinate_grid, warp


def test_base_points_are_rare_layout():
    c = base_fiducial_points(20)
    assert c.shape == (20, 2)
    assert torch.allclose(c[:10, 1], torch.full((10,), -1.0)) and torch.allclose(c[10:, 1], torch.ones(10))
    assert torch.allclose(c[:10, 0], torch.linspace(-1, 1, 10))
    with pytest.raises(ValueError):
        base_fiducial_points(7)


@pytest.mark.parametrize("size", [(16, 16), (9, 13)])
def test_base_points_give_identity_grid(size):
    gen = TPSGridGenerator(20)
    grid = gen(base_fiducial_points(20)[None], *size)
    assert grid.shape == (1, *size, 2)
    assert torch.allclose(grid[0], make_coordinate_grid(*size), atol=1e-6)


@pytest.mark.parametrize("scale,shift", [(0.7, (0.1, -0.2)), (1.3, (0.0, 0.05))])
def test_scaled_points_give_exact_affine_map(scale, shift):
    gen = TPSGridGenerator(20)
    base = base_fiducial_points(20, dtype=torch.float64)
    t = torch.tensor(shift, dtype=torch.float64)
    grid = gen((scale * base + t)[None], 11, 11)
    expected = scale * make_coordinate_grid(11, 11, dtype=torch.float64) + t
    assert torch.allclose(grid[0], expected, atol=1e-10)


def test_interpolates_the_fiducial_points():
    gen = TPSGridGenerator(6)
    pts = base_fiducial_points(6, dtype=torch.float64)
    moved = pts + 0.05 * torch.randn(6, 2, dtype=torch.float64)
    grid = gen(moved[None], 3, 3)  # base points x in {-1, 0, 1}, y in {-1, 1}: rows 0 and 2 of a 3x3 grid
    assert torch.allclose(grid[0, 0], moved[:3], atol=1e-10)
    assert torch.allclose(grid[0, 2], moved[3:], atol=1e-10)


def test_gradcheck_grid_and_warp():
    gen = TPSGridGenerator(8)
    image = torch.rand(1, 2, 6, 6, dtype=torch.float64)
    pts = 0.9 * base_fiducial_points(8, dtype=torch.float64) + 0.01 * torch.randn(8, 2, dtype=torch.float64)

    def f(p):
        return warp(image, gen(p[None], 5, 5))

    assert torch.autograd.gradcheck(f, (pts.requires_grad_(True),))


def test_warp_identity_is_exact():
    image = torch.rand(2, 3, 8, 10)
    grid = make_coordinate_grid(8, 10)[None].expand(2, -1, -1, -1)
    assert torch.allclose(warp(image, grid), image, atol=1e-6)


def test_warp_convention_pins_x_then_y():
    image = torch.zeros(1, 1, 5, 5)
    image[0, 0, 1, 3] = 1.0  # row y=1, column x=3
    xy = torch.tensor([[[[3 / 2 - 1, 1 / 2 - 1]]]])  # (x, y) normalised of column 3, row 1
    assert warp(image, xy).item() == pytest.approx(1.0)


def test_random_tps_identity_and_jacobian():
    t = RandomTPS(2, sigma_affine=0.0, sigma_tps=0.0, points=5)
    pts = torch.rand(2, 7, 2) * 2 - 1
    assert torch.allclose(t.transform_points(pts), pts, atol=1e-6)
    assert torch.allclose(t.jacobian(pts), torch.eye(2).expand(2, 7, 2, 2), atol=1e-5)
    img = torch.rand(2, 3, 8, 8)
    assert torch.allclose(t.warp_image(img), img, atol=1e-5)


def test_random_tps_jacobian_matches_finite_differences():
    g = torch.Generator().manual_seed(3)
    t = RandomTPS(1, sigma_affine=0.1, sigma_tps=0.05, points=5, dtype=torch.float64, generator=g)
    p = torch.tensor([[[0.3, -0.2]]], dtype=torch.float64)
    jac = t.jacobian(p)[0, 0]
    eps = 1e-6
    for col in range(2):
        d = torch.zeros_like(p)
        d[..., col] = eps
        fd = (t.transform_points(p + d) - t.transform_points(p - d))[0, 0] / (2 * eps)
        assert torch.allclose(jac[:, col], fd, atol=1e-6)
