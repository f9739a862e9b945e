"""Expression-preserved augmentation (Sec. 3.4): identity, exact rescaling, seeding, batches."""

from __future__ import annotations

import pytest
import torch

from ostnet.augment import (
    augmentation_affine,
    expression_preserved_augmentation,
    sample_scale_factors,
)
from ostnet.config import AugmentationConfig
from ostnet.geometry import make_coordinate_grid


def _disc(height: int, width: int, center: tuple[float, float], radii: tuple[float, float]) -> torch.Tensor:
    """(3, H, W) float64 image of a filled ellipse; center and radii in normalised (x, y) units."""
    grid = make_coordinate_grid(height, width, dtype=torch.float64)
    c = torch.tensor(center, dtype=torch.float64)
    r = torch.tensor(radii, dtype=torch.float64)
    inside = (((grid - c) / r) ** 2).sum(-1) <= 1.0
    return inside.to(torch.float64).expand(3, height, width).clone()


def _moments(image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and standard deviation (x, y) of the first channel's mass, in normalised units."""
    height, width = image.shape[-2:]
    grid = make_coordinate_grid(height, width, dtype=torch.float64)
    mass = image[0].to(torch.float64)[..., None]
    mean = (grid * mass).sum((0, 1)) / mass.sum()
    std = (((grid - mean) ** 2 * mass).sum((0, 1)) / mass.sum()).sqrt()
    return mean, std


def _bbox(image: torch.Tensor) -> torch.Tensor:
    """(x0, x1, y0, y1) in pixels of the pixels above 0.5 in the first channel."""
    ys, xs = torch.nonzero(image[0] > 0.5, as_tuple=True)
    return torch.stack([xs.min(), xs.max(), ys.min(), ys.max()]).double()


def test_default_delta_is_the_papers():
    assert AugmentationConfig().delta == 0.3


@pytest.mark.parametrize("shape", [(3, 64, 64), (2, 3, 32, 32), (3, 40, 72)])
def test_zero_delta_is_identity(shape):
    image = torch.rand(shape)
    out = expression_preserved_augmentation(image, delta=0.0)
    assert out.image.shape == image.shape
    assert torch.allclose(out.image, image, atol=1e-6)
    assert torch.all(out.alpha == 1.0) and torch.all(out.beta == 1.0)


@pytest.mark.parametrize(
    "alpha,beta",
    [(0.7, 1.3), (1.3, 0.7), (1.1, 0.95), (0.75, 0.8), (1.0, 0.7), (0.9, 1.2)],
)
def test_face_is_rescaled_by_the_predicted_affine_map(alpha, beta):
    size = 96
    image = _disc(size, size, center=(0.2, -0.1), radii=(0.45, 0.55))
    out = expression_preserved_augmentation(image, alpha=alpha, beta=beta)
    affine = augmentation_affine(out.alpha, out.beta, size, size)
    px = (size - 1) / 2  # pixels per normalised unit
    mean0, std0 = _moments(image)
    mean, std = _moments(out.image)
    predicted_mean = affine.apply(mean0[None].float())[0].double()
    assert torch.all((mean - predicted_mean).abs() * px < 1.0)
    assert torch.all((std - std0 * affine.scale.double()).abs() * px < 0.5)
    # bounding box: map the original's edge pixel centres and compare within one pixel
    box0 = _bbox(image) / px - 1.0  # to normalised coordinates
    corners = torch.stack([box0[[0, 2]], box0[[1, 3]]]).float()  # (2, 2) (x, y)
    mapped = (affine.apply(corners).double() + 1.0) * px
    box = _bbox(out.image)
    assert torch.all((box[[0, 2]] - mapped[0]).abs() <= 1.0)
    assert torch.all((box[[1, 3]] - mapped[1]).abs() <= 1.0)


def test_scales_follow_the_ratio_of_factors_on_square_frames():
    affine = augmentation_affine(torch.tensor([0.8, 1.2]), torch.tensor([1.2, 0.8]), 256, 256)
    sx, sy = affine.scale[:, 0], affine.scale[:, 1]
    assert torch.allclose(sx, torch.tensor([1.0, 0.8 / 1.2]), atol=0.01)
    assert torch.allclose(sy, torch.tensor([0.8 / 1.2, 1.0]), atol=0.01)


def test_affine_pins_an_odd_padding_offset():
    # 64 px, beta 0.7: width 45 on a 64 canvas, padding 9 left and 10 right; x = -1 lands on column 9.
    affine = augmentation_affine(1.0, 0.7, 64, 64)
    edge = affine.apply(torch.tensor([[-1.0, -1.0], [1.0, 1.0]]))
    assert torch.allclose(edge[:, 0], torch.tensor([2 * 9 / 63 - 1, 2 * 53 / 63 - 1]), atol=1e-6)
    assert torch.allclose(edge[:, 1], torch.tensor([-1.0, 1.0]), atol=1e-6)
    back = affine.inverse().apply(edge)
    assert torch.allclose(back, torch.tensor([[-1.0, -1.0], [1.0, 1.0]]), atol=1e-6)


def test_padding_is_zero_outside_the_resized_image():
    image = torch.ones(3, 64, 64)
    out = expression_preserved_augmentation(image, alpha=1.3, beta=0.7)
    assert torch.all(out.image[:, :, :5] < 1e-6) and torch.all(out.image[:, :, -5:] < 1e-6)
    assert torch.allclose(out.image[:, :, 32], torch.ones(3, 64))


def test_same_seed_same_draw_and_batch_draws_differ():
    image = torch.rand(6, 3, 32, 32)
    first = expression_preserved_augmentation(image, generator=torch.Generator().manual_seed(3))
    again = expression_preserved_augmentation(image, generator=torch.Generator().manual_seed(3))
    other = expression_preserved_augmentation(image, generator=torch.Generator().manual_seed(4))
    assert torch.equal(first.alpha, again.alpha) and torch.equal(first.beta, again.beta)
    assert torch.equal(first.image, again.image)
    assert not torch.equal(first.alpha, other.alpha)
    assert first.alpha.shape == (6,) and len(set(first.alpha.tolist())) == 6
    assert len(set(first.beta.tolist())) == 6
    assert not torch.equal(first.alpha, first.beta)


def test_batched_equals_per_image():
    image = torch.rand(3, 3, 48, 48)
    batch = expression_preserved_augmentation(image, generator=torch.Generator().manual_seed(0))
    for i in range(3):
        single = expression_preserved_augmentation(image[i], alpha=batch.alpha[i], beta=batch.beta[i])
        assert single.alpha.shape == ()
        assert torch.allclose(single.image, batch.image[i], atol=1e-6)


def test_factors_are_uniform_in_range():
    alpha, beta = sample_scale_factors(4000, 0.3, torch.Generator().manual_seed(0))
    for factors in (alpha, beta):
        assert factors.min() >= 0.7 and factors.max() <= 1.3
        assert abs(factors.mean().item() - 1.0) < 0.02
        assert factors.min() < 0.71 and factors.max() > 1.29


def test_gradient_flows_through_the_augmentation():
    image = torch.rand(1, 3, 32, 32, dtype=torch.float64, requires_grad=True)
    out = expression_preserved_augmentation(image, alpha=0.8, beta=1.1)
    out.image.sum().backward()
    assert image.grad is not None and image.grad.abs().sum() > 0


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="delta"):
        expression_preserved_augmentation(torch.rand(3, 8, 8), delta=1.5)
    with pytest.raises(ValueError, match="float"):
        expression_preserved_augmentation(torch.zeros(3, 8, 8, dtype=torch.uint8))
    with pytest.raises(ValueError):
        expression_preserved_augmentation(torch.rand(8, 8))
    with pytest.raises(ValueError, match="alpha"):
        expression_preserved_augmentation(torch.rand(2, 3, 8, 8), alpha=torch.tensor([1.0, 1.0, 1.0]))
    with pytest.raises(ValueError, match="positive"):
        expression_preserved_augmentation(torch.rand(3, 8, 8), alpha=-1.0, beta=1.0)
