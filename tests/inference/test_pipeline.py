"""The animate pipeline: streaming crop smoothing, paste-back geometry, and end-to-end runs on short clips."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ostnet.errors import OstnetError
from ostnet.face.crop import BoxSmoother, CropBox, crop_and_resize
from ostnet.face.detector import FaceBox
from ostnet.inference.animator import Animator, FrameBatch
from ostnet.inference.faces import (
    CropOptions,
    DrivingFaces,
    centre_box,
    prepare_source,
    smooth_stream,
    smoothing_radius,
)
from ostnet.inference.paste import PasteBack, side_by_side
from ostnet.inference.pipeline import AnimateOptions, animate_video, batched
from ostnet.io.image import FrameFolder, load_image, to_tensor
from ostnet.io.video import VideoWriter, probe_video, read_frames
from ostnet.models.ostnet import build_model

pytestmark = pytest.mark.usefixtures("one_thread")


class RecordingAnimator(Animator):
    """A real Animator that records what the pipeline asks of it."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.sources, self.anchors, self.batches = [], [], []

    def set_source(self, source):
        self.sources.append(source.clone())
        return super().set_source(source)

    def set_anchor(self, driving_frame):
        self.anchors.append(driving_frame.clone())
        super().set_anchor(driving_frame)

    def animate(self, driving) -> FrameBatch:
        self.batches.append(driving.clone())
        return super().animate(driving)


@pytest.fixture(scope="module")
def tiny_model():
    torch.manual_seed(0)
    return build_model("tiny")


# --------------------------------------------------------------------------------------------------
# streaming helpers
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("sigma", [0.0, 0.7, 3.0])
@pytest.mark.parametrize("length", [1, 2, 7, 40])
def test_smooth_stream_equals_whole_track_smoothing(sigma, length):
    rng = np.random.default_rng(length)
    track = [CropBox(*row) for row in rng.normal([100, 80, 60], 5.0, size=(length, 3))]
    expected = BoxSmoother(sigma).smooth(track)
    streamed = list(smooth_stream(((i, box) for i, box in enumerate(track)), BoxSmoother(sigma)))
    assert [i for i, _ in streamed] == list(range(length))
    np.testing.assert_allclose(np.array([b for _, b in streamed]), np.array(expected), rtol=0, atol=1e-9)


def test_smooth_stream_look_ahead_is_bounded():
    pulled = 0

    def source():
        nonlocal pulled
        for i in range(100):
            pulled += 1
            yield i, CropBox(float(i), 0.0, 10.0)

    radius = smoothing_radius(3.0)
    for index, _ in smooth_stream(source(), BoxSmoother(3.0)):
        assert pulled - index <= radius + 1  # never more than the look-ahead window in memory


def test_batched():
    assert list(batched(range(7), 3)) == [[0, 1, 2], [3, 4, 5], [6]]
    assert list(batched([], 4)) == []


# --------------------------------------------------------------------------------------------------
# paste-back and composition
# --------------------------------------------------------------------------------------------------


def _smooth_image(height: int, width: int) -> np.ndarray:
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    channels = [128 + 100 * np.sin(x / 23.0), 128 + 100 * np.cos(y / 17.0), 255 * (x + y) / (height + width)]
    return np.clip(np.stack(channels, axis=-1), 0, 255).round().astype(np.uint8)


@pytest.mark.parametrize(
    "box",
    [CropBox(90.3, 70.8, 101.4), CropBox(20.0, 150.0, 120.0)],  # inside; partly outside the frame
    ids=["inside", "beyond-edge"],
)
def test_paste_back_inverts_crop_and_resize(box):
    image = _smooth_image(181, 160)
    size = 64
    face = to_tensor(crop_and_resize(image, box, size))[None]
    paste = PasteBack(image, box, size, feather=0.2)
    (frame,) = paste(face)
    assert frame.shape == image.shape and frame.dtype == np.uint8
    # Outside the box the source is untouched, bit for bit.
    ys, xs = np.mgrid[0 : image.shape[0], 0 : image.shape[1]]
    outside = (xs + 1 <= box.x0) | (xs >= box.x1) | (ys + 1 <= box.y0) | (ys >= box.y1)
    assert np.array_equal(frame[outside], image[outside])
    # Inside, pasting back the crop of the image itself reproduces the image (up to resampling error).
    inner = (np.abs(xs + 0.5 - box.cx) < 0.4 * box.size) & (np.abs(ys + 0.5 - box.cy) < 0.4 * box.size)
    diff = np.abs(frame[inner].astype(float) - image[inner].astype(float))
    assert diff.mean() < 2.0 and diff.max() < 12


