"""Face detection (MediaPipe), square crops, temporal smoothing and tracking of faces across frames, and dlib
landmarks and descriptors (``FaceAnalyzer``; dlib and mediapipe are imported only when first used)."""

from ostnet.face.crop import (
    DEFAULT_MARGIN,
    DEFAULT_SHIFT,
    BoxSmoother,
    CropBox,
    FaceTube,
    box_iou,
    crop_and_resize,
    square_box,
    track_faces,
)
from ostnet.face.detector import FaceBox, FaceDetector
from ostnet.face.landmarks import FaceAnalyzer, FaceConfig, FaceObservation, get_face_analyzer, normalized_landmarks

__all__ = [
    "DEFAULT_MARGIN",
    "DEFAULT_SHIFT",
    "BoxSmoother",
    "CropBox",
    "FaceAnalyzer",
    "FaceBox",
    "FaceConfig",
    "FaceDetector",
    "FaceObservation",
    "FaceTube",
    "box_iou",
    "crop_and_resize",
    "get_face_analyzer",
    "normalized_landmarks",
    "square_box",
    "track_faces",
]
