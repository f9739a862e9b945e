"""FOMM's relative keypoint normalisation for animation (reference-architecture.md §8).

With kp_s (source), kp_d1 (first / best-aligned driving frame) and kp_dt (current driving frame):

* relative movement: value = kp_s + alpha (kp_dt - kp_d1);
* adapt movement scale: alpha = sqrt(area(hull(kp_s))) / sqrt(area(hull(kp_d1))), from the first batch
  element's keypoints, otherwise alpha = 1;
* relative Jacobian (only together with relative movement): J = (J_dt J_d1^{-1}) J_s.

This is the anchor-frame procedure OSTNet removes the need for (paper Sec. 1, Fig. 1); ostnet keeps it for the
FOMM baselines and for comparison. It acts on the networks' ``Keypoints``, so it lives in the inference layer
(the hull area itself is pure geometry: ``ostnet.geometry.keypoints.convex_hull_area``).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from ostnet.geometry.keypoints import convex_hull_area
from ostnet.geometry.matrix import inverse_2x2
from ostnet.models.outputs import Keypoints


def movement_scale(kp_source: Keypoints, kp_driving_initial: Keypoints) -> float:
    """FOMM's adapt_movement_scale: sqrt(hull area of kp_s) / sqrt(hull area of kp_d1), first batch elements."""
    return float(np.sqrt(convex_hull_area(kp_source.value[0])) / np.sqrt(convex_hull_area(kp_driving_initial.value[0])))


def relative_motion(
    kp_source: Keypoints,
    kp_driving: Keypoints,
    kp_driving_initial: Keypoints,
    scale: float | Tensor = 1.0,
    relative_jacobian: bool = True,
) -> Keypoints:
    """The tensor part of ``normalize_relative`` (no host work): value = kp_s + scale (kp_dt - kp_d1) and, with
    ``relative_jacobian``, J = (J_dt J_d1^{-1}) J_s (needs all three Jacobians)."""
    value = (kp_driving.value - kp_driving_initial.value) * scale + kp_source.value
    jacobian = kp_driving.jacobian
    if relative_jacobian and jacobian is not None:
        if kp_source.jacobian is None or kp_driving_initial.jacobian is None:
            raise ValueError("relative_jacobian needs the Jacobians of all three keypoint sets")
        change = torch.matmul(jacobian, inverse_2x2(kp_driving_initial.jacobian))
        jacobian = torch.matmul(change, kp_source.jacobian)
    return Keypoints(value=value, jacobian=jacobian)


def normalize_relative(
    kp_source: Keypoints,
    kp_driving: Keypoints,
    kp_driving_initial: Keypoints,
    *,
    adapt_movement_scale: bool = False,
    relative_movement: bool = True,
    relative_jacobian: bool = True,
) -> Keypoints:
    """FOMM's ``normalize_kp``: move the source keypoints as the driving ones moved since the initial frame.

    Args:
        kp_source: keypoints of the source image, value (B, K, 2), jacobian (B, K, 2, 2) or None.
        kp_driving: keypoints of the current driving frame.
        kp_driving_initial: keypoints of the reference driving frame (B, or 1 broadcastable).
        adapt_movement_scale: scale the movement by sqrt(hull area ratio) of the first batch element.
        relative_movement: if False, ``kp_driving`` is returned unchanged (absolute mode).
        relative_jacobian: also make the Jacobians relative (needs all three Jacobians).

    Returns:
        Keypoints with value (B, K, 2) and jacobian (B, K, 2, 2) (``kp_driving.jacobian`` if not relative).
    """
    if not relative_movement:
        return kp_driving
    scale = movement_scale(kp_source, kp_driving_initial) if adapt_movement_scale else 1.0
    return relative_motion(kp_source, kp_driving, kp_driving_initial, scale, relative_jacobian)
