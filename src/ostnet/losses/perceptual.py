"""Multi-scale perceptual reconstruction loss (paper Eq. 4 and Eq. 7; reference-architecture.md §6.1).

    L = sum_l sum_i w_i mean |V_i(y_l) - V_i(x_l)|

over the image pyramid levels l (``LossConfig.perceptual_scales``, default 1, 1/2, 1/4, 1/8, built with FOMM's
anti-aliased downsampling) and the five VGG-19 slices i (relu1_1 ... relu5_1; with
``LossConfig.perceptual_network = vgg16``, VGG-16's relu1_2 ... relu5_3) with weights w_i
(``LossConfig.perceptual_layer_weights``). The target's features are detached. Because the target is shared
by L_rec^D and L_rec^D^ (Eq. 7), its features can be computed once (``target_features``) and reused.

VGG-19 needs at least 16x16 pixels to reach relu5_1 (four 2x2 max pools). Pyramid levels smaller than that
(e.g. the 1/8 level of a 64x64 ``tiny`` image) are left out of the sum, with a one-time warning; at the
paper's 256x256 every level (down to 32x32) is used.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from ostnet.losses.vgg import VggFeatures
from ostnet.models.blocks import AntiAliasDownsample

log = logging.getLogger(__name__)

MIN_VGG_SIZE = 16  # smallest side that survives the four max pools before relu5_1
PyramidFeatures = list[list[Tensor]]  # [scale][layer] -> (B, C_i, H_l / 2^i, W_l / 2^i)


class ImagePyramid(nn.Module):
    """(B, C, H, W) -> [the image downsampled by each scale], FOMM's anti-aliasing (scale 1 = identity)."""

    def __init__(self, scales: Sequence[float], channels: int = 3) -> None:
        super().__init__()
        self.scales = tuple(scales)
        self.levels = nn.ModuleList(AntiAliasDownsample(channels, s) for s in self.scales)

    def forward(self, image: Tensor) -> list[Tensor]:
        return [level(image) for level in self.levels]


class PerceptualLoss(nn.Module):
    """Multi-scale VGG-19 perceptual loss.

    Args:
        vgg: the frozen feature extractor (shared, not trained).
        scales: pyramid scales, each 1/n for an integer n.
        layer_weights: one weight per VGG slice (5 values). VGG runs only up to the last slice whose weight is
            not zero, so (1, 1, 1, 0, 0) also saves the cost of relu4_1 and relu5_1.
        pixel_weight: weight of an extra mean |y_l - x_l| on the pyramid's pixels (``LossConfig.pixel_weight``;
            0, the paper's loss, by default).

    ``forward(prediction, target)``: both (B, 3, H, W) RGB in [0, 1] -> scalar >= 0; 0 iff the features agree.
    Gradients flow into ``prediction`` only.
    """

    def __init__(
        self, vgg: VggFeatures, scales: Sequence[float], layer_weights: Sequence[float], pixel_weight: float = 0.0
    ) -> None:
        super().__init__()
        if len(layer_weights) != 5:
            raise ValueError(f"perceptual_layer_weights needs 5 values (relu1_1..relu5_1), got {len(layer_weights)}")
        if not scales:
            raise ValueError("perceptual_scales must not be empty")
        self.vgg = vgg
        self.pyramid = ImagePyramid(scales)
        self.slices = max((i + 1 for i, w in enumerate(layer_weights) if w), default=0)
        if not self.slices:
            raise ValueError("perceptual_layer_weights: at least one weight must be non-zero")
        # Entry 0 of a level's features is the level's pixels, then the VGG slices.
        self.weights = (float(pixel_weight),) + tuple(float(w) for w in layer_weights[: self.slices])
        self._warned_small = False

    def features(self, image: Tensor) -> PyramidFeatures:
        """[pixels, VGG slices...] of every pyramid level of ``image`` that is at least 16x16 (others are skipped)."""
        levels = self.pyramid(image)
        usable = [lvl for lvl in levels if min(lvl.shape[-2:]) >= MIN_VGG_SIZE]
        if len(usable) < len(levels) and not self._warned_small:
            self._warned_small = True
            log.warning(
                "perceptual loss: %d pyramid level(s) of a %dx%d image are below %d px and are skipped",
                len(levels) - len(usable),
                image.shape[-2],
                image.shape[-1],
                MIN_VGG_SIZE,
            )
        if not usable:
            raise ValueError(f"images of {tuple(image.shape[-2:])} are too small for the VGG-19 perceptual loss")
        return [[level, *self.vgg(level, self.slices)] for level in usable]

    def target_features(self, target: Tensor) -> PyramidFeatures:
        """Detached features of the target (computed without building a graph)."""
        with torch.no_grad():
            return self.features(target)

    def distance(self, prediction: Tensor, target_feats: PyramidFeatures) -> Tensor:
        """sum over scales and layers of w_i mean |V_i(prediction_l) - V_i(target_l)| (plus the pixel term), a
        float32 scalar."""
        total = prediction.new_zeros((), dtype=torch.float32)
        for pred_level, target_level in zip(self.features(prediction), target_feats, strict=True):
            for weight, p, t in zip(self.weights, pred_level, target_level, strict=True):
                if weight:
                    total = total + weight * (p.float() - t.float()).abs().mean()
        return total

    def forward(self, prediction: Tensor, target: Tensor) -> Tensor:
        return self.distance(prediction, self.target_features(target))
