"""Streaming animation: one source, driving frames one at a time (``ostnet live`` and the web app's webcam).

``StreamStep`` wraps an ``Animator`` (its one per-frame step does all model work): ``set_source`` crops the
portrait's face and caches the per-source work once; ``step(frame)`` crops the driving face, animates it and
returns the animated face as an ``(S, S, 3)`` uint8 RGB array. ``stats`` gives the latency of the last step, the
median latency and the achieved frames per second over the last ``window`` steps, and the frames dropped by
the caller (``dropped``: the reader overwrote them because the model was slower than the input).

Driving crops: MediaPipe finds the face in every frame; the crop box follows it with an exponential moving
average (a live stream has no look-ahead, so ``BoxSmoother``'s centred window cannot be used) and stays where
it was on frames without a face. In ``relative`` mode the first frame is the anchor.
"""

from __future__ import annotations

import statistics
import time
from collections import deque
from typing import NamedTuple

import numpy as np

from ostnet.errors import OstnetError
from ostnet.face.crop import DEFAULT_MARGIN, CropBox, crop_and_resize, square_box
from ostnet.face.detector import FaceBox, FaceDetector
from ostnet.inference.animator import Animator
from ostnet.inference.faces import centre_box
from ostnet.io.image import to_tensor, to_uint8


class StreamStats(NamedTuple):
    """frames: steps done; dropped: input frames skipped; latency_ms: the last step; median_latency_ms and fps:
    over the last ``window`` steps (fps = steps per second of wall clock, NaN before two steps)."""

    frames: int
    dropped: int
    latency_ms: float
    median_latency_ms: float
    fps: float

    def line(self) -> str:
        return (
            f"{self.frames} frames, {self.dropped} dropped, latency {self.latency_ms:.0f} ms "
            f"(median {self.median_latency_ms:.0f} ms), {self.fps:.1f} fps"
        )


def _largest(faces: list[FaceBox]) -> FaceBox | None:
    return faces[0] if faces else None


class StreamStep:
    """The live per-frame step around an Animator.

    Args:
        animator: does all model work (its ``animate`` is the one per-frame step).
        crop: find and crop faces (False: frames are already face crops; non-square ones are centre-cropped).
        margin: crop side = (1 + margin) x face size, as ``ostnet animate``.
        follow: weight of the new box in the moving average of the driving crop box (1 = no smoothing).
        window: number of recent steps the statistics are taken over.
    """

    def __init__(
        self,
        animator: Animator,
        *,
        crop: bool = True,
        margin: float = DEFAULT_MARGIN,
        follow: float = 0.5,
        window: int = 30,
    ) -> None:
        if not 0.0 < follow <= 1.0:
            raise ValueError(f"follow must be in (0, 1], got {follow}")
        self.animator = animator
        self.crop = crop
        self.margin = margin
        self.follow = follow
        self._detector = FaceDetector(model="auto") if crop else None
        self._box: CropBox | None = None
        self._source_set = False
        self._latencies: deque[float] = deque(maxlen=window)
        self._finished: deque[float] = deque(maxlen=window)
        self.frames = 0
        self.dropped = 0

    @property
    def size(self) -> int:
        return self.animator.image_size

    def set_source(self, image: np.ndarray) -> np.ndarray:
        """Crop the portrait ``(H, W, 3)`` uint8 to its largest face and cache the per-source work.

        Returns the source crop ``(S, S, 3)``. Raises ``OstnetError`` when no face is found (with ``crop``).
        """
        _check_frame(image, "source")
        box = centre_box(image.shape[1], image.shape[0])
        if self._detector is not None:
            with FaceDetector(model="full") as detector:
                face = _largest(detector.detect(image))
            if face is None:
                raise OstnetError("no face found in the source image")
            box = square_box(face, image.shape[1], image.shape[0], self.margin)
        crop = crop_and_resize(image, box, self.size)
        self.animator.set_source(to_tensor(crop)[None])
        self._source_set = True
        self._box = None
        return crop

    def driving_crop(self, frame: np.ndarray) -> np.ndarray:
        """The model input for one driving frame: the followed face's crop, (S, S, 3) uint8."""
        box = centre_box(frame.shape[1], frame.shape[0])
        if self._detector is not None:
            face = _largest(self._detector.detect(frame))
            if face is not None:
                box = square_box(face, frame.shape[1], frame.shape[0], self.margin)
            elif self._box is not None:
                box = self._box
            if self._box is not None:
                box = CropBox(*(self.follow * b + (1 - self.follow) * a for a, b in zip(self._box, box, strict=True)))
            self._box = box
        return crop_and_resize(frame, box, self.size)

    def step(self, frame: np.ndarray) -> np.ndarray:
        """One driving frame ``(H, W, 3)`` uint8 RGB -> the animated face ``(S, S, 3)`` uint8 RGB."""
        if not self._source_set:
            raise RuntimeError("set_source() first")
        _check_frame(frame, "driving frame")
        start = time.perf_counter()
        crop = self.driving_crop(frame)
        result = to_uint8(self.animator.animate(to_tensor(crop)[None]).prediction[0])
        end = time.perf_counter()
        self._latencies.append(end - start)
        self._finished.append(end)
        self.frames += 1
        return result

    def drop(self, count: int = 1) -> None:
        """Record input frames that were skipped because the model was busy."""
        self.dropped += count

    @property
    def stats(self) -> StreamStats:
        last = self._latencies[-1] * 1000 if self._latencies else float("nan")
        median = statistics.median(self._latencies) * 1000 if self._latencies else float("nan")
        span = self._finished[-1] - self._finished[0] if len(self._finished) > 1 else 0.0
        fps = (len(self._finished) - 1) / span if span > 0 else float("nan")
        return StreamStats(self.frames, self.dropped, last, median, fps)

    def close(self) -> None:
        if self._detector is not None:
            self._detector.close()

    def __enter__(self) -> StreamStep:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _check_frame(frame: np.ndarray, name: str) -> None:
    if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
        got = f"{getattr(frame, 'dtype', type(frame).__name__)} {getattr(frame, 'shape', '')}"
        raise OstnetError(f"{name}: expected an (H, W, 3) uint8 RGB image, got {got}")
