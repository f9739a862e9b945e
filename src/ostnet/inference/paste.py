"""Face crops in and out for ``ostnet animate``: where the face is cut from each input, and how the
animated face goes back.

* ``prepare_source``: load the portrait, find its face (MediaPipe full-range model, which ignores animal
  faces) and cut the square crop the model sees; ``DrivingFaces`` follows one face through the driving
  frames (MediaPipe ``auto``: full range plus short range for close-ups) and gives each frame its square
  crop box, keeping the last box where no usable face is found; ``smooth_stream`` smooths those boxes with
  ``BoxSmoother`` over a bounded look-ahead window.
* ``PasteBack``: the inverse of ``ostnet.face.crop.crop_and_resize``. A crop box ``(cx, cy, size)`` in source
  pixels (edge-based: pixel ``i`` covers ``[i, i + 1)``) was resized to the model's ``S x S`` image, so the
  source pixel whose centre is at ``x + 0.5`` sits at ``u = (x + 0.5 - x0) * S / size - 0.5`` pixel centres
  of the animated face, i.e. at ``2 u / (S - 1) - 1`` in the project's [-1, 1] convention
  (``align_corners=True``). The face is sampled there (bilinear, ``ostnet.geometry.warp``) and blended over
  the source with a feathered mask that is 1 inside the box and falls smoothly to 0 over its outer
  ``feather`` fraction, so the seam is invisible where the model reproduces the source's background.
* ``side_by_side``: panels resized to one height and put next to each other.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple, TypeVar

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from ostnet.errors import OstnetError
from ostnet.face.crop import DEFAULT_MARGIN, BoxSmoother, CropBox, box_iou, crop_and_resize, square_box
from ostnet.face.detector import FaceBox, FaceDetector
from ostnet.geometry import warp
from ostnet.io.image import load_image, to_tensor, to_uint8

DEFAULT_FEATHER = 0.12  # fraction of the half-side over which the mask fades out
T = TypeVar("T")
FOLLOW_IOU = 0.2  # a driving face overlapping the followed one at least this much is the same person


@dataclass(frozen=True)
class CropOptions:
    """How faces are found and cropped. ``enabled=False`` (``--no-crop``): inputs are already face crops
    (a non-square input is cut to its centred square). Sizes in pixels of the original images."""

    enabled: bool = True
    face_index: int = 0  # face of the source, 0 = largest
    driving_face_index: int = 0  # face of the driving video in its first frame with a face, 0 = largest
    margin: float = DEFAULT_MARGIN  # crop side = (1 + margin) x face size
    min_face: float = 32.0  # faces smaller than this (max of box width/height) are not used
    smooth_sigma: float = 3.0  # Gaussian sigma (frames) of the driving crop smoothing; 0 = off


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


def _smoothstep(x: Tensor) -> Tensor:
    x = x.clamp(0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


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


class PasteBack:
    """Composite animated faces into one full-resolution source image (all geometry computed once).

    Args:
        image: the original source, (H, W, 3) uint8 RGB.
        box: the square crop the model's source image was cut from (``ostnet.face.crop.square_box``).
        size: the model's image size S.
        feather: width of the soft border as a fraction of the box's half-side, in (0, 1].

    Calling it with faces (B, 3, S, S) float in [0, 1] returns B frames (H, W, 3) uint8: the source with the
    box region replaced by the (resampled) faces; pixels outside the box are the source's, unchanged.
    """

    def __init__(self, image: np.ndarray, box: CropBox, size: int, feather: float = DEFAULT_FEATHER) -> None:
        if not 0.0 < feather <= 1.0:
            raise ValueError(f"feather must be in (0, 1], got {feather}")
        if box.size <= 0 or size < 2:
            raise ValueError(f"need a positive box and a model size >= 2, got {box} and {size}")
        self.image = np.ascontiguousarray(image)
        height, width = image.shape[:2]
        # The integer pixel range touched by the box, clipped to the image.
        self.x0, self.y0 = max(math.floor(box.x0), 0), max(math.floor(box.y0), 0)
        self.x1, self.y1 = min(math.ceil(box.x1), width), min(math.ceil(box.y1), height)
        if self.x1 <= self.x0 or self.y1 <= self.y0:
            raise ValueError(f"crop box {box} does not overlap the {width}x{height} image")
        self.grid, self.mask = _region_geometry(box, size, (self.x0, self.y0, self.x1, self.y1), feather)
        region = self.image[self.y0 : self.y1, self.x0 : self.x1]
        self.background = to_tensor(region)[None]  # (1, 3, h, w)

    @property
    def shape(self) -> tuple[int, int]:
        """(H, W) of the output frames: the source image's size."""
        return self.image.shape[0], self.image.shape[1]

    def region(self, faces: Tensor) -> Tensor:
        """The blended box region (B, 3, h, w) in [0, 1] for faces (B, 3, S, S)."""
        faces = faces.detach().to("cpu", torch.float32)
        grid = self.grid.expand(faces.shape[0], -1, -1, -1)
        sampled = warp(faces, grid, padding_mode="border")  # (B, 3, h, w)
        return torch.lerp(self.background, sampled, self.mask)

    def __call__(self, faces: Tensor) -> list[np.ndarray]:
        regions = to_uint8(self.region(faces))  # (B, h, w, 3)
        frames = []
        for region in regions:
            frame = self.image.copy()
            frame[self.y0 : self.y1, self.x0 : self.x1] = region
            frames.append(frame)
        return frames


