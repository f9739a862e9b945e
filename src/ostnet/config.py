"""Typed configuration for every part of ostnet, and the named presets.

Every hyper-parameter taken from the OSTNet paper (Hong & Xu, arXiv 2407.09965) lives here once, with the
section it comes from. Everything else (FOMM's architecture constants) cites reference-architecture.md.

Configs are plain dataclasses so they can be built in Python, overridden from the command line
(``key.sub=value``), serialised into a checkpoint as JSON and rebuilt from it.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
import types
import typing
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from ostnet.options import option, option_bounds

# The numeric precisions of training (``precision``) and inference (``--dtype``); their torch dtypes and
# autocast are in ``ostnet.models.precision``.
Precision = Literal["fp32", "bf16", "fp16"]


@dataclass
class KeypointDetectorConfig:
    """FOMM keypoint detector F_kp (paper Sec. 3.2 and App. A; reference-architecture.md §1)."""

    num_kp: int = option(15, bounds=(1, 512))  # K = 15 "being the same as DaGAN" (App. A)
    block_expansion: int = option(32, bounds=(1, 4096))
    max_features: int = option(1024, bounds=(1, 65536))
    num_blocks: int = option(5, bounds=(1, 10))
    temperature: float = option(0.1, bounds=(1e-06, None))
    scale_factor: float = option(0.25, bounds=(0.001, 1.0))
    estimate_jacobian: bool = True
    pad: int = option(0, bounds=(0, 16))


@dataclass
class DenseMotionConfig:
    """FOMM dense motion network producing M_{S<-D^} and the occlusion map (reference-architecture.md §2)."""

    block_expansion: int = option(64, bounds=(1, 4096))
    max_features: int = option(1024, bounds=(1, 65536))
    num_blocks: int = option(5, bounds=(1, 10))
    scale_factor: float = option(0.25, bounds=(0.001, 1.0))
    kp_variance: float = option(0.01, bounds=(1e-06, None))
    estimate_occlusion: bool = True


@dataclass
class GeneratorConfig:
    """Image generator.

    ``kind="ostnet"`` is the scale-embedding generator of Sec. 3.3 / Eq. 5 with L = num_down_blocks + 1
    feature levels ("L = 4 as TPSM", so 3 down blocks). ``kind="fomm"`` is FOMM's occlusion-aware
    generator (reference-architecture.md §3), used by the ``fomm-*`` presets (Table 5).
    """

    kind: Literal["ostnet", "fomm"] = "ostnet"
    block_expansion: int = option(64, bounds=(1, 4096))
    max_features: int = option(512, bounds=(1, 65536))
    num_down_blocks: int = option(3, bounds=(1, 8))
    num_bottleneck_blocks: int = option(0, bounds=(0, 64))
    # Eq. 5 has no skip connections; TPSM's generator has warped, occluded skip features. See
    # docs/design.md "Skip connections" for the experiment that picked the default.
    skip_connections: bool = True
    # SE, Sec. 3.3: add W_i z before every down block and W^w_i z before every up block.
    scale_embedding: bool = True


@dataclass
class ScaleTransformConfig:
    """Scale transformation module, Sec. 3.2 (Eqs. 1-3)."""

    enabled: bool = True  # ST
    num_fiducial: int = option(20, bounds=(3, 1024))  # T = 20 (App. A)
    num_layers: int = option(4, bounds=(1, 32))  # T_theta is "a 4-layer MLP" (App. A, Fig. 9d)
    hidden_features: int = option(256, bounds=(1, 65536))  # not given by the paper; see docs/design.md
    latent_dim: int = option(128, bounds=(1, 65536))  # size of z; not given by the paper; see docs/design.md
    use_distance_vectors: bool = True  # Eq. 1; off for the "w/o DV" ablation (Table 4)
    padding_mode: Literal["border", "zeros", "reflection"] = "border"


@dataclass
class CodebookConfig:
    """Multi-scale compensatory codebooks (Zhao, Hong, Huang, Xu, CVPR 2025; facts in seed-systems.md §1 with
    their sources: [P] paper/abstract, [C] official code). Off (both False) for the OSTNet presets.

    The compensation sits in the OSTNet generator: its feature levels (coarsest first: 32, 64, 128, 256 px at
    256 px input) are the codebook scales [P, C]; ``levels`` picks the compensated ones (0 = coarsest). Tokens
    live on the grid of the coarsest level (32x32 at 256 px, proportional at other sizes) [C].
    """

    motion: bool = False  # MCC: motion codebook compensation of the flow and occlusion [P, C]
    appearance: bool = False  # ACC: appearance codebook compensation of the warped features [P, C]
    # coarse to fine at 32, 64, 128, 256 (at 256 px) [P, C]
    levels: tuple[int, ...] = option((0, 1, 2, 3), bounds=(0, 16))
    allocation: Literal["prefix", "disjoint", "none"] = "prefix"  # scale i of S searches [0, (i+1) M / S) [P, C]
    motion_codes: int = option(1024, bounds=(1, 65536))  # [C]
    motion_dim: int = option(32, bounds=(1, 4096))  # [C]
    appearance_codes: int = option(1024, bounds=(1, 65536))  # [C]
    appearance_dim: int = option(256, bounds=(1, 4096))  # [C]
    num_layers: int = option(2, bounds=(1, 32))  # transformer layers [C]
    num_heads: int = option(8, bounds=(1, 64))  # [C]
    beta: float = option(0.25, bounds=(0.0, 100.0))  # VQ commitment weight [C]
    dead_after: int = option(100, bounds=(1, None))  # training steps unused after which a code counts as dead (ours)
    restart_dead_codes: bool = False  # ours (seed-systems.md "risks"); off = the official behaviour

    @property
    def enabled(self) -> bool:
        return self.motion or self.appearance


@dataclass
class PECHeadConfig:
    """PECHead (Gao et al., CVPR 2023; seed-systems.md §2). Its slides name the parts; their insides are ours
    (docs/design.md "PECHead"). Off for the other presets.

    fusion: how the motion of the learned keypoints and of the predefined landmarks is combined, the slides'
        Table 4 variants: ``kp`` (learned keypoints only), ``lmk`` (predefined landmarks only), ``direct``
        (average of the two flows), ``featcat`` (features warped by both, concatenated, 1x1 conv), ``mmfa``
        (motion-aware multi-scale feature alignment: per-pixel, per-level soft weights).
    cap: the temporal context module (context adaptation and propagation) at the generator's bottleneck.
    canonical_init: how E starts (the slides do not say): ``mean_face`` puts the canonical points on the mean
        face (depth included, so that a yaw moves them from the first step) and starts the expression MLP as the
        landmarks' expression basis; ``flat`` (our first design) spreads them at random with zero depth and a
        zero expression MLP.
    expression_code: beyond the paper (whose G sees motion only; False is its setting): the decoder also
        receives the change of the expression coefficients (driving minus source), added to every up-block's
        input as OSTNet adds its scale code z (Sec. 3.3, Eq. 5), so that it can paint what no warp of the
        source holds (an open mouth's inside); no change adds nothing (docs/design.md "PECHead: the model").
    expression_map: beyond the paper (False is its setting): the same change as a picture, placed where it
        happens: the landmarks E poses with the driving coefficients minus those it poses with the driving pose and
        the source's expression, as Gaussian heat maps (variance ``dense_motion.kp_variance``), through a bias-free
        1x1 convolution into every decoder level's input (the up blocks' and the output layer's). No expression
        change gives a zero map, which adds nothing (docs/design.md "PECHead: the model").
    output_blend: beyond the paper (False is its setting: the decoder's picture is the output): the output is a
        per-pixel softmax blend of the source image warped by the keypoint flow, by the landmark flow, and the
        decoder's picture, weights from a 1x1 convolution of the last decoder feature; the decoder then has to
        paint only what no warp of the source holds (docs/design.md "PECHead: the model").
    blend_warp: how the blend uses the two flows. ``pictures`` (the first design): the source is warped by each
        flow and the two pictures are mixed, which doubles edges (a seam) where the flows disagree; ``flow``: the
        two flows are mixed with the same weights (renormalised) and the source is warped once, so the warped part
        of the output is always one picture of the source. Same parameters; only with ``output_blend``.
    blend_decoder: the decoder's part in the blend. ``mix`` (the first design): its picture is the third input of
        the softmax; training can then drive its weight to ~0 everywhere (the warps win early), after which the
        decoder gets no gradient and never learns to paint (measured: weight 0.002 at the mouth; docs/results.md).
        ``residual``: the blend mixes the two warps only and the decoder's picture is added as a residual
        (2 sigmoid - 1, output clamped to [0, 1]), so the decoder always gets the full gradient and only has to
        paint what the warp lacks. Only with ``output_blend``.
    detach_landmarks: beyond the paper (False is its setting): the generator's losses do not reach E's
        landmarks (the landmark flow and the expression map see them detached), so only their supervision
        (``loss.lambda_coefficients``) places them. Measured without it: the reconstruction pulls E's expression
        motion towards none (lids 0.001-0.010 of a true 0.036, lips 0.05 of 0.078; docs/results.md), and no
        landmark flow then closes an eye. The learned keypoints keep their gradient (and share E's expression
        MLP with the landmarks, so the shield is partial).
    """

    enabled: bool = False
    fusion: Literal["kp", "lmk", "direct", "featcat", "mmfa"] = "mmfa"
    encoder_features: int = option(32, bounds=(1, 4096))  # base width of E's and R's image encoders
    encoder_blocks: int = option(4, bounds=(1, 8))  # stride-2 blocks of those encoders
    expression_hidden: int = option(128, bounds=(1, 65536))  # width of E's expression MLP
    # the landmark TPS's smoothing (lambda of the kernel system)
    tps_regularization: float = option(1e-3, bounds=(0.0, 100.0))
    cap: bool = True
    # Training with data.clip_length = 1 (pairs): CAP's previous frame is simulated by the current bottleneck
    # feature shifted by up to this (frame units), the pseudo-clip (docs/design.md "PECHead: the model", CAP).
    cap_shift: float = option(0.03, bounds=(0.0, 0.5))
    canonical_init: Literal["mean_face", "flat"] = "mean_face"
    expression_code: bool = False
    expression_map: bool = False
    output_blend: bool = False
    blend_warp: Literal["pictures", "flow"] = "pictures"
    blend_decoder: Literal["mix", "residual"] = "mix"
    detach_landmarks: bool = False

    def __post_init__(self) -> None:
        if not self.output_blend and (self.blend_warp, self.blend_decoder) != ("pictures", "mix"):
            raise ValueError("pechead.blend_warp and pechead.blend_decoder act only with pechead.output_blend=true")


@dataclass
class ModelConfig:
    """A complete model description. Stored inside every checkpoint."""

    name: str = "ostnet-vox-256"
    image_size: int = option(256, bounds=(16, 4096))
    num_channels: int = option(3, bounds=(1, 16))
    keypoints: KeypointDetectorConfig = field(default_factory=KeypointDetectorConfig)
    dense_motion: DenseMotionConfig = field(default_factory=DenseMotionConfig)
    generator: GeneratorConfig = field(default_factory=GeneratorConfig)
    scale_transform: ScaleTransformConfig = field(default_factory=ScaleTransformConfig)
    codebooks: CodebookConfig = field(default_factory=CodebookConfig)
    pechead: PECHeadConfig = field(default_factory=PECHeadConfig)

    def __post_init__(self) -> None:
        if self.generator.scale_embedding and not self.scale_transform.enabled:
            raise ValueError("scale_embedding (SE) needs the scale transformation (ST): z comes from ST")
        self._check_sizes()
        if self.codebooks.enabled:
            _check_codebooks(self)
        if self.pechead.enabled and (self.generator.kind != "ostnet" or not self.generator.skip_connections):
            raise ValueError("pechead: the feature fusion needs the OSTNet generator with skip connections")
        if self.pechead.enabled and self.codebooks.enabled:
            raise ValueError("pechead and codebooks cannot be combined yet (the generator is PECHead's own)")

    def _check_sizes(self) -> None:
        """The hourglasses run at image_size x scale_factor and halve it num_blocks times; the generator halves
        image_size num_down_blocks times: every level must be a whole number of pixels (else the skip
        connections do not line up)."""
        size = self.image_size
        for name, net in (("keypoints", self.keypoints), ("dense_motion", self.dense_motion)):
            scaled = size * net.scale_factor
            if scaled != int(scaled) or int(scaled) % 2**net.num_blocks:
                raise ValueError(
                    f"image_size {size}: {name} works at image_size x scale_factor = {scaled:g}, which must be a "
                    f"whole multiple of 2^num_blocks = {2**net.num_blocks}"
                )
        if size % 2**self.generator.num_down_blocks:
            raise ValueError(
                f"image_size {size} must be a multiple of 2^generator.num_down_blocks = "
                f"{2**self.generator.num_down_blocks}"
            )


def _check_codebooks(cfg: ModelConfig) -> None:
    cb, g = cfg.codebooks, cfg.generator
    if g.kind != "ostnet":
        raise ValueError("codebooks: the compensation needs the OSTNet generator (generator.kind=ostnet)")
    levels = g.num_down_blocks + 1
    if not cb.levels or list(cb.levels) != sorted(set(cb.levels)) or not all(0 <= i < levels for i in cb.levels):
        raise ValueError(f"codebooks.levels: increasing, distinct levels in 0..{levels - 1}, got {list(cb.levels)}")
    if max(cb.levels) > 0 and not g.skip_connections:
        raise ValueError("codebooks.levels above 0 need generator.skip_connections (the warped skips are compensated)")
    for name, codes, dim in (("motion", cb.motion_codes, cb.motion_dim), ("appearance", cb.appearance_codes,
                                                                          cb.appearance_dim)):  # fmt: skip
        if codes % len(cb.levels):
            raise ValueError(
                f"codebooks.{name}_codes: {codes} codes cannot be split into {len(cb.levels)} scale slices"
            )
        if dim % cb.num_heads:
            raise ValueError(f"codebooks.{name}_dim: {dim} is not divisible by num_heads={cb.num_heads}")
    token = cfg.image_size // 2**g.num_down_blocks
    motion = round(cfg.image_size * cfg.dense_motion.scale_factor)
    if motion < token or motion % token or (motion // token) & (motion // token - 1):
        raise ValueError(
            f"codebooks: the motion grid ({motion} px) must be the token grid ({token} px) times a power of 2"
        )


# The scale factor delta of the expression-preserved augmentation, Sec. 3.4: "we set the scaling factor as 0.3"
# (App. A). Training (AugmentationConfig), the datasets, ``augment`` and the different-scale protocol read it here.
PAPER_DELTA = 0.3
# The evaluation protocols of Sec. 4.1: DaGAN's 2083 same-identity test pairs (vox_evaluation.csv) from 100
# videos; the different-scale protocol augments each driving frame twice (2 x 2083 = 4166 pairs).
PAPER_EVAL_PAIRS = 2083
PAPER_EVAL_VIDEOS = 100
PAPER_SCALE_VARIANTS = 2
DELTA_BOUNDS = (0.0, 0.9)  # factors 1 +- delta stay positive


@dataclass
class AugmentationConfig:
    """Expression-preserved augmentation, Sec. 3.4: alpha, beta ~ U[1 - delta, 1 + delta]."""

    delta: float = option(PAPER_DELTA, bounds=DELTA_BOUNDS)


@dataclass
class LossConfig:
    """Training objective, Eq. 6 / Eq. 10 with lambda_1 = lambda_2 = lambda_3 = 10 (App. A).

    The VGG layer weights are 1 because lambda_1 = 10 already scales L_rec (FOMM puts its 10 inside the
    perceptual loss; doing both would weight it 100). See docs/design.md.
    """

    lambda_rec: float = option(10.0, bounds=(0.0, None))
    lambda_eq: float = option(10.0, bounds=(0.0, None))
    lambda_dist: float = option(10.0, bounds=(0.0, None))
    perceptual_scales: tuple[float, ...] = option((1.0, 0.5, 0.25, 0.125), bounds=(0.001, 1.0))
    perceptual_layer_weights: tuple[float, ...] = option((1.0, 1.0, 1.0, 1.0, 1.0), bounds=(0.0, None))
    # Not in the paper (0 = Eq. 7 as published): weight of a mean absolute pixel difference added at every
    # pyramid level. ``ostnet demo`` uses it because its VGG-19 is random (no weights offline); see docs/design.md.
    pixel_weight: float = option(0.0, bounds=(0.0, None))
    equivariance_jacobian: bool = True
    kp_distance_margin: float = option(0.1, bounds=(0.0, None))  # gamma in Eq. 9 (App. B)
    # FOMM equivariance transform (reference-architecture.md §6.2)
    tps_sigma_affine: float = option(0.05, bounds=(0.0, None))
    tps_sigma_tps: float = option(0.005, bounds=(0.0, None))
    tps_points: int = option(5, bounds=(2, 32))
    # Codebooks (seed-systems.md §1, [C]); used only by models with codebooks.
    lambda_vq_motion: float = 1.0  # VQ loss of the motion codebook [C]
    lambda_flow_rec: float = 32.0  # L1 reconstruction of the flow from its codes [C]
    lambda_vq_appearance: float = 1.0  # VQ loss of the appearance codebook on the ground-truth features [C]
    # PECHead (seed-systems.md §2: "pixel, perceptual, landmark (spread), equivariance, warping, GAN" with weights
    # lambda; the values are ours, docs/design.md). Used only by PECHead models.
    lambda_warp: float = 0.0  # L_w: L1 of the source warped by the final flow against the driving frame
    lambda_coefficients: float = 0.0  # supervision of the coefficient regressor R and of E's landmarks
    # Beyond the slides (0 is their setting): L1 weighted by where the expression change moved the landmarks
    # (``expression_region_loss``), so that the few pixels of a mouth or an eye count (docs/design.md).
    lambda_expression_region: float = option(0.0, bounds=(0.0, None))
    # vgg19 = the paper's (Eq. 7); vgg16 (relu1_2..relu5_3) is our departure for machines where only VGG-16 is
    # installable (`ostnet weights install`); docs/design.md "Perceptual network".
    perceptual_network: str = "vgg19"
    # a torchvision-format file; None: ostnet's weights cache, then torch hub's; "random": random on purpose
    vgg_weights: str | None = None
    allow_random_vgg: bool = False  # explicit opt-in for random VGG weights (tests, offline demos)

    def __post_init__(self) -> None:
        if self.perceptual_network not in ("vgg19", "vgg16"):
            raise ValueError(f"loss.perceptual_network: expected vgg19 or vgg16, got {self.perceptual_network!r}")


@dataclass
class OptimConfig:
    """Optimiser and schedule. Defaults follow FOMM vox-256 (reference-architecture.md §6.4)."""

    lr: float = option(2e-4, bounds=(1e-12, 10.0))
    betas: tuple[float, float] = option((0.5, 0.999), bounds=(0.0, 0.999999))
    weight_decay: float = option(0.0, bounds=(0.0, None))
    milestones: tuple[int, ...] = option((60, 90), bounds=(0, None))  # epochs
    gamma: float = option(0.1, bounds=(1e-06, 1.0))
    num_epochs: int = option(100, bounds=(1, None))
    grad_clip: float | None = option(None, bounds=(1e-12, None))


@dataclass
class DataConfig:
    """Training data. 8 pairs per GPU as in the paper (App. A).

    clip_length: T, the driving frames of one training example. 1: a (source, driving) pair, the paper's and
    FOMM's sampling. T > 1: a source and a clip of T consecutive driving frames of the same video, run in order
    with the temporal state carried (PECHead's CAP trains on clips; ours, docs/design.md); ``batch_size``
    counts examples, so a step sees batch_size x T frames.
    """

    root: str = ""
    batch_size: int = option(8, bounds=(1, 4096))
    clip_length: int = option(1, bounds=(1, 64))
    num_repeats: int = option(75, bounds=(1, None))
    num_workers: int = option(2, bounds=(0, 256))
    id_sampling: bool = True
    flip: bool = True
    time_flip: bool = True
    color_jitter: bool = True


@dataclass
class DiscriminatorConfig:
    """PatchGAN discriminator (pix2pix / VQGAN's NLayerDiscriminator layout; docs/design.md "Adversarial").

    One PatchGAN per entry of ``scales`` (1.0 = the image, 0.5 = downsampled by 2, ...); ``(1.0,)`` is the
    single PatchGAN of the codebooks' official code [C]; several scales are FOMM's and PECHead's multi-scale
    option. Each PatchGAN: ``num_layers`` stride-2 4x4 convs (width doubling from ``block_expansion``, capped at
    ``max_features``), one stride-1 4x4 conv and a 4x4 conv to one logit per patch; LeakyReLU 0.2.
    """

    scales: tuple[float, ...] = option((1.0,), bounds=(0.01, 1.0))
    block_expansion: int = option(64, bounds=(1, 4096))
    max_features: int = option(512, bounds=(1, 65536))
    num_layers: int = option(3, bounds=(1, 8))
    norm: Literal["instance", "none"] = "instance"
    spectral_norm: bool = False


@dataclass
class AdversarialConfig:
    """Adversarial training (codebooks paper's official settings [C], seed-systems.md §1 "training").

    Off for the OSTNet presets (the OSTNet paper has no GAN). Hinge loss. The generator's GAN term is weighted by
    ``weight * clamp(||grad L_rec|| / (||grad L_gan|| + 1e-4), 0, max_adaptive_weight)`` (gradients w.r.t.
    the generator's last layer) when ``adaptive``, else by ``weight``. The discriminator and the GAN term start
    when ``start_step`` optimiser steps are done ([C]: "starts at step 5001", i.e. after 5000 steps).
    """

    enabled: bool = False
    discriminator: DiscriminatorConfig = field(default_factory=DiscriminatorConfig)
    weight: float = option(0.8, bounds=(0.0, None))  # [C]
    adaptive: bool = True  # [C]
    adaptive_epsilon: float = option(1e-4, bounds=(1e-12, None))  # [C]
    max_adaptive_weight: float = option(1.0, bounds=(0.0, None))  # clamp to [0, 1] [C]
    start_step: int = option(5000, bounds=(0, None))  # [C]
    lr: float = option(8e-5, bounds=(1e-12, 10.0))  # [C] (same Adam as the generator)
    betas: tuple[float, float] = option((0.9, 0.99), bounds=(0.0, 0.999999))  # [C]


@dataclass
class TrainConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    data: DataConfig = field(default_factory=DataConfig)
    augmentation: AugmentationConfig = field(default_factory=AugmentationConfig)
    gan: AdversarialConfig = field(default_factory=AdversarialConfig)
    # Exponential moving average of the model's weights (all networks that make the image; not the
    # discriminator), updated after every optimiser step; used for evaluation and export when present (the
    # run's final.safetensors holds it). None: off (OSTNet presets). The codebooks paper uses 0.995 [C].
    ema_decay: float | None = option(None, bounds=(0.0, 0.999999))
    seed: int = option(0, bounds=(0, None))
    max_steps: int | None = option(None, bounds=(1, None))
    # wall-clock budget of one fit(), checked after every step
    max_seconds: float | None = option(None, bounds=(1e-06, None))
    precision: Precision = "fp32"
    deterministic: bool = False
    log_every: int = option(10, bounds=(1, None))
    image_every: int = option(200, bounds=(1, None))
    checkpoint_every: int = option(500, bounds=(1, None))


# --------------------------------------------------------------------------------------------------
# Presets
# --------------------------------------------------------------------------------------------------


def _ostnet_vox_256() -> ModelConfig:
    return ModelConfig(name="ostnet-vox-256")


def _baseline() -> ModelConfig:
    return ModelConfig(
        name="baseline",
        generator=GeneratorConfig(scale_embedding=False),
        scale_transform=ScaleTransformConfig(enabled=False),
    )


def _baseline_st() -> ModelConfig:
    return ModelConfig(name="baseline-st", generator=GeneratorConfig(scale_embedding=False))


def _ostnet_no_dv() -> ModelConfig:
    return ModelConfig(name="ostnet-no-dv", scale_transform=ScaleTransformConfig(use_distance_vectors=False))


def _fomm_generator(scale_embedding: bool) -> GeneratorConfig:
    return GeneratorConfig(
        kind="fomm",
        block_expansion=64,
        max_features=512,
        num_down_blocks=2,
        num_bottleneck_blocks=6,
        skip_connections=False,
        scale_embedding=scale_embedding,
    )


def _fomm_vox_256() -> ModelConfig:
    return ModelConfig(
        name="fomm-vox-256",
        keypoints=KeypointDetectorConfig(num_kp=10),
        generator=_fomm_generator(scale_embedding=False),
        scale_transform=ScaleTransformConfig(enabled=False),
    )


def _fomm_st_se() -> ModelConfig:
    return ModelConfig(
        name="fomm-st-se",
        keypoints=KeypointDetectorConfig(num_kp=10),
        generator=_fomm_generator(scale_embedding=True),
    )


def _tiny() -> ModelConfig:
    """A few-thousand-parameter OSTNet at 64x64 for tests and CPU sanity runs."""
    return ModelConfig(
        name="tiny",
        image_size=64,
        keypoints=KeypointDetectorConfig(num_kp=10, block_expansion=8, max_features=64, num_blocks=3, scale_factor=0.5),
        dense_motion=DenseMotionConfig(block_expansion=8, max_features=64, num_blocks=3, scale_factor=0.5),
        generator=GeneratorConfig(block_expansion=8, max_features=64, num_down_blocks=3),
        scale_transform=ScaleTransformConfig(hidden_features=64, latent_dim=16),
    )


def _compensation(**kwargs: Any) -> CodebookConfig:
    return CodebookConfig(**{"motion": True, "appearance": True, **kwargs})


def _codebooks_vox_256(name: str = "codebooks-vox-256", **kwargs: Any) -> ModelConfig:
    """The codebooks paper's system as we build it: FOMM motion (K = 15) and our generator without ST and SE
    (docs/design.md "Codebooks: the generator" says why not the official VQGAN-style one), MCC + ACC."""
    return ModelConfig(
        name=name,
        generator=GeneratorConfig(scale_embedding=False),
        scale_transform=ScaleTransformConfig(enabled=False),
        codebooks=_compensation(**kwargs),
    )


def _ostnet_codebooks() -> ModelConfig:
    """OSTNet (ST + SE) with the compensation in its generator; no published system has this."""
    return ModelConfig(name="ostnet-codebooks", codebooks=_compensation())


def _tiny_codebooks() -> ModelConfig:
    """``tiny`` (ST + SE) with small MCC and ACC at all four levels, for tests and CPU runs."""
    cfg = _tiny()
    cfg.name = "tiny-codebooks"
    cfg.codebooks = _compensation(
        motion_codes=64, motion_dim=8, appearance_codes=64, appearance_dim=16, num_layers=1, num_heads=2
    )
    return cfg


def _pechead(name: str, fusion: str = "mmfa", cap: bool = True, st: bool = False) -> ModelConfig:
    """PECHead at 256x256: K = 15 learned keypoints (no Jacobians: they follow from pose and expression) and the
    16 predefined landmarks, OSTNet's generator with skips; ``st``: with OSTNet's scale transformation + SE."""
    return ModelConfig(
        name=name,
        keypoints=KeypointDetectorConfig(estimate_jacobian=False),
        generator=GeneratorConfig(scale_embedding=st),
        scale_transform=ScaleTransformConfig(enabled=st),
        pechead=PECHeadConfig(enabled=True, fusion=fusion, cap=cap),  # type: ignore[arg-type]
    )


def _tiny_pechead(name: str = "tiny-pechead", fusion: str = "mmfa", cap: bool = True) -> ModelConfig:
    """PECHead at 64x64 with ``tiny``'s widths, for tests, CPU runs and the controllability benchmark."""
    tiny = _tiny()
    return ModelConfig(
        name=name,
        image_size=64,
        keypoints=replace(tiny.keypoints, estimate_jacobian=False),
        dense_motion=tiny.dense_motion,
        generator=replace(tiny.generator, scale_embedding=False),
        scale_transform=ScaleTransformConfig(enabled=False),
        pechead=PECHeadConfig(
            enabled=True, fusion=fusion, cap=cap, encoder_features=8, encoder_blocks=4, expression_hidden=32
        ),  # type: ignore[arg-type]
    )


# Driving frames per training clip of the presets with CAP (data.clip_length; our choice, docs/design.md).
CAP_CLIP_LENGTH = 4
PECHEAD_ABLATIONS = ("kp", "lmk", "direct", "featcat", "mmfa")  # the slides' Table 4 (the "full" one adds CAP)

MODEL_PRESETS: dict[str, typing.Callable[[], ModelConfig]] = {
    "ostnet-vox-256": _ostnet_vox_256,
    "baseline": _baseline,
    "baseline-st": _baseline_st,
    "ostnet-no-dv": _ostnet_no_dv,
    "fomm-vox-256": _fomm_vox_256,
    "fomm-st-se": _fomm_st_se,
    "tiny": _tiny,
    "codebooks-vox-256": _codebooks_vox_256,
    "codebooks-vox-256-no-mcc": lambda: _codebooks_vox_256("codebooks-vox-256-no-mcc", motion=False),
    "codebooks-vox-256-no-acc": lambda: _codebooks_vox_256("codebooks-vox-256-no-acc", appearance=False),
    "codebooks-vox-256-single-scale": lambda: _codebooks_vox_256("codebooks-vox-256-single-scale", levels=(0,)),
    "codebooks-vox-256-no-allocation": lambda: _codebooks_vox_256("codebooks-vox-256-no-allocation", allocation="none"),
    "ostnet-codebooks": _ostnet_codebooks,
    "tiny-codebooks": _tiny_codebooks,
    "pechead-256": lambda: _pechead("pechead-256"),
    "pechead-st": lambda: _pechead("pechead-st", st=True),
    "tiny-pechead": _tiny_pechead,
    **{
        f"tiny-pechead-{fusion}": (lambda fusion=fusion: _tiny_pechead(f"tiny-pechead-{fusion}", fusion, cap=False))
        for fusion in PECHEAD_ABLATIONS
    },
}


def model_preset(name: str) -> ModelConfig:
    """Return a fresh ModelConfig for a named preset; raise ValueError naming the valid ones."""
    try:
        return MODEL_PRESETS[name]()
    except KeyError:
        raise ValueError(f"unknown preset {name!r}; choose one of: {', '.join(MODEL_PRESETS)}") from None


def train_preset(name: str) -> TrainConfig:
    """TrainConfig for a model preset: the paper's optimiser and schedule (App. A, §6.4 of the reference).

    The ``codebooks-vox-256*`` presets train with the codebooks paper's official recipe [C] (seed-systems.md §1
    "training"; docs/design.md "Codebooks: training"): hinge GAN from step 5001 with the adaptive weight, EMA
    0.995, Adam 8e-5 (0.9, 0.99) halved at 80 % and 90 % of training, L1 + pyramid perceptual, equivariance
    weight 1. ``ostnet-codebooks`` and ``tiny-codebooks`` keep OSTNet's recipe (no GAN, no EMA).

    PECHead presets add the slides' loss terms with our weights: pixel L1 1, perceptual 10 (lambda_rec), spread
    10, equivariance 10 (keypoint values; no Jacobians), warping 1, coefficient supervision 10, and the slides'
    multi-scale discriminator (hinge GAN, adaptive weight) from step 5000 (``pechead-256``/``-st``; the tiny
    presets keep it off for CPU runs). Presets with CAP train on clips of 4 consecutive driving frames, 2 clips
    a step (the 8 frames of the pair recipe); the Table 4 variants (no CAP) on pairs.
    """
    cfg = TrainConfig(model=model_preset(name))
    if name.startswith("codebooks-"):
        cfg.gan.enabled = True
        cfg.ema_decay = 0.995
        cfg.optim = OptimConfig(lr=8e-5, betas=(0.9, 0.99), milestones=(80, 90), gamma=0.5, num_epochs=100)
        cfg.loss.lambda_eq = 1.0
        cfg.loss.pixel_weight = 1.0
        cfg.data.batch_size = 4
    if cfg.model.pechead.enabled:  # the slides' terms with our weights (docs/design.md "PECHead: the model")
        cfg.loss = replace(
            cfg.loss, pixel_weight=1.0, lambda_warp=1.0, lambda_coefficients=10.0, equivariance_jacobian=False
        )
        if not name.startswith("tiny"):
            cfg.gan.enabled = True
            cfg.gan.discriminator.scales = (1.0, 0.5)
        if cfg.model.pechead.cap:  # CAP learns from real frame-to-frame change (docs/design.md, CAP)
            cfg.data.clip_length, cfg.data.batch_size = CAP_CLIP_LENGTH, cfg.data.batch_size // CAP_CLIP_LENGTH
    return cfg


# --------------------------------------------------------------------------------------------------
# Serialisation and overrides
# --------------------------------------------------------------------------------------------------


def to_dict(cfg: Any) -> dict[str, Any]:
    """Dataclass -> plain JSON-able dict (tuples become lists)."""
    return dataclasses.asdict(cfg)


def to_json(cfg: Any) -> str:
    return json.dumps(to_dict(cfg), indent=2, sort_keys=True)


def _type_name(tp: Any) -> str:
    if typing.get_origin(tp) is Literal:
        return "one of " + ", ".join(map(repr, typing.get_args(tp)))
    return {bool: "true or false", int: "an integer", float: "a finite number", str: "a string"}.get(tp, str(tp))


def _convert(tp: Any, value: Any, where: str, bounds: tuple | None = None) -> Any:
    """``value`` (JSON) as the annotated type ``tp``, checked: types, ``Literal`` choices, finiteness and the
    field's bounds (``option(..., bounds=...)``); ValueError naming ``where`` otherwise."""
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, where)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in typing.get_args(tp):
            return None
        (inner,) = [a for a in typing.get_args(tp) if a is not type(None)]
        return _convert(inner, value, where, bounds)
    if origin is tuple:
        args = typing.get_args(tp)
        if not isinstance(value, list | tuple):
            raise ValueError(f"{where} must be a list, got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(args[0], v, f"{where}[{k}]", bounds) for k, v in enumerate(value))
        if len(value) != len(args):
            raise ValueError(f"{where} must have {len(args)} values, got {len(value)}")
        return tuple(_convert(a, v, f"{where}[{k}]", bounds) for k, (a, v) in enumerate(zip(args, value, strict=True)))
    if origin is Literal:
        if value not in typing.get_args(tp):
            raise ValueError(f"{where} must be {_type_name(tp)}, got {value!r}")
        return value
    ok = {
        bool: isinstance(value, bool),
        int: isinstance(value, int) and not isinstance(value, bool) or isinstance(value, float) and value.is_integer(),
        float: isinstance(value, int | float) and not isinstance(value, bool),
        str: isinstance(value, str),
    }.get(tp, True)
    if not ok:
        raise ValueError(f"{where} must be {_type_name(tp)}, got {value!r}")
    if tp is float and not math.isfinite(value):
        raise ValueError(f"{where} must be a finite number, got {value!r}")
    value = tp(value) if tp in (int, float) else value
    if bounds is not None and tp in (int, float):
        lo, hi = bounds
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            low, high = "-inf" if lo is None else f"{lo:g}", "inf" if hi is None else f"{hi:g}"
            raise ValueError(f"{where} must be in [{low}, {high}], got {value!r}")
    return value


def from_dict(cls: type, data: dict[str, Any], where: str = "") -> Any:
    """Rebuild a (nested) dataclass from ``to_dict`` output (a checkpoint's config, a run's config.json, the
    overrides), checking every value against its field's type, choices and bounds. Unknown keys are an error
    that names the closest valid key. Raises ValueError (one line)."""
    if not isinstance(data, dict):
        raise ValueError(f"{where or cls.__name__} must be a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for key in data:
        if key not in fields:
            raise ValueError(f"unknown config key {_join(where, key)!r}{_closest(key, fields, where)}")
    values = {k: _convert(hints[k], v, _join(where, k), option_bounds(fields[k])) for k, v in data.items()}
    return cls(**values)


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _closest(key: str, names: typing.Iterable[str], where: str, rest: str = "") -> str:
    match = difflib.get_close_matches(key, list(names), n=1, cutoff=0.5)
    if not match:
        return f"; valid keys here: {', '.join(sorted(names))}"
    return f"; did you mean {_join(where, match[0]) + ('.' + rest if rest else '')!r}?"


def _parse_scalar(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def apply_overrides(cfg: Any, overrides: list[str]) -> Any:
    """Apply ``a.b.c=value`` overrides (values parsed as JSON, else strings) and re-validate.

    Returns a new config; raises ValueError naming the bad key.
    """
    data = to_dict(cfg)
    for item in overrides:
        if "=" not in item:
            raise ValueError(f"override {item!r} is not of the form key.path=value")
        path, raw = item.split("=", 1)
        node, where = data, ""
        keys = path.split(".")
        for depth, key in enumerate(keys[:-1]):
            if not isinstance(node.get(key), dict):
                rest = ".".join(keys[depth + 1 :])
                raise ValueError(f"unknown config key {path!r}{_closest(key, _sections(node), where, rest)}")
            node, where = node[key], _join(where, key)
        last = path.split(".")[-1]
        if last not in node:
            raise ValueError(f"unknown config key {path!r}{_closest(last, node, where)}")
        if isinstance(node[last], dict):
            raise ValueError(f"{path!r} is a section; set one of its keys, e.g. {path}.{next(iter(node[last]))}")
        node[last] = _parse_scalar(raw)
    return from_dict(type(cfg), data)


def _sections(node: dict[str, Any]) -> list[str]:
    return [k for k, v in node.items() if isinstance(v, dict)]
