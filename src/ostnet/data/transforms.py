"""Frame transforms for training pairs: resize, horizontal flip and FOMM's colour jitter (torch only).

Images are float RGB in [0, 1], shape (..., 3, H, W). The random parameters are drawn separately from the
application so that both frames of a pair get identical transforms (reference-architecture.md §7.2).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

_LUMA = (0.299, 0.587, 0.114)  # ITU-R 601 grey, as PIL's "L" conversion


def resize_image(image: Tensor, height: int, width: int) -> Tensor:
    """Bilinear resize of (..., C, h, w) to (..., C, height, width), align_corners=True, antialiased when
    shrinking; returns the input unchanged when the size already matches."""
    if image.shape[-2:] == (height, width):
        return image
    lead = image.shape[:-3]
    flat = image.reshape(-1, *image.shape[-3:])  # (N, C, h, w)
    shrinks = height < image.shape[-2] or width < image.shape[-1]
    out = F.interpolate(flat, size=(height, width), mode="bilinear", align_corners=True, antialias=shrinks)
    return out.reshape(*lead, *out.shape[-3:])


def horizontal_flip(image: Tensor) -> Tensor:
    """Mirror (..., C, H, W) left-right."""
    return image.flip(-1)


class ColorJitterParams(NamedTuple):
    """Factors of one colour jitter: brightness, contrast, saturation (1 = unchanged), hue shift in turns
    (0 = unchanged, +-0.5 = opposite hue), and the order (a permutation of 0..3 in that listing order)."""

    brightness: float
    contrast: float
    saturation: float
    hue: float
    order: tuple[int, ...]


def sample_color_jitter(
    rng: np.random.Generator,
    brightness: float = 0.1,
    contrast: float = 0.1,
    saturation: float = 0.1,
    hue: float = 0.1,
) -> ColorJitterParams:
    """FOMM's jitter (§7.2): factors ~ U[1 - x, 1 + x] for brightness, contrast, saturation, hue shift
    ~ U[-hue, hue], applied in a random order."""
    return ColorJitterParams(
        float(rng.uniform(1 - brightness, 1 + brightness)),
        float(rng.uniform(1 - contrast, 1 + contrast)),
        float(rng.uniform(1 - saturation, 1 + saturation)),
        float(rng.uniform(-hue, hue)),
        tuple(int(i) for i in rng.permutation(4)),
    )


def _grey(image: Tensor) -> Tensor:
    """(..., 3, H, W) -> (..., 1, H, W) luma."""
    r, g, b = image.unbind(-3)
    return (_LUMA[0] * r + _LUMA[1] * g + _LUMA[2] * b).unsqueeze(-3)


def _blend(image: Tensor, other: Tensor, factor: float) -> Tensor:
    return (factor * image + (1.0 - factor) * other).clamp(0.0, 1.0)


def adjust_brightness(image: Tensor, factor: float) -> Tensor:
    return (image * factor).clamp(0.0, 1.0)


def adjust_contrast(image: Tensor, factor: float) -> Tensor:
    """Blend with the image's mean grey level (one value per image)."""
    mean = _grey(image).mean(dim=(-3, -2, -1), keepdim=True)
    return _blend(image, mean, factor)


def adjust_saturation(image: Tensor, factor: float) -> Tensor:
    return _blend(image, _grey(image), factor)


def rgb_to_hsv(image: Tensor) -> Tensor:
    """(..., 3, H, W) RGB in [0, 1] -> HSV with h in [0, 1) (turns), s, v in [0, 1]."""
    r, g, b = image.unbind(-3)
    value = torch.maximum(r, torch.maximum(g, b))  # elementwise: much faster than max(dim=-3) on CPU
    minimum = torch.minimum(r, torch.minimum(g, b))
    chroma = value - minimum
    safe = torch.where(chroma > 0, chroma, torch.ones_like(chroma))
    hue = torch.where(
        value == r,
        ((g - b) / safe) % 6.0,
        torch.where(value == g, (b - r) / safe + 2.0, (r - g) / safe + 4.0),
    )
    hue = torch.where(chroma > 0, hue / 6.0, torch.zeros_like(hue)) % 1.0
    saturation = torch.where(value > 0, chroma / torch.where(value > 0, value, torch.ones_like(value)), value)
    return torch.stack([hue, saturation, value], dim=-3)


def hsv_to_rgb(image: Tensor) -> Tensor:
    """Inverse of :func:`rgb_to_hsv`."""
    hue, saturation, value = image.unbind(-3)
    k = torch.stack([(5.0 + hue * 6.0) % 6.0, (3.0 + hue * 6.0) % 6.0, (1.0 + hue * 6.0) % 6.0], dim=-3)
    ramp = torch.clamp(torch.minimum(k, 4.0 - k), 0.0, 1.0)
    return value.unsqueeze(-3) - (value * saturation).unsqueeze(-3) * ramp


def adjust_hue(image: Tensor, shift: float) -> Tensor:
    """Rotate the hue by ``shift`` turns."""
    hsv = rgb_to_hsv(image)
    hue = (hsv[..., 0:1, :, :] + shift) % 1.0
    return hsv_to_rgb(torch.cat([hue, hsv[..., 1:, :, :]], dim=-3)).clamp(0.0, 1.0)


def apply_color_jitter(image: Tensor, params: ColorJitterParams) -> Tensor:
    """Apply one drawn jitter to (..., 3, H, W) in [0, 1]; the result stays in [0, 1]."""
    steps = (
        lambda x: adjust_brightness(x, params.brightness),
        lambda x: adjust_contrast(x, params.contrast),
        lambda x: adjust_saturation(x, params.saturation),
        lambda x: adjust_hue(x, params.hue),
    )
    for index in params.order:
        image = steps[index](image)
    return image
