"""Convolutional building blocks shared by the keypoint detector, dense motion network and generators.

Semantics and attribute names follow FOMM's ``modules/util.py`` (reference-architecture.md §0.1), so that a
FOMM ``state_dict`` loads key for key: every block has ``conv`` and ``norm`` (ResBlock2d: ``conv1``,
``conv2``, ``norm1``, ``norm2``), an Hourglass has ``encoder.down_blocks.N`` and ``decoder.up_blocks.N``,
and the anti-aliased downsampling keeps its Gaussian in a buffer named ``weight``.

The normalisation layer is a constructor option (``norm_layer``: a callable ``channels -> nn.Module``). It
defaults to ``nn.BatchNorm2d`` (affine), as in FOMM; TPSMM uses ``functools.partial(nn.InstanceNorm2d,
affine=True)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

NormLayer = Callable[[int], nn.Module]


class SameBlock2d(nn.Module):
    """conv k x k (padding k//2) -> norm -> ReLU, same resolution. (B, C_in, H, W) -> (B, C_out, H, W).

    The parameter names (``conv``, ``norm``) are FOMM's, so FOMM checkpoints load into this and the two blocks
    derived from it.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        kernel_size: int = 3,
        norm_layer: NormLayer = nn.BatchNorm2d,
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_features, out_features, kernel_size, padding=kernel_size // 2)
        self.norm = norm_layer(out_features)

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.norm(self.conv(x)))


