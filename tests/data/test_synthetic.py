"""Synthetic talking heads: rendering, smooth deterministic sequences, known scale, dataset on disk, CLI."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from ostnet.cli import main as cli_main
from ostnet.data import synthetic
from ostnet.data.synthetic import (
    Expression,
    HeadParams,
    Pose,
    render_head,
    sample_identity,
    sample_sequence,
    write_synthetic_dataset,
)
from ostnet.errors import OstnetError
from ostnet.io.image import load_image


def _params(seed: int = 5) -> HeadParams:
    return HeadParams(sample_identity(seed), Expression(), Pose(), scale=0.8)


def _head_columns(image: np.ndarray, row: int) -> np.ndarray:
    """Columns of ``row`` that differ from the background (the gradient is constant along a row)."""
    line = image[row].astype(np.int32)
    return np.nonzero(np.abs(line - line[0]).sum(-1) > 24)[0]


@pytest.mark.parametrize("size", [64, 256])
def test_render_shape_and_content(size):
    image = render_head(_params(), size)
    assert image.shape == (size, size, 3) and image.dtype == np.uint8
    skin = np.array(sample_identity(5).skin)
    centre = image[size // 2 - size // 16 : size // 2 + size // 16, size // 2 - size // 5 : size // 2 - size // 8]
    assert np.abs(centre.reshape(-1, 3).mean(0) - skin).max() < 40  # cheek below the left eye is skin
    assert image.std() > 20  # not a flat image


def test_face_scale_and_centre_match_the_parameters():
    size = 256
    widths, centres = {}, {}
    for scale in (0.6, 1.0):
        for x in (0.0, 0.3):
            params = HeadParams(sample_identity(5), Expression(), Pose(x=x), scale=scale)
            cols = _head_columns(render_head(params, size), size // 2)
            widths[scale, x] = cols.max() - cols.min()
            centres[scale, x] = (cols.max() + cols.min()) / 2
    assert abs(widths[0.6, 0.0] - 0.6 * widths[1.0, 0.0]) <= 2.0  # the head scales linearly with `scale`
    for key, centre in centres.items():
        assert abs(centre - (key[1] + 1) / 2 * (size - 1)) <= 1.0


def test_texture_moves_with_the_head_and_the_background_stays():
    size, shift = 64, 6  # pixels
    dx = 2.0 * shift / size  # exactly 4 * shift pixels of the 4x supersampled canvas
    base = HeadParams(sample_identity(5), Expression(), Pose(x=-0.2), scale=0.6)
    moved = replace(base, pose=Pose(x=-0.2 + dx))
    flat, a, b = render_head(base, size), render_head(base, size, 0.3), render_head(moved, size, 0.3)
    face = (slice(26, 34), slice(16, 22))  # inside the face at x = -0.2
    shifted = (face[0], slice(16 + shift, 22 + shift))
    assert np.abs(a[face].astype(int) - flat[face]).max() > 15  # the pattern is there
    assert np.abs(a[face].astype(int) - b[shifted]).max() <= 2  # and travels with the face
    corner = (slice(0, 6), slice(58, 64))  # background far from both heads
    assert np.array_equal(a[corner], b[corner]) and np.abs(a[corner].astype(int) - flat[corner]).max() > 5
    assert flat[0, 0].tolist() == flat[0, 5].tolist()  # texture 0: flat colours, as before
    with pytest.raises(ValueError, match="texture"):
        render_head(base, size, 1.0)


def test_expression_changes_the_mouth_and_eyes():
    base = _params()
    closed = render_head(base, 128).astype(np.int32)
    opened = render_head(replace(base, expression=Expression(mouth_open=1.0)), 128).astype(np.int32)
    blink = render_head(replace(base, expression=Expression(eye_open=0.0)), 128).astype(np.int32)
    mouth_rows = slice(64 + 8, 64 + 24)
    eye_rows = slice(64 - 12, 64)
    assert np.abs(opened - closed)[mouth_rows].sum() > 10 * np.abs(opened - closed)[eye_rows].sum()
    assert np.abs(blink - closed)[eye_rows].sum() > 10 * np.abs(blink - closed)[mouth_rows].sum()


def test_sequences_are_deterministic_smooth_and_alive():
    frames = sample_sequence(3, 200, scale=0.8, rng=np.random.default_rng(1))
    again = sample_sequence(3, 200, scale=0.8, rng=np.random.default_rng(1))
    other = sample_sequence(3, 200, scale=0.8, rng=np.random.default_rng(2))
    assert frames == again and frames != other
    assert other[0].identity == frames[0].identity  # same person, different motion
    assert sample_identity(4) != sample_identity(3)
    mouth = np.array([f.expression.mouth_open for f in frames])
    eyes = np.array([f.expression.eye_open for f in frames])
    yaw = np.array([f.pose.yaw for f in frames])
    scale = np.array([f.scale for f in frames])
    assert mouth.max() - mouth.min() > 0.4 and np.abs(np.diff(mouth)).max() < 0.5  # talks, smoothly
    assert eyes.min() < 0.2 and eyes.max() > 0.7  # blinks
    assert np.abs(np.diff(yaw)).max() < 0.05 and np.ptp(yaw) > 0.02
    assert np.all(np.abs(scale / 0.8 - 1) < 0.05)


def test_motion_factor_moves_the_head_more_within_limits():
    plain = sample_sequence(3, 40, scale=0.8, rng=np.random.default_rng(1))
    assert sample_sequence(3, 40, scale=0.8, rng=np.random.default_rng(1), motion=1.0) == plain

    def spread(frames):
        pose = np.array([[f.pose.yaw, f.pose.roll, f.pose.x, f.pose.y] for f in frames])
        return np.ptp(pose, axis=0), np.abs(pose).max(0)

    for seed in range(4):
        calm, _ = spread(sample_sequence(3, 40, scale=0.8, rng=np.random.default_rng(seed)))
        moving, peak = spread(sample_sequence(3, 40, scale=0.8, rng=np.random.default_rng(seed), motion=3.0))
        assert np.all(moving > 1.5 * calm)  # yaw, roll and drift all vary more within the clip
        limits = [synthetic.MAX_YAW, synthetic.MAX_ROLL, synthetic.MAX_OFFSET, synthetic.MAX_OFFSET]
        assert np.all(peak <= np.array(limits) + 1e-12)
    still = sample_sequence(3, 40, scale=0.8, rng=np.random.default_rng(1), motion=0.0)
    assert {(f.pose.yaw, f.pose.roll, f.pose.x, f.pose.y) for f in still} == {(0.0, 0.0, 0.0, 0.0)}
    with pytest.raises(ValueError, match="motion"):
        sample_sequence(3, 4, scale=0.8, rng=np.random.default_rng(1), motion=-1.0)


def test_camera_pan_moves_the_whole_picture_and_leaves_the_rest_of_the_clip():
    plain = sample_sequence(3, 40, scale=0.8, rng=np.random.default_rng(1))
    panned = sample_sequence(3, 40, scale=0.8, rng=np.random.default_rng(1), camera=0.2)
    assert [replace(f, camera=(0.0, 0.0)) for f in panned] == plain  # the pan's draws come after all others
    pan = np.array([f.camera for f in panned])
    assert 0.1 < np.ptp(pan[:, 0]) <= 0.4 and np.abs(pan).max() <= 0.2 + 1e-12  # it sweeps, within its amplitude
    size, shift = 64, 6
    base = HeadParams(sample_identity(5), Expression(), Pose(), scale=0.6)
    still = render_head(base, size, 0.3)
    moved = render_head(replace(base, camera=(2.0 * shift / size, 0.0)), size, 0.3)
    # everything, background included, moves right by `shift` px (the ramp is constant along a row)
    assert np.abs(moved[:, shift + 2 : -2].astype(int) - still[:, 2 : -shift - 2]).max() <= 2
    with pytest.raises(ValueError, match="camera"):
        sample_sequence(3, 4, scale=0.8, rng=np.random.default_rng(1), camera=-0.1)


def test_blink_rate_closes_the_eyes_more_often_and_leaves_the_plain_clip_at_one():
    plain = sample_sequence(3, 200, scale=0.8, rng=np.random.default_rng(1))
    assert sample_sequence(3, 200, scale=0.8, rng=np.random.default_rng(1), blink_rate=1.0) == plain
    closed = {}
    for rate in (1.0, 4.0):
        frames = [
            f
            for seed in range(6)
            for f in sample_sequence(3, 200, scale=0.8, rng=np.random.default_rng(seed), blink_rate=rate)
        ]
        eyes = np.array([f.expression.eye_open for f in frames])
        closed[rate] = np.mean(eyes < 0.5)
        assert eyes.min() >= 0.0 and eyes.max() <= 1.0
    assert closed[4.0] > 2.5 * closed[1.0] > 0  # each gap between blinks is a quarter as long
    with pytest.raises(ValueError, match="blink_rate"):
        sample_sequence(3, 4, scale=0.8, rng=np.random.default_rng(1), blink_rate=0.0)


def test_dataset_motion_lowers_the_similarity_of_frames_of_one_video(tmp_path):
    kwargs = dict(num_identities=2, videos_per_identity=1, num_frames=16, size=32, test_identities=1)
    change = {}
    for motion in (1.0, 3.0):
        root = write_synthetic_dataset(tmp_path / f"m{motion}", motion=motion, **kwargs)
        assert json.loads((root / "synthetic.json").read_text())["spec"]["motion"] == motion
        video = next((root / "train").iterdir())
        frames = np.stack([load_image(f) for f in sorted(video.glob("*.png"))]).astype(np.float32)
        change[motion] = np.abs(frames[:, None] - frames[None]).mean()  # mean over all frame pairs
    assert change[3.0] > 2 * change[1.0]
    with pytest.raises(OstnetError, match="motion"):
        write_synthetic_dataset(tmp_path / "bad", motion=-0.5, **kwargs)


def test_write_dataset_layout_and_ground_truth(tmp_path):
    root = write_synthetic_dataset(
        tmp_path / "synth", num_identities=3, videos_per_identity=2, num_frames=4, size=32, test_identities=1
    )
    train = sorted(p.name for p in (root / "train").iterdir())
    test = sorted(p.name for p in (root / "test").iterdir())
    assert train[0] == "id00000#vid00#000000#000004.mp4" and len(train) == 4 and len(test) == 2
    assert all(name.startswith("id00002#") for name in test)
    frames = sorted((root / "train" / train[0]).iterdir())
    assert [f.name for f in frames] == [f"{i:07d}.png" for i in range(4)] + ["coefficients.npz"]
    frames = frames[:4]
    assert load_image(frames[0]).shape == (32, 32, 3)
    meta = json.loads((root / "synthetic.json").read_text())
    assert len(meta["videos"]) == 6
    for video in meta["videos"]:
        assert (root / video["split"] / video["name"]).is_dir()
        assert len(video["frames"]) == 4
        for frame in video["frames"]:
            assert 0.6 * 0.95 <= frame["scale"] <= 1.0 * 1.05
            assert frame["face_height"] == pytest.approx(synthetic.FACE_FRACTION * frame["scale"])
            assert all(-1 <= c <= 1 for c in frame["center"])
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary folders left


def test_write_dataset_is_deterministic_and_refuses_to_clobber(tmp_path):
    kwargs = dict(num_identities=2, videos_per_identity=1, num_frames=2, size=16, test_identities=1)
    a = write_synthetic_dataset(tmp_path / "a", seed=7, **kwargs)
    b = write_synthetic_dataset(tmp_path / "b", seed=7, **kwargs)
    c = write_synthetic_dataset(tmp_path / "c", seed=8, **kwargs)
    frame = "train/id00000#vid00#000000#000002.mp4/0000001.png"
    assert np.array_equal(load_image(a / frame), load_image(b / frame))
    assert not np.array_equal(load_image(a / frame), load_image(c / frame))
    with pytest.raises(OstnetError, match="already exists"):
        write_synthetic_dataset(a, seed=8, **kwargs)
    write_synthetic_dataset(a, seed=8, overwrite=True, **kwargs)
    assert np.array_equal(load_image(a / frame), load_image(c / frame))
    with pytest.raises(OstnetError, match="fewer than identities"):
        write_synthetic_dataset(tmp_path / "d", num_identities=2, test_identities=2)


def test_interrupted_write_leaves_nothing(tmp_path, monkeypatch):
    calls = []

    def interrupt(folder, frames, size, texture):
        calls.append(folder)
        if len(calls) == 2:
            raise KeyboardInterrupt
        folder.mkdir(parents=True)

    monkeypatch.setattr(synthetic, "_write_video", interrupt)
    with pytest.raises(KeyboardInterrupt):
        write_synthetic_dataset(tmp_path / "out", num_identities=2, num_frames=2, size=16, test_identities=1)
    assert list(tmp_path.iterdir()) == []


def test_synth_command(tmp_path, capsys):
    out = tmp_path / "cli"
    args = ["synth", "--output", str(out), "--identities", "3", "--test-identities", "1"]
    style = ["--motion", "2", "--camera", "0.1", "--texture", "0.2", "--blink-rate", "3"]
    assert cli_main([*args, *style, "--frames", "2", "--size", "16", "--seed", "1"]) == 0
    assert len(list((out / "train").iterdir())) == 4 and "wrote 6 videos" in capsys.readouterr().out
    spec = json.loads((out / "synthetic.json").read_text())["spec"]
    assert (spec["motion"], spec["camera"], spec["texture"], spec["blink_rate"]) == (2.0, 0.1, 0.2, 3.0)
    assert cli_main(args) == 2  # exists already
    assert "already exists" in capsys.readouterr().err