def _region_geometry(
    box: CropBox, size: int, bounds: tuple[int, int, int, int], feather: float
) -> tuple[Tensor, Tensor]:
    """Sampling grid (1, h, w, 2) into the S x S face and the feathered mask (1, 1, h, w) for a pixel region.

    ``bounds`` = (x0, y0, x1, y1) integer pixel edges of the region in the source image.
    """
    x0, y0, x1, y1 = bounds
    scale = size / box.size  # face pixels per source pixel

    def axis(start: int, stop: int, box_start: float) -> Tensor:
        centres = torch.arange(start, stop, dtype=torch.float64) + 0.5  # source pixel centres (edge coords)
        u = (centres - box_start) * scale - 0.5  # face pixel-centre index
        return (2.0 * u / (size - 1) - 1.0).float()  # [-1, 1] inside the box

    xs, ys = axis(x0, x1, box.x0), axis(y0, y1, box.y0)
    grid = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), dim=-1)[None]  # (1, h, w, 2), last axis (x, y)
    # Distance to the box edge in units of the half-side: 0 on the edge, 1 at the centre.
    half = 0.5 * box.size
    dist_x = 1.0 - (torch.arange(x0, x1, dtype=torch.float64) + 0.5 - box.cx).abs() / half
    dist_y = 1.0 - (torch.arange(y0, y1, dtype=torch.float64) + 0.5 - box.cy).abs() / half
    mask = _smoothstep(dist_y.float()[:, None] / feather) * _smoothstep(dist_x.float()[None, :] / feather)
    return grid, mask[None, None]  # mask: (1, 1, h, w)


def resize_to_height(image: np.ndarray, height: int) -> np.ndarray:
    """Resize (H, W, 3) uint8 to the given height, keeping the aspect ratio (bicubic, PIL)."""
    h, w = image.shape[:2]
    if h == height:
        return image
    width = max(1, round(w * height / h))
    return np.asarray(Image.fromarray(image).resize((width, height), Image.Resampling.BICUBIC))


def side_by_side(panels: list[np.ndarray], height: int) -> np.ndarray:
    """Concatenate (H_i, W_i, 3) uint8 panels left to right, each resized to ``height`` first."""
    return np.concatenate([resize_to_height(panel, height) for panel in panels], axis=1)
