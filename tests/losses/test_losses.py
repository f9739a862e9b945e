"""Perceptual, equivariance and keypoint-distance losses: zeros, gradients, weights and analytic cases."""

from __future__ import annotations

import pytest
import torch

from ostnet.geometry import RandomTPS, make_coordinate_grid
from ostnet.losses.equivariance import equivariance_loss, random_tps_for_samples
from ostnet.losses.keypoint_distance import keypoint_distance_loss
from ostnet.losses.perceptual import ImagePyramid, PerceptualLoss
from ostnet.models.outputs import Keypoints

# ----------------------------------------------------------------------------------------------------
# Perceptual loss (Eq. 7)
# ----------------------------------------------------------------------------------------------------


def test_perceptual_zero_on_identical_inputs(random_vgg):
    loss = PerceptualLoss(random_vgg, (1.0, 0.5), (1.0,) * 5)
    x = torch.rand(2, 3, 32, 32)
    assert loss(x, x.clone()).item() == 0.0


def test_perceptual_gradient_reaches_prediction_not_target(random_vgg):
    loss = PerceptualLoss(random_vgg, (1.0, 0.5, 0.25), (1.0,) * 5)
    pred = torch.rand(2, 3, 64, 64, requires_grad=True)
    target = torch.rand(2, 3, 64, 64, requires_grad=True)
    value = loss(pred, target)
    assert value.item() > 0
    value.backward()
    assert pred.grad is not None and pred.grad.abs().sum() > 0
    assert target.grad is None


def test_perceptual_is_weighted_sum_over_layers_and_scales(random_vgg):
    pred, target = torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32)
    weights = (10.0, 0.0, 2.0, 0.5, 3.0)
    total = PerceptualLoss(random_vgg, (1.0, 0.5), weights)(pred, target)
    expected = 0.0
    for p_level, t_level in zip(ImagePyramid((1.0, 0.5))(pred), ImagePyramid((1.0, 0.5))(target), strict=True):
        for w, p, t in zip(weights, random_vgg(p_level), random_vgg(t_level), strict=True):
            expected += w * (p - t).abs().mean()
    assert torch.allclose(total, expected, rtol=1e-5)
    half = PerceptualLoss(random_vgg, (1.0, 0.5), tuple(w / 2 for w in weights))(pred, target)
    assert torch.allclose(half, total / 2, rtol=1e-5)


def test_perceptual_runs_vgg_only_to_the_last_weighted_slice(random_vgg):
    pred, target = torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32)
    weights = (1.0, 2.0, 0.5, 0.0, 0.0)
    loss = PerceptualLoss(random_vgg, (1.0,), weights)
    assert loss.slices == 3
    assert [f.shape[1] for f in loss.features(pred)[0]] == [3, 64, 128, 256]  # pixels, relu1_1..relu3_1
    full = sum(w * (p - t).abs().mean() for w, p, t in zip(weights, random_vgg(pred), random_vgg(target), strict=True))
    assert torch.allclose(loss(pred, target), full, rtol=1e-5)
    with pytest.raises(ValueError, match="non-zero"):
        PerceptualLoss(random_vgg, (1.0,), (0.0,) * 5)


def test_perceptual_pixel_term_adds_the_pyramid_l1(random_vgg):
    pred, target = torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32)
    scales, weights = (1.0, 0.5), (1.0,) * 5
    plain = PerceptualLoss(random_vgg, scales, weights)(pred, target)
    with_pixels = PerceptualLoss(random_vgg, scales, weights, pixel_weight=3.0)(pred, target)
    levels = zip(ImagePyramid(scales)(pred), ImagePyramid(scales)(target), strict=True)
    pixel_l1 = sum((p - t).abs().mean() for p, t in levels)
    assert torch.allclose(with_pixels - plain, 3.0 * pixel_l1, rtol=1e-4)


def test_pyramid_uses_antialiased_downsampling():
    pyramid = ImagePyramid((1.0, 0.5, 0.25))
    x = torch.ones(1, 3, 32, 32)
    levels = pyramid(x)
    assert [lvl.shape[-1] for lvl in levels] == [32, 16, 8]
    assert torch.equal(levels[0], x)
    # a constant image stays constant away from the zero-padded border
    assert torch.allclose(levels[1][..., 2:-2, 2:-2], torch.ones(1, 3, 12, 12))
    # a one-pixel checkerboard (pure Nyquist) is blurred to its mean instead of aliasing to 0 or 1
    checker = ((torch.arange(32)[:, None] + torch.arange(32)[None]) % 2).float().expand(1, 3, 32, 32)
    inner = pyramid(checker)[2][..., 2:-2, 2:-2]
    assert torch.allclose(inner, torch.full_like(inner, 0.5), atol=0.02)


# ----------------------------------------------------------------------------------------------------
# Equivariance loss (Eq. 8)
# ----------------------------------------------------------------------------------------------------


def blob_image(size: int = 64, center=(0.1, -0.05), sigma=(0.15, 0.1)) -> torch.Tensor:
    grid = make_coordinate_grid(size, size, dtype=torch.float64)
    c, s = torch.tensor(center, dtype=torch.float64), torch.tensor(sigma, dtype=torch.float64)
    blob = torch.exp(-0.5 * (((grid - c) / s) ** 2).sum(-1))
    return blob.float().expand(1, 3, size, size).clone()