def test_paste_back_mask_is_one_inside_and_feathered_at_the_border():
    image = np.zeros((100, 100, 3), np.uint8)
    box = CropBox(50.0, 50.0, 80.0)
    paste = PasteBack(image, box, 32, feather=0.25)
    (frame,) = paste(torch.ones(1, 3, 32, 32))  # white face over black
    row = frame[50, :, 0].astype(int)
    assert row[50] == 255 and row[30] == 255  # inside the feather band: fully the face
    assert row[10] < 10 and row[89] < 10  # at the box edge: the source
    assert 20 < row[15] < 235  # within the band: a blend
    assert np.all(np.diff(row[10:50]) >= 0)  # rising smoothly towards the centre


def test_side_by_side_resizes_to_one_height():
    panels = [np.zeros((50, 40, 3), np.uint8), np.zeros((100, 100, 3), np.uint8), np.zeros((64, 64, 3), np.uint8)]
    out = side_by_side(panels, 64)
    assert out.shape == (64, round(40 * 64 / 50) + 64 + 64, 3)


def test_prepare_source_reads_every_image_kind(shared_dir, tmp_path):
    portrait = load_image(shared_dir / "data/portraits/s12.jpg")
    rgba = np.concatenate([portrait, np.full(portrait.shape[:2] + (1,), 255, np.uint8)], axis=2)
    grey = np.asarray(Image.fromarray(portrait).convert("L"))
    files = {
        "rgba.png": Image.fromarray(rgba, "RGBA"),
        "grey.png": Image.fromarray(grey),
        "grey16.png": Image.fromarray(grey.astype(np.uint16) * 257),
        "photo.webp": Image.fromarray(portrait),
    }
    reference = prepare_source(shared_dir / "data/portraits/s12.jpg", CropOptions(), 64)
    for name, image in files.items():
        image.save(tmp_path / name)
        source = prepare_source(tmp_path / name, CropOptions(), 64)
        assert source.crop.shape == (64, 64, 3) and source.image.shape == portrait.shape
        assert abs(source.box.cx - reference.box.cx) < 8 and abs(source.box.size - reference.box.size) < 16, name


def test_face_index_picks_another_face(shared_dir, tmp_path):
    big = Image.open(shared_dir / "data/portraits/s42.jpg").convert("RGB").resize((400, 400))
    small = Image.open(shared_dir / "data/portraits/s12.jpg").convert("RGB").resize((200, 267))
    group = Image.new("RGB", (700, 420), (200, 200, 200))
    group.paste(big, (10, 10))
    group.paste(small, (480, 60))
    group.save(tmp_path / "group.png")
    first = prepare_source(tmp_path / "group.png", CropOptions(), 64)
    second = prepare_source(tmp_path / "group.png", CropOptions(face_index=1), 64)
    assert first.box.cx < 410 < second.box.cx and first.box.size > second.box.size
    with pytest.raises(OstnetError, match=r"group.png: --face-index 2, but only 2 face\(s\) found"):
        prepare_source(tmp_path / "group.png", CropOptions(face_index=2), 64)


class ScriptedDetector:
    """Returns pre-set detections, one list per call."""

    def __init__(self, script: list[list[FaceBox]]) -> None:
        self.script = iter(script)

    def detect(self, frame: np.ndarray) -> list[FaceBox]:
        return sorted(next(self.script), key=lambda box: box.area, reverse=True)


