"""Scale-embedding generator (SE), paper Sec. 3.3, Eq. 5 and Fig. 4.

    f_1       = F_en(I_S)                                   (stem: 7x7 conv block)
    f_{i+1}   = F_down^i(f_i + W_i z),      i = 1 .. L-1    (3x3 conv, BN, ReLU, avg-pool; App. A, Fig. 9a)
    f_L^w     = F_warp(f_L, M_{S<-D^})  (x occlusion)       (FOMM dense motion, at the bottleneck)
    f_i^w     = F_up^i(f_{i+1}^w + W^w_i z), i = L-1 .. 1   (upsample, 3x3 conv, BN, ReLU; Fig. 9b)
    I_rst     = sigmoid(conv1x1(f_1^w))

L = num_down_blocks + 1 feature levels; "L = 4 as TPSM" gives 256/128/64/32 for a 256x256 input.

Optional parts (config switches, documented in docs/design.md):

* ``skip_connections``: TPSM-style skips. Each encoder level f_i is warped by the dense motion (resized to the
  level), multiplied by the occlusion map and concatenated to the decoder feature at that level; the W^w z
  embedding then matches the concatenated width. Eq. 5 has none; the default was chosen by experiment.
* ``num_bottleneck_blocks``: residual blocks after the bottleneck warp (0 in Eq. 5).
* ``scale_embedding`` off (the ``baseline`` / ``baseline-st`` ablations, Table 3): no W z terms.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ostnet.config import ModelConfig
from ostnet.geometry import resize_flow, warp
from ostnet.models.blocks import DownBlock2d, ResBlock2d, SameBlock2d, UpBlock2d, embed
from ostnet.models.codebooks import Compensation
from ostnet.models.dense_motion import DenseMotionNetwork, warp_features
from ostnet.models.outputs import GeneratorOutput, Keypoints, PreparedSource


class OSTNetGenerator(nn.Module):
    """The generator of Eq. 5, with the FOMM dense motion network inside (``dense_motion_network``)."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        g = cfg.generator
        self.cfg = cfg
        self.skip_connections = g.skip_connections
        levels = g.num_down_blocks + 1
        ch = [min(g.max_features, g.block_expansion * 2**i) for i in range(levels)]  # c_1 .. c_L
        self.dense_motion_network = DenseMotionNetwork(cfg.dense_motion, cfg.keypoints.num_kp, cfg.num_channels)
        self.first = SameBlock2d(cfg.num_channels, ch[0], kernel_size=7)
        self.down_blocks = nn.ModuleList(DownBlock2d(ch[i], ch[i + 1]) for i in range(levels - 1))
        self.bottleneck = nn.Sequential(*(ResBlock2d(ch[-1]) for _ in range(g.num_bottleneck_blocks)))
        skip = 2 if g.skip_connections else 1
        # up block j maps level L-j to level L-j-1; its input is c_{L-j} (+ skip concat below the bottleneck)
        up_in = [ch[-1]] + [skip * ch[i] for i in range(levels - 2, 0, -1)]
        up_out = [ch[i] for i in range(levels - 2, -1, -1)]
        self.up_widths = up_in
        self.up_blocks = nn.ModuleList(UpBlock2d(i, o) for i, o in zip(up_in, up_out, strict=True))
        self.final = nn.Conv2d(skip * ch[0], cfg.num_channels, kernel_size=1)
        if g.scale_embedding:
            z_dim = cfg.scale_transform.latent_dim
            self.z_down = nn.ModuleList(nn.Linear(z_dim, ch[i]) for i in range(levels - 1))  # W_i
            self.z_up = nn.ModuleList(nn.Linear(z_dim, c) for c in up_in)  # W^w_i
        else:
            self.z_down = self.z_up = None
        # Compensatory codebooks (MCC / ACC) at the levels of cfg.codebooks; ostnet/models/codebooks.py
        self.compensation = Compensation(cfg, ch) if cfg.codebooks.enabled else None

    def prepare_source(self, source: Tensor, kp_source: Keypoints) -> PreparedSource:
        return PreparedSource(source, self.first(source), self.dense_motion_network.prepare_source(source, kp_source))

    def forward(
        self, source: Tensor, kp_source: Keypoints, kp_driving: Keypoints, z: Tensor | None = None
    ) -> GeneratorOutput:
        """source (B, C, H, W), keypoints of S and of the (rectified) driving image, z (B, Z) -> I_rst."""
        return self.forward_prepared(self.prepare_source(source, kp_source), kp_driving, z)

    def forward_prepared(self, prepared: PreparedSource, kp_driving: Keypoints, z: Tensor | None) -> GeneratorOutput:
        if (z is None) != (self.z_down is None):
            raise ValueError("z must be given exactly when the generator has scale embedding (SE)")
        motion = self.dense_motion_network.forward_prepared(prepared.motion, kp_driving)
        features = self.encode_prepared(prepared, z)
        state = None if self.compensation is None else self.compensation.begin(motion, kp_driving.value)

        def warped(level: int) -> Tensor:  # level 0 = the coarsest (bottleneck) feature
            feature = features[-1 - level]
            return warp_features(feature, motion) if state is None else self.compensation.warp(level, feature, state)

        out = self.bottleneck(warped(0))  # f_L^w
        for j, block in enumerate(self.up_blocks):  # f_i^w = F_up^i(f_{i+1}^w + W^w_i z)
            out = block(embed(out, z, self._layer(self.z_up, j)))
            if self.skip_connections:
                out = torch.cat([out, warped(j + 1)], dim=1)
        prediction = torch.sigmoid(self.final(out))
        stats = None
        if state is not None:
            motion, stats = state.motion(), self.compensation.stats(state)
        h, w = prepared.image.shape[-2:]
        deformed = warp(prepared.image, resize_flow(motion.deformation, h, w))
        return GeneratorOutput(prediction=prediction, deformed=deformed, motion=motion, codebooks=stats)

    def encode(self, image: Tensor, z: Tensor | None) -> list[Tensor]:
        """The encoder features f_1 .. f_L of an image (finest first), as Eq. 5 computes them for the source."""
        return self._encode_from(self.first(image), z)

    def encode_prepared(self, prepared: PreparedSource, z: Tensor | None) -> list[Tensor]:
        """The encoder features of the prepared source under z (the inference fast path overrides this)."""
        return self._encode_from(prepared.stem, z)

    def _encode_from(self, stem: Tensor, z: Tensor | None) -> list[Tensor]:
        features = [stem]
        for i, block in enumerate(self.down_blocks):  # f_{i+1} = F_down^i(f_i + W_i z)
            features.append(block(embed(features[-1], z, self._layer(self.z_down, i))))
        return features

    def quantize_appearance(self, image: Tensor, z: Tensor | None) -> list:
        """VQ outputs of an image's encoder features at the compensated levels (coarsest first): how ACC's
        codebook learns from the ground-truth driving frame. Empty without ACC."""
        acc = None if self.compensation is None else self.compensation.acc
        if acc is None:
            return []
        features = self.encode(image, z)
        levels = self.cfg.codebooks.levels
        return [acc.quantize_target(s, features[-1 - level]) for s, level in enumerate(levels)]

    @staticmethod
    def _layer(layers: nn.ModuleList | None, index: int) -> nn.Linear | None:
        return None if layers is None else layers[index]
