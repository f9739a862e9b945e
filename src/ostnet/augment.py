"""Expression-preserved augmentation (paper Sec. 3.4, "Scale removal"; delta = 0.3 from App. A).

The driving frame of a training pair is resized to (alpha H, beta W) with alpha, beta ~ U[1 - delta,
1 + delta], padded with zeros (centred) back to the frame's aspect ratio (a square for the square frames the
paper uses) and resized to (H, W). Pose and expression survive; the face's scale and aspect ratio change, so
the network cannot copy the driving scale and must learn to transform it (Sec. 3.2).

Every resize is bilinear with ``align_corners=True`` (antialiased where it shrinks), so the whole operation is
an exact per-axis affine map of normalised coordinates, returned by :func:`augmentation_affine`.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from ostnet.config import PAPER_DELTA


class AugmentedImage(NamedTuple):
    """image: same shape and dtype as the input, values in the input's range (zeros in the padding).

    alpha: height factors, shape (B,) for a batch or () for one image; beta: width factors, same shape.
    """

    image: Tensor
    alpha: Tensor
    beta: Tensor


class AxisAffine(NamedTuple):
    """Per-axis affine map of normalised coordinates: ``p_aug = scale * p + offset``.

    scale, offset: (..., 2) with the last axis (x, y); x, y in [-1, 1] (pixel centres, align_corners=True).
    """

    scale: Tensor
    offset: Tensor

    def apply(self, points: Tensor) -> Tensor:
        """Map points (B, N, 2) (or (N, 2) for an unbatched map) from the original to the augmented image."""
        return points * self.scale.unsqueeze(-2) + self.offset.unsqueeze(-2)

    def inverse(self) -> AxisAffine:
        """The map from augmented back to original coordinates."""
        return AxisAffine(1.0 / self.scale, -self.offset / self.scale)


class _Layout(NamedTuple):
    """Integer sizes of one augmentation: resized (h, w), canvas (canvas_h, canvas_w), padding (top, left)."""

    h: int
    w: int
    canvas_h: int
    canvas_w: int
    top: int
    left: int


def _layout(alpha: float, beta: float, height: int, width: int) -> _Layout:
    """Sizes for factors alpha (height) and beta (width) on an H x W frame.

    The canvas is the smallest one with the frame's aspect ratio that holds the resized image; for the
    square frames of Sec. 3.4 that is the square of side max(alpha H, beta W).
    """
    h = max(2, round(alpha * height))
    w = max(2, round(beta * width))
    k = max(h / height, w / width)
    canvas_h = max(h, round(k * height))
    canvas_w = max(w, round(k * width))
    return _Layout(h, w, canvas_h, canvas_w, (canvas_h - h) // 2, (canvas_w - w) // 2)


def _axis_map(size: int, canvas: int, start: int) -> tuple[float, float]:
    """(scale, offset) taking a normalised coordinate of a ``size``-pixel axis into the canvas axis."""
    return (size - 1) / (canvas - 1), (2 * start + size - canvas) / (canvas - 1)


def sample_scale_factors(batch: int, delta: float, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """Draw (alpha, beta), each (batch,) float32 ~ U[1 - delta, 1 + delta] (Sec. 3.4), alpha first."""
    if not 0.0 <= delta < 1.0:
        raise ValueError(f"delta must be in [0, 1), got {delta}")
    u = torch.rand(2, batch, generator=generator, dtype=torch.float64)
    factors = (1.0 - delta + 2.0 * delta * u).float()
    return factors[0], factors[1]


def _as_factors(value: float | Tensor | None, batch: int, name: str) -> Tensor | None:
    if value is None:
        return None
    factors = torch.as_tensor(value, dtype=torch.float32).flatten().cpu()
    if factors.numel() == 1:
        factors = factors.expand(batch).clone()
    if factors.numel() != batch:
        raise ValueError(f"{name} must have one value per image ({batch}), got {factors.numel()}")
    if (factors <= 0).any():
        raise ValueError(f"{name} must be positive, got {factors.tolist()}")
    return factors


def _resize(image: Tensor, height: int, width: int) -> Tensor:
    """Bilinear resize of (1, C, h, w) with align_corners=True, antialiased when shrinking."""
    if image.shape[-2:] == (height, width):
        return image
    shrinks = height < image.shape[-2] or width < image.shape[-1]
    return F.interpolate(image, size=(height, width), mode="bilinear", align_corners=True, antialias=shrinks)


def _augment_one(image: Tensor, alpha: float, beta: float) -> Tensor:
    """Augment one image (1, C, H, W) with fixed factors."""
    height, width = image.shape[-2:]
    lay = _layout(alpha, beta, height, width)
    resized = _resize(image, lay.h, lay.w)  # (1, C, alpha H, beta W)
    pad = (lay.left, lay.canvas_w - lay.w - lay.left, lay.top, lay.canvas_h - lay.h - lay.top)
    canvas = F.pad(resized, pad, value=0.0)  # (1, C, canvas_h, canvas_w), zeros outside
    return _resize(canvas, height, width)


def expression_preserved_augmentation(
    image: Tensor,
    delta: float = PAPER_DELTA,
    *,
    generator: torch.Generator | None = None,
    alpha: float | Tensor | None = None,
    beta: float | Tensor | None = None,
) -> AugmentedImage:
    """Expression-preserved augmentation of Sec. 3.4 (delta = 0.3, App. A).

    Args:
        image: (C, H, W) or (B, C, H, W) float, usually RGB in [0, 1]; H, W >= 2.
        delta: factors are drawn from U[1 - delta, 1 + delta], independently per image.
        generator: seeds the draw (CPU generator); None uses torch's global generator.
        alpha, beta: height / width factors to use instead of drawing them (a scalar or one per image).

    Returns:
        AugmentedImage(image, alpha, beta): the image resized to (alpha H, beta W), zero-padded centred to the
        frame's aspect ratio and resized back to (H, W); alpha and beta have shape (B,), or () for (C, H, W)
        input. ``augmentation_affine(alpha, beta, H, W)`` gives the exact coordinate map.
    """
    if image.dim() not in (3, 4) or not image.is_floating_point():
        raise ValueError(f"expected a float (C, H, W) or (B, C, H, W) image, got {tuple(image.shape)}")
    batched = image.dim() == 4
    images = image if batched else image.unsqueeze(0)
    if min(images.shape[-2:]) < 2:
        raise ValueError(f"image must be at least 2x2, got {tuple(images.shape[-2:])}")
    batch = images.shape[0]
    alphas = _as_factors(alpha, batch, "alpha")
    betas = _as_factors(beta, batch, "beta")
    if alphas is None or betas is None:
        drawn_alpha, drawn_beta = sample_scale_factors(batch, delta, generator)
        alphas = drawn_alpha if alphas is None else alphas
        betas = drawn_beta if betas is None else betas
    out = torch.cat([_augment_one(images[i : i + 1], float(alphas[i]), float(betas[i])) for i in range(batch)])
    if not batched:
        return AugmentedImage(out[0], alphas[0], betas[0])
    return AugmentedImage(out, alphas, betas)


def augmentation_affine(alpha: float | Tensor, beta: float | Tensor, height: int, width: int) -> AxisAffine:
    """Exact map from original to augmented normalised coordinates for factors (alpha, beta) on H x W.

    Because the resizes use align_corners=True, a point (x, y) of the original frame lands at
    (sx x + ox, sy y + oy) in the augmented frame, with sy = (h - 1) / (canvas_h - 1) for the resized
    height h = round(alpha H) and ox, oy non-zero only when the centring padding is odd. The effective
    scale in pixels is (sx, sy): for square frames, sy ~ alpha / max(alpha, beta), sx ~ beta / max(alpha,
    beta) (Sec. 3.4: padding to a square keeps only the ratio of the two factors).

    Args:
        alpha, beta: scalars or tensors of shape (B,) (as returned in AugmentedImage).
        height, width: frame size H, W >= 2.

    Returns:
        AxisAffine with scale, offset of shape alpha.shape + (2,), float32, last axis (x, y).
    """
    alphas = torch.as_tensor(alpha, dtype=torch.float32)
    betas = torch.as_tensor(beta, dtype=torch.float32).expand_as(alphas)
    scales, offsets = [], []
    for a, b in zip(alphas.flatten().tolist(), betas.flatten().tolist(), strict=True):
        lay = _layout(a, b, height, width)
        sx, ox = _axis_map(lay.w, lay.canvas_w, lay.left)
        sy, oy = _axis_map(lay.h, lay.canvas_h, lay.top)
        scales.append((sx, sy))
        offsets.append((ox, oy))
    shape = (*alphas.shape, 2)
    return AxisAffine(torch.tensor(scales).reshape(shape), torch.tensor(offsets).reshape(shape))


def driving_as_fed(driving: Tensor, alpha: float | Tensor | None, beta: float | Tensor | None) -> Tensor:
    """A driving frame as the model is fed it in a different-scale pair (Sec. 4.1): resized by the pair's
    listed factors (alpha, beta) with the expression-preserved augmentation and clamped to [0, 1]; the frame
    itself when the pair has no factors (alpha None). The one place evaluation and the demo build it."""
    if alpha is None:
        return driving
    if beta is None:
        raise ValueError("driving_as_fed: alpha without beta")
    return expression_preserved_augmentation(driving, alpha=alpha, beta=beta).image.clamp(0, 1)
