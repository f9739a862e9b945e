"""Equivariance loss of the keypoint detector (paper Eq. 8, App. B; reference-architecture.md §6.2).

    L_eq = | F_kp(T(I_S)) - T(F_kp(I_S)) |

with FOMM's random affine + TPS transform T (``ostnet.geometry.RandomTPS``). As in the paper (and unlike FOMM,
which uses the driving frame) the transform is applied to the source image I_S. With the transformed image
X'(p) = I_S(T(p)) and kp' = F_kp(X'):

* value term:    mean | kp(I_S) - T(kp') |
* Jacobian term: mean | I - J(I_S)^-1 (dT/dp(kp') J') |   (only when the detector predicts Jacobians)

All arithmetic after the detector runs in float32 with autocast disabled (matrix inverse and 2x2 products).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from typing import NamedTuple

import torch
from torch import Tensor

from ostnet.config import LossConfig
from ostnet.geometry import RandomTPS
from ostnet.models.outputs import Keypoints

KeypointFn = Callable[[Tensor], Keypoints]

_LOSS = LossConfig()  # FOMM's transform strengths, declared in the config
_MIX_A = 6364136223846793005
_MIX_B = 1442695040888963407


class EquivarianceTerms(NamedTuple):
    """Unweighted equivariance losses: value (scalar); jacobian (scalar) or None without Jacobians."""

    value: Tensor
    jacobian: Tensor | None


def sample_seed(seed: int, index: int) -> int:
    """A 63-bit seed for one training sample, mixed from a step-level seed and the dataset index."""
    return (seed * _MIX_A + (index + 1) * _MIX_B) % (2**63)


def random_tps_for_samples(
    indices: Sequence[int],
    seed: int,
    sigma_affine: float = _LOSS.tps_sigma_affine,
    sigma_tps: float = _LOSS.tps_sigma_tps,
    points: int = _LOSS.tps_points,
    device: torch.device | str | None = None,
) -> RandomTPS:
    """One RandomTPS whose b-th transform depends only on (seed, indices[b]).

    Drawing each sample's transform from its own generator makes the loss independent of how a global batch
    is split over processes (DDP equivalence) and of the global RNG state (exact resume).
    """
    parts = [
        RandomTPS(
            1,
            sigma_affine,
            sigma_tps,
            points,
            device=device,
            generator=torch.Generator().manual_seed(sample_seed(seed, int(i))),
        )
        for i in indices
    ]
    if not parts:
        raise ValueError("random_tps_for_samples needs at least one sample index")
    combined = copy.copy(parts[0])
    combined.theta = torch.cat([p.theta for p in parts])  # (B, 2, 3)
    combined.control_params = torch.cat([p.control_params for p in parts])  # (B, 1, M)
    return combined


def equivariance_loss(
    kp_detector: KeypointFn,
    image: Tensor,
    kp_image: Keypoints,
    transform: RandomTPS,
    use_jacobian: bool = True,
) -> EquivarianceTerms:
    """Eq. 8 for one image batch.

    Args:
        kp_detector: image (B, C, H, W) -> Keypoints (the model's F_kp).
        image: (B, C, H, W) in [0, 1], the source I_S.
        kp_image: F_kp(image), already computed by the forward pass (value (B, K, 2), jacobian (B, K, 2, 2)).
        transform: a RandomTPS with batch size B; T maps transformed-frame coordinates to ``image``
            coordinates.
        use_jacobian: add the Jacobian term (needs Jacobians from the detector).

    Returns:
        EquivarianceTerms with scalar means (0 for a detector exactly equivariant under ``transform``).
    """
    transformed = transform.warp_image(image)  # (B, C, H, W), X'(p) = I_S(T(p))
    kp_transformed = kp_detector(transformed)
    with torch.autocast(device_type=image.device.type, enabled=False):
        value_back = transform.transform_points(kp_transformed.value.float())  # (B, K, 2)
        value_loss = (kp_image.value.float() - value_back).abs().mean()
        if not use_jacobian or kp_image.jacobian is None or kp_transformed.jacobian is None:
            return EquivarianceTerms(value=value_loss, jacobian=None)
        grad_t = transform.jacobian(kp_transformed.value.float())  # (B, K, 2, 2)
        jac_back = grad_t @ kp_transformed.jacobian.float()
        normed = torch.linalg.inv(kp_image.jacobian.float()) @ jac_back
        eye = torch.eye(2, dtype=normed.dtype, device=normed.device)
        jacobian_loss = (eye - normed).abs().mean()
    return EquivarianceTerms(value=value_loss, jacobian=jacobian_loss)
