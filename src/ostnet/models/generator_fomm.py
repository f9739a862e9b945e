"""FOMM's occlusion-aware generator (reference-architecture.md §3), optionally with scale embedding.

    first (7x7 SameBlock) -> down_blocks -> warp by the dense motion D, x occlusion O
    -> bottleneck (ResBlocks) -> up_blocks -> final (7x7 conv) -> sigmoid

With ``cfg.generator.scale_embedding`` (preset ``fomm-st-se``, paper Table 5 "FOMM + ST + SE") the latent
scale code z is added before every down block (``W_i z``) and before every up block (``W^w_i z``), broadcast
over space: Eq. 5 of Sec. 3.3 applied to FOMM's encoder/decoder. The Linear layers live in ``z_down`` and
``z_up``, so all FOMM keys (``dense_motion_network.*``, ``first.*``, ``down_blocks.N.*``, ``up_blocks.N.*``,
``bottleneck.rN.*``, ``final.*``) stay unchanged and a converted FOMM checkpoint loads strictly.

Resampling, and the one exception to the project's ``align_corners=True`` rule: every ``grid_sample`` here
uses ``align_corners=True``, but the *bilinear resize* of D (and of O) to another size uses
``align_corners=False`` by default (``fomm_resize=True``). That is what FOMM computes: its ``deform_input``
calls ``F.interpolate(deformation, size, mode='bilinear')`` without ``align_corners``, which since PyTorch
0.4 (so also under the 1.0.0 that FOMM requires) means ``False``, while its ``grid_sample`` calls behaved as
``True``. The fixture /work/shared/fixtures/fomm-reference-outputs.pt confirms it: with an
``align_corners=True`` resize the visualisation output ``deformed`` (D resized 64 -> 256) is off by up to
0.68; with ``False`` it matches bit for bit. For the vox topology the bottleneck features and D are both
64x64, so the prediction itself does not depend on the choice; for other topologies it does, and FOMM
weights were trained with the ``False`` resize. ``fomm_resize=False`` switches to the project convention
(``ostnet.geometry.resize_flow`` / ``resize_map``), which is the geometrically consistent one for our
pixel-centre coordinates (the 64-grid and the 256-grid both span [-1, 1] from first to last pixel centre).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ostnet.config import ModelConfig
from ostnet.geometry import resize_flow, warp
from ostnet.models.blocks import DownBlock2d, ResBlock2d, SameBlock2d, UpBlock2d, embed
from ostnet.models.dense_motion import DenseMotionNetwork, warp_features
from ostnet.models.outputs import GeneratorOutput, Keypoints, PreparedSource


class FOMMGenerator(nn.Module):
    """FOMM OcclusionAwareGenerator with the dense motion network inside (``dense_motion_network``).

    Widths: ``first`` 3 -> be; down block i: w(i) -> w(i+1); up block i: w(L-i) -> w(L-i-1), with
    w(l) = min(max_features, be 2^l) and L = num_down_blocks; ``num_bottleneck_blocks`` ResBlocks at w(L).
    ``fomm_resize``: resize D and O as FOMM does (bilinear, ``align_corners=False``; see the module doc).
    """

    def __init__(self, cfg: ModelConfig, *, fomm_resize: bool = True) -> None:
        super().__init__()
        g = cfg.generator
        self.fomm_resize = fomm_resize
        levels = g.num_down_blocks
        width = [min(g.max_features, g.block_expansion * 2**i) for i in range(levels + 1)]
        self.dense_motion_network = DenseMotionNetwork(cfg.dense_motion, cfg.keypoints.num_kp, cfg.num_channels)
        self.first = SameBlock2d(cfg.num_channels, width[0], kernel_size=7)
        self.down_blocks = nn.ModuleList(DownBlock2d(width[i], width[i + 1]) for i in range(levels))
        self.up_blocks = nn.ModuleList(UpBlock2d(width[levels - i], width[levels - i - 1]) for i in range(levels))
        self.bottleneck = nn.Sequential()
        for i in range(g.num_bottleneck_blocks):
            self.bottleneck.add_module(f"r{i}", ResBlock2d(width[levels]))
        self.final = nn.Conv2d(width[0], cfg.num_channels, kernel_size=7, padding=3)
        self.z_down: nn.ModuleList | None = None
        self.z_up: nn.ModuleList | None = None
        if g.scale_embedding:
            z_dim = cfg.scale_transform.latent_dim
            self.z_down = nn.ModuleList(nn.Linear(z_dim, width[i]) for i in range(levels))  # W_i
            self.z_up = nn.ModuleList(nn.Linear(z_dim, width[levels - i]) for i in range(levels))  # W^w_i

    def prepare_source(self, source: Tensor, kp_source: Keypoints) -> PreparedSource:
        """source (B, C, H, W) in [0, 1] and its keypoints -> the reusable per-source tensors."""
        motion = self.dense_motion_network.prepare_source(source, kp_source)
        return PreparedSource(image=source, stem=self.first(source), motion=motion)

    def forward(
        self, source: Tensor, kp_source: Keypoints, kp_driving: Keypoints, z: Tensor | None = None
    ) -> GeneratorOutput:
        """source (B, C, H, W) in [0, 1], keypoints of S and D, z (B, Z) iff scale embedding.

        Returns GeneratorOutput(prediction (B, C, H, W) in (0, 1), deformed (B, C, H, W), motion).
        H and W must be divisible by 2^num_down_blocks.
        """
        return self.forward_prepared(self.prepare_source(source, kp_source), kp_driving, z)

    def forward_prepared(
        self, prepared: PreparedSource, kp_driving: Keypoints, z: Tensor | None = None
    ) -> GeneratorOutput:
        """The per-driving-frame part of ``forward``."""
        if (z is None) != (self.z_down is None):
            raise ValueError("z must be given exactly when the generator has scale embedding (SE)")
        motion = self.dense_motion_network.forward_prepared(prepared.motion, kp_driving)
        align = not self.fomm_resize
        out = prepared.stem
        for i, block in enumerate(self.down_blocks):
            out = block(embed(out, z, None if self.z_down is None else self.z_down[i]))
        out = self.bottleneck(warp_features(out, motion, align_corners=align))
        for i, block in enumerate(self.up_blocks):
            out = block(embed(out, z, None if self.z_up is None else self.z_up[i]))
        prediction = torch.sigmoid(self.final(out))
        h, w = prepared.image.shape[-2:]
        deformed = warp(prepared.image, resize_flow(motion.deformation, h, w, align_corners=align))
        return GeneratorOutput(prediction=prediction, deformed=deformed, motion=motion)
