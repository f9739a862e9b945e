"""Typed outputs passed between the networks (no string-keyed dicts).

Conventions: images are float RGB in [0, 1], shape (B, C, H, W); coordinates are (x, y) in [-1, 1] from the
first to the last pixel centre (``align_corners=True``).
"""

from __future__ import annotations

from typing import Any, NamedTuple

from torch import Tensor


class Keypoints(NamedTuple):
    """Keypoints of one image batch.

    value: (B, K, 2) positions (x, y) in [-1, 1].
    jacobian: (B, K, 2, 2) local affine Jacobians acting on column vectors (x, y)^T, or None.
    """

    value: Tensor
    jacobian: Tensor | None = None


class DenseMotionSource(NamedTuple):
    """Source-side work of the dense motion network, reusable across driving frames.

    image: (B, C, h, w) the source at the motion resolution.
    gaussians: (B, K, h, w) Gaussians of the source keypoints, G(ks_k).
    kp: the source keypoints (value (B, K, 2), jacobian (B, K, 2, 2) or None).
    """

    image: Tensor
    gaussians: Tensor
    kp: Keypoints


class PreparedSource(NamedTuple):
    """What every generator's ``prepare_source(source, kp_source)`` returns: the per-source work done once
    and reused for every driving frame by ``forward_prepared`` (the Animator caches it per source).

    image: (B, C, H, W) the source; stem: the first encoder features F_en(I_S), (B, c_1, H, W);
    motion: the dense motion network's source part. A family that needs more per-source tensors wraps it in
    its own NamedTuple of batch-first tensors (PECHead's ``PECPrepared``: this and the source landmarks), which
    the Animator expands from a batch of one and ``ostnet export`` flattens like this one (no None fields).
    """

    image: Tensor
    stem: Tensor
    motion: DenseMotionSource


class MotionField(NamedTuple):
    """Output of the dense motion network (FOMM), at the motion resolution (h, w).

    deformation: (B, h, w, 2) backward flow: for every output location, where to sample the source.
    occlusion: (B, 1, h, w) in (0, 1), 1 = visible in the source; None when not estimated.
    mask: (B, K+1, h, w) softmax weights of the K+1 sparse motions (background first).
    sparse_deformed: (B, K+1, C, h, w) the downsampled source warped by each sparse motion.
    With codebook compensation (MCC) the generator's output carries the compensated flow and occlusion.
    """

    deformation: Tensor
    occlusion: Tensor | None
    mask: Tensor
    sparse_deformed: Tensor
    occlusion_logit: Tensor | None = None  # (B, 1, h, w) the occlusion before its sigmoid


class GeneratorOutput(NamedTuple):
    """prediction: (B, C, H, W) in [0, 1]; deformed: the source warped by the dense motion (B, C, H, W);
    codebooks: what the compensatory codebooks did (``ostnet.models.codebooks.CodebookStats``), or None."""

    prediction: Tensor
    deformed: Tensor
    motion: MotionField
    codebooks: Any = None


class ScaleTransformOutput(NamedTuple):
    """Output of the scale transformation module (Sec. 3.2).

    z: (B, Z) latent scale code (Eq. 2).
    fiducial: (B, T, 2) predicted fiducial points C (Eq. 2), (x, y) in [-1, 1].
    grid: (B, H, W, 2) scale deformation map M_tran (sampling locations in the driving image).
    rectified: (B, C, H, W) the scale-rectified driving image I_D^ (Eq. 3).
    """

    z: Tensor
    fiducial: Tensor
    grid: Tensor
    rectified: Tensor


class ModelOutput(NamedTuple):
    """Everything one forward pass of OSTNet produces.

    For models without ST (baseline, FOMM), ``rectified`` is the driving image itself, ``z`` and
    ``fiducial_points`` are None and ``kp_rectified`` equals ``kp_driving``.
    """

    prediction: Tensor  # (B, C, H, W) I_rst
    rectified: Tensor  # (B, C, H, W) I_D^
    z: Tensor | None  # (B, Z)
    fiducial_points: Tensor | None  # (B, T, 2)
    kp_source: Keypoints
    kp_driving: Keypoints
    kp_rectified: Keypoints
    deformation: Tensor  # (B, h, w, 2) M_{S<-D^}
    occlusion: Tensor | None  # (B, 1, h, w)
    deformed: Tensor  # (B, C, H, W) source warped by the dense motion (visualisation)
    codebooks: Any = None  # CodebookStats of models with compensatory codebooks, else None
