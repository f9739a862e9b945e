"""Face crops of the inputs, in one place: where the face is cut from the portrait and from every driving frame.

* ``prepare_source``: load the portrait, find its face (MediaPipe full-range model, which ignores animal
  faces) and cut the square crop the model sees (``SourceImage``).
* ``DrivingFaces`` follows one face through the driving frames (MediaPipe ``auto``: full range plus short
  range for close-ups) and gives each frame its square crop box, keeping the last box where no usable face
  is found; ``smooth_stream`` smooths those boxes with ``BoxSmoother`` over a bounded look-ahead window (the
  same result as smoothing the whole track, with bounded memory).
* ``DrivingVideo``: the driving video as a stream of ``DrivingCrop`` (frame, crop, box): decoded one frame at
  a time (PyAV), followed, smoothed and cropped to the model's size; ``replay`` cuts the same crops again
  from recorded boxes (best-frame mode's second pass). Stage times go to a ``Stopwatch``.

How the animated face goes back into the source is ``ostnet.inference.paste``.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from contextlib import closing
from pathlib import Path
from typing import NamedTuple, TypeVar

import numpy as np

from ostnet.errors import OstnetError
from ostnet.face.crop import BoxSmoother, CropBox, box_iou, crop_and_resize, square_box
from ostnet.face.detector import FaceBox, FaceDetector
from ostnet.inference.options import CropOptions
from ostnet.inference.timing import Stopwatch
from ostnet.io.image import load_image
from ostnet.io.video import iter_frames

T = TypeVar("T")
FOLLOW_IOU = 0.2  # a driving face overlapping the followed one at least this much is the same person


class SourceImage(NamedTuple):
    """The portrait: ``image`` (H, W, 3) uint8 as loaded, the crop ``box`` and the model input ``crop``
    (S, S, 3) uint8."""

    image: np.ndarray
    box: CropBox
    crop: np.ndarray


def centre_box(width: int, height: int) -> CropBox:
    """The largest centred square of a width x height frame (the ``--no-crop`` box)."""
    return CropBox(width / 2, height / 2, float(min(width, height)))


def _face_side(face: FaceBox) -> float:
    return max(face.width, face.height)


def prepare_source(path: Path, options: CropOptions, size: int) -> SourceImage:
    """Load the portrait at ``path``, find its face and crop it to (size, size). Raises ``OstnetError``
    for an unreadable image, no face, a ``face_index`` beyond the faces found, or a face too small."""
    image = load_image(path)
    height, width = image.shape[:2]
    if not options.enabled:
        box = centre_box(width, height)
    else:
        with FaceDetector(model="full") as detector:
            faces = detector.detect(image)
        if not faces:
            raise OstnetError(f"{path}: no face found in the source image (use --no-crop for a face crop)")
        if options.face_index >= len(faces):
            raise OstnetError(f"{path}: --face-index {options.face_index}, but only {len(faces)} face(s) found")
        face = faces[options.face_index]
        if _face_side(face) < options.min_face:
            raise OstnetError(
                f"{path}: the face is too small ({_face_side(face):.0f} px, need {options.min_face:g} px; "
                "use a larger image or lower --min-face)"
            )
        box = square_box(face, width, height, options.margin)
    return SourceImage(image, box, crop_and_resize(image, box, size))


class DrivingFaces:
    """Follows one face through the driving frames and gives each frame its square crop box (unsmoothed).

    Call ``prime`` with the first frames (until one has a usable face) before ``box_for``; frames without a
    usable face (none, or smaller than ``min_face``) keep the last box and are counted in ``missing``. The
    face is the one overlapping the previously followed face most; the first is picked by
    ``driving_face_index``. With cropping disabled every frame gets its centred square. ``detector``: any
    object with ``detect(frame) -> list[FaceBox]`` (default: a MediaPipe ``FaceDetector(model="auto")``).
    """

    def __init__(self, path: Path, options: CropOptions, detector: FaceDetector | None = None) -> None:
        self.path, self.options = Path(path), options
        self.smooth_sigma = options.smooth_sigma if options.enabled else 0.0
        self.missing = 0
        if detector is None and options.enabled:
            detector = FaceDetector(model="auto")
        self._detector = detector
        self._face: FaceBox | None = None
        self._box: CropBox | None = None
        self._largest_small = 0.0

    def __enter__(self) -> DrivingFaces:
        return self

    def __exit__(self, *exc: object) -> None:
        if hasattr(self._detector, "close"):
            self._detector.close()

    def prime(self, frames: Iterable[np.ndarray]) -> None:
        """Find the first usable face; ``OstnetError`` if no frame has one."""
        if not self.options.enabled:
            return
        count = 0
        for frame in frames:
            count += 1
            if self._follow(frame):
                return
        if self._largest_small > 0:
            raise OstnetError(
                f"{self.path}: the face is too small in every frame (at most {self._largest_small:.0f} px, "
                f"need {self.options.min_face:g} px; lower --min-face)"
            )
        raise OstnetError(f"{self.path}: no face found in any of its {count} frames")

    def box_for(self, frame: np.ndarray) -> CropBox:
        """The crop box of the next frame (the last box if this frame has no usable face)."""
        if not self.options.enabled:
            return centre_box(frame.shape[1], frame.shape[0])
        if self._box is None:
            raise RuntimeError("DrivingFaces.prime() first")
        if not self._follow(frame):
            self.missing += 1
        return self._box

    def _follow(self, frame: np.ndarray) -> bool:
        faces = self._detector.detect(frame)
        usable = [face for face in faces if _face_side(face) >= self.options.min_face]
        if len(usable) < len(faces):
            self._largest_small = max(self._largest_small, max(_face_side(f) for f in faces))
        face = self._choose(usable)
        if face is None:
            return False
        self._face = face
        self._box = square_box(face, frame.shape[1], frame.shape[0], self.options.margin)
        return True

    def _choose(self, faces: list[FaceBox]) -> FaceBox | None:
        if not faces:
            return None
        index = self.options.driving_face_index
        if self._face is not None:
            overlap, best = max((box_iou(self._face, face), i) for i, face in enumerate(faces))
            if overlap >= FOLLOW_IOU:
                return faces[best]
            return faces[min(index, len(faces) - 1)]
        return faces[index] if index < len(faces) else None


def smoothing_radius(sigma: float) -> int:
    """Frames of look-ahead (and history) ``BoxSmoother(sigma)`` needs: its kernel radius."""
    return 0 if sigma == 0 else max(1, math.ceil(3 * sigma))


def smooth_stream(items: Iterable[tuple[T, CropBox]], smoother: BoxSmoother) -> Iterator[tuple[T, CropBox]]:
    """Smooth a stream of (item, box) pairs with bounded look-ahead; equal to ``smoother.smooth`` of the
    whole track. Holds ``radius + 1`` items and ``radius`` past boxes."""
    radius = smoothing_radius(smoother.sigma)
    past: deque[CropBox] = deque(maxlen=radius)
    ahead: deque[tuple[T, CropBox]] = deque()

    def emit() -> tuple[T, CropBox]:
        window = [*past, *(box for _, box in ahead)]
        smoothed = smoother.smooth(window)[len(past)]
        item, box = ahead.popleft()
        if radius:
            past.append(box)
        return item, smoothed

    for pair in items:
        ahead.append(pair)
        if len(ahead) > radius:
            yield emit()
    while ahead:
        yield emit()


class DrivingCrop(NamedTuple):
    """One driving frame: the decoded frame (H, W, 3) uint8, its crop (S, S, 3) uint8 and the crop box."""

    frame: np.ndarray
    crop: np.ndarray
    box: CropBox


class DrivingVideo:
    """The first ``total`` frames of a driving video as face crops of ``size`` x ``size``, streamed.

    ``crops()`` finds the face (an ``OstnetError`` if no frame has a usable one) and returns the lazy stream of
    ``DrivingCrop``; ``replay(boxes)`` decodes again and cuts the given boxes without detection. At most the
    smoothing look-ahead is held in memory. Decoding is timed as ``decode``, detection and cropping as
    ``detect_crop`` on ``watch``. ``detector``: see ``DrivingFaces``. Use it as a context manager (it closes
    the detector).
    """

    def __init__(
        self,
        path: Path,
        options: CropOptions,
        size: int,
        total: int,
        watch: Stopwatch | None = None,
        detector: FaceDetector | None = None,
    ) -> None:
        self.path, self.size, self.total = Path(path), size, total
        self.watch = watch if watch is not None else Stopwatch()
        self.faces = DrivingFaces(self.path, options, detector)

    def __enter__(self) -> DrivingVideo:
        return self

    def __exit__(self, *exc: object) -> None:
        self.faces.__exit__(*exc)

    @property
    def missing(self) -> int:
        """Frames so far without a usable face (they kept the last crop box)."""
        return self.faces.missing

    def frames(self) -> Iterator[np.ndarray]:
        """At most ``total`` decoded frames, timing the decoder."""
        with closing(iter_frames(self.path)) as frames:
            for _ in range(self.total):
                with self.watch("decode"):
                    frame = next(frames, None)
                if frame is None:
                    return
                yield frame

    def crops(self) -> Iterator[DrivingCrop]:
        """Find the face in the first frames (now), then the lazy stream of detected, smoothed crops."""
        self.faces.prime(self.frames())
        return self._crop_stream()

    def _crop_stream(self) -> Iterator[DrivingCrop]:
        def raw_boxes() -> Iterator[tuple[np.ndarray, CropBox]]:
            for frame in self.frames():
                with self.watch("detect_crop"):
                    box = self.faces.box_for(frame)
                yield frame, box

        for frame, box in smooth_stream(raw_boxes(), BoxSmoother(self.faces.smooth_sigma)):
            yield self._cut(frame, box)

    def replay(self, boxes: Sequence[CropBox]) -> Iterator[DrivingCrop]:
        """The crops of the given boxes (one per frame, e.g. recorded from ``crops()``), without detection."""
        for frame, box in zip(self.frames(), boxes, strict=False):
            yield self._cut(frame, box)

    def _cut(self, frame: np.ndarray, box: CropBox) -> DrivingCrop:
        with self.watch("detect_crop"):
            return DrivingCrop(frame, crop_and_resize(frame, box, self.size), box)


__all__ = [
    "FOLLOW_IOU",
    "CropOptions",
    "DrivingCrop",
    "DrivingFaces",
    "DrivingVideo",
    "SourceImage",
    "centre_box",
    "prepare_source",
    "smooth_stream",
    "smoothing_radius",
]
