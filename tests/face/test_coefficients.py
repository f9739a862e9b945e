"""Face coefficients R (ostnet.face.coefficients): rotations, the synthetic ground truth, and real faces."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image

from ostnet.cli import main
from ostnet.data.synthetic import Expression, HeadParams, Pose, head_coefficients, render_head, sample_identity
from ostnet.errors import OstnetError
from ostnet.face.coefficients import (
    COEFFICIENTS_FILE,
    LANDMARK_NAMES,
    CoefficientEstimator,
    FaceCoefficients,
    canonical_face,
    frame_coefficients,
    landmark_expression_basis,
    load_clip_coefficients,
    mean_face_landmarks,
    mean_face_points,
    similarity_fit,
    stack_coefficients,
)
from ostnet.geometry.rotation import euler_angles, rotate_points_2d, rotation_matrix
from ostnet.io.video import read_frames

FRONTAL = ("s2", "s12", "s42")  # the sample portraits that look roughly at the camera


def test_rotation_round_trip_and_directions():
    angles = torch.tensor([[10.0, -20.0, 30.0], [-45.0, 5.0, -170.0], [0.0, 0.0, 0.0]])
    rot = rotation_matrix(angles[:, 0], angles[:, 1], angles[:, 2])
    assert torch.allclose(rot @ rot.transpose(-1, -2), torch.eye(3).expand(3, 3, 3), atol=1e-6)
    assert torch.allclose(torch.stack(euler_angles(rot), -1), angles, atol=1e-4)
    nose = torch.tensor([0.0, 0.0, -1.0])  # points at the camera
    assert rotation_matrix(30.0, 0.0, 0.0) @ nose @ torch.tensor([1.0, 0, 0]) > 0.4  # yaw > 0: nose to +x
    assert rotation_matrix(0.0, 30.0, 0.0) @ nose @ torch.tensor([0, 1.0, 0]) < -0.4  # pitch > 0: nose up
    right = torch.tensor([1.0, 0.0, 0.0])
    assert rotation_matrix(0.0, 0.0, 90.0) @ right @ torch.tensor([0, 1.0, 0]) > 0.99  # roll: clockwise on screen
    points = torch.tensor([[1.0, 0.0], [-1.0, 0.0]])
    assert torch.allclose(rotate_points_2d(points, 90.0), torch.tensor([[0.0, 1.0], [0.0, -1.0]]), atol=1e-6)


def test_similarity_fit_recovers_a_transform():
    rng = np.random.default_rng(0)
    src = rng.normal(size=(50, 3))
    rot = rotation_matrix(25.0, -10.0, 40.0).double().numpy()
    dst = 2.5 * src @ rot.T + np.array([1.0, -2.0, 3.0])
    s, r, t = similarity_fit(src, dst)
    assert s == pytest.approx(2.5) and np.allclose(r, rot) and np.allclose(t, [1.0, -2.0, 3.0])


def test_canonical_face_is_symmetric_and_in_the_head_frame():
    canon = canonical_face()
    assert canon.shape == (478, 3)
    mirrored = canon * np.array([-1.0, 1.0, 1.0])
    nearest = np.sqrt(((canon[:, None] - mirrored[None]) ** 2).sum(-1)).min(1)
    assert nearest.max() < 1e-5  # every point has an exact mirror partner
    assert canon[263, 0] > canon[33, 0] and canon[152, 1] > canon[10, 1] and canon[1, 2] < canon[234, 2]


def test_mean_face_in_the_model_head_frame():
    """E's warm start: unit = half the forehead-chin distance, the nose in front (z < 0), mirror symmetric; the
    sampled points are distinct mesh points, the first the nose tip, and the same on every call."""
    lm = dict(zip(LANDMARK_NAMES, mean_face_landmarks(), strict=True))
    assert lm["nose_tip"][2] < min(lm["eye_right"][2], lm["chin"][2]) - 0.2  # depth: the nose sticks out
    np.testing.assert_allclose(lm["eye_right"] * [-1, 1, 1], lm["eye_left"], atol=1e-9)
    assert 1.5 < lm["chin"][1] - lm["brow_right"][1] < 2.0  # brow to chin: most of the face's 2 half-heights
    points = mean_face_points(15)
    assert len(np.unique(points.round(6), axis=0)) == 15 and np.array_equal(points, mean_face_points(15))
    np.testing.assert_array_equal(points[0], lm["nose_tip"])


def test_landmark_expression_basis_follows_the_coefficient_definitions():
    basis, lm = landmark_expression_basis(), mean_face_landmarks()
    names = {n: i for i, n in enumerate(LANDMARK_NAMES)}
    iod = np.linalg.norm(lm[names["eye_right"]] - lm[names["eye_left"]])
    mouth_open = basis[0]  # one unit opens the lips by 0.5 IOD (MOUTH_OPEN_UNIT), nothing else moves
    for outer, inner in (("lip_lower", "lip_upper"), ("lip_inner_lower", "lip_inner_upper")):  # lips alike
        assert mouth_open[names[outer], 1] - mouth_open[names[inner], 1] == pytest.approx(0.5 * iod)
    assert np.count_nonzero(mouth_open) == 4
    width = basis[1]  # mouth_width 1 -> 2 doubles the corners' distance
    moved = (
        lm[names["mouth_left"]] + width[names["mouth_left"]] - lm[names["mouth_right"]] - width[names["mouth_right"]]
    )
    assert moved[0] == pytest.approx(2 * (lm[names["mouth_left"]] - lm[names["mouth_right"]])[0])
    for index, side in ((2, "right"), (3, "left")):  # eye 1 -> 0 closes the lids onto the middle, eye centres stay
        upper, lower = names[f"lid_upper_{side}"], names[f"lid_lower_{side}"]
        closed = lm - basis[index]
        assert lm[lower, 1] - lm[upper, 1] > 0.02 and np.allclose(closed[upper], closed[lower])
        assert np.count_nonzero(basis[index].any(axis=1)) == 2
    assert basis[4, names["brow_right"], 1] == basis[5, names["brow_left"], 1] == pytest.approx(-0.14 * iod)


def test_coefficients_mirror_and_named_values():
    c = FaceCoefficients(np.array([10.0, 5.0, -3.0]), np.array([0.5, 1.1, 0.9, 0.4, 0.2, -0.1]))
    m = c.mirrored()
    assert (m.yaw, m.pitch, m.roll) == (-10.0, 5.0, 3.0)
    assert (m.eye_right, m.eye_left, m.brow_right, m.brow_left) == (0.4, 0.9, -0.1, 0.2)
    assert np.array_equal(m.mirrored().landmarks, c.landmarks) and np.array_equal(m.mirrored().vector(), c.vector())
    assert c.with_values(yaw=1.0, mouth_open=0.0).vector()[[0, 3]].tolist() == [1.0, 0.0]
    with pytest.raises(ValueError, match="unknown coefficient 'smile'"):
        c.with_values(smile=1.0)


def _synthetic(yaw=0.0, roll=0.0, mouth=0.0, eye=1.0) -> HeadParams:
    return HeadParams(sample_identity(3), Expression(mouth, 1.0, eye, 0.0), Pose(yaw, roll), 1.0)


def test_synthetic_ground_truth():
    base = head_coefficients(_synthetic())
    turned = head_coefficients(_synthetic(yaw=math.radians(20), roll=math.radians(-10), mouth=0.8, eye=0.3))
    assert turned.yaw == pytest.approx(20.0) and turned.roll == pytest.approx(-10.0) and turned.pitch == 0.0
    assert (turned.mouth_open, turned.eye_left, turned.eye_right) == (0.8, 0.3, 0.3)
    lm = dict(zip(LANDMARK_NAMES, base.landmarks, strict=True))
    assert lm["eye_right"][0] < lm["nose_tip"][0] < lm["eye_left"][0]  # subject's right eye on the image left
    assert lm["eye_right"][1] < lm["nose_tip"][1] < lm["lip_upper"][1] < lm["lip_lower"][1] < lm["chin"][1]
    assert lm["lip_upper"][1] < lm["lip_inner_upper"][1] <= lm["lip_inner_lower"][1] < lm["lip_lower"][1]
    turned_lm = dict(zip(LANDMARK_NAMES, head_coefficients(_synthetic(mouth=0.8, eye=0.3)).landmarks, strict=True))
    for side in ("right", "left"):  # the lid gap is the eye coefficient's (0.3 of the open eye's), centred on the eye
        gaps = [d[f"lid_lower_{side}"][1] - d[f"lid_upper_{side}"][1] for d in (lm, turned_lm)]
        assert gaps[1] == pytest.approx(0.3 * gaps[0]) and gaps[0] > 0
        assert 0.5 * (lm[f"lid_lower_{side}"] + lm[f"lid_upper_{side}"]) == pytest.approx(lm[f"eye_{side}"])
    # Roll turns the (yaw-free) landmarks about the face centre, clockwise on screen.
    rolled = head_coefficients(_synthetic(roll=math.radians(15)))
    centre = torch.zeros(1, 2)
    expected = rotate_points_2d(torch.from_numpy(base.landmarks), 15.0, centre)
    assert np.allclose(rolled.landmarks, expected.numpy(), atol=1e-6)


@pytest.fixture(scope="module")
def estimator():
    with CoefficientEstimator() as estimate:
        yield estimate


def test_mesh_estimate_agrees_with_the_synthetic_truth(estimator):
    for params in (_synthetic(), _synthetic(yaw=0.3, mouth=0.6), _synthetic(roll=-0.2, mouth=1.0)):
        truth, found = head_coefficients(params), estimator(render_head(params, 256, texture=0.2))
        assert found is not None
        assert abs(found.yaw - truth.yaw) < 4 and abs(found.roll - truth.roll) < 4
        assert abs(found.mouth_open - truth.mouth_open) < 0.2
        assert np.abs(found.landmarks - truth.landmarks).max() < 0.15


def _portrait(shared_dir, name: str) -> np.ndarray:
    return np.asarray(Image.open(shared_dir / f"data/portraits/{name}.jpg").convert("RGB"))


@pytest.mark.parametrize("name", FRONTAL)
def test_in_plane_rotation_changes_only_the_roll(shared_dir, estimator, name):
    image = _portrait(shared_dir, name)
    base = estimator(image)
    for theta in (10.0, -15.0, 25.0):
        # PIL turns counter-clockwise on screen: our roll (clockwise) decreases by theta.
        turned = estimator(np.asarray(Image.fromarray(image).rotate(theta, resample=Image.BICUBIC)))
        assert turned.roll - base.roll == pytest.approx(-theta, abs=2.0)
        assert abs(turned.yaw - base.yaw) < 3.0


@pytest.mark.parametrize("name", FRONTAL)
def test_mirrored_frame_negates_yaw_and_roll(shared_dir, estimator, name):
    image = _portrait(shared_dir, name)
    base, mirrored = estimator(image), estimator(np.ascontiguousarray(image[:, ::-1]))
    assert mirrored.yaw == pytest.approx(-base.yaw, abs=2.0)
    assert mirrored.roll == pytest.approx(-base.roll, abs=2.0)
    assert np.abs(mirrored.landmarks - base.mirrored().landmarks).max() < 0.03
    assert abs(mirrored.eye_left - base.eye_right) < 0.15


def test_pose_is_stable_on_a_still_segment(shared_dir):
    frames = read_frames(shared_dir / "data/clips/d0.mp4", max_frames=60)
    motion = np.abs(np.diff(frames.astype(np.float32), axis=0)).mean(axis=(1, 2, 3))
    window = 12
    start = int(np.argmin(np.convolve(motion, np.ones(window - 1), "valid")))  # the stillest 12 frames
    with CoefficientEstimator(static=False) as estimate:
        poses = np.array([estimate(f).pose for f in frames[start : start + window]])
    assert poses.std(axis=0).max() < 1.0, poses
    # A still frame with camera noise: the same pose within a fraction of a degree.
    rng = np.random.default_rng(0)
    still = frames[start].astype(np.int16)
    with CoefficientEstimator(static=True) as estimate:
        noisy = [estimate(np.clip(still + rng.normal(0, 3, still.shape), 0, 255).astype(np.uint8)) for _ in range(4)]
    assert np.array([c.pose for c in noisy]).std(axis=0).max() < 0.5


def test_no_face_gives_none(estimator):
    assert estimator(np.zeros((128, 128, 3), np.uint8)) is None


def test_prepare_stores_coefficients_beside_the_frames(shared_dir, tmp_path):
    dataset = tmp_path / "ds"
    args = [str(shared_dir / "data/clips/d11.mp4"), "--output", str(dataset), "--max-frames", "20"]
    assert main(["prepare", *args, "--min-frames", "16", "--workers", "1", "--quiet", "--coefficients"]) == 0
    (clip,) = (dataset / "train").iterdir()
    arrays = load_clip_coefficients(clip)
    assert arrays is not None and arrays["found"].all() and arrays["pose"].shape == (20, 3)
    first = frame_coefficients(arrays, 0)
    with CoefficientEstimator() as estimate:
        direct = estimate(np.asarray(Image.open(clip / "0000000.png").convert("RGB")))
    assert np.allclose(first.pose, direct.pose, atol=0.5)
    assert sorted(p.name for p in clip.iterdir() if not p.name.endswith(".png")) == [COEFFICIENTS_FILE]


def test_coefficients_of_the_old_landmark_layout_are_refused_in_one_line(tmp_path):
    """A coefficients.npz written with the first, 10-landmark layout: a one-line error that says what to do."""
    arrays = stack_coefficients([FaceCoefficients()])
    arrays["landmarks"] = arrays["landmarks"][:, :10]
    np.savez(tmp_path / COEFFICIENTS_FILE, **arrays)
    expected = r"10 predefined landmarks, this ostnet uses 16; write them again \(`ostnet prepare .*`ostnet synth`"
    with pytest.raises(OstnetError, match=expected) as e:
        load_clip_coefficients(tmp_path)
    assert "\n" not in str(e.value)