def test_driving_faces_follows_one_face_and_keeps_the_last_crop():
    a = FaceBox(100, 100, 200, 200, 0.9)  # the face we follow
    b = FaceBox(300, 100, 420, 220, 0.9)  # a second, larger person
    tiny = FaceBox(10, 10, 20, 20, 0.9)  # below min_face
    script = [
        [tiny],  # prime: only a too-small face
        [a],  # prime: found
        [a],
        [b, a._replace(x1=190, y1=190)],  # a shrinks: still followed, although b is now the largest
        [],  # no face: keep the last crop
        [b, tiny],  # only another person: follow them (a scene cut)
    ]
    frame = np.zeros((480, 640, 3), np.uint8)
    faces = DrivingFaces(Path("clip.mp4"), CropOptions(driving_face_index=0), detector=ScriptedDetector(script))
    faces.prime([frame, frame])
    boxes = [faces.box_for(frame) for _ in range(4)]
    assert boxes[0].cx == pytest.approx(150) and boxes[1].cx == pytest.approx(145)
    assert boxes[2] == boxes[1] and faces.missing == 1
    assert boxes[3].cx == pytest.approx(360)


def test_driving_faces_reports_faces_that_are_too_small():
    small = FaceBox(0, 0, 20, 20, 0.9)
    faces = DrivingFaces(Path("clip.mp4"), CropOptions(), detector=ScriptedDetector([[small]] * 3))
    with pytest.raises(OstnetError, match=r"clip.mp4: the face is too small in every frame \(at most 20 px"):
        faces.prime([np.zeros((64, 64, 3), np.uint8)] * 3)


def test_centre_box_for_no_crop():
    assert centre_box(200, 100) == CropBox(100.0, 50.0, 100.0)


# --------------------------------------------------------------------------------------------------
# end to end on short inputs
# --------------------------------------------------------------------------------------------------


def test_animate_video_paste_back_audio_and_frames(shared_dir, tmp_path, tiny_model):
    clip, portrait = shared_dir / "data/clips/d3.mp4", shared_dir / "data/portraits/s0.jpg"
    animator = RecordingAnimator(tiny_model, device="cpu")
    options = AnimateOptions(
        source=portrait, driving=clip, output=tmp_path / "out.mp4", paste_back=True,
        frames_dir=tmp_path / "frames", batch_size=4, max_frames=10, progress=False,
    )  # fmt: skip
    summary = animate_video(options, animator=animator)
    info, source = probe_video(options.output), load_image(portrait)
    assert summary.frames == info.num_frames == 10
    assert info.fps == probe_video(clip).fps == summary.fps == 30
    assert (info.height, info.width) == source.shape[:2]  # paste-back keeps the source's framing
    assert info.has_audio and summary.audio_kept
    assert len(animator.sources) == 1 and [len(b) for b in animator.batches] == [4, 4, 2]
    assert sorted(p.name for p in options.frames_dir.iterdir()) == [f"{i:06d}.png" for i in range(10)]
    assert sum(summary.times.__dict__.values()) <= summary.seconds
    assert sorted(p.name for p in tmp_path.iterdir()) == ["frames", "out.mp4"]  # no temporary leftovers
    _check_audio_length(options.output)


def _check_audio_length(path: Path) -> None:
    import av

    with av.open(str(path)) as container:
        video, audio = container.streams.video[0], container.streams.audio[0]
        fps = float(video.average_rate)
        last_audio = 0.0
        for packet in container.demux(audio):
            if packet.pts is not None:
                last_audio = max(last_audio, float((packet.pts + packet.duration) * packet.time_base))
        frames = video.frames
    assert abs(last_audio - frames / fps) <= 1 / fps


def test_side_by_side_and_driving_frames_without_a_face(shared_dir, tmp_path, tiny_model):
    frames = read_frames(shared_dir / "data/clips/d0.mp4", max_frames=8)
    frames = np.stack([np.asarray(Image.fromarray(f).resize((256, 256))) for f in frames])
    frames[[0, 4, 5]] = 128  # no face in three frames (the first one included)
    driving = tmp_path / "driving.mkv"
    with VideoWriter(driving, fps=12.5) as writer:
        for frame in frames:
            writer.write(frame)
    options = AnimateOptions(
        source=shared_dir / "data/portraits/s9.jpg", driving=driving, output=tmp_path / "sbs.mp4",
        side_by_side=True, progress=False,
    )  # fmt: skip
    counted = []
    summary = animate_video(options, animator=Animator(tiny_model, device="cpu"), on_frames=counted.append)
    info = probe_video(options.output)
    assert (info.width, info.height, info.num_frames, info.fps) == (3 * 64, 64, 8, 12.5)
    assert counted == [8]  # one batch of the default size 8: progress reported per animated batch
    assert summary.frames_without_face == 3 and not summary.audio_kept
    assert any("no usable face in 3 of 8 frames" in w for w in summary.warnings)


