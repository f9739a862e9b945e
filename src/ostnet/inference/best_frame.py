"""Best-frame animation (FOMM's ``find_best_frame``, reference-architecture.md §8).

The driving frame whose facial landmarks, normalised for position and scale, are closest to the source's is
used as the anchor of ``relative`` motion, so that the source's pose and expression at the start matter
least. Landmarks are dlib's 68 points (``ostnet.face.landmarks``; FOMM uses face_alignment's 68),
taken on the 256x256 crops; each set is centred on its mean and divided by the square root of its convex
hull area, and the distance is the summed squared difference, as in FOMM.

FOMM animates forward from the best frame and backward to frame 0 (both with the best frame as anchor) and
concatenates them. With a fixed anchor every frame is animated independently, so that is the same as
animating all frames in their original order with the best frame as anchor: the pipeline does exactly that
(one scan pass to find the frame, one animation pass), which keeps memory constant. ``fomm_order`` gives the
frame order of FOMM's procedure, for tests.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from ostnet.face.crop import CropBox, crop_and_resize
from ostnet.face.landmarks import FaceAnalyzer, get_face_analyzer, normalized_landmarks
from ostnet.inference.faces import DrivingVideo, SourceImage

LANDMARK_SIZE = 256  # crops are analysed at this size (dlib's HOG detector needs faces of ~40 px or more)


def landmark_distance(landmarks_a: np.ndarray, landmarks_b: np.ndarray) -> float:
    """Summed squared difference of two (68, 2) landmark sets after mean/sqrt-hull-area normalisation."""
    diff = normalized_landmarks(landmarks_a) - normalized_landmarks(landmarks_b)
    return float(np.sum(diff**2))


class BestFrameFinder:
    """Feed driving crops one by one; ``best`` is the index of the frame that matches the source best.

    Args:
        source_crop: the source crop, (256, 256, 3) uint8 RGB (any size works; 256 keeps dlib's units).
        analyzer: a dlib ``FaceAnalyzer`` (default: the process-wide one).

    Frames where dlib finds no face are skipped. If the source or every frame has no landmarks, ``best`` is 0
    (FOMM's plain relative mode) and ``found`` is False.
    """

    def __init__(self, source_crop: np.ndarray, analyzer: FaceAnalyzer | None = None) -> None:
        self.analyzer = analyzer if analyzer is not None else get_face_analyzer()
        self.source = self.analyzer.observe(source_crop, embed=False).landmarks
        self.best, self.distance, self.frames_seen = 0, float("inf"), 0

    @property
    def found(self) -> bool:
        return self.distance < float("inf")

    def add(self, crop: np.ndarray) -> bool:
        """Examine the next driving crop ((H, W, 3) uint8); True when it is the best so far."""
        index = self.frames_seen
        self.frames_seen += 1
        if self.source is None:
            return index == 0
        landmarks = self.analyzer.observe(crop, embed=False).landmarks
        if landmarks is None:
            return index == 0 and not self.found
        distance = landmark_distance(self.source, landmarks)
        if distance < self.distance:  # first of equal distances wins, as np.argmin in FOMM
            self.best, self.distance = index, distance
            return True
        return False


class BestFrameScan(NamedTuple):
    """What ``scan_best_frame`` found."""

    best: int  # index of the best driving frame
    found: bool  # False when no landmarks were found (best = 0)
    anchor: np.ndarray  # its crop, (S, S, 3) uint8
    boxes: list[CropBox]  # the smoothed crop box of every frame (for ``DrivingVideo.replay``)


def scan_best_frame(
    driving: DrivingVideo, source: SourceImage, on_frame: Callable[[], None] | None = None
) -> BestFrameScan:
    """First pass of best-frame mode: detect, smooth and crop every driving frame, compare its landmarks with
    the source's; ``on_frame()`` is called after each frame (progress)."""
    finder = BestFrameFinder(crop_and_resize(source.image, source.box, LANDMARK_SIZE))
    boxes: list[CropBox] = []
    anchor = None
    for item in driving.crops():
        boxes.append(item.box)
        if finder.add(crop_and_resize(item.frame, item.box, LANDMARK_SIZE)):
            anchor = item.crop
        if on_frame is not None:
            on_frame()
    return BestFrameScan(finder.best, finder.found, anchor, boxes)
