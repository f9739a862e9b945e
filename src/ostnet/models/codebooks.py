"""Multi-scale compensatory codebooks: motion (MCC) and appearance (ACC) codebook compensation.

Zhao, Hong, Huang, Xu, "Synergizing Motion and Appearance: Multi-Scale Compensatory Codebooks for Talking Head
Video Generation" (CVPR 2025). Facts and sources in seed-systems.md §1 ([P] paper/abstract, [C] official code);
our choices in docs/design.md "Codebooks". Hyper-parameters live in ``CodebookConfig`` (ostnet/config.py).

Geometry: the flow M (B, m, m, 2) stays on the dense motion grid (m = 64 at 256 px) [C]; every transformer works
on T x T tokens, T = the coarsest feature level's size (32 at 256 px) [C]; the compensated scales are the
generator's feature levels, coarsest first (level 0 = 32 px ... level 3 = 256 px at 256 px input) [P, C].

MCC at level i (coarse to fine) [P, C]:

    d        = sg(M_{i-1} - identity)                               displacement, (B, 2, m, m)
    t        = FlowEnc(d)                   conv -> stride-2 downs to T -> residual block, width D_m = 32 [C]
    VQ       : t -> nearest codes of slice(i) of the motion codebook (1024 x 32) [C]; L_vq;
               FlowDec(z_q) reconstructs d, L1 weight 32 [C]
    q        = Fuse([t, pool_T(warp(f_i, M_{i-1})), heatmaps_T(kp_D)])    1x1 conv [C]
    q        = Transformer(q, codebook slice(i))   self-attn, cross-attn to the codes, 3x3-conv FFN [C]
    delta    = Head(q), upsampled to m: residual flow (2) and occlusion logit (1); Head starts at zero
    M_i      = M_{i-1} + delta_flow,  O_i = sigmoid(logit O_{i-1} + delta_occ)    (the official code adds the
               occlusion residual after the sigmoid; we add it to the logit so O stays in (0, 1))

ACC at level i [P, C]:

    w        = warp(f_i, M_i) * O_i                                 the warped, occlusion-masked feature
    a        = PatchEmbed_i(w)                     (B, D_a, T, T), D_a = 256 [C]
    a        = Transformer(a, appearance codebook slice(i), key mask: tokens whose flow leaves [-1, 1]) [C]
    w'       = w + Unpatch_i(a)                    Unpatch starts at zero: w' = w at initialisation
    VQ       : PatchEmbed_i(f_i(I_GT)) -> slice(i) of the appearance codebook (1024 x 256), L_vq weight 1 [C]

Every residual head (``Head``, ``Unpatch``) is zero-initialised, so a fresh model with compensation computes
exactly what the same model without it computes (tested to 1e-6).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ostnet.config import CodebookConfig, ModelConfig
from ostnet.geometry import keypoints_to_gaussian, make_coordinate_grid
from ostnet.models.dense_motion import warp_features
from ostnet.models.outputs import MotionField
from ostnet.models.quantize import QuantizerOutput, VectorQuantizer


class CodebookStats(NamedTuple):
    """What the codebooks did in one forward pass (per compensated level, coarsest first).

    motion / appearance: the quantiser outputs of the motion tokens and (training only) of the ground-truth
    appearance tokens; flow_reconstruction: the L1 of FlowDec (training only); flows / occlusions: the flow
    (B, m, m, 2) and occlusion (B, 1, m, m) after each level's MCC (the input of that level's warp).
    """

    motion: list[QuantizerOutput]
    flow_reconstruction: Tensor | None
    flows: list[Tensor]
    occlusions: list[Tensor]


# --------------------------------------------------------------------------------------------------------------
# Transformer with codebook cross-attention
# --------------------------------------------------------------------------------------------------------------


def masked_attention(q: Tensor, k: Tensor, v: Tensor, heads: int, key_valid: Tensor | None = None) -> Tensor:
    """Multi-head scaled dot-product attention. q (B, L, D), k/v (B or 1, N, D), key_valid (B, N) bool or None.

    A query row whose keys are all masked gets a zero output (not NaN, as a -inf softmax would give).
    """
    b, length, d = q.shape
    dh = d // heads

    def split(x: Tensor) -> Tensor:
        return x.reshape(x.shape[0], x.shape[1], heads, dh).transpose(1, 2)

    scores = split(q) @ split(k).transpose(-1, -2) / math.sqrt(dh)  # (B, H, L, N)
    if key_valid is None:
        weights = scores.softmax(dim=-1)
    else:
        mask = key_valid[:, None, None, :]
        weights = scores.masked_fill(~mask, float("-inf")).softmax(dim=-1)
        weights = torch.where(mask.any(dim=-1, keepdim=True), weights, torch.zeros_like(weights))
    out = weights @ split(v)  # (B, H, L, dh)
    return out.transpose(1, 2).reshape(b, length, d)


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.q, self.k, self.v, self.out = (nn.Linear(dim, dim) for _ in range(4))

    def forward(self, x: Tensor, context: Tensor, key_valid: Tensor | None = None) -> Tensor:
        return self.out(masked_attention(self.q(x), self.k(context), self.v(context), self.heads, key_valid))


class CodebookLayer(nn.Module):
    """Pre-norm: x += SelfAttn(LN x); x += CrossAttn(LN x, codes); x += FFN(LN x) with 3x3 convs on the grid [C]."""

    def __init__(self, dim: int, heads: int, grid: int) -> None:
        super().__init__()
        self.grid = grid
        self.norms = nn.ModuleList(nn.LayerNorm(dim) for _ in range(3))
        self.self_attn = Attention(dim, heads)
        self.cross_attn = Attention(dim, heads)
        self.ffn = nn.Sequential(
            nn.Conv2d(dim, 2 * dim, 3, padding=1), nn.GELU(), nn.Conv2d(2 * dim, dim, 3, padding=1)
        )

    def forward(self, x: Tensor, codes: Tensor, key_valid: Tensor | None) -> Tensor:
        h = self.norms[0](x)
        x = x + self.self_attn(h, h, key_valid)
        x = x + self.cross_attn(self.norms[1](x), codes[None].expand(x.shape[0], -1, -1))
        b, n, d = x.shape
        grid = self.norms[2](x).transpose(1, 2).reshape(b, d, self.grid, self.grid)
        return x + self.ffn(grid).flatten(2).transpose(1, 2)


class CodebookTransformer(nn.Module):
    """Tokens (B, D, T, T) + learned position embedding -> layers -> (B, D, T, T). Keys/values of the
    cross-attention are the codebook rows (no position), so permuting the rows changes nothing."""

    def __init__(self, dim: int, heads: int, layers: int, grid: int) -> None:
        super().__init__()
        self.position = nn.Parameter(torch.zeros(1, grid * grid, dim))
        nn.init.trunc_normal_(self.position, std=0.02)
        self.layers = nn.ModuleList(CodebookLayer(dim, heads, grid) for _ in range(layers))
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: Tensor, codes: Tensor, key_valid: Tensor | None = None) -> Tensor:
        b, d, t, _ = x.shape
        tokens = x.flatten(2).transpose(1, 2) + self.position
        for layer in self.layers:
            tokens = layer(tokens, codes, key_valid)
        return self.norm(tokens).transpose(1, 2).reshape(b, d, t, t)


def pool_to(x: Tensor, size: int) -> Tensor:
    """Average (B, C, H, W) down to (B, C, size, size); H = W = size * 2^j here, so a plain average pool (which
    ONNX exports, unlike an adaptive one of unknown input size)."""
    factor = x.shape[-1] // size
    return x if factor == 1 else F.avg_pool2d(x, factor)


def zero_conv(in_ch: int, out_ch: int, kernel: int = 3) -> nn.Conv2d:
    conv = nn.Conv2d(in_ch, out_ch, kernel, padding=kernel // 2)
    nn.init.zeros_(conv.weight)
    nn.init.zeros_(conv.bias)
    return conv


class _Residual(nn.Module):
    def __init__(self, ch: int) -> None:
        super().__init__()
        conv = [nn.Conv2d(ch, ch, 3, padding=1) for _ in range(2)]
        self.body = nn.Sequential(nn.GELU(), conv[0], nn.GELU(), conv[1])

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


# --------------------------------------------------------------------------------------------------------------
# MCC
# --------------------------------------------------------------------------------------------------------------


class MotionCompensation(nn.Module):
    """MCC over the compensated levels, with the motion codebook (``quantizer.codebook.weight``, M x D_m).

    Args:
        cfg: the codebook settings.
        level_channels: channels of the encoder feature at each compensated level (coarsest first).
        num_kp: K (the driving heat maps are part of the query).
        motion_size: m; token_size: T (m / T a power of 2).
    """

    def __init__(
        self, cfg: CodebookConfig, level_channels: list[int], num_kp: int, motion_size: int, token_size: int
    ) -> None:
        super().__init__()
        d = cfg.motion_dim
        self.motion_size, self.token_size = motion_size, token_size
        downs = int(math.log2(motion_size // token_size))
        enc: list[nn.Module] = [nn.Conv2d(2, d, 3, padding=1)]
        enc += [nn.Conv2d(d, d, 4, stride=2, padding=1) for _ in range(downs)]
        self.flow_encoder = nn.Sequential(*enc, _Residual(d))
        dec: list[nn.Module] = [_Residual(d)]
        for _ in range(downs):
            dec += [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(d, d, 3, padding=1), nn.GELU()]
        self.flow_decoder = nn.Sequential(*dec, nn.Conv2d(d, 2, 3, padding=1))
        self.quantizer = VectorQuantizer(
            cfg.motion_codes, d, len(level_channels), cfg.allocation, cfg.beta, cfg.dead_after, cfg.restart_dead_codes
        )
        self.fuse = nn.ModuleList(nn.Conv2d(d + c + num_kp, d, 1) for c in level_channels)
        self.transformers = nn.ModuleList(
            CodebookTransformer(d, cfg.num_heads, cfg.num_layers, token_size) for _ in level_channels
        )
        self.heads = nn.ModuleList(zero_conv(d, 3) for _ in level_channels)

    def displacement(self, flow: Tensor) -> Tensor:
        """(B, m, m, 2) sampling grid -> (B, 2, m, m) displacement from the identity."""
        grid = make_coordinate_grid(flow.shape[1], flow.shape[2], dtype=flow.dtype, device=flow.device)
        return (flow - grid[None]).permute(0, 3, 1, 2)

    def forward(
        self,
        scale: int,
        flow: Tensor,
        occlusion_logit: Tensor,
        warped_feature: Tensor,
        kp_driving: Tensor,
        kp_variance: float,
        quantize: bool = True,
    ) -> tuple[Tensor, Tensor, QuantizerOutput | None, Tensor | None]:
        """One level: (flow M_i, occlusion logit, VQ output of the flow tokens, L1 flow reconstruction).

        flow (B, m, m, 2); occlusion_logit (B, 1, m, m); warped_feature: this level's encoder feature warped by
        ``flow`` (any size, pooled to T); kp_driving (B, K, 2). The VQ of the flow tokens (which only trains the
        codebook and shows code usage) runs with ``quantize`` (else None); the reconstruction only in training.
        """
        t = self.token_size
        disp = self.displacement(flow).detach()
        tokens = self.flow_encoder(disp)  # (B, D, T, T)
        vq = self.quantizer(tokens.permute(0, 2, 3, 1), scale) if quantize or self.training else None
        rec = None
        if self.training:
            rec = F.l1_loss(self.flow_decoder(vq.quantized.permute(0, 3, 1, 2)), disp)
        heat = keypoints_to_gaussian(kp_driving, t, t, kp_variance)
        query = self.fuse[scale](torch.cat([tokens, pool_to(warped_feature, t), heat], dim=1))
        delta = self.heads[scale](self.transformers[scale](query, self.quantizer.codes(scale)))
        if delta.shape[-1] != self.motion_size:
            delta = F.interpolate(delta, size=self.motion_size, mode="bilinear", align_corners=True)
        flow = flow + delta[:, :2].permute(0, 2, 3, 1)
        occlusion_logit = None if occlusion_logit is None else occlusion_logit + delta[:, 2:]
        return flow, occlusion_logit, vq, rec


# --------------------------------------------------------------------------------------------------------------
# ACC
# --------------------------------------------------------------------------------------------------------------


class AppearanceCompensation(nn.Module):
    """ACC over the compensated levels, with the appearance codebook (``quantizer.codebook.weight``, M x D_a).

    Args:
        cfg: the codebook settings.
        level_channels, level_sizes: channels and spatial size of each compensated level (coarsest first).
        token_size: T (each level's size is T times its patch size).
    """

    def __init__(self, cfg: CodebookConfig, level_channels: list[int], level_sizes: list[int], token_size: int) -> None:
        super().__init__()
        d = cfg.appearance_dim
        self.token_size = token_size
        patches = [s // token_size for s in level_sizes]
        self.quantizer = VectorQuantizer(
            cfg.appearance_codes, d, len(level_channels), cfg.allocation, cfg.beta, cfg.dead_after,
            cfg.restart_dead_codes,
        )  # fmt: skip
        self.embed = nn.ModuleList(nn.Conv2d(c, d, p, stride=p) for c, p in zip(level_channels, patches, strict=True))
        self.transformers = nn.ModuleList(
            CodebookTransformer(d, cfg.num_heads, cfg.num_layers, token_size) for _ in level_channels
        )
        self.unpatch = nn.ModuleList(
            nn.ConvTranspose2d(d, c, p, stride=p) for c, p in zip(level_channels, patches, strict=True)
        )
        for layer in self.unpatch:
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    def token_validity(self, flow: Tensor) -> Tensor:
        """(B, m, m, 2) flow -> (B, T*T) bool: True where the token's flow (averaged over the token) stays
        inside [-1, 1]."""
        pooled = pool_to(flow.permute(0, 3, 1, 2), self.token_size)  # (B, 2, T, T)
        return (pooled.abs() <= 1).all(dim=1).flatten(1)

    def forward(self, scale: int, warped: Tensor, flow: Tensor) -> Tensor:
        """warped (B, C, H, W) occlusion-masked feature of level ``scale``; flow (B, m, m, 2) -> compensated."""
        tokens = self.embed[scale](warped)
        out = self.transformers[scale](tokens, self.quantizer.codes(scale), self.token_validity(flow))
        return warped + self.unpatch[scale](out)

    def quantize_target(self, scale: int, feature: Tensor) -> QuantizerOutput:
        """VQ of the ground-truth driving frame's feature at level ``scale`` (learns the appearance codebook)."""
        return self.quantizer(self.embed[scale](feature).permute(0, 2, 3, 1), scale)


# --------------------------------------------------------------------------------------------------------------
# Both, level by level
# --------------------------------------------------------------------------------------------------------------


class _LevelState:
    """The motion as compensation proceeds coarse to fine, and what each level recorded."""

    def __init__(self, motion: MotionField, kp_driving: Tensor, collect_codes: bool) -> None:
        self.flow, self.kp_driving, self.collect_codes = motion.deformation, kp_driving, collect_codes
        self.occlusion_logit = motion.occlusion_logit
        self.base = motion
        self.vq: list[QuantizerOutput] = []
        self.rec: list[Tensor] = []
        self.flows: list[Tensor] = []
        self.occlusions: list[Tensor] = []

    def motion(self) -> MotionField:
        occlusion = None if self.occlusion_logit is None else torch.sigmoid(self.occlusion_logit)
        return self.base._replace(deformation=self.flow, occlusion=occlusion, occlusion_logit=self.occlusion_logit)


class Compensation(nn.Module):
    """MCC and/or ACC at ``cfg.codebooks.levels`` of a generator with ``channels[l]`` channels at feature level
    l (finest first, as the generator's encoder) for an ``image_size`` input.

    The generator calls ``begin`` once per frame, then ``warp`` for each level from the coarsest to the finest
    (every level, compensated or not: an uncompensated level is warped by the latest compensated motion), then
    ``stats``. Outside training the motion codes are looked up only when ``collect_codes`` is set (``ostnet
    inspect``): the image does not depend on them, and the inference graph stays free of argmin / bincount.
    """

    collect_codes: bool = False

    def __init__(self, cfg: ModelConfig, channels: list[int]) -> None:
        super().__init__()
        cb = cfg.codebooks
        num_levels = len(channels)
        sizes = [cfg.image_size // 2**i for i in range(num_levels)]  # finest first
        self.kp_variance = cfg.dense_motion.kp_variance
        self.levels = {level: scale for scale, level in enumerate(cb.levels)}  # level (0 = coarsest) -> scale
        chosen = [channels[num_levels - 1 - level] for level in cb.levels]
        chosen_sizes = [sizes[num_levels - 1 - level] for level in cb.levels]
        token = sizes[-1]
        motion = round(cfg.image_size * cfg.dense_motion.scale_factor)
        self.mcc = MotionCompensation(cb, chosen, cfg.keypoints.num_kp, motion, token) if cb.motion else None
        self.acc = AppearanceCompensation(cb, chosen, chosen_sizes, token) if cb.appearance else None

    def begin(self, motion: MotionField, kp_driving: Tensor) -> _LevelState:
        return _LevelState(motion, kp_driving, self.collect_codes or self.training)

    def warp(self, level: int, feature: Tensor, state: _LevelState) -> Tensor:
        """This level's encoder feature warped by the (compensated) motion, masked by the occlusion, and
        compensated by ACC."""
        scale = self.levels.get(level)
        if scale is not None and self.mcc is not None:
            warped = warp_features(feature, state.motion())
            state.flow, state.occlusion_logit, vq, rec = self.mcc(
                scale, state.flow, state.occlusion_logit, warped, state.kp_driving, self.kp_variance,
                quantize=state.collect_codes,
            )  # fmt: skip
            if vq is not None:
                state.vq.append(vq)
            if rec is not None:
                state.rec.append(rec)
        motion = state.motion()
        if scale is not None:
            state.flows.append(motion.deformation)
            if motion.occlusion is not None:
                state.occlusions.append(motion.occlusion)
        warped = warp_features(feature, motion)
        if scale is not None and self.acc is not None:
            warped = self.acc(scale, warped, motion.deformation)
        return warped

    def stats(self, state: _LevelState) -> CodebookStats:
        rec = torch.stack(state.rec).mean() if state.rec else None
        return CodebookStats(state.vq, rec, state.flows, state.occlusions)
