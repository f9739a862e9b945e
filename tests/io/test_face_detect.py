"""MediaPipe face detection (ostnet.face.detector) on real sample frames."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from ostnet.face.detector import FaceBox, FaceDetector
from ostnet.io.video import read_frames


@pytest.fixture(scope="module")
def detector():
    with FaceDetector() as face_detector:
        yield face_detector


@pytest.fixture(scope="module")
def clip_frame(shared_dir) -> np.ndarray:
    return read_frames(shared_dir / "data/clips/d10.mp4", max_frames=1)[0]


def test_one_face_on_a_clip_frame(detector, clip_frame):
    faces = detector.detect(clip_frame)
    assert len(faces) == 1
    face = faces[0]
    assert isinstance(face, FaceBox) and 0.5 <= face.score <= 1.0
    # Face-centred 512x512 clip: the face is ~300 px wide, horizontally centred, a little below the middle.
    assert 230 < face.width < 360 and abs(face.width - face.height) < 0.1 * face.width
    assert abs(face.center[0] - 256) < 40 and 256 < face.center[1] < 350


def test_no_face_on_blank_or_noise(detector):
    assert detector.detect(np.zeros((240, 320, 3), np.uint8)) == []
    assert detector.detect(np.full((100, 100, 3), 255, np.uint8)) == []
    noise = np.random.default_rng(0).integers(0, 256, (256, 256, 3), dtype=np.uint8)
    assert detector.detect(noise) == []


def test_sorted_largest_first_and_small_faces_in_large_frames(detector, clip_frame):
    canvas = np.full((1080, 1920, 3), 128, np.uint8)
    big = np.asarray(Image.fromarray(clip_frame).resize((400, 400)))
    small = np.asarray(Image.fromarray(clip_frame).resize((200, 200)))
    canvas[100:500, 100:500] = big
    canvas[600:800, 1500:1700] = small
    faces = detector.detect(canvas)
    assert len(faces) == 2 and faces[0].area > faces[1].area
    assert faces[0].center[0] < 960 < faces[1].center[0]
    # Documented limit: a ~3 % face (about 60 px) in 1080p is still found by the full-range model ...
    tiny = np.full((1080, 1920, 3), 128, np.uint8)
    tiny[500:610, 900:1010] = np.asarray(Image.fromarray(clip_frame).resize((110, 110)))
    assert len(detector.detect(tiny)) == 1
    # ... but not by the short-range model, which is meant for close-ups.
    with FaceDetector(model="short") as short:
        assert short.detect(tiny) == []
        assert len(short.detect(clip_frame)) == 1


def test_auto_falls_back_to_short_range_for_close_ups(detector, clip_frame):
    close_up = np.ascontiguousarray(clip_frame[150:460, 100:410])  # the face fills the frame
    assert detector.detect(close_up) == []  # the full-range model misses a face this large
    with FaceDetector(model="auto") as auto:
        faces = auto.detect(close_up)
    assert len(faces) == 1 and 0.6 * 310 < faces[0].width < 310


def test_bad_arguments():
    with pytest.raises(ValueError):
        FaceDetector(model="huge")
    with pytest.raises(ValueError):
        FaceDetector(min_score=2.0)
    with pytest.raises(ValueError):
        FaceDetector().detect(np.zeros((10, 10), np.uint8))