def test_best_frame_mode_anchors_on_the_best_frame_and_keeps_order(shared_dir, tmp_path, tiny_model):
    animator = RecordingAnimator(tiny_model, device="cpu", mode="relative")
    options = AnimateOptions(
        source=shared_dir / "data/portraits/s42.jpg", driving=shared_dir / "data/clips/d0.mp4",
        output=tmp_path / "best.mp4", mode="best-frame", frames_dir=tmp_path / "frames", batch_size=3,
        max_frames=7, progress=False,
    )  # fmt: skip
    summary = animate_video(options, animator=animator)
    assert summary.best_frame is not None and 0 <= summary.best_frame < 7
    crops = torch.cat(animator.batches)  # the driving crops, in the order they were animated
    assert len(animator.anchors) == 1 and torch.equal(animator.anchors[0][0], crops[summary.best_frame])
    # FOMM: animate forward from the best frame and backward to frame 0, then concatenate.
    reference = Animator(tiny_model, device="cpu", mode="relative")
    reference.set_source(animator.sources[0])
    reference.set_anchor(crops[summary.best_frame])
    best = summary.best_frame
    forward = reference.animate(crops[best:]).prediction
    backward = reference.animate(crops[: best + 1].flip(0)).prediction
    expected = torch.cat([backward.flip(0), forward[1:]])
    written = torch.stack([to_tensor(load_image(p)) for p in sorted(options.frames_dir.iterdir())])
    assert written.shape == expected.shape
    assert (written - expected).abs().max() <= 1 / 255 + 1e-6


@pytest.mark.parametrize("kind", ["folder", "gif"])
def test_no_crop_with_a_folder_or_gif(tmp_path, tiny_model, kind):
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (40, 50, 3), dtype=np.uint8) for _ in range(5)]
    if kind == "folder":
        driving = tmp_path / "frames"
        driving.mkdir()
        for i, frame in enumerate(frames):
            Image.fromarray(frame).save(driving / f"{i:04d}.png")
    else:
        driving = tmp_path / "clip.gif"
        images = [Image.fromarray(f) for f in frames]
        images[0].save(driving, save_all=True, append_images=images[1:], duration=100, loop=0)
    source = tmp_path / "source.png"
    Image.fromarray(rng.integers(0, 256, (30, 45, 3), dtype=np.uint8)).save(source)
    options = AnimateOptions(
        source=source, driving=driving, output=tmp_path / "out.mp4", crop=CropOptions(enabled=False),
        paste_back=True, progress=False,
    )  # fmt: skip
    summary = animate_video(options, animator=Animator(tiny_model, device="cpu"))
    info = probe_video(options.output)
    assert info.num_frames == summary.frames == 5
    assert (info.height, info.width) == (30, 46)  # the source's size, width padded to even for yuv420p
    assert math.isclose(info.fps, probe_video(driving).fps)


def test_frame_folder_is_removed_when_interrupted(tmp_path):
    folder = FrameFolder(tmp_path / "frames")
    with pytest.raises(KeyboardInterrupt), folder:
        folder.write(np.zeros((4, 4, 3), np.uint8))
        raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []


def test_animator_for_maps_best_frame_to_a_relative_anchor(tiny_model, tmp_path):
    from ostnet.inference.pipeline import animator_for

    options = AnimateOptions(source=tmp_path / "s.png", driving=tmp_path / "d.mp4", output=tmp_path / "o.mp4")
    assert animator_for(tiny_model, options).mode == "anchor-free"  # tiny has ST: auto = anchor-free
    best = AnimateOptions(**{**options.__dict__, "mode": "best-frame", "adapt_scale": True, "device": "cpu"})
    animator = animator_for(tiny_model, best)
    assert animator.mode == "relative" and animator.adapt_scale and animator.device.type == "cpu"
