"""Pure tensor geometry: coordinate grids, heat maps, thin-plate splines and the one warp function.

Coordinates are (x, y) in [-1, 1] where -1 and +1 are the centres of the first and last pixels, which is
``grid_sample(..., align_corners=True)`` (reference-architecture.md §0).
"""

from ostnet.geometry.grid import make_coordinate_grid
from ostnet.geometry.heatmap import keypoints_to_gaussian
from ostnet.geometry.matrix import inverse_2x2
from ostnet.geometry.tps import (
    RandomTPS,
    TPSGridGenerator,
    base_fiducial_points,
    tps_kernel,
)
from ostnet.geometry.warp import resize_flow, warp

__all__ = [
    "RandomTPS",
    "TPSGridGenerator",
    "base_fiducial_points",
    "inverse_2x2",
    "keypoints_to_gaussian",
    "make_coordinate_grid",
    "resize_flow",
    "tps_kernel",
    "warp",
]
