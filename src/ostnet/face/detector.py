"""Face detection with MediaPipe's BlazeFace models (mediapipe 0.10.21, legacy ``mp.solutions`` API).

Both models ship inside the mediapipe wheel, so detection works offline. Measured on this project's
sample material (2 CPU cores):

* ``"full"`` (full-range model, 192x192 input, ~10 ms / frame): finds faces down to about 2.5-4 % of the
  frame's long side (a 48-64 px face in a 1920x1080 frame; about 160 px in 3840x2160). Smaller faces are
  missed because the whole frame is shrunk to the model's input: crop the frame first in that case. For a
  face that fills the whole frame its box is too large and its score drops (0.6).
* ``"short"`` (short-range model, 128x128 input, ~3 ms / frame): for close-ups; it misses faces smaller than
  roughly a fifth of the frame, and it fires on some animal faces (score 0.72 on a dog).
* ``"auto"``: full range, and short range as well when full range finds nothing or a face larger than
  60 % of the frame's short side; the short-range answer wins when it has one.

Boxes are roughly square, cover eyebrows to chin, and are NOT clipped to the frame.
"""

from __future__ import annotations

from types import TracebackType
from typing import Any, Literal, NamedTuple

import numpy as np

from ostnet.io.native import silenced_stderr

_MODEL_SELECTION = {"short": 0, "full": 1}
_CLOSE_UP = 0.6  # "auto": a face this large (fraction of the short side) is re-checked by the short model


class FaceBox(NamedTuple):
    """A detected face: corners in pixels (x right, y down; may lie outside the frame), score in [0, 1]."""

    x0: float
    y0: float
    x1: float
    y1: float
    score: float

    @property
    def width(self) -> float:
        return self.x1 - self.x0

    @property
    def height(self) -> float:
        return self.y1 - self.y0

    @property
    def area(self) -> float:
        return max(self.width, 0.0) * max(self.height, 0.0)

    @property
    def center(self) -> tuple[float, float]:
        return (self.x0 + self.x1) / 2, (self.y0 + self.y1) / 2


class FaceDetector:
    """Find faces in RGB frames; ``detect`` returns them sorted by area, largest first.

    Args:
        min_score: detections below this confidence are dropped.
        model: ``"full"`` (default, any distance), ``"short"`` (close-ups) or ``"auto"``; see the module
            docstring.

    The MediaPipe graph is built on first use (importing mediapipe takes ~1 s) and released by ``close()``
    or at the end of a ``with`` block. One detector must not be shared between threads or processes.
    """

    def __init__(self, min_score: float = 0.5, model: Literal["full", "short", "auto"] = "full") -> None:
        if model not in ("full", "short", "auto"):
            raise ValueError(f"model must be 'full', 'short' or 'auto', got {model!r}")
        if not 0.0 <= min_score <= 1.0:
            raise ValueError(f"min_score must be in [0, 1], got {min_score}")
        self.min_score = float(min_score)
        self.model = model
        self._graphs: dict[str, Any] = {}

    def _process(self, kind: str, frame: np.ndarray) -> Any:
        if kind in self._graphs:
            return self._graphs[kind].process(frame)
        # MediaPipe/TFLite print start-up banners straight to file descriptor 2 while the graph is built and
        # first run; hide them so they do not break progress bars. (Other threads' stderr output in those
        # few milliseconds is lost too.)
        with silenced_stderr():
            from mediapipe.python.solutions import face_detection

            graph = face_detection.FaceDetection(
                model_selection=_MODEL_SELECTION[kind], min_detection_confidence=self.min_score
            )
            self._graphs[kind] = graph
            return graph.process(frame)

    def _run(self, kind: str, frame: np.ndarray) -> list[FaceBox]:
        result = self._process(kind, frame)
        height, width = frame.shape[:2]
        boxes = []
        for detection in result.detections or []:
            rel = detection.location_data.relative_bounding_box
            x0, y0 = rel.xmin * width, rel.ymin * height
            score = float(detection.score[0])
            if score >= self.min_score:
                boxes.append(FaceBox(x0, y0, x0 + rel.width * width, y0 + rel.height * height, score))
        return sorted(boxes, key=lambda box: box.area, reverse=True)

    def detect(self, frame: np.ndarray) -> list[FaceBox]:
        """Faces in one ``(H, W, 3)`` uint8 RGB frame, largest first (empty list when there is none)."""
        if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8 or frame.shape[2:] != (3,):
            got = f"{getattr(frame, 'dtype', type(frame))} {getattr(frame, 'shape', '')}"
            raise ValueError(f"FaceDetector.detect expects a uint8 (H, W, 3) RGB array, got {got}")
        frame = np.ascontiguousarray(frame)
        if self.model != "auto":
            return self._run(self.model, frame)
        boxes = self._run("full", frame)
        if not boxes or max(boxes[0].width, boxes[0].height) > _CLOSE_UP * min(frame.shape[:2]):
            close_up = self._run("short", frame)
            if close_up:
                return close_up
        return boxes

    def close(self) -> None:
        """Release the MediaPipe graphs (a later ``detect`` builds them again)."""
        for graph in self._graphs.values():
            graph.close()
        self._graphs.clear()

    def __enter__(self) -> FaceDetector:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
