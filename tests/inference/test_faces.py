"""DrivingVideo: the driving video as a stream of face crops (decode, follow, smooth, crop) and its replay."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from ostnet.errors import OstnetError
from ostnet.face.crop import BoxSmoother, crop_and_resize
from ostnet.face.detector import FaceBox
from ostnet.inference.faces import CropOptions, DrivingVideo
from ostnet.inference.timing import Stopwatch


class MovingFace:
    """A scripted detector: one face whose x position is read from the frame's first pixel."""

    def __init__(self) -> None:
        self.calls = 0

    def detect(self, frame: np.ndarray) -> list[FaceBox]:
        self.calls += 1
        x = float(frame[0, 0, 0])
        return [FaceBox(x, 20.0, x + 40.0, 60.0, 0.9)]


@pytest.fixture
def frame_folder(tmp_path):
    folder = tmp_path / "clip"
    folder.mkdir()
    for i, x in enumerate([10, 30, 20, 60, 40, 50, 10]):
        frame = np.full((80, 120, 3), 128, np.uint8)
        frame[0, 0, 0] = x
        Image.fromarray(frame).save(folder / f"{i:03d}.png")
    return folder


def test_crops_follow_smooth_and_replay_identically(frame_folder):
    watch = Stopwatch()
    detector = MovingFace()
    with DrivingVideo(frame_folder, CropOptions(smooth_sigma=1.0), 16, total=6, watch=watch, detector=detector) as v:
        crops = list(v.crops())
        assert detector.calls == 1 + 6  # prime (the first frame has a face) + one per frame
        assert len(crops) == 6 and v.missing == 0  # total=6 of 7 frames
        replayed = list(v.replay([item.box for item in crops]))
        assert detector.calls == 1 + 6  # replay detects nothing
        assert all(np.array_equal(a.crop, b.crop) and a.box == b.box for a, b in zip(crops, replayed, strict=True))
        raw = [v.faces.box_for(item.frame) for item in crops]  # the same detections, unsmoothed
        assert [item.box for item in crops] == BoxSmoother(1.0).smooth(raw)
        for item in crops:
            assert item.crop.shape == (16, 16, 3)
            assert np.array_equal(item.crop, crop_and_resize(item.frame, item.box, 16))
    times = watch.times()
    assert times.decode > 0 and times.detect_crop > 0 and times.model == times.encode == 0


def test_no_face_anywhere_is_one_line_error(frame_folder):
    class NoFace:
        def detect(self, frame):
            return []

    with DrivingVideo(frame_folder, CropOptions(), 16, total=7, detector=NoFace()) as video:
        with pytest.raises(OstnetError, match=r"clip: no face found in any of its 7 frames"):
            video.crops()
