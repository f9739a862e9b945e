"""The streaming step (``ostnet live``, the web app's webcam): same results as the Animator, face crops, stats."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ostnet.errors import OstnetError
from ostnet.inference.animator import Animator
from ostnet.inference.stream import StreamStep
from ostnet.io.image import load_image, to_tensor, to_uint8
from ostnet.io.video import read_frames
from ostnet.models.ostnet import build_model

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def tiny_model():
    torch.manual_seed(0)
    return build_model("tiny")


def _frames(n: int, size: int = 64, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8)


def test_step_equals_animator_per_frame(tiny_model):
    """Without cropping, each step is exactly the Animator's per-frame step on that frame."""
    frames = _frames(4)
    source, driving = frames[0], frames[1:]
    with StreamStep(Animator(tiny_model, device="cpu"), crop=False) as stream:
        stream.set_source(source)
        results = [stream.step(frame) for frame in driving]
        stream.drop(2)
        stats = stream.stats
    reference = Animator(tiny_model, device="cpu")
    reference.set_source(to_tensor(source)[None])
    expected = to_uint8(reference.animate(to_tensor(driving)).prediction)
    for got, want in zip(results, expected, strict=True):
        assert got.shape == (64, 64, 3) and got.dtype == np.uint8
        assert np.abs(got.astype(int) - want.astype(int)).max() <= 1
    assert stats.frames == 3 and stats.dropped == 2
    assert stats.latency_ms > 0 and stats.median_latency_ms > 0 and stats.fps > 0 and math.isfinite(stats.fps)
    assert "3 frames, 2 dropped" in stats.line()


def test_step_before_source_and_bad_frames(tiny_model):
    stream = StreamStep(Animator(tiny_model, device="cpu"), crop=False)
    with pytest.raises(RuntimeError, match="set_source"):
        stream.step(_frames(1)[0])
    stream.set_source(_frames(1)[0])
    with pytest.raises(OstnetError, match="uint8"):
        stream.step(np.zeros((64, 64, 3), np.float32))
    assert math.isnan(stream.stats.fps)


def test_face_crops_follow_the_face(tiny_model, shared_dir):
    """With cropping, a real portrait and real driving frames give a face crop per frame; a frame without a face
    keeps the last box."""
    portrait = load_image(shared_dir / "data/portraits/s9.jpg")
    frames = read_frames(shared_dir / "data/clips/d0.mp4", max_frames=3)
    with StreamStep(Animator(tiny_model, device="cpu")) as stream:
        crop = stream.set_source(portrait)
        assert crop.shape == (64, 64, 3)
        outs = [stream.step(frame) for frame in frames]
        box = stream._box
        stream.step(np.zeros_like(frames[0]))  # no face: the box stays
        assert stream._box == box
    assert all(out.shape == (64, 64, 3) for out in outs)
    with StreamStep(Animator(tiny_model, device="cpu")) as stream, pytest.raises(OstnetError, match="no face"):
        stream.set_source(np.zeros((128, 128, 3), np.uint8))
