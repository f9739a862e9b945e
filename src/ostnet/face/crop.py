"""Square face crops: box geometry, temporal smoothing, cropping with edge padding, and face tracking.

Pixel coordinates here follow the detector: x to the right, y down, in pixels, measured from the top-left
*edge* of the frame (pixel ``i`` covers ``[i, i + 1)``).

Framing calibration (``DEFAULT_MARGIN``, ``DEFAULT_SHIFT``): on the 8 face-centred sample clips
(/work/shared/data/clips, LivePortrait examples, static crops like VoxCeleb's) the MediaPipe full-range box
is square, the clip side is 1.51-1.98 (median 1.72) times the face size, and the face centre sits 0.55-0.66
(median 0.59) of the height down, i.e. the crop centre is about 0.15 face sizes above the face centre
(the box spans eyebrows to chin; the crop must hold forehead and hair).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
from PIL import Image

from ostnet.face.detector import FaceBox

DEFAULT_MARGIN = 0.7  # crop side = 1.7 x face size (sample clips: median 1.72)
DEFAULT_SHIFT = 0.15  # crop centre this many face sizes above the face centre


class CropBox(NamedTuple):
    """A square crop in frame pixels: centre (cx, cy) and side length ``size``; may exceed the frame."""

    cx: float
    cy: float
    size: float

    @property
    def x0(self) -> float:
        return self.cx - self.size / 2

    @property
    def y0(self) -> float:
        return self.cy - self.size / 2

    @property
    def x1(self) -> float:
        return self.cx + self.size / 2

    @property
    def y1(self) -> float:
        return self.cy + self.size / 2


class FaceTube(NamedTuple):
    """One face followed over frames ``start`` (inclusive) to ``end`` (exclusive); ``boxes[i]`` is its box
    in frame ``start + i`` (linearly interpolated on frames that were not examined or missed)."""

    start: int
    end: int
    boxes: list[FaceBox]

    @property
    def num_frames(self) -> int:
        return self.end - self.start


def square_box(
    face: FaceBox,
    frame_w: int,
    frame_h: int,
    margin: float = DEFAULT_MARGIN,
    *,
    shift: float = DEFAULT_SHIFT,
    keep_inside: bool = True,
) -> CropBox:
    """Square crop around a face: side = (1 + margin) * max(face w, h), centred on the face horizontally
    and ``shift`` face sizes above its centre vertically (see the module docstring for the calibration).

    With ``keep_inside`` a crop that fits in the frame is moved (not shrunk) to lie inside it, so no padding
    is needed; a crop larger than the frame stays centred and ``crop_and_resize`` pads it.
    """
    if margin <= -1:
        raise ValueError(f"margin must be > -1, got {margin}")
    face_size = max(face.width, face.height)
    side = (1.0 + margin) * face_size
    cx, cy = face.center
    cy -= shift * face_size
    if keep_inside:
        cx = _clamp_centre(cx, side, frame_w)
        cy = _clamp_centre(cy, side, frame_h)
    return CropBox(float(cx), float(cy), float(side))


def _clamp_centre(centre: float, side: float, length: int) -> float:
    if side > length:
        return centre
    return min(max(centre, side / 2), length - side / 2)


class BoxSmoother:
    """Zero-lag temporal smoothing of a crop-box track: a centred Gaussian-weighted moving average.

    Why this filter: dataset preparation sees the whole track at once, so a centred (non-causal) filter is
    possible and has no lag, whereas causal filters (One-Euro, Kalman) trail behind a moving head. MediaPipe's
    box jitters by about 1-2.5 % of the frame from one frame to the next (sample clips) while heads move
    smoothly, so a Gaussian with ``sigma`` = 3 frames (~0.1 s) cuts independent jitter to about 0.31 of its
    standard deviation and follows real motion slower than ~1 Hz. The track is extended past its ends by
    point reflection, so linear motion is kept exactly there too (no pull toward the interior).
    """

    def __init__(self, sigma: float = 3.0) -> None:
        if sigma < 0:
            raise ValueError(f"sigma must be >= 0, got {sigma}")
        self.sigma = float(sigma)

    def smooth(self, boxes: Sequence[CropBox]) -> list[CropBox]:
        """Smoothed copy of ``boxes`` (one per consecutive frame); cx, cy and size are filtered alike."""
        if self.sigma == 0 or len(boxes) < 2:
            return [CropBox(*box) for box in boxes]
        values = np.asarray(boxes, dtype=np.float64)  # (T, 3)
        radius = max(1, math.ceil(3 * self.sigma))
        offsets = np.arange(-radius, radius + 1)
        kernel = np.exp(-0.5 * (offsets / self.sigma) ** 2)
        kernel /= kernel.sum()
        # Point reflection at both ends (x[-k] = 2 x[0] - x[k]) keeps linear motion exact up to the ends.
        padded = np.pad(values, ((radius, radius), (0, 0)), mode="reflect", reflect_type="odd")
        smoothed = np.stack([np.convolve(padded[:, k], kernel, mode="valid") for k in range(3)], axis=1)
        return [CropBox(*map(float, row)) for row in smoothed]


def crop_and_resize(frame: np.ndarray, box: CropBox, size: int) -> np.ndarray:
    """Cut ``box`` out of ``frame`` ((H, W, 3) uint8) and resize it to ``(size, size, 3)`` uint8.

    The box may have sub-pixel corners and may extend beyond the frame; outside parts are filled by
    replicating the edge pixels. Resampling is bicubic with antialiasing when shrinking (PIL).
    """
    if box.size <= 0:
        raise ValueError(f"crop box must have a positive size, got {box}")
    height, width = frame.shape[:2]
    ix0, iy0 = math.floor(box.x0), math.floor(box.y0)
    ix1, iy1 = math.ceil(box.x1), math.ceil(box.y1)
    if ix0 >= 0 and iy0 >= 0 and ix1 <= width and iy1 <= height:
        region = frame[iy0:iy1, ix0:ix1]
    else:  # edge replication = clamp the indices (also right for a box wholly outside the frame)
        rows = np.clip(np.arange(iy0, iy1), 0, height - 1)
        cols = np.clip(np.arange(ix0, ix1), 0, width - 1)
        region = frame[rows[:, None], cols[None, :]]
    # The box relative to the (padded) region, in PIL's edge-based pixel coordinates.
    rel = (box.x0 - ix0, box.y0 - iy0, box.x1 - ix0, box.y1 - iy0)
    image = Image.fromarray(np.ascontiguousarray(region))
    return np.asarray(image.resize((size, size), Image.Resampling.BICUBIC, box=rel))


def box_iou(a: FaceBox, b: FaceBox) -> float:
    """Intersection over union of two boxes (0 when disjoint)."""
    inter_w = min(a.x1, b.x1) - max(a.x0, b.x0)
    inter_h = min(a.y1, b.y1) - max(a.y0, b.y0)
    if inter_w <= 0 or inter_h <= 0:
        return 0.0
    inter = inter_w * inter_h
    return inter / (a.area + b.area - inter)


class _Track:
    """A tube under construction: the examined frames where it matched, and its boxes there."""

    def __init__(self, frame: int, box: FaceBox) -> None:
        self.frames, self.boxes = [frame], [box]

    def to_tube(self) -> FaceTube:
        start, end = self.frames[0], self.frames[-1] + 1
        values = np.asarray(self.boxes, dtype=np.float64)  # (N, 5)
        wanted = np.arange(start, end)
        columns = [np.interp(wanted, self.frames, values[:, k]) for k in range(5)]
        return FaceTube(start, end, [FaceBox(*map(float, row)) for row in np.stack(columns, axis=1)])


def track_faces(
    detections_per_frame: Sequence[Sequence[FaceBox] | None],
    *,
    min_iou: float = 0.25,
    min_iou_with_first: float = 0.25,
    max_gap: int = 6,
) -> list[FaceTube]:
    """Link per-frame detections into face tubes, sorted by start frame.

    ``detections_per_frame[t]`` lists the faces found in frame ``t``, or is ``None`` for a frame that was not
    examined (detection ran on every n-th frame); tubes run across such frames and their boxes there are
    interpolated. Matching is greedy by IoU with each tube's latest box (at least ``min_iou``). A tube also
    ends when the face has drifted so far that the IoU with the tube's first box drops below
    ``min_iou_with_first`` (the video-preprocessing rule for VoxCeleb, which keeps a fixed crop valid), or
    when an examined frame finds it unmatched more than ``max_gap`` frames after its last match (shorter
    gaps, e.g. motion blur or a hand in front of the face for 0.2 s, are bridged by interpolation).
    """
    active: list[_Track] = []
    finished: list[_Track] = []
    for frame, boxes in enumerate(detections_per_frame):
        if boxes is None:
            continue
        matched_tracks, matched_boxes = _match(active, boxes, min_iou, min_iou_with_first)
        still_active = []
        for t, track in enumerate(active):
            if t in matched_tracks:
                track.frames.append(frame)
                track.boxes.append(boxes[matched_tracks[t]])
            alive = frame - track.frames[-1] <= max_gap
            (still_active if alive else finished).append(track)
        active = still_active + [_Track(frame, box) for b, box in enumerate(boxes) if b not in matched_boxes]
    finished.extend(active)
    return sorted((track.to_tube() for track in finished), key=lambda tube: (tube.start, tube.end))


def _match(
    tracks: list[_Track], boxes: Sequence[FaceBox], min_iou: float, min_iou_with_first: float
) -> tuple[dict[int, int], set[int]]:
    """Greedy assignment, best IoU first: returns {track index: box index} and the set of used boxes."""
    pairs = [(box_iou(tr.boxes[-1], box), t, b) for t, tr in enumerate(tracks) for b, box in enumerate(boxes)]
    assigned: dict[int, int] = {}
    used: set[int] = set()
    for iou, t, b in sorted(pairs, reverse=True):
        if iou < min_iou:
            break
        if t in assigned or b in used:
            continue
        if box_iou(tracks[t].boxes[0], boxes[b]) < min_iou_with_first:
            continue  # drifted too far from where the tube began: let it end, the box starts a new tube
        assigned[t] = b
        used.add(b)
    return assigned, used
