"""The Animator as the pipeline uses it: precision, batching, relative anchors and best-frame semantics."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from ostnet.config import ScaleTransformConfig, model_preset
from ostnet.errors import OstnetError
from ostnet.face.crop import crop_and_resize
from ostnet.inference.animator import Animator, anchorless_mode
from ostnet.inference.best_frame import LANDMARK_SIZE, BestFrameFinder, landmark_distance
from ostnet.inference.faces import CropOptions, prepare_source
from ostnet.io.video import read_frames
from ostnet.models.ostnet import build_model

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def tiny_model():
    torch.manual_seed(0)
    return build_model("tiny")


def tiny_model_without_st():
    """The tiny model without ST and SE (seed 0): what relative mode is for."""
    cfg = model_preset("tiny")
    cfg = dataclasses.replace(
        cfg,
        scale_transform=ScaleTransformConfig(enabled=False),
        generator=dataclasses.replace(cfg.generator, scale_embedding=False),
    )
    torch.manual_seed(0)
    return build_model(cfg)


@pytest.fixture(scope="module")
def images():
    """A source (1, 3, 64, 64) and 6 driving frames with smooth structure, in [0, 1]."""
    gen = torch.Generator().manual_seed(1)
    low = torch.rand(7, 3, 8, 8, generator=gen)
    frames = torch.nn.functional.interpolate(low, size=(64, 64), mode="bilinear", align_corners=True)
    return frames[:1], frames[1:]


def test_bf16_on_cpu_matches_fp32(tiny_model, images):
    """Half precision (autocast bf16 on CPU) stays within 0.02 (max) / 0.003 (mean) of fp32 on [0, 1] images."""
    source, driving = images
    out = {}
    for dtype in ("fp32", "bf16"):
        animator = Animator(tiny_model, device="cpu", dtype=dtype)
        animator.set_source(source)
        out[dtype] = animator.animate(driving).prediction
    assert out["bf16"].dtype == torch.float32 and out["bf16"].shape == (6, 3, 64, 64)
    diff = (out["bf16"] - out["fp32"]).abs()
    assert diff.max() < 0.02 and diff.mean() < 0.003
    assert not torch.equal(out["bf16"], out["fp32"])  # the bf16 path really ran


@pytest.mark.parametrize("mode", ["anchor-free", "relative", "absolute"])
def test_streaming_in_batches_equals_one_batch(tiny_model, images, mode):
    """The pipeline animates in batches: results must not depend on how frames are grouped (the relative
    anchor is the first frame of the first batch)."""
    source, driving = images
    whole = Animator(tiny_model, device="cpu", mode=mode)
    whole.set_source(source)
    expected = whole.animate(driving).prediction
    split = Animator(tiny_model, device="cpu", mode=mode)
    split.set_source(source)
    got = torch.cat([split.animate(driving[i : i + 4]).prediction for i in (0, 4)])
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)


def test_relative_anchor_frame_gets_the_source_keypoints(images):
    """Relative motion (FOMM, reference-architecture.md §8): kp = kp_s + (kp_d - kp_anchor), so the anchor
    frame itself is animated with the source's own keypoints, whichever frame the anchor is."""
    model = tiny_model_without_st()
    source, driving = images
    results = []
    for anchor in (driving[0:1], driving[3:4]):
        animator = Animator(model, device="cpu", mode="relative")
        animator.set_source(source)
        results.append(animator.animate(anchor).prediction)
    torch.testing.assert_close(results[0], results[1], rtol=0, atol=1e-5)
    other = Animator(model, device="cpu", mode="absolute")
    other.set_source(source)
    assert (other.animate(driving[3:4]).prediction - results[1]).abs().max() > 1e-4  # not trivially equal


def test_best_frame_in_original_order_equals_fomm_forward_backward(tiny_model, images):
    """best_frame.py's claim: animating every frame in order with the best frame as anchor gives FOMM's
    forward/backward result."""
    source, driving = images
    best = 2
    animator = Animator(tiny_model, device="cpu", mode="relative")
    animator.set_source(source)
    animator.set_anchor(driving[best])
    ours = animator.animate(driving).prediction
    forward = animator.animate(driving[best:]).prediction
    backward = animator.animate(driving[: best + 1].flip(0)).prediction
    fomm = torch.cat([backward.flip(0), forward[1:]])
    torch.testing.assert_close(ours, fomm, rtol=0, atol=1e-5)


def test_landmark_distance_is_position_and_scale_invariant():
    rng = np.random.default_rng(0)
    points = rng.uniform(50, 200, size=(68, 2))
    moved = points * 1.7 + np.array([30.0, -12.0])
    assert landmark_distance(points, moved) == pytest.approx(0.0, abs=1e-12)
    other = points + rng.normal(0, 5, size=(68, 2))
    assert landmark_distance(points, other) > 1e-3
    assert landmark_distance(points, other) == pytest.approx(landmark_distance(other, points))


