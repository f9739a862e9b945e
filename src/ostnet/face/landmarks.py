"""dlib faces: detection, the 68 iBUG landmarks and the 128-d face descriptor, loaded once per process.

Shared by the face metrics (``ostnet.evaluation.face_metrics``: AKD, AED, CSIM, ...) and best-frame animation
(``ostnet.inference.best_frame``), so it lives in the low-level ``face`` layer. dlib is imported only when a
``FaceAnalyzer`` is built (a heavy native module). Conventions:

* **Face detection**: dlib's HOG frontal face detector with ``upsample`` up-sampling passes (default 1), or
  the CNN ``mmod`` detector (``FaceConfig(detector="cnn")``); with several faces, the largest box wins.
* **Landmarks**: the 68 points of ``shape_predictor_68_face_landmarks.dat``, (x, y) in pixels of the frame
  (pixel centres at integer coordinates, origin top-left).
* **Descriptor**: ``dlib_face_recognition_resnet_model_v1.dat`` on the detected face with its 68 landmarks,
  no jittering.
* **Normalised landmarks**: centred on their mean and divided by the square root of their hull area (FOMM's
  ``find_best_frame`` normalisation): scale- and position-invariant.
"""

from __future__ import annotations

import functools
import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from ostnet.errors import OstnetError
from ostnet.geometry.keypoints import convex_hull_area
from ostnet.options import declared, option

LANDMARKS_FILE = "shape_predictor_68_face_landmarks.dat"
RECOGNITION_FILE = "dlib_face_recognition_resnet_model_v1.dat"
CNN_DETECTOR_FILE = "mmod_human_face_detector.dat"
NUM_LANDMARKS = 68
EMBEDDING_DIM = 128


@declared
class FaceConfig:
    """Which dlib models to run. ``model_dir=None``: the folder shipped by ``face_recognition_models``."""

    detector: Literal["hog", "cnn"] = option("hog", flag="--face-detector", help="dlib face detector (face metrics)")
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


def get_face_analyzer(cfg: FaceConfig | None = None) -> FaceAnalyzer:
    """The process-wide FaceAnalyzer for ``cfg`` (dlib models are loaded once per process and config)."""
    return _cached_analyzer(cfg if cfg is not None else FaceConfig())


@functools.lru_cache(maxsize=4)
def _cached_analyzer(cfg: FaceConfig) -> FaceAnalyzer:
    return FaceAnalyzer(cfg)


def check_landmarks(*sets: np.ndarray) -> None:
    for points in sets:
        if np.shape(points) != (NUM_LANDMARKS, 2):
            raise ValueError(f"expected (68, 2) landmarks, got shape {np.shape(points)}")


def hull_area(points: np.ndarray) -> float:
    """Area (pixels^2) of the convex hull of (N, 2) points; 0 for degenerate (collinear) sets or fewer than 3."""
    try:
        return convex_hull_area(np.asarray(points, np.float64))
    except ValueError:
        return 0.0


def normalized_landmarks(landmarks: np.ndarray) -> np.ndarray:
    """Landmarks centred on their mean and divided by sqrt(hull area): (68, 2), unitless."""
    check_landmarks(landmarks)
    points = np.asarray(landmarks, np.float64)
    area = hull_area(points)
    return (points - points.mean(axis=0)) / np.sqrt(area) if area > 0 else np.full_like(points, np.nan)
