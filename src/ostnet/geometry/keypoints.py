"""Keypoint-set geometry: the area of a 2-D convex hull (used by FOMM's adapt-movement-scale,
``ostnet.inference.relative``)."""

from __future__ import annotations

import numpy as np
from scipy.spatial import ConvexHull, QhullError
from torch import Tensor


def convex_hull_area(points: Tensor | np.ndarray) -> float:
    """Area of the 2-D convex hull of ``points`` (K, 2) (scipy's ``ConvexHull(...).volume``).

    Raises ValueError for fewer than 3 points or (near-)collinear points, whose hull has no area.
    """
    array = points.detach().cpu().double().numpy() if isinstance(points, Tensor) else np.asarray(points, float)
    if array.ndim != 2 or array.shape[1] != 2:
        raise ValueError(f"points must be (K, 2), got {tuple(array.shape)}")
    if array.shape[0] < 3:
        raise ValueError(f"a convex hull needs at least 3 points, got {array.shape[0]}")
    try:
        return float(ConvexHull(array).volume)
    except QhullError as exc:
        raise ValueError(f"the keypoints are degenerate (collinear or coincident): {exc}") from None
