"""Face metrics with dlib: AKD, AED, CSIM, scale error and pose/expression distance (paper Sec. 4.1).

The paper takes AKD and AED from FOMM, whose reference code uses face-alignment (AKD) and OpenFace (AED).
Neither is available here, so we use dlib's models as shipped by ``face_recognition_models``; numbers are
therefore comparable between our runs, not with the paper's tables. Definitions:

* **Face detection**: dlib's HOG frontal face detector (``dlib.get_frontal_face_detector()``) with one
  up-sampling pass, on the 256x256 uint8 RGB frame. We chose HOG over the CNN ``mmod`` detector because it
  is ~15-60x faster on CPU (about 20 ms vs 0.3-1.5 s per 256x256 frame) and finds the centred, frontal
  VoxCeleb-style faces; it misses strong profiles, and those frames are counted as detection failures.
  ``FaceConfig(detector="cnn")`` switches to the CNN detector. With several faces, the largest box wins.
* **Landmarks**: the 68 iBUG points of ``shape_predictor_68_face_landmarks.dat``, (x, y) in pixels of the
  256x256 frame (pixel centres at integer coordinates, origin top-left).
* **AKD** (pixels at 256x256): mean absolute difference over all 68 x 2 landmark coordinates, the
  convention of FOMM's pose-evaluation ``cmp.py`` and MCNet's ``cmp_kp.py``. Frames where either face is
  not detected have no AKD and are counted as detection failures.
* **AED** (unitless): the Euclidean (L2) distance between the two 128-d dlib face descriptors
  (``dlib_face_recognition_resnet_model_v1.dat``, computed on the detected face with its 68 landmarks,
  no jittering). It is dlib's native metric: different people are usually > 0.6 apart. Symmetric, 0 for
  identical frames. (pose-evaluation used the mean absolute difference of OpenFace descriptors and MCNet
  the squared L2 distance, so the scale of the numbers differs from the paper's.)
* **CSIM**: cosine similarity of the same descriptors, in [-1, 1] (1 = same direction); for
  cross-identity identity preservation.
* **Scale error** (ours, unitless): ``|log(sqrt(A_out / A_ref))|`` where A is the area of the convex hull
  of the 68 landmarks: the absolute log ratio of linear face sizes (0.1 ~ 10 % larger or smaller).
* **Pose/expression distance** (unitless): landmarks are centred on their mean and divided by the square
  root of their hull area (FOMM's ``find_best_frame`` normalisation); the distance is the mean Euclidean
  distance over the 68 normalised points. Scale- and position-invariant, for cross-identity pairs.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from ostnet.evaluation.metrics import METRIC_SIZE, resize_for_metrics
from ostnet.face.landmarks import (
    EMBEDDING_DIM,
    FaceAnalyzer,
    FaceConfig,
    FaceObservation,
    check_landmarks,
    get_face_analyzer,
    hull_area,
    normalized_landmarks,
)

__all__ = [
    "FaceAnalyzer",
    "FaceConfig",
    "FaceObservation",
    "aed",
    "akd",
    "csim",
    "get_face_analyzer",
    "hull_area",
    "normalized_landmarks",
    "observe_tensor",
    "pose_expression_distance",
    "scale_error",
]


def observe_tensor(
    analyzer: FaceAnalyzer, image: Tensor, embed: bool = True, size: int = METRIC_SIZE
) -> FaceObservation:
    """Analyse a (3, H, W) float image in [0, 1] after resizing it to ``size x size``."""
    resized = resize_for_metrics(image.detach().float().cpu(), size)
    pixels = resized.clamp(0, 1).mul(255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    return analyzer.observe(pixels, embed=embed)


def akd(landmarks_a: np.ndarray, landmarks_b: np.ndarray) -> float:
    """Average keypoint distance in pixels: mean |difference| over the 68 x 2 coordinates."""
    check_landmarks(landmarks_a, landmarks_b)
    return float(np.mean(np.abs(np.asarray(landmarks_a, np.float64) - np.asarray(landmarks_b, np.float64))))


def aed(embedding_a: np.ndarray, embedding_b: np.ndarray) -> float:
    """Average Euclidean distance term: L2 distance between two 128-d dlib face descriptors."""
    a, b = np.asarray(embedding_a, np.float64), np.asarray(embedding_b, np.float64)
    if a.shape != (EMBEDDING_DIM,) or b.shape != (EMBEDDING_DIM,):
        raise ValueError(f"expected two (128,) descriptors, got {a.shape} and {b.shape}")
    return float(np.sqrt(np.sum((a - b) ** 2)))


def csim(embedding_a: np.ndarray, embedding_b: np.ndarray) -> float:
    """Cosine similarity of two face descriptors, in [-1, 1]."""
    a, b = np.asarray(embedding_a, np.float64), np.asarray(embedding_b, np.float64)
    return float(a @ b / max(np.linalg.norm(a) * np.linalg.norm(b), 1e-12))


def scale_error(landmarks_out: np.ndarray, landmarks_ref: np.ndarray) -> float:
    """``|log(sqrt(A_out / A_ref))|`` of the 68-landmark hull areas (relative linear face size); nan if
    either hull is degenerate."""
    check_landmarks(landmarks_out, landmarks_ref)
    area_out, area_ref = hull_area(landmarks_out), hull_area(landmarks_ref)
    if area_out <= 0 or area_ref <= 0:
        return float("nan")
    return float(abs(0.5 * np.log(area_out / area_ref)))


def pose_expression_distance(landmarks_a: np.ndarray, landmarks_b: np.ndarray) -> float:
    """Mean Euclidean distance between normalised 68-point landmark sets (see the module docstring)."""
    diff = normalized_landmarks(landmarks_a) - normalized_landmarks(landmarks_b)
    return float(np.mean(np.sqrt(np.sum(diff**2, axis=1))))
