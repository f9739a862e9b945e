"""MediaPipe's 478-point face mesh (legacy ``mp.solutions.face_mesh`` with iris refinement), offline.

The landmark model ships inside the mediapipe wheel, like the detector's (``ostnet.face.detector``), so it
runs with no network. ``FaceMesh.landmarks`` returns the points in pixels, with MediaPipe's relative depth
scaled like x: ``(x * W, y * H, z * W)``, x right, y down, z away from the camera (a weak-perspective 3-D
shape; see docs/design.md "Face coefficients").
"""

from __future__ import annotations

from types import TracebackType
from typing import Any

import numpy as np

from ostnet.io.native import silenced_stderr

NUM_POINTS = 478  # 468 mesh points + 2 x 5 iris points (refine_landmarks=True)


class FaceMesh:
    """Face mesh of the largest face in RGB frames.

    Args:
        static: treat every frame as a new image (True: portraits, shuffled frames); False tracks the face
            from frame to frame as in a video (faster, steadier).
        min_score: detection confidence threshold.
    """

    def __init__(self, static: bool = True, min_score: float = 0.5) -> None:
        self.static = static
        self.min_score = float(min_score)
        self._graph: Any = None

    def landmarks(self, frame: np.ndarray) -> np.ndarray | None:
        """(478, 3) float64 points of the largest face in a uint8 (H, W, 3) RGB frame, or None without a face."""
        if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
            got = f"{getattr(frame, 'dtype', type(frame))} {getattr(frame, 'shape', '')}"
            raise ValueError(f"FaceMesh.landmarks expects a uint8 (H, W, 3) RGB array, got {got}")
        frame = np.ascontiguousarray(frame)
        if self._graph is None:
            with silenced_stderr():
                from mediapipe.python.solutions import face_mesh

                self._graph = face_mesh.FaceMesh(
                    static_image_mode=self.static,
                    max_num_faces=4,
                    refine_landmarks=True,
                    min_detection_confidence=self.min_score,
                )
                result = self._graph.process(frame)
        else:
            result = self._graph.process(frame)
        faces = result.multi_face_landmarks or []
        if not faces:
            return None
        h, w = frame.shape[:2]
        meshes = [np.array([(p.x * w, p.y * h, p.z * w) for p in face.landmark], dtype=np.float64) for face in faces]
        return max(meshes, key=lambda m: np.ptp(m[:, 0]) * np.ptp(m[:, 1]))

    def close(self) -> None:
        if self._graph is not None:
            self._graph.close()
            self._graph = None

    def __enter__(self) -> FaceMesh:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
