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

import functools
import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import Tensor

from ostnet.errors import OstnetError
from ostnet.evaluation.metrics import METRIC_SIZE, resize_for_metrics

LANDMARKS_FILE = "shape_predictor_68_face_landmarks.dat"
RECOGNITION_FILE = "dlib_face_recognition_resnet_model_v1.dat"
CNN_DETECTOR_FILE = "mmod_human_face_detector.dat"
NUM_LANDMARKS = 68
EMBEDDING_DIM = 128


@dataclass(frozen=True)
class FaceConfig:
    """Which dlib models to run. ``model_dir=None``: the folder shipped by ``face_recognition_models``."""

    detector: Literal["hog", "cnn"] = "hog"
    upsample: int = 1  # detector up-sampling passes; 1 finds faces down to ~40 px in a 256x256 frame
    model_dir: str | None = None


@dataclass(frozen=True)
class FaceObservation:
    """What dlib found in one frame.

    ``landmarks``: (68, 2) float64 (x, y) pixels; ``embedding``: (128,) float64 descriptor (None when not
    requested); ``box``: (left, top, right, bottom) pixels; ``failure``: why nothing was found, else None.
    """

    landmarks: np.ndarray | None
    embedding: np.ndarray | None
    box: tuple[int, int, int, int] | None
    failure: str | None = None

    @property
    def found(self) -> bool:
        return self.landmarks is not None


def default_model_dir() -> Path | None:
    """The ``models`` folder of ``face_recognition_models`` (located without importing it), or None."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0]) / "models"


def _model_file(cfg: FaceConfig, name: str, what: str) -> str:
    folder = Path(cfg.model_dir) if cfg.model_dir is not None else default_model_dir()
    if folder is None:
        raise OstnetError(f"{name}: {what} model not found (install face_recognition_models or set model_dir)")
    path = folder / name
    if not path.is_file():
        raise OstnetError(f"{path}: {what} model not found")
    return str(path)


class FaceAnalyzer:
    """dlib face detector + 68-point landmark predictor + 128-d face descriptor, loaded once.

    Use :func:`get_face_analyzer` to share one instance per process. Not thread-safe.
    """

    def __init__(self, cfg: FaceConfig = FaceConfig()) -> None:
        import dlib  # heavy native module: imported only when faces are analysed

        self.cfg = cfg
        landmarks = _model_file(cfg, LANDMARKS_FILE, "dlib 68-point landmark")
        recognition = _model_file(cfg, RECOGNITION_FILE, "dlib face recognition")
        if cfg.detector == "cnn":
            cnn = dlib.cnn_face_detection_model_v1(_model_file(cfg, CNN_DETECTOR_FILE, "dlib CNN face detector"))
            self._detect = lambda img: [d.rect for d in cnn(img, cfg.upsample)]
        elif cfg.detector == "hog":
            hog = dlib.get_frontal_face_detector()
            self._detect = lambda img: list(hog(img, cfg.upsample))
        else:
            raise OstnetError(f"face detector {cfg.detector!r}: choose 'hog' or 'cnn'")
        self._shape = dlib.shape_predictor(landmarks)
        self._encoder = dlib.face_recognition_model_v1(recognition)

    def observe(self, image: np.ndarray, embed: bool = True) -> FaceObservation:
        """Analyse one (H, W, 3) uint8 RGB frame (use 256x256 frames for the metrics' units)."""
        if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise OstnetError(f"face analysis expects a (H, W, 3) uint8 RGB array, got {getattr(image, 'shape', '?')}")
        image = np.ascontiguousarray(image)
        boxes = self._detect(image)
        if not boxes:
            return FaceObservation(None, None, None, failure="no face detected")
        box = max(boxes, key=lambda r: r.width() * r.height())
        shape = self._shape(image, box)
        points = np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float64)  # (68, 2) (x, y)
        embedding = np.array(self._encoder.compute_face_descriptor(image, shape), dtype=np.float64) if embed else None
        return FaceObservation(points, embedding, (box.left(), box.top(), box.right(), box.bottom()))

    def observe_tensor(self, image: Tensor, embed: bool = True, size: int = METRIC_SIZE) -> FaceObservation:
        """Analyse a (3, H, W) float image in [0, 1] after resizing it to ``size x size``."""
        resized = resize_for_metrics(image.detach().float().cpu(), size)
        pixels = resized.clamp(0, 1).mul(255).round().to(torch.uint8).permute(1, 2, 0).numpy()
        return self.observe(pixels, embed=embed)


def get_face_analyzer(cfg: FaceConfig | None = None) -> FaceAnalyzer:
    """The process-wide FaceAnalyzer for ``cfg`` (dlib models are loaded once per process and config)."""
    return _cached_analyzer(cfg if cfg is not None else FaceConfig())


@functools.lru_cache(maxsize=4)
def _cached_analyzer(cfg: FaceConfig) -> FaceAnalyzer:
    return FaceAnalyzer(cfg)


def _check_landmarks(*sets: np.ndarray) -> None:
    for points in sets:
        if np.shape(points) != (NUM_LANDMARKS, 2):
            raise ValueError(f"expected (68, 2) landmarks, got shape {np.shape(points)}")


def akd(landmarks_a: np.ndarray, landmarks_b: np.ndarray) -> float:
    """Average keypoint distance in pixels: mean |difference| over the 68 x 2 coordinates."""
    _check_landmarks(landmarks_a, landmarks_b)
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


def hull_area(points: np.ndarray) -> float:
    """Area (pixels^2) of the convex hull of (N, 2) points; 0 for degenerate (collinear) sets."""
    pts = sorted(map(tuple, np.asarray(points, np.float64)))
    if len(pts) < 3:
        return 0.0

    def chain(seq: list[tuple[float, float]]) -> list[tuple[float, float]]:
        out: list[tuple[float, float]] = []
        for p in seq:
            while len(out) >= 2 and _cross(out[-2], out[-1], p) <= 0:
                out.pop()
            out.append(p)
        return out[:-1]

    hull = np.array(chain(pts) + chain(pts[::-1]))  # Andrew's monotone chain, counter-clockwise
    if len(hull) < 3:
        return 0.0
    x, y = hull[:, 0], hull[:, 1]
    return float(0.5 * abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))


def _cross(o: tuple[float, float], a: tuple[float, float], b: tuple[float, float]) -> float:
    return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])


def scale_error(landmarks_out: np.ndarray, landmarks_ref: np.ndarray) -> float:
    """``|log(sqrt(A_out / A_ref))|`` of the 68-landmark hull areas (relative linear face size); nan if
    either hull is degenerate."""
    _check_landmarks(landmarks_out, landmarks_ref)
    area_out, area_ref = hull_area(landmarks_out), hull_area(landmarks_ref)
    if area_out <= 0 or area_ref <= 0:
        return float("nan")
    return float(abs(0.5 * np.log(area_out / area_ref)))


def normalized_landmarks(landmarks: np.ndarray) -> np.ndarray:
    """Landmarks centred on their mean and divided by sqrt(hull area): (68, 2), unitless."""
    _check_landmarks(landmarks)
    points = np.asarray(landmarks, np.float64)
    area = hull_area(points)
    return (points - points.mean(axis=0)) / np.sqrt(area) if area > 0 else np.full_like(points, np.nan)


def pose_expression_distance(landmarks_a: np.ndarray, landmarks_b: np.ndarray) -> float:
    """Mean Euclidean distance between normalised 68-point landmark sets (see the module docstring)."""
    diff = normalized_landmarks(landmarks_a) - normalized_landmarks(landmarks_b)
    return float(np.mean(np.sqrt(np.sum(diff**2, axis=1))))