class DownBlock2d(SameBlock2d):
    """conv k x k (padding k//2) -> norm -> ReLU -> 2x2 avg pool. (B, C_in, H, W) -> (B, C_out, H/2, W/2)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.pool = nn.AvgPool2d(kernel_size=(2, 2))

    def forward(self, x: Tensor) -> Tensor:
        return self.pool(super().forward(x))


class UpBlock2d(SameBlock2d):
    """nearest x2 upsample -> conv k x k (pad k//2) -> norm -> ReLU. (B, C_in, H, W) -> (B, C_out, 2H, 2W)."""

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class ResBlock2d(nn.Module):
    """Pre-activation residual block: x + conv2(relu(norm2(conv1(relu(norm1(x)))))). Shape-preserving."""

    def __init__(self, features: int, kernel_size: int = 3, norm_layer: NormLayer = nn.BatchNorm2d) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(features, features, kernel_size, padding=kernel_size // 2)
        self.conv2 = nn.Conv2d(features, features, kernel_size, padding=kernel_size // 2)
        self.norm1 = norm_layer(features)
        self.norm2 = norm_layer(features)

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv1(F.relu(self.norm1(x)))
        out = self.conv2(F.relu(self.norm2(out)))
        return out + x


def hourglass_width(block_expansion: int, max_features: int, level: int) -> int:
    """Channels at hourglass level ``level`` (0 = the decoder output): min(max_features, be * 2^level)."""
    return min(max_features, block_expansion * 2**level)


class Encoder(nn.Module):
    """Hourglass encoder: ``num_blocks`` DownBlock2d.

    Block i maps ``in_features`` (i = 0) or width(i) to width(i + 1), width(l) = min(max_features, be 2^l).
    ``forward`` returns the list [x, e_1, ..., e_n] of the input and every block output (coarsest last).
    ``out_filters`` is the channel count of the coarsest output.
    """

    def __init__(
        self,
        block_expansion: int,
        in_features: int,
        num_blocks: int = 3,
        max_features: int = 256,
        norm_layer: NormLayer = nn.BatchNorm2d,
    ) -> None:
        super().__init__()
        widths = [hourglass_width(block_expansion, max_features, i) for i in range(num_blocks + 1)]
        ins = [in_features, *widths[1:num_blocks]]
        self.down_blocks = nn.ModuleList(
            DownBlock2d(ins[i], widths[i + 1], norm_layer=norm_layer) for i in range(num_blocks)
        )
        self.out_filters = widths[num_blocks] if num_blocks else in_features

    def forward(self, x: Tensor) -> list[Tensor]:
        outs = [x]
        for block in self.down_blocks:
            outs.append(block(outs[-1]))
        return outs


class Decoder(nn.Module):
    """Hourglass decoder: ``num_blocks`` UpBlock2d with U-Net skip concatenation (upsampled tensor first).

    up_blocks.j (j = 0..n-1) works at level i = n-1-j: in = (1 if j = 0 else 2) width(i + 1), out = width(i).
    The last concatenation is with the hourglass input, so ``out_filters = block_expansion + in_features``.
    """

    def __init__(
        self,
        block_expansion: int,
        in_features: int,
        num_blocks: int = 3,
        max_features: int = 256,
        norm_layer: NormLayer = nn.BatchNorm2d,
    ) -> None:
        super().__init__()
        blocks = []
        for i in reversed(range(num_blocks)):
            factor = 1 if i == num_blocks - 1 else 2
            in_filters = factor * hourglass_width(block_expansion, max_features, i + 1)
            out_filters = hourglass_width(block_expansion, max_features, i)
            blocks.append(UpBlock2d(in_filters, out_filters, norm_layer=norm_layer))
        self.up_blocks = nn.ModuleList(blocks)
        self.out_filters = block_expansion + in_features

    def forward(self, features: list[Tensor]) -> Tensor:
        """features: the Encoder's list [x, e_1, ..., e_n]; returns (B, out_filters, H, W)."""
        out = features[-1]
        for j, block in enumerate(self.up_blocks):
            skip = features[-2 - j]
            out = torch.cat([block(out), skip], dim=1)
        return out


class Hourglass(nn.Module):
    """U-Net hourglass (Encoder + Decoder): (B, in_features, H, W) -> (B, be + in_features, H, W).

    H and W must be divisible by 2^num_blocks.
    """

    def __init__(
        self,
        block_expansion: int,
        in_features: int,
        num_blocks: int = 3,
        max_features: int = 256,
        norm_layer: NormLayer = nn.BatchNorm2d,
    ) -> None:
        super().__init__()
        self.encoder = Encoder(block_expansion, in_features, num_blocks, max_features, norm_layer)
        self.decoder = Decoder(block_expansion, in_features, num_blocks, max_features, norm_layer)
        self.out_filters = self.decoder.out_filters

    def forward(self, x: Tensor) -> Tensor:
        return self.decoder(self.encoder(x))


def antialias_kernel_size(scale: float) -> int:
    """Gaussian kernel size for downsampling by ``scale``: k = 2 round(4 sigma) + 1, sigma = (1/s - 1)/2.

    For an integer factor n = 1/s this is exactly 4n - 3 (0.5 -> 5, 0.25 -> 13, 0.125 -> 29).
    """
    sigma = (1.0 / scale - 1.0) / 2.0
    return 2 * round(4 * sigma) + 1


def antialias_factor(scale: float) -> int:
    """The integer stride 1/scale; ValueError unless 1/scale is a positive integer."""
    if not 0.0 < scale <= 1.0:
        raise ValueError(f"downsampling scale must be in (0, 1], got {scale}")
    factor = round(1.0 / scale)
    if not math.isclose(factor * scale, 1.0, rel_tol=1e-6):
        raise ValueError(f"downsampling scale must be 1/n for an integer n, got {scale}")
    return factor


class AntiAliasDownsample(nn.Module):
    """Anti-aliased downsampling by ``scale`` = 1/n (FOMM's AntiAliasInterpolation2d; reference §0.1).

    Depthwise separable Gaussian blur (sigma = (n - 1)/2, size k = 4n - 3, normalised to sum 1, zero padding
    k//2) followed by keeping every n-th pixel starting at index 0. The kernel is a non-trainable buffer
    ``weight`` of shape (C, 1, k, k). ``scale == 1`` is the identity (kernel (C, 1, 1, 1) of ones).
    (B, C, H, W) -> (B, C, ceil(H/n), ceil(W/n)).
    """

    def __init__(self, channels: int, scale: float) -> None:
        super().__init__()
        self.scale = scale
        self.factor = antialias_factor(scale)
        size = antialias_kernel_size(scale)
        self.padding = size // 2
        sigma = (self.factor - 1) / 2.0
        self.register_buffer("weight", _gaussian_kernel(size, sigma).expand(channels, 1, size, size).clone())
        self.groups = channels

    def forward(self, x: Tensor) -> Tensor:
        if self.factor == 1:
            return x
        p = self.padding
        out = F.conv2d(F.pad(x, (p, p, p, p)), self.weight.to(x.dtype), groups=self.groups)
        return out[:, :, :: self.factor, :: self.factor]


def _gaussian_kernel(size: int, sigma: float) -> Tensor:
    """(size, size) separable Gaussian centred at (size - 1)/2 summing to 1; sigma 0 gives [[1]]."""
    if sigma == 0:
        return torch.ones(1, 1)
    coords = torch.arange(size, dtype=torch.float32) - (size - 1) / 2
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    kernel = g[:, None] * g[None, :]
    return kernel / kernel.sum()


def embed(features: Tensor, z: Tensor | None, layer: nn.Module | None) -> Tensor:
    """Scale embedding (paper Sec. 3.3, Eq. 5): features + W z, W z broadcast over space.

    features (B, C, H, W), z (B, Z), layer a Linear Z -> C; unchanged when ``layer`` is None (no SE).
    """
    if layer is None or z is None:
        return features
    return features + layer(z).to(features.dtype)[:, :, None, None]
