"""Pixel metrics of paired evaluation: L1, PSNR and SSIM (paper Sec. 4.1, "Metrics").

Conventions (the evaluation report repeats them):

* Inputs are float RGB images in [0, 1], shape ``(B, 3, H, W)`` (a single ``(3, H, W)`` image is also
  accepted). The harness first brings both images to 256x256 with :func:`resize_for_metrics`.
* **L1**: mean absolute difference over all pixels and channels, in [0, 1] intensity units (FOMM's and
  DaGAN's convention; lower is better).
* **PSNR** (dB): ``10 * log10(data_range**2 / MSE)`` with ``data_range = 1`` and the MSE taken over all
  pixels and channels of one image; identical images give ``+inf``. Equals
  ``skimage.metrics.peak_signal_noise_ratio(target, pred, data_range=1.0)``.
* **SSIM**: equals ``skimage.metrics.structural_similarity(target, pred, channel_axis=-1,
  data_range=1.0)`` with skimage's defaults: a 7x7 uniform window, sample covariance (N / (N - 1)),
  K1 = 0.01, K2 = 0.03, averaged over the window positions that lie fully inside the image (the 3-pixel
  border is cropped) and then over channels. Range [-1, 1], 1 for identical images.

Legacy note: DaGAN/MCNet computed SSIM with ``compare_ssim(gt, pred, multichannel=True)`` on [0, 1] floats
without ``data_range``, which old skimage took as 2 (the float dtype range -1..1); pass ``data_range=2.0``
to reproduce those numbers (they are higher than with the correct ``data_range=1``).

All functions return one value per image, shape ``(B,)``, as float64 tensors on the inputs' device.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ostnet.data.transforms import resize_image
from ostnet.errors import OstnetError

METRIC_SIZE = 256  # Sec. 4.1 evaluates at the VoxCeleb resolution, 256x256
SSIM_WINDOW = 7
SSIM_K1 = 0.01
SSIM_K2 = 0.03
_RANGE_TOLERANCE = 1e-3


class MetricInputError(OstnetError, ValueError):
    """Images given to a metric have the wrong shape, mismatched sizes or values outside [0, 1]."""


def as_batch(image: Tensor, name: str = "image") -> Tensor:
    """Return ``image`` as ``(B, C, H, W)``; a ``(C, H, W)`` image gets a batch axis."""
    if not torch.is_tensor(image):
        raise MetricInputError(f"{name}: expected a torch.Tensor, got {type(image).__name__}")
    if image.ndim == 3:
        image = image.unsqueeze(0)
    if image.ndim != 4:
        raise MetricInputError(f"{name}: expected (B, C, H, W) or (C, H, W), got shape {tuple(image.shape)}")
    return image


def check_pair(pred: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    """Validate a prediction/target pair and return both as ``(B, C, H, W)`` float64.

    Raises ``MetricInputError`` (an ``OstnetError`` and a ``ValueError``) for mismatched shapes (e.g.
    image sizes), non-float tensors or values outside [0, 1] (a sign of 0-255 or [-1, 1] images).
    """
    pred, target = as_batch(pred, "prediction"), as_batch(target, "target")
    if pred.shape != target.shape:
        raise MetricInputError(
            f"image sizes do not match: prediction {tuple(pred.shape)} vs target {tuple(target.shape)}"
        )
    for name, image in (("prediction", pred), ("target", target)):
        if not image.is_floating_point():
            raise MetricInputError(f"{name}: expected a float image in [0, 1], got dtype {image.dtype}")
        low, high = image.aminmax() if image.numel() else (torch.tensor(0.0), torch.tensor(1.0))
        if low < -_RANGE_TOLERANCE or high > 1 + _RANGE_TOLERANCE:
            raise MetricInputError(f"{name}: values span [{low.item():.3g}, {high.item():.3g}], expected [0, 1]")
    return pred.double(), target.double()


def resize_for_metrics(image: Tensor, size: int = METRIC_SIZE) -> Tensor:
    """Resize ``(B, 3, H, W)`` or ``(3, H, W)`` images in [0, 1] to ``size x size`` for the metrics.

    Bilinear with ``align_corners=True`` (project convention), anti-aliased when shrinking; a no-op when the
    image already has that size. Non-square images are stretched, as FOMM's frame loader does.
    """
    batch = as_batch(image)
    if batch.shape[-2:] == (size, size):
        return image
    return resize_image(image.float(), size, size).clamp(0.0, 1.0)


def l1(pred: Tensor, target: Tensor) -> Tensor:
    """Mean absolute error per image over all pixels and channels, in [0, 1] intensity units. -> (B,)"""
    pred, target = check_pair(pred, target)
    return (pred - target).abs().mean(dim=(1, 2, 3))


def psnr(pred: Tensor, target: Tensor, data_range: float = 1.0) -> Tensor:
    """Peak signal-to-noise ratio in dB per image, ``10 log10(data_range^2 / MSE)``. -> (B,)

    ``data_range = 1`` for [0, 1] images (skimage's ``peak_signal_noise_ratio``); ``+inf`` when equal.
    """
    pred, target = check_pair(pred, target)
    mse = (pred - target).pow(2).mean(dim=(1, 2, 3))
    return 10.0 * torch.log10(data_range**2 / mse)


def ssim(pred: Tensor, target: Tensor, data_range: float = 1.0, win_size: int = SSIM_WINDOW) -> Tensor:
    """Mean structural similarity per image with skimage's conventions (see the module docstring). -> (B,)

    Computed in float64; a valid (unpadded) ``win_size`` box filter gives exactly the border-cropped region
    that skimage averages. Range [-1, 1].
    """
    pred, target = check_pair(pred, target)
    if win_size % 2 == 0 or win_size < 3:
        raise MetricInputError(f"ssim: win_size must be odd and >= 3, got {win_size}")
    if min(pred.shape[-2:]) < win_size:
        raise MetricInputError(f"ssim: images of size {tuple(pred.shape[-2:])} are smaller than the window")

    n = pred.shape[1]
    stacked = torch.cat([pred, target, pred * pred, target * target, pred * target], dim=1)  # (B, 5C, H, W)
    mu_p, mu_t, e_pp, e_tt, e_pt = _box_mean(stacked, win_size).split(n, dim=1)
    cov_norm = win_size**2 / (win_size**2 - 1.0)  # sample covariance, skimage's default
    var_p = cov_norm * (e_pp - mu_p * mu_p)
    var_t = cov_norm * (e_tt - mu_t * mu_t)
    cov = cov_norm * (e_pt - mu_p * mu_t)
    c1, c2 = (SSIM_K1 * data_range) ** 2, (SSIM_K2 * data_range) ** 2
    numerator = (2 * mu_p * mu_t + c1) * (2 * cov + c2)
    denominator = (mu_p * mu_p + mu_t * mu_t + c1) * (var_p + var_t + c2)
    return (numerator / denominator).mean(dim=(1, 2, 3))


def _box_mean(x: Tensor, k: int) -> Tensor:
    """Mean over every valid k x k window of (B, C, H, W) -> (B, C, H-k+1, W-k+1), via summed-area tables.

    The same numbers as ``F.avg_pool2d(x, k, stride=1)`` (float64 keeps the cumulative sums exact enough), but
    linear in the image size: float64 pooling on the CPU was the evaluation's bottleneck.
    """
    table = F.pad(x, (1, 0, 1, 0)).cumsum(-1).cumsum(-2)  # (B, C, H+1, W+1)
    sums = table[..., k:, k:] - table[..., :-k, k:] - table[..., k:, :-k] + table[..., :-k, :-k]
    return sums / (k * k)
