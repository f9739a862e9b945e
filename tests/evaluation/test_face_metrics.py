"""dlib face metrics: analytic cases, identities on real frames, and missing models."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image

from ostnet.errors import OstnetError
from ostnet.evaluation import face_metrics as FM


def _frames(shared_dir, clip: str, indices: tuple[int, ...]) -> list[np.ndarray]:
    from ostnet.io.video import iter_frames

    wanted, out = set(indices), {}
    for i, frame in enumerate(iter_frames(shared_dir / "data" / "clips" / clip)):
        if i in wanted:
            out[i] = np.asarray(Image.fromarray(frame).resize((256, 256), Image.BICUBIC))
        if i >= max(indices):
            break
    return [out[i] for i in indices]


@pytest.fixture(scope="module")
def faces(shared_dir):
    return {"d3": _frames(shared_dir, "d3.mp4", (0, 40)), "d12": _frames(shared_dir, "d12.mp4", (0,))}


@pytest.fixture(scope="module")
def analyzer():
    return FM.get_face_analyzer()


def _ring(n: int = 68, radius: float = 50.0) -> np.ndarray:
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return np.stack([128 + radius * np.cos(t), 128 + radius * np.sin(t)], axis=1)


def test_akd_units_and_convention():
    a = _ring()
    assert FM.akd(a, a) == 0.0
    assert FM.akd(a, a + np.array([3.0, 0.0])) == pytest.approx(1.5)  # mean |d| over x and y coordinates
    with pytest.raises(ValueError, match="68, 2"):
        FM.akd(a[:5], a[:5])


def test_aed_and_csim_analytic():
    gen = np.random.default_rng(0)
    e1, e2 = gen.normal(size=128), gen.normal(size=128)
    assert FM.aed(e1, e1) == 0.0
    assert FM.aed(e1, e2) == pytest.approx(np.linalg.norm(e1 - e2))
    assert FM.aed(e1, e2) == FM.aed(e2, e1)
    assert FM.csim(e1, 3 * e1) == pytest.approx(1.0)
    assert FM.csim(e1, -e1) == pytest.approx(-1.0)


def test_hull_area_and_scale_error():
    square = np.array([[0, 0], [10, 0], [10, 10], [0, 10], [5, 5], [2, 7]], dtype=float)
    assert FM.hull_area(square) == pytest.approx(100.0)
    assert FM.hull_area(np.array([[0, 0], [1, 1], [2, 2]], dtype=float)) == 0.0
    ring = _ring()
    assert FM.scale_error(ring * 1.25, ring) == pytest.approx(math.log(1.25))  # linear size ratio
    assert FM.scale_error(ring, ring * 1.25) == pytest.approx(math.log(1.25))
    assert math.isnan(FM.scale_error(np.zeros((68, 2)), ring))


def test_pose_expression_distance_ignores_scale_and_position():
    ring = _ring()
    moved = ring * 0.7 + np.array([20.0, -5.0])
    assert FM.pose_expression_distance(ring, moved) == pytest.approx(0.0, abs=1e-12)
    squashed = ring * np.array([1.0, 0.6])
    assert FM.pose_expression_distance(ring, squashed) > 0.05


def test_missing_landmark_model_is_a_clear_error(tmp_path):
    with pytest.raises(OstnetError, match="shape_predictor_68_face_landmarks.dat: dlib 68-point landmark model"):
        FM.FaceAnalyzer(FM.FaceConfig(model_dir=str(tmp_path)))


def test_identical_frames_give_zero_akd_and_aed(faces, analyzer):
    frame = faces["d3"][0]
    a, b = analyzer.observe(frame), analyzer.observe(frame.copy())
    assert a.found and a.landmarks.shape == (68, 2) and a.embedding.shape == (128,)
    assert FM.akd(a.landmarks, b.landmarks) == 0.0
    assert FM.aed(a.embedding, b.embedding) == 0.0
    assert FM.scale_error(a.landmarks, b.landmarks) == 0.0
    assert 0 <= a.landmarks.min() and a.landmarks.max() < 256  # pixels of the 256x256 frame


def test_aed_symmetric_and_identity_sensitive(faces, analyzer):
    same0, same1 = (analyzer.observe(f) for f in faces["d3"])
    other = analyzer.observe(faces["d12"][0])
    d_same = FM.aed(same0.embedding, same1.embedding)
    assert d_same == FM.aed(same1.embedding, same0.embedding)
    assert d_same < FM.aed(same0.embedding, other.embedding)
    assert FM.csim(same0.embedding, same1.embedding) > FM.csim(same0.embedding, other.embedding)


def test_scale_error_sees_a_shrunken_face(faces, analyzer):
    frame = faces["d3"][0]
    small = np.asarray(Image.fromarray(frame).resize((205, 205), Image.BICUBIC))  # 0.8x
    canvas = np.zeros_like(frame)
    canvas[25:230, 25:230] = small
    big, shrunk = analyzer.observe(frame, embed=False), analyzer.observe(canvas, embed=False)
    assert shrunk.embedding is None
    assert FM.scale_error(shrunk.landmarks, big.landmarks) == pytest.approx(-math.log(0.8), abs=0.05)
    assert FM.akd(shrunk.landmarks, big.landmarks) > 5.0


def test_detection_failure_is_reported_and_tensor_input(analyzer):
    blank = analyzer.observe(np.full((256, 256, 3), 127, np.uint8))
    assert not blank.found and blank.failure == "no face detected"
    assert FM.observe_tensor(analyzer, torch.full((3, 64, 64), 0.5)).failure == "no face detected"
    with pytest.raises(OstnetError, match="uint8"):
        analyzer.observe(np.zeros((256, 256, 3), np.float32))


def test_analyzer_is_loaded_once():
    assert FM.get_face_analyzer() is FM.get_face_analyzer(FM.FaceConfig())