def blob_detector(image: torch.Tensor) -> Keypoints:
    """Equivariant by construction: intensity centroid and square root of the intensity covariance."""
    weight = image.double().mean(1)  # (B, H, W)
    grid = make_coordinate_grid(*image.shape[-2:], dtype=torch.float64)
    mass = weight.sum((1, 2))
    mean = torch.einsum("bhw,hwc->bc", weight, grid) / mass[:, None]
    diff = grid[None] - mean[:, None, None]
    cov = torch.einsum("bhw,bhwi,bhwj->bij", weight, diff, diff) / mass[:, None, None]
    evals, evecs = torch.linalg.eigh(cov)
    root = evecs @ torch.diag_embed(evals.sqrt()) @ evecs.transpose(-1, -2)
    return Keypoints(mean[:, None].float(), root[:, None].float())


def fixed_tps(scale=(1.0, 1.0), shift=(0.0, 0.0)) -> RandomTPS:
    tps = RandomTPS(1, sigma_affine=0.0, sigma_tps=0.0, points=5)
    tps.theta = torch.tensor([[[scale[0], 0.0, shift[0]], [0.0, scale[1], shift[1]]]])
    tps.control_params = torch.zeros_like(tps.control_params)
    return tps


def test_equivariance_zero_for_identity_transform():
    image = blob_image()
    terms = equivariance_loss(blob_detector, image, blob_detector(image), fixed_tps())
    assert terms.value.item() < 1e-6 and terms.jacobian.item() < 1e-5


def test_equivariance_near_zero_for_equivariant_detector_under_scaling():
    image = blob_image()
    tps = fixed_tps(scale=(1.15, 0.9), shift=(0.05, 0.02))
    terms = equivariance_loss(blob_detector, image, blob_detector(image), tps)
    assert terms.value.item() < 2e-4
    assert terms.jacobian.item() < 1e-2

    def constant_detector(x: torch.Tensor) -> Keypoints:
        return Keypoints(torch.zeros(x.shape[0], 1, 2), torch.eye(2).expand(x.shape[0], 1, 2, 2))

    bad = equivariance_loss(constant_detector, image, constant_detector(image), tps)
    assert bad.value.item() == pytest.approx(0.035, abs=1e-6)  # mean |T(0)| = mean(0.05, 0.02)
    assert bad.jacobian.item() == pytest.approx(0.0625, abs=1e-6)  # mean |I - A| = (0.15 + 0.1) / 4


def test_equivariance_gradient_reaches_detector():
    conv = torch.nn.Conv2d(3, 3, 1)

    def detector_grad(x: torch.Tensor) -> Keypoints:
        feats = torch.sigmoid(conv(x))
        w = feats.mean(1)
        grid = make_coordinate_grid(*x.shape[-2:])
        mean = torch.einsum("bhw,hwc->bc", w, grid) / w.sum((1, 2))[:, None]
        return Keypoints(mean[:, None], torch.eye(2).expand(x.shape[0], 1, 2, 2) + 0 * mean[:, None, :, None])

    image = blob_image()
    tps = RandomTPS(1, 0.05, 0.005, 5, generator=torch.Generator().manual_seed(0))  # FOMM's (config.LossConfig)
    terms = equivariance_loss(detector_grad, image, detector_grad(image), tps)
    (terms.value + terms.jacobian).backward()
    assert conv.weight.grad is not None and conv.weight.grad.abs().sum() > 0


def test_per_sample_transforms_do_not_depend_on_batch_split():
    whole = random_tps_for_samples([3, 7, 11, 2], seed=5)
    left = random_tps_for_samples([3, 7], seed=5)
    right = random_tps_for_samples([11, 2], seed=5)
    assert torch.equal(whole.theta, torch.cat([left.theta, right.theta]))
    assert torch.equal(whole.control_params, torch.cat([left.control_params, right.control_params]))
    other = random_tps_for_samples([3, 7, 11, 2], seed=6)
    assert not torch.equal(whole.theta, other.theta)
    assert not torch.equal(whole.theta[0], whole.theta[1])


# ----------------------------------------------------------------------------------------------------
# Keypoint distance loss (Eq. 9, hinge as the text describes)
# ----------------------------------------------------------------------------------------------------


def test_keypoint_distance_zero_when_spread():
    kp = make_coordinate_grid(3, 3).reshape(1, 9, 2)  # spacing 1.0 >> gamma
    assert keypoint_distance_loss(kp, 0.1).item() == 0.0


def test_keypoint_distance_analytic_value_and_direction():
    kp = torch.tensor([[[0.0, 0.0], [0.03, 0.01], [0.9, 0.9]]], requires_grad=True)
    loss = keypoint_distance_loss(kp, 0.1)
    # one close pair, |d|_1 = 0.04, counted as (i, j) and (j, i): 2 * (0.1 - 0.04)
    assert loss.item() == pytest.approx(0.12, abs=1e-6)
    loss.backward()
    # gradient descent moves the close pair apart (x and y) and leaves the far point alone
    step = -kp.grad[0]
    assert step[0, 0] < 0 and step[0, 1] < 0 and step[1, 0] > 0 and step[1, 1] > 0
    assert torch.equal(kp.grad[0, 2], torch.zeros(2))


def test_keypoint_distance_averages_batch():
    close = torch.tensor([[[0.0, 0.0], [0.05, 0.0]]])
    far = torch.tensor([[[0.0, 0.0], [0.5, 0.0]]])
    both = torch.cat([close, far])
    assert keypoint_distance_loss(both).item() == pytest.approx(keypoint_distance_loss(close).item() / 2)
    with pytest.raises(ValueError):
        keypoint_distance_loss(torch.zeros(2, 3))