def test_best_frame_finder_picks_the_frame_matching_the_source(shared_dir):
    source = prepare_source(shared_dir / "data/portraits/s9.jpg", CropOptions(), 64)
    source_crop = crop_and_resize(source.image, source.box, LANDMARK_SIZE)
    frames = read_frames(shared_dir / "data/clips/d0.mp4", max_frames=3)
    crops = [np.asarray(frame[::2, ::2]) for frame in frames]  # 256 x 256
    crops.insert(2, source_crop)  # the source itself among the driving frames
    crops.insert(1, np.full((256, 256, 3), 127, np.uint8))  # a frame without a face is skipped
    finder = BestFrameFinder(source_crop)
    for crop in crops:
        finder.add(crop)
    assert finder.found and finder.best == 3 and finder.distance == pytest.approx(0.0, abs=1e-12)


# --------------------------------------------------------------------------------------------------
# animate_pairs: independent pairs (evaluation), and what relative mode means there
# --------------------------------------------------------------------------------------------------


def _pairs(images):
    source, driving = images
    sources = torch.cat([source, driving[4:5], driving[5:6]])  # three different sources
    return sources, driving[:3], driving[3:6]  # sources, driving frames, anchors


@pytest.mark.parametrize("mode", ["anchor-free", "absolute", "relative"])
def test_animate_pairs_equals_one_video_step_per_pair(tiny_model, images, mode):
    """Pair i gives what set_source(source[i]) (+ set_anchor(anchor[i]) in relative mode) and animate(driving[i])
    give: the pairs are independent, and relative means relative to the pair's anchor frame."""
    sources, driving, anchors = _pairs(images)
    animator = Animator(tiny_model, device="cpu", mode=mode)
    got = animator.animate_pairs(sources, driving, anchors if mode == "relative" else None)
    for i in range(3):
        animator.set_source(sources[i : i + 1])
        if mode == "relative":
            animator.set_anchor(anchors[i : i + 1])
        expected = animator.animate(driving[i : i + 1]).prediction
        torch.testing.assert_close(got[i : i + 1], expected, rtol=0, atol=1e-5)
    if mode == "relative":  # one anchor frame for all pairs broadcasts
        shared = animator.animate_pairs(sources, driving, anchors[1:2])
        torch.testing.assert_close(shared[1], got[1], rtol=0, atol=1e-5)
        assert (shared[0] - got[0]).abs().max() > 1e-4  # another anchor: another result


def test_relative_pair_whose_anchor_is_its_driving_frame_reproduces_the_source_keypoints(images):
    """No motion from the anchor to the driving frame: the source's own keypoints drive the generator, which is
    what absolute mode does when the driving frame is the source itself (a model without ST)."""
    model = tiny_model_without_st()
    sources, driving, _ = _pairs(images)
    relative = Animator(model, device="cpu", mode="relative").animate_pairs(sources, driving, anchor=driving)
    itself = Animator(model, device="cpu", mode="absolute").animate_pairs(sources, sources)
    torch.testing.assert_close(relative, itself, rtol=0, atol=1e-5)
    moved = Animator(model, device="cpu", mode="absolute").animate_pairs(sources, driving)
    assert (moved - itself).abs().max() > 1e-4  # not trivially equal


def test_relative_pairs_with_adapt_scale_take_each_source_alone(tiny_model, images):
    sources, driving, anchors = _pairs(images)
    animator = Animator(tiny_model, device="cpu", mode="relative", adapt_scale=True)
    got = animator.animate_pairs(sources, driving, anchors)
    for i in range(3):
        alone = animator.animate_pairs(sources[i : i + 1], driving[i : i + 1], anchors[i : i + 1])
        torch.testing.assert_close(got[i : i + 1], alone, rtol=0, atol=1e-5)


def test_animate_pairs_refuses_a_missing_or_useless_anchor(tiny_model, images):
    sources, driving, anchors = _pairs(images)
    with pytest.raises(OstnetError, match="mode relative needs anchor frames"):
        Animator(tiny_model, device="cpu", mode="relative").animate_pairs(sources, driving)
    with pytest.raises(OstnetError, match="mode anchor-free takes no anchor"):
        Animator(tiny_model, device="cpu", mode="anchor-free").animate_pairs(sources, driving, anchors)
    with pytest.raises(OstnetError, match="2 anchor frames for 3 pairs"):
        Animator(tiny_model, device="cpu", mode="relative").animate_pairs(sources, driving, anchors[:2])
    assert anchorless_mode(tiny_model) == "anchor-free"
