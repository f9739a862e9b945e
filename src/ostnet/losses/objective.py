"""The training objective of OSTNet (paper Eq. 6 / Eq. 10, App. A and B).

    L = lambda_1 (L_rec^D + L_rec^D^) + lambda_2 L_eq + lambda_3 L_dist,   lambda_1 = lambda_2 = lambda_3 = 10

* L_rec^D:  multi-scale perceptual loss between the prediction I_rst and the ground truth I_GT (the original,
  un-augmented driving frame, ``TrainingPair.target``), Eq. 7.
* L_rec^D^: the same between the scale-rectified driving image I_D^ and I_GT (only for models with ST).
* L_eq:     equivariance of the keypoint detector under a random TPS of the source, Eq. 8 (value + Jacobian).
* L_dist:   keypoint distance hinge on the source keypoints, Eq. 9 (see keypoint_distance.py for the sign).

Models with compensatory codebooks (seed-systems.md §1 [C]) add, with the weights of ``LossConfig``:

* lambda_vq_motion L_vq(motion codebook), summed over the compensated scales (weight 1);
* lambda_flow_rec  L1 of the flow reconstructed from its codes, averaged over the scales (weight 32);
* lambda_vq_appearance L_vq(appearance codebook) of the ground-truth driving frame's features (weight 1).

The objective lives outside the networks (style.md §3.8): it takes the model, the batch and the model output.
"""

from __future__ import annotations

from typing import NamedTuple, Protocol

import torch
from torch import Tensor, nn

from ostnet.config import LossConfig
from ostnet.geometry import RandomTPS
from ostnet.losses.equivariance import equivariance_loss, random_tps_for_samples
from ostnet.losses.keypoint_distance import keypoint_distance_loss
from ostnet.losses.perceptual import PerceptualLoss
from ostnet.losses.vgg import VggFeatures, build_vgg
from ostnet.models.outputs import ModelOutput
from ostnet.models.pechead import EXPRESSION, LANDMARKS, PLACEMENT, POSE, POSE_UNIT


class LossBatch(Protocol):
    """What the objective reads of a batch (``ostnet.data.TrainingPair`` is one; the losses layer does not
    import the data layer). source, target: (B, 3, S, S) in [0, 1]; index: the dataset indices (B,)."""

    @property
    def source(self) -> Tensor: ...

    @property
    def target(self) -> Tensor: ...

    @property
    def index(self) -> Tensor | int: ...


class LossTerms(NamedTuple):
    """All loss values of one step. ``total`` carries the graph; the others are the unweighted terms.

    rec_driving: L_rec^D; rec_rectified: L_rec^D^ (None without ST); eq_value / eq_jacobian: the two parts of
    L_eq (None when switched off); dist: L_dist. All float32 scalars.
    """

    total: Tensor
    rec_driving: Tensor
    rec_rectified: Tensor | None
    eq_value: Tensor | None
    eq_jacobian: Tensor | None
    dist: Tensor | None
    vq_motion: Tensor | None = None
    flow_rec: Tensor | None = None
    vq_appearance: Tensor | None = None
    code_usage: dict[str, Tensor] | None = None  # "codes/..." scalars: perplexity and dead codes per scale
    warp: Tensor | None = None  # PECHead's L_w
    coefficients: Tensor | None = None  # PECHead: regressor and landmark supervision
    expression_region: Tensor | None = None  # PECHead, beyond the slides: L1 where the expression changed

    def as_dict(self) -> dict[str, Tensor]:
        """Detached loss scalars for logging, keyed by term name; absent terms (and code usage) are left out."""
        terms = self._asdict()
        terms.pop("code_usage")
        return {name: value.detach() for name, value in terms.items() if value is not None}


def _weighted(weight: float, *terms: Tensor | None) -> Tensor | float:
    present = [t for t in terms if t is not None]
    return weight * sum(present) if present else 0.0


def warping_loss(deformed: Tensor, target: Tensor) -> Tensor:
    """PECHead's L_w: mean |source warped by the final flow - driving frame| (the flow alone must explain the
    frame where it can; our reading of "ensures the predicted deformations are reasonable")."""
    return (deformed.float() - target.float()).abs().mean()


