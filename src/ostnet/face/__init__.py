"""Face detection (MediaPipe), square crops, temporal smoothing and tracking of faces across frames."""

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

__all__ = [
    "DEFAULT_MARGIN",
    "DEFAULT_SHIFT",
    "BoxSmoother",
    "CropBox",
    "FaceBox",
    "FaceDetector",
    "FaceTube",
    "box_iou",
    "crop_and_resize",
    "square_box",
    "track_faces",
]
