"""PatchGAN discriminator, single- or multi-scale (docs/design.md "Adversarial training").

One PatchGAN (pix2pix's / VQGAN's NLayerDiscriminator layout) per scale of ``DiscriminatorConfig.scales``:

    conv4x4/2 -> LReLU,  (conv4x4/2 -> norm -> LReLU) x (num_layers - 1),  conv4x4/1 -> norm -> LReLU,
    conv4x4/1 -> 1 logit per patch

The image at scale s < 1 is the input downsampled by area averaging (``F.interpolate(..., mode="area")``).
The output keeps every scale's logits and intermediate features, so a trainer can use the hinge loss on the
logits and, if it wants, feature matching on the features. The discriminator takes images in [0, 1] and maps
them to [-1, 1] itself.

Used by every preset through ``TrainConfig.gan`` (``ostnet.training.trainer``); no model file depends on it.
"""

from __future__ import annotations

from typing import NamedTuple

import torch.nn.functional as F
from torch import Tensor, nn

from ostnet.config import DiscriminatorConfig

_KERNEL = 4
_SLOPE = 0.2


class DiscriminatorOutput(NamedTuple):
    """logits: one (B, 1, h_s, w_s) map per scale; features: per scale, the activations of every layer but
    the last (for feature matching)."""

    logits: list[Tensor]
    features: list[list[Tensor]]


class PatchDiscriminator(nn.Module):
    """One PatchGAN. (B, C, H, W) in [-1, 1] -> (logits (B, 1, h, w), features)."""

    def __init__(self, cfg: DiscriminatorConfig, num_channels: int = 3) -> None:
        super().__init__()
        widths = [min(cfg.max_features, cfg.block_expansion * 2**i) for i in range(cfg.num_layers + 1)]
        strides = [2] * cfg.num_layers + [1]
        wrap = nn.utils.spectral_norm if cfg.spectral_norm else (lambda m: m)
        layers = []
        in_ch = num_channels
        for i, (out_ch, stride) in enumerate(zip(widths, strides, strict=True)):
            conv = wrap(nn.Conv2d(in_ch, out_ch, _KERNEL, stride=stride, padding=1, bias=i == 0 or cfg.norm == "none"))
            norm = nn.InstanceNorm2d(out_ch, affine=True) if cfg.norm == "instance" and i > 0 else nn.Identity()
            layers.append(nn.Sequential(conv, norm, nn.LeakyReLU(_SLOPE)))
            in_ch = out_ch
        self.layers = nn.ModuleList(layers)
        self.head = wrap(nn.Conv2d(in_ch, 1, _KERNEL, stride=1, padding=1))

    def forward(self, x: Tensor) -> tuple[Tensor, list[Tensor]]:
        features = []
        for layer in self.layers:
            x = layer(x)
            features.append(x)
        return self.head(x), features


class Discriminator(nn.Module):
    """A PatchGAN per scale (``scales[k]`` -> ``nets[k]``). Images (B, C, H, W) in [0, 1]."""

    def __init__(self, cfg: DiscriminatorConfig, num_channels: int = 3) -> None:
        super().__init__()
        if not cfg.scales or any(not 0 < s <= 1 for s in cfg.scales):
            raise ValueError(f"gan.discriminator.scales: every scale must be in (0, 1], got {list(cfg.scales)}")
        if cfg.num_layers < 1:
            raise ValueError(f"gan.discriminator.num_layers: must be >= 1, got {cfg.num_layers}")
        self.cfg = cfg
        self.scales = tuple(cfg.scales)
        self.nets = nn.ModuleList(PatchDiscriminator(cfg, num_channels) for _ in self.scales)

    def forward(self, image: Tensor) -> DiscriminatorOutput:
        x = image * 2 - 1
        logits, features = [], []
        for scale, net in zip(self.scales, self.nets, strict=True):
            xs = x
            if scale != 1:
                size = [max(1, round(d * scale)) for d in x.shape[-2:]]
                xs = F.interpolate(x, size=size, mode="area")
            out, feats = net(xs)
            logits.append(out)
            features.append(feats)
        return DiscriminatorOutput(logits, features)


def build_discriminator(cfg: DiscriminatorConfig, num_channels: int = 3) -> Discriminator:
    return Discriminator(cfg, num_channels)