def coefficient_loss(model: nn.Module, source: Tensor, out: ModelOutput, known: Tensor) -> Tensor:
    """Supervision of PECHead's R and E where the data knows R (rows without NaN): the regressor on the source
    and on the (rectified) driving frame (mean L1 of each group: pose in units of 30 deg, expression,
    placement, landmarks; the groups summed), and the posed landmarks of both (mean L1)."""

    scale = torch.ones(known.shape[-1], device=known.device)
    scale[:3] = 1.0 / POSE_UNIT
    groups = (POSE, EXPRESSION, PLACEMENT, LANDMARKS)
    terms = []
    for b_image, kp, row in ((source, out.kp_source, 0), (out.rectified, out.kp_rectified, 1)):
        truth = known[:, row].float()
        found = torch.isfinite(truth).all(dim=1)
        if not found.any():
            continue
        estimate = model.kp_detector.regressor(b_image[found]).float()
        error = ((estimate - truth[found]) * scale).abs()
        terms.append(sum(error[:, group].mean() for group in groups))
        landmarks = kp.landmarks[found].float().reshape(int(found.sum()), -1)
        terms.append((landmarks - truth[found][:, LANDMARKS]).abs().mean())
    return torch.stack(terms).mean() if terms else torch.zeros((), device=known.device)


def expression_region_loss(model: nn.Module, out: ModelOutput, target: Tensor) -> Tensor:
    """Beyond the slides (``loss.lambda_expression_region``): mean |prediction - target| weighted by where the
    expression change between source and driving frame moved the landmarks (``PECHead.expression_region``), so
    that a mouth's or an eye's few pixels weigh as much as the rest of the frame; 0 when no expression changed."""
    weight = model.expression_region(out.kp_source, out.kp_driving, *target.shape[-2:])
    difference = (out.prediction.float() - target.float()).abs().mean(dim=1, keepdim=True)
    return (weight * difference).sum() / weight.sum().clamp_min(1e-6)


