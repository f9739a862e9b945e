"""Keypoint detector F_kp (paper Sec. 3.2 and App. A): FOMM's KPDetector (reference-architecture.md §1).

An hourglass predicts one heat-map logit map per keypoint; a softmax with temperature over the positions turns
each into a probability map H_k, and the keypoint is its expectation over the heat map's own coordinate grid.
A second head predicts a 2x2 Jacobian per position, pooled with the same weights H_k.

State-dict keys equal FOMM's: ``predictor.*`` (Hourglass), ``kp.*``, ``jacobian.*`` and ``down.weight``
(only when ``scale_factor != 1``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ostnet.config import KeypointDetectorConfig
from ostnet.geometry import make_coordinate_grid
from ostnet.models.blocks import AntiAliasDownsample, Hourglass
from ostnet.models.outputs import Keypoints

_HEAD_KERNEL = 7


class KeypointDetector(nn.Module):
    """FOMM keypoint detector.

    Args:
        cfg: K, widths, temperature (0.1), scale factor (0.25), Jacobian head on/off, heat-map conv padding
            (FOMM default 0: with a 64x64 feature map the heat map is 58x58).
        num_channels: image channels C.
    """

    def __init__(self, cfg: KeypointDetectorConfig, num_channels: int = 3) -> None:
        super().__init__()
        self.num_kp = cfg.num_kp
        self.temperature = cfg.temperature
        self.predictor = Hourglass(cfg.block_expansion, num_channels, cfg.num_blocks, cfg.max_features)
        width = self.predictor.out_filters
        self.kp = nn.Conv2d(width, cfg.num_kp, _HEAD_KERNEL, padding=cfg.pad)
        self.jacobian: nn.Conv2d | None = None
        if cfg.estimate_jacobian:
            self.jacobian = nn.Conv2d(width, 4 * cfg.num_kp, _HEAD_KERNEL, padding=cfg.pad)
            self.reset_jacobian()
        self.down = AntiAliasDownsample(num_channels, cfg.scale_factor) if cfg.scale_factor != 1 else None

    def reset_jacobian(self) -> None:
        """FOMM's initialisation of the Jacobian head: weight 0, bias (1, 0, 0, 1) per keypoint -> J = I."""
        if self.jacobian is None:
            return
        with torch.no_grad():
            self.jacobian.weight.zero_()
            self.jacobian.bias.copy_(torch.tensor([1.0, 0.0, 0.0, 1.0]).repeat(self.num_kp))

    def forward(self, image: Tensor) -> Keypoints:
        """image (B, C, H, W) in [0, 1] -> Keypoints(value (B, K, 2) in [-1, 1], jacobian (B, K, 2, 2)|None).

        H and W (after the scale factor) must be divisible by 2^num_blocks.
        """
        if self.down is not None:
            image = self.down(image)
        features = self.predictor(image)  # (B, be + C, h, w)
        heatmap = self.heatmap(features)  # (B, K, h', w')
        value = heatmap_expectation(heatmap)  # (B, K, 2)
        jacobian = None
        if self.jacobian is not None:
            b, k, h, w = heatmap.shape
            maps = self.jacobian(features).reshape(b, k, 4, h, w)
            jacobian = (heatmap[:, :, None] * maps).sum(dim=(-2, -1)).reshape(b, k, 2, 2)
        return Keypoints(value=value, jacobian=jacobian)

    def heatmap(self, features: Tensor) -> Tensor:
        """Softmax over positions of logits / temperature: (B, be + C, h, w) -> (B, K, h', w'), sums 1."""
        logits = self.kp(features)
        b, k, h, w = logits.shape
        return F.softmax(logits.reshape(b, k, h * w) / self.temperature, dim=-1).reshape(b, k, h, w)


def heatmap_expectation(heatmap: Tensor) -> Tensor:
    """FOMM's ``gaussian2kp``: sum_{h,w} H(h, w) g(h, w) on the heat map's own grid.

    heatmap: (B, K, h, w), non-negative, each map summing to 1. Returns (B, K, 2) (x, y) in [-1, 1].
    """
    grid = make_coordinate_grid(heatmap.shape[2], heatmap.shape[3], dtype=heatmap.dtype, device=heatmap.device)
    return (heatmap[..., None] * grid).sum(dim=(2, 3))
