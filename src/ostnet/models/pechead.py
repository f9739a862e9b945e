"""PECHead (Gao et al., CVPR 2023): talking heads with free control of head pose and expression.

The slides (seed-systems.md §2) name the parts; everything inside them is our design (docs/design.md "PECHead"):

    R(I)     face coefficients: pose (yaw, pitch, roll), expression (6), placement (cx, cy, size), 16 predefined
             landmarks. From data (MediaPipe / synthetic truth, ``ostnet.face.coefficients``) when given, else
             from ``CoefficientRegressor`` (trained to match them), so that every ostnet path works on images.
    E        learned landmarks conditioned on pose and expression: canonical 3-D points c (K learned keypoints +
             the 16 landmarks) of the SOURCE, moved by the expression and posed:
                 x = (cx, cy) + size * P(Rot(yaw, pitch, roll) (c + D(c, expression)))
             (P drops depth). Driving keypoints use the source's c with the driving's R; edits change R.
    G        FOMM dense motion from the learned keypoints (flow_k, occlusion) + a thin-plate-spline flow from the
             predefined landmarks (flow_l); fused at every generator level (MMFA, or a Table 4 variant).
    CAP      a gated recurrent state at the bottleneck: context from the previous frames adapted to the current
             one and propagated; a gate of 0 is the per-frame model.

Beyond the slides, each a config option that is off in the presets (the slides' setting): ``expression_code``
and ``expression_map`` (the expression change as a vector / as landmark heat maps into the decoder),
``output_blend`` (the output mixes the source warped by each flow with the decoder's picture; ``blend_warp``
mixes the flows instead of the warped pictures, ``blend_decoder = residual`` adds the decoder's picture),
``detach_landmarks`` (only their supervision moves E's landmarks), and the loss ``lambda_expression_region``
(``ostnet.losses.objective``).

The model has OSTNet's interface (``detect``, ``drive``, ``prepare_source``, ``generate``, ``forward``), so the
checkpoint format, the Animator, the trainer and the evaluation harness are shared. ``detect`` returns a
``HeadMotion`` (a Keypoints-like tuple that also carries the landmarks, coefficients and canonical points).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ostnet.config import ModelConfig
from ostnet.face.coefficients import (
    COEFFICIENT_DIM,
    EXPRESSION_NAMES,
    NEUTRAL_EXPRESSION,
    NUM_LANDMARKS,
    landmark_expression_basis,
    mean_face_landmarks,
    mean_face_points,
)
from ostnet.geometry import resize_flow, warp
from ostnet.geometry.heatmap import keypoints_to_gaussian
from ostnet.geometry.rotation import rotation_matrix
from ostnet.geometry.tps import tps_flow
from ostnet.geometry.warp import resize_map
from ostnet.models.blocks import DownBlock2d, SameBlock2d, embed
from ostnet.models.generator_ostnet import OSTNetGenerator
from ostnet.models.ostnet import DrivingFrames, OSTNet
from ostnet.models.outputs import GeneratorOutput, Keypoints, ModelOutput, MotionField, PreparedSource
from ostnet.models.scale_transform import ScaleTransform

NUM_EXPRESSION = len(EXPRESSION_NAMES)
# Layout of a coefficient vector (``FaceCoefficients.flat``): pose 3, expression 6, placement 3, landmarks 2L.
POSE, EXPRESSION, PLACEMENT = slice(0, 3), slice(3, 9), slice(9, 12)
LANDMARKS = slice(12, 12 + 2 * NUM_LANDMARKS)
_GRID = 4  # spatial cells kept by E's and R's image encoders
POSE_UNIT = 30.0  # degrees: the regressor predicts pose / POSE_UNIT
# Fixed border points of the landmark TPS (the frame's corners and edge middles stay in place).
_ANCHORS = [(x, y) for x in (-1.0, 0.0, 1.0) for y in (-1.0, 0.0, 1.0) if (x, y) != (0.0, 0.0)]


def landmark_flow(source: Tensor, driving: Tensor, height: int, width: int, regularization: float) -> Tensor:
    """flow_l: the thin-plate spline taking the driving landmarks (B, L, 2) to the source's, with the frame-border
    anchors fixed, as a (B, height, width, 2) sampling grid (``pechead.tps_regularization`` smooths it)."""
    anchors = torch.tensor(_ANCHORS, dtype=source.dtype, device=source.device).expand(source.shape[0], -1, -1)
    return tps_flow(torch.cat([source, anchors], 1), torch.cat([driving, anchors], 1), height, width, regularization)


def expression_heat(landmarks: Tensor, reference: Tensor, height: int, width: int, variance: float) -> Tensor:
    """(B, L, height, width): Gaussian heat maps of ``landmarks`` minus those of ``reference`` (both (B, L, 2));
    exactly zero where every landmark is where its reference is."""
    heat = [keypoints_to_gaussian(points, height, width, variance) for points in (landmarks, reference)]
    return heat[0] - heat[1]


def landmark_support(
    landmarks: Tensor, reference: Tensor, height: int, width: int, variance: float, saturation: float
) -> Tensor:
    """(B, 1, height, width) in [0, 1]: around every landmark that moved from ``reference`` to ``landmarks`` (both
    (B, L, 2)), at both places, the larger of its two Gaussian heat maps, weighted by how far it moved (full from
    ``saturation`` frame units on); the largest over the landmarks. Exactly zero where none moved. Unlike the heat
    difference, it does not vanish on the line half-way between the two places (where a lid's edge moves to)."""
    heat = torch.maximum(*(keypoints_to_gaussian(points, height, width, variance) for points in (landmarks, reference)))
    moved = ((landmarks - reference).norm(dim=-1) / saturation).clamp(0, 1)
    return (moved[..., None, None] * heat).amax(dim=1, keepdim=True)


class HeadMotion(NamedTuple):
    """Keypoints of one frame with what PECHead needs besides them (all batched).

    value: (B, K, 2) learned keypoints; jacobian: None; landmarks: (B, L, 2) predefined landmarks;
    coefficients: (B, COEFFICIENT_DIM) the R they were posed with; canonical: (B, K + L, 3) the source's E.
    """

    value: Tensor
    jacobian: Tensor | None
    landmarks: Tensor
    coefficients: Tensor
    canonical: Tensor


def neutral_coefficients(batch: int = 1) -> Tensor:
    """Coefficients of a frontal, neutral, centred head (landmarks zero)."""
    out = torch.zeros(batch, COEFFICIENT_DIM)
    out[:, EXPRESSION] = torch.tensor(NEUTRAL_EXPRESSION)
    out[:, PLACEMENT] = torch.tensor([0.0, 0.0, 0.5])
    return out


def _image_encoder(cfg: ModelConfig) -> tuple[nn.Sequential, int]:
    p = cfg.pechead
    widths = [p.encoder_features * 2 ** min(i, 3) for i in range(p.encoder_blocks + 1)]
    layers: list[nn.Module] = [SameBlock2d(cfg.num_channels, widths[0], kernel_size=3)]
    layers += [DownBlock2d(widths[i], widths[i + 1]) for i in range(p.encoder_blocks)]
    # A 4x4 grid of features, not one global average: pose, placement and landmark positions are spatial.
    layers += [nn.AdaptiveAvgPool2d(_GRID), nn.Flatten()]
    return nn.Sequential(*layers), widths[-1] * _GRID * _GRID


class CoefficientRegressor(nn.Module):
    """R from an image when the data does not give it: a small CNN trained to match the stored coefficients."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.encoder, width = _image_encoder(cfg)
        self.head = nn.Linear(width, COEFFICIENT_DIM)
        with torch.no_grad():
            self.head.weight.mul_(0.1)
            self.head.bias.copy_(neutral_coefficients()[0])

    def forward(self, image: Tensor) -> Tensor:
        raw = self.head(self.encoder(image))
        pose = raw[:, POSE] * POSE_UNIT
        placement = torch.cat([raw[:, 9:11], raw[:, 11:12].abs() + 0.05], dim=1)
        return torch.cat([pose, raw[:, EXPRESSION], placement, raw[:, LANDMARKS]], dim=1)


class ConditionedKeypoints(nn.Module):
    """E: the source's canonical 3-D points and the expression deformation D, posed by coefficients."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.num_kp = cfg.keypoints.num_kp
        points = self.num_kp + NUM_LANDMARKS
        self.encoder, width = _image_encoder(cfg)
        self.canonical = nn.Linear(width, 3 * points)
        hidden = cfg.pechead.expression_hidden
        self.deform = nn.Sequential(
            nn.Linear(3 * points + NUM_EXPRESSION, hidden), nn.ReLU(), nn.Linear(hidden, 3 * points)
        )
        with torch.no_grad():
            self.canonical.weight.mul_(0.01)
            self.deform[-1].weight.zero_()
            self.deform[-1].bias.zero_()
            if cfg.pechead.canonical_init == "flat":  # spread over the face, flat, no expression deformation
                gen = torch.Generator().manual_seed(0)
                start = torch.cat([torch.rand(points, 2, generator=gen) * 1.6 - 0.8, torch.zeros(points, 1)], dim=1)
            else:
                start = self._mean_face_start()
            self.canonical.bias.copy_(start.reshape(-1))

    def _mean_face_start(self) -> Tensor:
        """``canonical_init = "mean_face"``: the canonical points start on the mean face (the learned keypoints
        spread over its mesh, the landmarks at their places, depth included) and D starts as the landmarks'
        expression basis ``B e`` (``landmark_expression_basis``), written into the MLP exactly: hidden units
        2j and 2j+1 are relu(+e_j) and relu(-e_j), and the output layer maps them to +B_j and -B_j."""
        start = torch.from_numpy(np.concatenate([mean_face_points(self.num_kp), mean_face_landmarks()])).float()
        basis = torch.zeros(NUM_EXPRESSION, start.shape[0], 3)
        basis[:, self.num_kp :] = torch.from_numpy(landmark_expression_basis()).float()
        first, last = self.deform[0], self.deform[-1]
        if first.out_features < 2 * NUM_EXPRESSION:
            raise ValueError(f"pechead.expression_hidden must be >= {2 * NUM_EXPRESSION} for the mean-face start")
        inputs = 3 * start.shape[0]
        for j in range(NUM_EXPRESSION):
            for k, sign in enumerate((1.0, -1.0)):
                unit = 2 * j + k
                first.weight[unit].zero_()
                first.weight[unit, inputs + j] = sign
                first.bias[unit] = 0.0
                last.weight[:, unit] = sign * basis[j].reshape(-1)
        return start

    def canonical_points(self, image: Tensor) -> Tensor:
        """(B, K + L, 3) canonical points of the identity in ``image``, in face half-heights."""
        return self.canonical(self.encoder(image)).reshape(image.shape[0], -1, 3)

    def pose(self, canonical: Tensor, coefficients: Tensor) -> tuple[Tensor, Tensor]:
        """Posed 2-D keypoints (B, K, 2) and landmarks (B, L, 2) for ``coefficients`` (B, COEFFICIENT_DIM)."""
        b = coefficients.shape[0]
        canonical = canonical.expand(b, -1, -1)  # one source for a batch of frames
        expression = coefficients[:, EXPRESSION] - torch.tensor(NEUTRAL_EXPRESSION, device=canonical.device)
        offset = self.deform(torch.cat([canonical.reshape(b, -1), expression], dim=1)).reshape(canonical.shape)
        pose = coefficients[:, POSE]
        rot = rotation_matrix(pose[:, 0], pose[:, 1], pose[:, 2]).to(canonical.dtype)  # (B, 3, 3)
        moved = (canonical + offset) @ rot.transpose(1, 2)
        placement = coefficients[:, PLACEMENT]
        xy = placement[:, None, :2] + placement[:, None, 2:3] * moved[..., :2]
        return xy[:, : self.num_kp], xy[:, self.num_kp :]


class HeadKeypointDetector(nn.Module):
    """image (+ optional known coefficients) -> HeadMotion of that image (the model's F_kp, used by L_eq)."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.regressor = CoefficientRegressor(cfg)
        self.conditioned = ConditionedKeypoints(cfg)

    def coefficients(self, image: Tensor, known: Tensor | None = None) -> Tensor:
        """R of ``image``: ``known`` where given (rows without NaN), the regressor's estimate elsewhere."""
        estimate = self.regressor(image)
        if known is None:
            return estimate
        found = torch.isfinite(known).all(dim=1, keepdim=True)
        return torch.where(found, torch.nan_to_num(known), estimate)

    def forward(self, image: Tensor, known: Tensor | None = None) -> HeadMotion:
        coefficients = self.coefficients(image, known)
        canonical = self.conditioned.canonical_points(image)
        return self.posed(canonical, coefficients)

    def posed(self, canonical: Tensor, coefficients: Tensor) -> HeadMotion:
        value, landmarks = self.conditioned.pose(canonical, coefficients)
        return HeadMotion(value, None, landmarks, coefficients, canonical)


class FeatureFusion(nn.Module):
    """One generator level: combine the feature warped by the keypoint flow and by the landmark flow.

    ``mmfa``: per-pixel softmax weights from both warped features and the flows' difference (weights sum to 1;
    equal flows give the plain warp); ``featcat``: concatenation and a 1x1 conv. The other variants need no
    parameters (see ``PECHeadGenerator.fuse``).
    """

    def __init__(self, channels: int, fusion: str) -> None:
        super().__init__()
        self.fusion = fusion
        if fusion == "mmfa":
            self.weights = nn.Conv2d(2 * channels + 2, 2, kernel_size=3, padding=1)
        elif fusion == "featcat":
            self.weights = nn.Conv2d(2 * channels, channels, kernel_size=1)

    def forward(self, warped_k: Tensor, warped_l: Tensor, flow_difference: Tensor) -> tuple[Tensor, Tensor | None]:
        if self.fusion == "featcat":
            return self.weights(torch.cat([warped_k, warped_l], dim=1)), None
        logits = self.weights(torch.cat([warped_k, warped_l, flow_difference], dim=1))
        weights = F.softmax(logits, dim=1)  # (B, 2, H, W), sums to 1
        return weights[:, :1] * warped_k + weights[:, 1:] * warped_l, weights


class TemporalContext(nn.Module):
    """CAP: context adaptation and propagation over the frames of a video, at the bottleneck feature f_t.

        u_t = sigmoid(conv[h_{t-1}, f_t])                    (how much of the new frame enters the state)
        h_t = (1 - u_t) h_{t-1} + u_t f_t                    (propagation; h_0 = f_0)
        o_t = f_t + gate * conv[h_t - f_t, f_t]              (adaptation of the context to the frame)

    ``gate`` is a learned scalar (tanh of a parameter, starting at 0.5); gate 0 is the per-frame model, and a
    still video gives a constant output (h_t = f_t). At inference (``forward``) the frames of a batch are one
    video, processed in order, and the state carries over to the next call until ``reset``; in training
    (``run``) a batch holds several clips, each from h_0 = f_0, the state kept nowhere.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.update = nn.Conv2d(2 * channels, channels, kernel_size=3, padding=1)
        self.adapt = nn.Conv2d(2 * channels, channels, kernel_size=3, padding=1)
        self.gate_param = nn.Parameter(torch.tensor(math.atanh(0.5)))
        self.state: Tensor | None = None

    @property
    def gate(self) -> Tensor:
        return torch.tanh(self.gate_param)

    def reset(self) -> None:
        self.state = None

    def step(self, feature: Tensor, state: Tensor) -> tuple[Tensor, Tensor]:
        """One frame (N, C, h, w) with the previous state -> (output, new state)."""
        u = torch.sigmoid(self.update(torch.cat([state, feature], dim=1)))
        state = state + u * (feature - state)  # (1 - u) h + u f, written so that h = f stays exactly f
        return feature + self.gate * self.adapt(torch.cat([state - feature, feature], dim=1)), state

    def run(self, clips: Tensor, state: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Clips (N, T, C, h, w), each in order, from ``state`` (N, C, h, w) (None: h_0 = f_0) -> (outputs of
        the same shape, the state after the last frame). A NaN state is no state either (h_0 = f_0): how the
        exported step graph (``ostnet export``), whose state is a graph input, starts a video."""
        if state is not None:
            state = torch.where(torch.isnan(state), clips[:, 0], state.to(clips.dtype))
        outputs = []
        for t in range(clips.shape[1]):
            frame = clips[:, t]
            out, state = self.step(frame, frame if state is None else state)
            outputs.append(out)
        return torch.stack(outputs, dim=1), state

    def forward(self, features: Tensor) -> Tensor:
        """A sequence of frames (T, C, h, w) of one video, in order, continuing the kept state."""
        outputs, self.state = self.run(features[None], self.state)
        return outputs[0]


class PECPrepared(NamedTuple):
    base: PreparedSource
    landmarks: Tensor  # (B, L, 2) source landmarks
    expression: Tensor  # (B, NUM_EXPRESSION) the source's expression coefficients


class PECHeadGenerator(OSTNetGenerator):
    """OSTNet's generator (skips on) with two flows fused at every level and CAP at the bottleneck."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__(cfg)
        g, p = cfg.generator, cfg.pechead
        levels = g.num_down_blocks + 1
        ch = [min(g.max_features, g.block_expansion * 2**i) for i in range(levels)]
        self.fusion = p.fusion
        self.regularization = p.tps_regularization
        self.fusers = nn.ModuleList(FeatureFusion(c, p.fusion) for c in ch)  # level i (0 = finest)
        self.cap = TemporalContext(ch[-1]) if p.cap else None
        self.cap_shift = p.cap_shift
        self.expression_up = None  # pechead.expression_code: W^e_j, like OSTNet's W^w_j for z
        if p.expression_code:
            self.expression_up = nn.ModuleList(nn.Linear(NUM_EXPRESSION, c, bias=False) for c in self.up_widths)
        self.expression_maps = None  # pechead.expression_map: one bias-free 1x1 conv per decoder level's input
        self.map_variance = cfg.dense_motion.kp_variance
        if p.expression_map:
            widths = [*self.up_widths, self.final.in_channels]
            self.expression_maps = nn.ModuleList(nn.Conv2d(NUM_LANDMARKS, c, 1, bias=False) for c in widths)
        # pechead.output_blend: weights of (source warped by flow_k, by flow_l, the decoder's picture)
        # (blend_decoder = residual: the two warps' weights only; the decoder's picture is added)
        inputs = 3 if p.blend_decoder == "mix" else 2
        self.blend = nn.Conv2d(self.final.in_channels, inputs, 1) if p.output_blend else None
        self.blend_warp, self.blend_decoder = p.blend_warp, p.blend_decoder
        self.detach_landmarks = p.detach_landmarks

    def prepare_source(self, source: Tensor, kp_source: HeadMotion) -> PECPrepared:  # type: ignore[override]
        expression = kp_source.coefficients[:, EXPRESSION]
        return PECPrepared(super().prepare_source(source, kp_source), kp_source.landmarks, expression)

    def landmark_flow(self, source: Tensor, driving: Tensor, height: int, width: int) -> Tensor:
        return landmark_flow(source, driving, height, width, self.regularization)

    def fuse(self, level: int, feature: Tensor, flows: tuple[Tensor, Tensor], occlusion: Tensor | None) -> Tensor:
        """Warp a source feature of ``level`` by both flows and combine them (the fusion variant)."""
        h, w = feature.shape[-2:]
        flow_k, flow_l = (resize_flow(f, h, w) for f in flows)
        if self.fusion in ("kp", "lmk", "direct"):
            flow = {"kp": flow_k, "lmk": flow_l, "direct": 0.5 * (flow_k + flow_l)}[self.fusion]
            out = warp(feature, flow)
        else:
            difference = (flow_k - flow_l).permute(0, 3, 1, 2)
            out, _ = self.fusers[level](warp(feature, flow_k), warp(feature, flow_l), difference)
        return out if occlusion is None else out * resize_map(occlusion, h, w)

    def forward_prepared(  # type: ignore[override]
        self,
        prepared: PECPrepared,
        kp_driving: HeadMotion,
        z: Tensor | None,
        temporal: str = "none",
        clip_length: int = 1,
        reference: Tensor | None = None,
    ) -> GeneratorOutput:
        """``temporal``: "none" (every frame on its own: the first frame of a one-frame video, h_0 = f_0; a still
        edit and independent evaluation pairs), "video" (CAP over the batch in order, state kept), "clips" (the batch
        is clips of ``clip_length`` consecutive frames, each run in order from a fresh state: training) or
        "train" (pairs: CAP on a simulated previous frame, the pseudo-clip; see docs/design.md). ``reference``:
        the landmarks of the driving pose with the source's expression (``PECHead.expression_reference``), needed
        with ``pechead.expression_map``."""
        base = prepared.base
        motion = self.dense_motion_network.forward_prepared(base.motion, kp_driving)
        h, w = motion.deformation.shape[1:3]
        source_landmarks, landmarks = prepared.landmarks, kp_driving.landmarks
        if self.detach_landmarks:  # pechead.detach_landmarks: only their supervision places them
            source_landmarks, landmarks = source_landmarks.detach(), landmarks.detach()
            reference = None if reference is None else reference.detach()
        flow_l = self.landmark_flow(source_landmarks, landmarks, h, w)
        flows = (motion.deformation, flow_l)
        features = [base.stem]
        for i, block in enumerate(self.down_blocks):
            features.append(block(embed(features[-1], z, self._layer(self.z_down, i))))
        levels = len(features)
        bottleneck = self.fuse(levels - 1, features[-1], flows, motion.occlusion)
        out = self.bottleneck(self._temporal(bottleneck, temporal, clip_length))
        change = kp_driving.coefficients[:, EXPRESSION] - prepared.expression  # expression code (no bias: 0 adds 0)
        for j, block in enumerate(self.up_blocks):
            out = embed(embed(out, z, self._layer(self.z_up, j)), change, self._layer(self.expression_up, j))
            out = block(self._paint(j, out, landmarks, reference))
            out = torch.cat([out, self.fuse(levels - j - 2, features[-j - 2], flows, motion.occlusion)], dim=1)
        out = self._paint(len(self.up_blocks), out, landmarks, reference)
        prediction = torch.sigmoid(self.final(out))
        img_h, img_w = base.image.shape[-2:]
        if self.blend is not None:
            prediction = self._blend(out, base.image, flows, prediction)
        effective = {"kp": flows[0], "lmk": flows[1]}.get(self.fusion, 0.5 * (flows[0] + flows[1]))
        deformed = warp(base.image, resize_flow(effective, img_h, img_w))
        field = MotionField(effective, motion.occlusion, motion.mask, motion.sparse_deformed)
        return GeneratorOutput(prediction=prediction, deformed=deformed, motion=field)

    def _blend(self, feature: Tensor, image: Tensor, flows: tuple[Tensor, Tensor], painted: Tensor) -> Tensor:
        """pechead.output_blend: softmax weights per pixel of (flow_k, flow_l[, decoder]). ``blend_warp`` says
        whether the two flows' weights mix two warped pictures or the flows themselves (one warp);
        ``blend_decoder`` whether the decoder's picture is the third input of the mix or a residual on top (then
        the two warps' weights sum to 1)."""
        weights = F.softmax(self.blend(feature), dim=1)
        w_k, w_l = weights[:, :1], weights[:, 1:2]
        flow_k, flow_l = (resize_flow(f, *image.shape[-2:]) for f in flows)
        if self.blend_warp == "flow":
            warped_weight = w_k + w_l
            share_k = (w_k / warped_weight.clamp_min(1e-12)).permute(0, 2, 3, 1)
            warped = warped_weight * warp(image, share_k * flow_k + (1 - share_k) * flow_l)
        else:
            warped = w_k * warp(image, flow_k) + w_l * warp(image, flow_l)
        if self.blend_decoder == "residual":
            return (warped + 2 * painted - 1).clamp(0, 1)
        return warped + weights[:, 2:] * painted

    def _paint(self, level: int, feature: Tensor, landmarks: Tensor, reference: Tensor | None) -> Tensor:
        """pechead.expression_map: feature + W^m (H(driving landmarks) - H(reference)); unchanged when off."""
        if self.expression_maps is None:
            return feature
        if reference is None:
            raise ValueError("pechead.expression_map needs the reference landmarks (PECHead.expression_reference)")
        heat = expression_heat(landmarks, reference, *feature.shape[-2:], self.map_variance)
        return feature + self.expression_maps[level](heat.to(feature.dtype))

    def _temporal(self, feature: Tensor, temporal: str, clip_length: int) -> Tensor:
        if self.cap is None:
            return feature
        if temporal == "none":  # each frame a video of its own: CAP's step from h = f (what frame 0 of a video gets)
            return self.cap.step(feature, feature)[0]
        if temporal == "video":
            return self.cap(feature)
        if temporal == "clips":
            return self.cap.run(feature.unflatten(0, (-1, clip_length)))[0].flatten(0, 1)
        # Training: the previous frame is simulated by the same feature shifted by a sub-cell offset, a different
        # one for every sample of the batch (golden-angle directions; no random draw, so resume stays exact).
        index = torch.arange(feature.shape[0], device=feature.device, dtype=feature.dtype)
        angle, radius = 2.399963 * index, self.cap_shift * (0.3 + 0.7 * torch.frac(0.618034 * (index + 1)))
        shift = torch.stack([radius * angle.cos(), radius * angle.sin()], dim=-1)[:, None, None, :]
        grid = torch.stack(
            torch.meshgrid(
                torch.linspace(-1, 1, feature.shape[-1], device=feature.device),
                torch.linspace(-1, 1, feature.shape[-2], device=feature.device),
                indexing="xy",
            ),
            dim=-1,
        )
        previous = warp(feature, (grid[None] + shift).to(feature.dtype), padding_mode="border")
        return self.cap.step(feature, previous)[0]


class PECHead(OSTNet):
    """PECHead with OSTNet's interface; with ``scale_transform.enabled`` (``pechead-st``) the driving frame is
    first rectified to the source's scale by OSTNet's ST and SE embeds its z (no published system has this)."""

    controllable = True  # the Animator's pose / expression controls apply

    def __init__(self, cfg: ModelConfig) -> None:
        nn.Module.__init__(self)
        self.cfg = cfg
        self.kp_detector = HeadKeypointDetector(cfg)
        st = cfg.scale_transform
        if st.enabled:
            self.scale_transform = ScaleTransform(st, cfg.keypoints.num_kp)
        else:
            self.scale_transform = None
        self.generator = PECHeadGenerator(cfg)
        self.temporal = "none"  # "video" at inference by the Animator: CAP carries state between frames

    def reset_state(self) -> None:
        """Forget the temporal context (a new source or video)."""
        if self.generator.cap is not None:
            self.generator.cap.reset()

    def detect(self, image: Tensor, coefficients: Tensor | None = None) -> HeadMotion:
        return self.kp_detector(image, coefficients)

    def coefficients(self, image: Tensor) -> Tensor:
        """R of each image (the regressor's estimate)."""
        return self.kp_detector.coefficients(image)

    def pose_keypoints(self, kp_source: HeadMotion, coefficients: Tensor) -> HeadMotion:
        """Keypoints and landmarks of the source's identity posed with ``coefficients`` (E)."""
        return self.kp_detector.posed(kp_source.canonical, coefficients)

    def drive(  # type: ignore[override]
        self, kp_source: HeadMotion, driving: Tensor, rectify: bool = True, coefficients: Tensor | None = None
    ) -> DrivingFrames:
        """The driving frame's coefficients (given, or estimated on the ST-rectified frame) pose the source."""
        st = None
        rectified = driving
        if self.scale_transform is not None:
            st = self.scale_transform(kp_source.value, self.kp_detector(driving).value, driving)
            rectified = st.rectified if rectify else driving
        coefficients = self.kp_detector.coefficients(rectified, coefficients)
        motion = self.pose_keypoints(kp_source, coefficients)
        return DrivingFrames(motion, motion, rectified, st)

    def expression_reference(self, source_expression: Tensor, kp_driving: HeadMotion) -> Tensor:
        """The landmarks E poses with the driving's coefficients but the source's expression (what the driving
        landmarks would be had the expression not changed)."""
        c = kp_driving.coefficients
        kept = torch.cat([c[:, POSE], source_expression.expand(c.shape[0], -1), c[:, EXPRESSION.stop :]], dim=1)
        return self.kp_detector.posed(kp_driving.canonical, kept).landmarks

    def expression_region(self, kp_source: HeadMotion, kp_driving: HeadMotion, height: int, width: int) -> Tensor:
        """(B, 1, height, width) in [0, 1], no gradient: where the expression change moved the landmarks (the
        largest |heat difference| over the landmarks); zero for an unchanged expression."""
        reference = self.expression_reference(kp_source.coefficients[:, EXPRESSION], kp_driving)
        heat = expression_heat(kp_driving.landmarks, reference, height, width, self.cfg.dense_motion.kp_variance)
        return heat.abs().amax(dim=1, keepdim=True).detach()

    def landmark_support(
        self, landmarks: Tensor, reference: Tensor, height: int, width: int, saturation: float
    ) -> Tensor:
        """``landmark_support`` with the model's heat-map variance (``dense_motion.kp_variance``), no gradient."""
        variance = self.cfg.dense_motion.kp_variance
        return landmark_support(landmarks, reference, height, width, variance, saturation).detach()

    @contextmanager
    def temporal_state_kept(self) -> Iterator[None]:
        """The block leaves CAP's state as it found it (a second rendering of the same frames)."""
        cap = self.generator.cap
        saved = None if cap is None else cap.state
        try:
            yield
        finally:
            if cap is not None:
                cap.state = saved

    def _map_reference(self, prepared: PECPrepared, kp_driving: HeadMotion) -> Tensor | None:
        """The reference landmarks of ``pechead.expression_map``; None when it is off."""
        if self.generator.expression_maps is None:
            return None
        return self.expression_reference(prepared.expression, kp_driving)

    def generate(self, prepared, kp_driving: Keypoints, z: Tensor | None) -> GeneratorOutput:
        reference = self._map_reference(prepared, kp_driving)
        return self.generator.forward_prepared(prepared, kp_driving, z, self.temporal, reference=reference)

    def forward(  # type: ignore[override]
        self, source: Tensor, driving: Tensor, coefficients: Tensor | None = None, clip_length: int = 1
    ) -> ModelOutput:
        """coefficients: optional (B, 2, COEFFICIENT_DIM) known R of (source, driving target), NaN = unknown.
        clip_length: T > 1 when the B pairs are B / T clips of T consecutive frames in order (one source each;
        ``ostnet.data.dataset.collate_training``): CAP runs over every clip; else the pairs are independent."""
        self.check_images(source=source, driving=driving)
        known_s = known_d = None
        if coefficients is not None:
            known_s, known_d = coefficients[:, 0], coefficients[:, 1]
        kp_source = self.detect(source, known_s)
        frames = self.drive(kp_source, driving, coefficients=known_d)
        z = None if frames.st is None else frames.st.z
        if clip_length > 1:
            if source.shape[0] % clip_length:
                raise ValueError(f"a batch of {source.shape[0]} frames is not made of clips of {clip_length}")
            temporal = "clips"
        else:  # independent pairs; in training CAP sees a simulated previous frame
            temporal = "train" if self.training else "none"
        prepared = self.prepare_source(source, kp_source)
        reference = self._map_reference(prepared, frames.kp_motion)
        gen = self.generator.forward_prepared(
            prepared, frames.kp_motion, self.embedding_code(z), temporal, clip_length, reference
        )
        return self.output(kp_source, frames, gen)