class Objective(nn.Module):
    """Eq. 6 / Eq. 10 with the weights of ``LossConfig``.

    Args:
        cfg: loss weights, pyramid scales, VGG layer weights, equivariance TPS parameters, gamma.
        vgg: an already built VGG to share (tests); None builds it from ``cfg`` (``build_vgg``).
    """

    def __init__(self, cfg: LossConfig, vgg: VggFeatures | None = None) -> None:
        super().__init__()
        self.cfg = cfg
        vgg = vgg if vgg is not None else build_vgg(cfg.perceptual_network, cfg.vgg_weights, cfg.allow_random_vgg)
        self.perceptual = PerceptualLoss(vgg, cfg.perceptual_scales, cfg.perceptual_layer_weights, cfg.pixel_weight)

    def forward(
        self, model: nn.Module, batch: LossBatch, out: ModelOutput, *, tps_seed: int | None = None
    ) -> LossTerms:
        """Compute every term and the weighted total.

        Args:
            model: the OSTNet (or a DDP wrapper of it) that produced ``out``; its ``kp_detector`` is called on
                the transformed source for L_eq.
            batch: the batch the model was run on (a ``TrainingPair``: source, driving, target, ..., index).
            out: ``model(batch.source, batch.driving)``.
            tps_seed: seed of the equivariance transforms; with it each sample's transform depends only on
                (tps_seed, batch.index[b]). None draws them from the global torch RNG.
        """
        model = getattr(model, "module", model)  # unwrap DistributedDataParallel
        cfg = self.cfg
        target_feats = self.perceptual.target_features(batch.target)
        rec_driving = self.perceptual.distance(out.prediction, target_feats)
        rec_rectified = None
        if model.has_scale_transform:
            rec_rectified = self.perceptual.distance(out.rectified, target_feats)
        eq_value = eq_jacobian = None
        if cfg.lambda_eq:
            transform = self._transform(batch, tps_seed)
            eq = equivariance_loss(model.kp_detector, batch.source, out.kp_source, transform, cfg.equivariance_jacobian)
            eq_value, eq_jacobian = eq.value, eq.jacobian
        dist = keypoint_distance_loss(out.kp_source.value, cfg.kp_distance_margin) if cfg.lambda_dist else None
        codes = codebook_terms(model, batch, out)
        warp = coefficients = region = None
        if getattr(model, "controllable", False):  # PECHead's terms (seed-systems.md §2; weights: docs/design.md)
            warp = warping_loss(out.deformed, batch.target) if cfg.lambda_warp else None
            region = expression_region_loss(model, out, batch.target) if cfg.lambda_expression_region else None
            if cfg.lambda_coefficients and batch.coefficients is not None and batch.coefficients.shape[-1]:
                coefficients = coefficient_loss(model, batch.source, out, batch.coefficients)
        total = (
            _weighted(cfg.lambda_rec, rec_driving, rec_rectified)
            + _weighted(cfg.lambda_eq, eq_value, eq_jacobian)
            + _weighted(cfg.lambda_dist, dist)
            + _weighted(cfg.lambda_vq_motion, codes.vq_motion)
            + _weighted(cfg.lambda_flow_rec, codes.flow_rec)
            + _weighted(cfg.lambda_vq_appearance, codes.vq_appearance)
            + _weighted(cfg.lambda_warp, warp)
            + _weighted(cfg.lambda_coefficients, coefficients)
            + _weighted(cfg.lambda_expression_region, region)
        )
        total = torch.as_tensor(total, dtype=torch.float32, device=rec_driving.device)
        return LossTerms(
            total,
            rec_driving,
            rec_rectified,
            eq_value,
            eq_jacobian,
            dist,
            *codes,
            warp=warp,
            coefficients=coefficients,
            expression_region=region,
        )

    def _transform(self, batch: LossBatch, tps_seed: int | None) -> RandomTPS:
        cfg = self.cfg
        device = batch.source.device
        if tps_seed is None:
            size = batch.source.shape[0]
            return RandomTPS(size, cfg.tps_sigma_affine, cfg.tps_sigma_tps, cfg.tps_points, device=device)
        indices = [int(i) for i in torch.as_tensor(batch.index).reshape(-1).tolist()]
        return random_tps_for_samples(
            indices, tps_seed, cfg.tps_sigma_affine, cfg.tps_sigma_tps, cfg.tps_points, device=device
        )


class CodebookTerms(NamedTuple):
    vq_motion: Tensor | None
    flow_rec: Tensor | None
    vq_appearance: Tensor | None
    code_usage: dict[str, Tensor] | None


def codebook_terms(model: nn.Module, batch: LossBatch, out: ModelOutput) -> CodebookTerms:
    """The codebook losses of a model with compensatory codebooks (all None without), and the code usage:
    ``codes/{motion,appearance}_perplexity_s{i}`` and ``codes/{motion,appearance}_dead_s{i}`` per scale i."""
    stats = out.codebooks
    if stats is None:
        return CodebookTerms(None, None, None, None)
    usage: dict[str, Tensor] = {}
    vq_motion = None
    if stats.motion:
        vq_motion = torch.stack([q.loss for q in stats.motion]).sum()
        usage.update(_usage("motion", stats.motion, model.generator.compensation.mcc.quantizer))
    appearance = model.generator.quantize_appearance(batch.target, model.embedding_code(out.z))
    vq_appearance = None
    if appearance:
        vq_appearance = torch.stack([q.loss for q in appearance]).sum()
        usage.update(_usage("appearance", appearance, model.generator.compensation.acc.quantizer))
    return CodebookTerms(vq_motion, stats.flow_reconstruction, vq_appearance, usage)


def _usage(name: str, outputs: list, quantizer: nn.Module) -> dict[str, Tensor]:
    usage = {}
    for scale, q in enumerate(outputs):
        usage[f"codes/{name}_perplexity_s{scale}"] = q.perplexity.detach().float()
        usage[f"codes/{name}_dead_s{scale}"] = quantizer.dead_codes(scale).sum().float()
    return usage
