"""FOMM's relative keypoint normalisation and the convex-hull area (reference-architecture.md §8)."""

from __future__ import annotations

import math

import pytest
import torch

from ostnet.geometry.keypoints import convex_hull_area
from ostnet.inference.relative import normalize_relative
from ostnet.models.outputs import Keypoints


def random_kp(b: int = 2, k: int = 6) -> Keypoints:
    return Keypoints(torch.rand(b, k, 2) * 1.6 - 0.8, torch.eye(2) + 0.3 * torch.randn(b, k, 2, 2))


def test_convex_hull_area_analytic():
    square = torch.tensor([[0.0, 0.0], [2.0, 0.0], [2.0, 2.0], [0.0, 2.0], [1.0, 1.0]])  # interior point ignored
    assert convex_hull_area(square) == pytest.approx(4.0)
    triangle = [[0.0, 0.0], [3.0, 0.0], [0.0, 1.0]]
    assert convex_hull_area(torch.tensor(triangle)) == pytest.approx(1.5)
    with pytest.raises(ValueError):
        convex_hull_area(torch.tensor([[0.0, 0.0], [1.0, 1.0], [2.0, 2.0]]))  # collinear
    with pytest.raises(ValueError):
        convex_hull_area(torch.zeros(2, 2))


def test_driving_equal_to_initial_gives_source():
    ks, kd = random_kp(), random_kp()
    out = normalize_relative(ks, kd, kd, adapt_movement_scale=True)
    torch.testing.assert_close(out.value, ks.value)
    torch.testing.assert_close(out.jacobian, ks.jacobian)


def test_relative_movement_is_added_to_source():
    ks, kd, k1 = random_kp(), random_kp(), random_kp()
    out = normalize_relative(ks, kd, k1)
    torch.testing.assert_close(out.value, ks.value + kd.value - k1.value)


def test_adapt_scale_uses_square_root_of_hull_area_ratio():
    base = random_kp(1, 8)
    ks = Keypoints(base.value * 0.5, base.jacobian)  # hull area x 0.25 -> movement x 0.5
    k1 = random_kp(1, 8)
    k1 = Keypoints(base.value + 0.1, k1.jacobian)  # same hull as base, shifted
    kd = Keypoints(k1.value + torch.tensor([0.2, -0.1]), k1.jacobian)
    out = normalize_relative(ks, kd, k1, adapt_movement_scale=True, relative_jacobian=False)
    torch.testing.assert_close(out.value, ks.value + 0.5 * torch.tensor([0.2, -0.1]))
    ratio = math.sqrt(convex_hull_area(ks.value[0]) / convex_hull_area(k1.value[0]))
    assert ratio == pytest.approx(0.5, rel=1e-5)


def test_relative_jacobian():
    ks, k1 = random_kp(), random_kp()
    change = torch.tensor([[1.2, 0.1], [-0.2, 0.9]])
    kd = Keypoints(k1.value, change @ k1.jacobian)  # J_dt = A J_d1 -> J_new = A J_s
    out = normalize_relative(ks, kd, k1)
    torch.testing.assert_close(out.jacobian, change @ ks.jacobian, atol=1e-5, rtol=1e-5)
    identity = normalize_relative(
        ks,
        Keypoints(kd.value, torch.eye(2).expand_as(kd.jacobian)),
        Keypoints(k1.value, torch.eye(2).expand_as(k1.jacobian)),
    )
    torch.testing.assert_close(identity.jacobian, ks.jacobian)
    absolute_jac = normalize_relative(ks, kd, k1, relative_jacobian=False)
    assert absolute_jac.jacobian is kd.jacobian


def test_absolute_mode_returns_driving():
    ks, kd, k1 = random_kp(), random_kp(), random_kp()
    assert normalize_relative(ks, kd, k1, relative_movement=False) is kd


def test_relative_jacobian_needs_all_jacobians():
    ks, kd, k1 = random_kp(), random_kp(), random_kp()
    with pytest.raises(ValueError):
        normalize_relative(Keypoints(ks.value), kd, k1)
    out = normalize_relative(Keypoints(ks.value), Keypoints(kd.value), Keypoints(k1.value))
    assert out.jacobian is None
