"""Dense motion network: FOMM's DenseMotionNetwork (reference-architecture.md §2), estimating the backward
flow M_{S<-D} and the occlusion map used by the generator (paper Sec. 3.1/3.3, "dense motion block [17]").

At the motion resolution (the source downsampled by ``scale_factor``):

1. heat-map differences H_k = G(kd_k) - G(ks_k) (variance ``kp_variance``), with a zero background channel;
2. K + 1 sparse motions: T_0(z) = z, T_k(z) = ks_k + J_s,k J_d,k^{-1} (z - kd_k) (ks_k + z - kd_k without
   Jacobians);
3. the downsampled source warped by every T_k (bilinear, zero padding, ``align_corners=True``);
4. an hourglass over [H_k, S_k] per group, a 7x7 conv + softmax over K + 1 for the mask M, the deformation
   D = sum_k M_k T_k and an optional 7x7 conv + sigmoid occlusion map.

State-dict keys equal FOMM's: ``hourglass.*``, ``mask.*``, ``occlusion.*``, ``down.weight``.

Per-source work (the downsampled source and its keypoint Gaussians) can be done once with ``prepare_source``
and reused for many driving frames with ``forward_prepared``; ``forward`` is exactly these two calls.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ostnet.config import DenseMotionConfig
from ostnet.geometry import inverse_2x2, keypoints_to_gaussian, make_coordinate_grid, warp
from ostnet.geometry.warp import resize_flow, resize_map
from ostnet.models.blocks import AntiAliasDownsample, Hourglass
from ostnet.models.outputs import DenseMotionSource, Keypoints, MotionField

_HEAD_KERNEL = 7


class DenseMotionNetwork(nn.Module):
    """FOMM dense motion network.

    Args:
        cfg: hourglass widths, scale factor (0.25), kp_variance (0.01), occlusion head on/off.
        num_kp: K.
        num_channels: image channels C; the hourglass input has (K + 1)(C + 1) channels.
    """

    def __init__(self, cfg: DenseMotionConfig, num_kp: int, num_channels: int = 3) -> None:
        super().__init__()
        self.num_kp = num_kp
        self.kp_variance = cfg.kp_variance
        in_features = (num_kp + 1) * (num_channels + 1)
        self.hourglass = Hourglass(cfg.block_expansion, in_features, cfg.num_blocks, cfg.max_features)
        width = self.hourglass.out_filters
        self.mask = nn.Conv2d(width, num_kp + 1, _HEAD_KERNEL, padding=_HEAD_KERNEL // 2)
        self.occlusion: nn.Conv2d | None = None
        if cfg.estimate_occlusion:
            self.occlusion = nn.Conv2d(width, 1, _HEAD_KERNEL, padding=_HEAD_KERNEL // 2)
        self.down = AntiAliasDownsample(num_channels, cfg.scale_factor) if cfg.scale_factor != 1 else None

    def prepare_source(self, source: Tensor, kp_source: Keypoints) -> DenseMotionSource:
        """source (B, C, H, W) in [0, 1], its keypoints -> the reusable source-side tensors."""
        image = self.down(source) if self.down is not None else source
        h, w = image.shape[-2:]
        gaussians = keypoints_to_gaussian(kp_source.value, h, w, self.kp_variance)
        return DenseMotionSource(image=image, gaussians=gaussians, kp=kp_source)

    def forward(self, source: Tensor, kp_source: Keypoints, kp_driving: Keypoints) -> MotionField:
        """source (B, C, H, W), keypoints of S and D -> MotionField at (H, W) * scale_factor."""
        return self.forward_prepared(self.prepare_source(source, kp_source), kp_driving)

    def forward_prepared(self, prepared: DenseMotionSource, kp_driving: Keypoints) -> MotionField:
        """The per-driving-frame part of ``forward``."""
        image = prepared.image
        b, c, h, w = image.shape
        heatmaps = self.heatmap_differences(prepared, kp_driving)  # (B, K+1, 1, h, w)
        motions = self.sparse_motions(prepared.kp, kp_driving, h, w)  # (B, K+1, h, w, 2)
        deformed = self.deform_source(image, motions)  # (B, K+1, C, h, w)
        features = self.hourglass(torch.cat([heatmaps, deformed], dim=2).reshape(b, -1, h, w))
        mask = F.softmax(self.mask(features), dim=1)  # (B, K+1, h, w)
        deformation = (mask[..., None] * motions).sum(dim=1)  # (B, h, w, 2)
        logit = self.occlusion(features) if self.occlusion is not None else None
        occlusion = torch.sigmoid(logit) if logit is not None else None
        return MotionField(deformation, occlusion, mask, deformed, logit)

    def heatmap_differences(self, prepared: DenseMotionSource, kp_driving: Keypoints) -> Tensor:
        """G(kd_k) - G(ks_k) with a leading zero background channel: (B, K+1, 1, h, w)."""
        h, w = prepared.image.shape[-2:]
        diff = keypoints_to_gaussian(kp_driving.value, h, w, self.kp_variance) - prepared.gaussians
        zeros = diff.new_zeros(diff.shape[0], 1, h, w)
        return torch.cat([zeros, diff], dim=1)[:, :, None]

    def deform_source(self, image: Tensor, motions: Tensor) -> Tensor:
        """Warp (B, C, h, w) by each of the K+1 sparse motions (B, K+1, h, w, 2) -> (B, K+1, C, h, w)."""
        b, c, h, w = image.shape
        groups = motions.shape[1]
        repeated = image[:, None].expand(b, groups, c, h, w).reshape(b * groups, c, h, w)
        out = warp(repeated, motions.reshape(b * groups, h, w, 2), padding_mode="zeros")
        return out.reshape(b, groups, c, h, w)

    @staticmethod
    def sparse_motions(kp_source: Keypoints, kp_driving: Keypoints, height: int, width: int) -> Tensor:
        """Background identity then T_k(z) = ks_k + J_s,k J_d,k^{-1} (z - kd_k): (B, K+1, h, w, 2).

        Jacobians are used when both keypoint sets carry them.
        """
        value_s, value_d = kp_source.value, kp_driving.value
        b, k, _ = value_d.shape
        grid = make_coordinate_grid(height, width, dtype=value_s.dtype, device=value_s.device)  # (h, w, 2)
        coords = grid[None, None] - value_d[:, :, None, None, :]  # (B, K, h, w, 2)
        if kp_source.jacobian is not None and kp_driving.jacobian is not None:
            jac = torch.matmul(kp_source.jacobian, inverse_2x2(kp_driving.jacobian))  # (B, K, 2, 2)
            coords = torch.matmul(jac[:, :, None, None], coords[..., None])[..., 0]
        motions = coords + value_s[:, :, None, None, :]
        identity = grid[None, None].expand(b, 1, height, width, 2)
        return torch.cat([identity, motions], dim=1)


def warp_features(features: Tensor, motion: MotionField, align_corners: bool = True) -> Tensor:
    """Warp a feature map (B, C, H, W) by the dense motion and multiply by the occlusion map.

    The deformation and occlusion (at the motion resolution) are resized bilinearly to (H, W) when needed;
    ``align_corners`` only concerns that resize (``False`` reproduces FOMM, see ``generator_fomm``).
    """
    h, w = features.shape[-2:]
    out = warp(features, resize_flow(motion.deformation, h, w, align_corners))
    # a channels-last input stays channels-last (the inference fast path): the generator concatenates the warped
    # feature with a channels-last one, and a mixed concatenation costs two full copies
    layout = features.dim() == 4 and not features.is_contiguous()
    layout = layout and features.is_contiguous(memory_format=torch.channels_last)
    if motion.occlusion is not None:
        out = out * resize_map(motion.occlusion, h, w, align_corners)
    return out.contiguous(memory_format=torch.channels_last) if layout else out
