"""Square crop geometry, temporal smoothing, edge-padded cropping and face tracking (ostnet.face.crop)."""

from __future__ import annotations

import numpy as np
import pytest

from ostnet.face.crop import (
    BoxSmoother,
    CropBox,
    box_iou,
    crop_and_resize,
    square_box,
    track_faces,
)
from ostnet.face.detector import FaceBox


def test_square_box_analytic():
    face = FaceBox(400.0, 300.0, 500.0, 380.0, 0.9)  # 100 x 80, centre (450, 340)
    box = square_box(face, 1000, 800, margin=0.5, shift=0.15)
    assert box == pytest.approx(CropBox(450.0, 340.0 - 15.0, 150.0))
    assert (box.x0, box.y1) == pytest.approx((375.0, 400.0))
    # Near the border the crop moves inside the frame instead of needing padding ...
    edge = square_box(FaceBox(0.0, 10.0, 100.0, 110.0, 0.9), 1000, 800, margin=0.5, shift=0.0)
    assert (edge.x0, edge.y0, edge.size) == pytest.approx((0.0, 0.0, 150.0))
    # ... unless asked not to, or unless it is larger than the frame.
    assert square_box(FaceBox(0.0, 10.0, 100.0, 110.0, 0.9), 1000, 800, 0.5, shift=0.0, keep_inside=False).cx == 50
    huge = square_box(FaceBox(10.0, 10.0, 90.0, 90.0, 0.9), 100, 100, margin=1.0, shift=0.0)
    assert (huge.cx, huge.cy, huge.size) == pytest.approx((50.0, 50.0, 160.0))
    with pytest.raises(ValueError):
        square_box(face, 1000, 800, margin=-1.0)


def test_crop_and_resize_identity_slice_and_edge_padding():
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (40, 60, 3), dtype=np.uint8)
    np.testing.assert_array_equal(crop_and_resize(frame, CropBox(30.0, 20.0, 40.0), 40), frame[:, 10:50])
    # Box hanging over the left/top edge: the outside is filled with replicated edge pixels.
    out = crop_and_resize(frame, CropBox(5.0, 5.0, 20.0), 20)
    np.testing.assert_array_equal(out[5:, 5:], frame[:15, :15])
    np.testing.assert_array_equal(out[7, :5], np.repeat(frame[2:3, 0], 5, axis=0))
    np.testing.assert_array_equal(out[:5, 9], np.repeat(frame[0:1, 4], 5, axis=0))
    # A box wholly outside shows the nearest edge pixels; resizing changes only the size.
    assert (crop_and_resize(frame, CropBox(-50.0, -50.0, 10.0), 4) == frame[0, 0]).all()
    assert crop_and_resize(frame, CropBox(30.3, 19.7, 33.3), 256).shape == (256, 256, 3)
    smooth = np.repeat(np.linspace(0, 255, 60, dtype=np.uint8)[None, :, None], 40, axis=0).repeat(3, axis=2)
    half = crop_and_resize(smooth, CropBox(30.0, 20.0, 40.0), 20)
    assert np.abs(half[:, :, 0].astype(int) - smooth[0, 11:50:2, 0].astype(int)).max() <= 3


def test_smoother_reduces_jitter_without_lag():
    t = np.arange(200, dtype=np.float64)
    truth = np.stack([200 + 40 * np.sin(t / 30), 150 + 20 * np.cos(t / 25), 300 + 10 * np.sin(t / 40)], axis=1)
    noisy = truth + np.random.default_rng(1).normal(0, 4.0, truth.shape)
    smoothed = np.asarray(BoxSmoother(sigma=3.0).smooth([CropBox(*row) for row in noisy]))
    inner = slice(10, -10)
    error_before = np.abs(noisy - truth)[inner].std()
    error_after = np.abs(smoothed - truth)[inner].std()
    assert error_after < 0.5 * error_before
    jitter_before = np.diff(noisy, axis=0).std()
    assert np.diff(smoothed, axis=0).std() < 0.25 * jitter_before
    # Zero lag: a linear ramp (including the ends) and a constant come out unchanged.
    ramp = [CropBox(float(i), 2.0 * i, 100.0) for i in range(30)]
    np.testing.assert_allclose(np.asarray(BoxSmoother(3.0).smooth(ramp)), np.asarray(ramp), atol=1e-9)
    np.testing.assert_allclose(BoxSmoother(3.0).smooth([CropBox(1.0, 2.0, 3.0)] * 5), [[1.0, 2.0, 3.0]] * 5)
    assert BoxSmoother(0.0).smooth(ramp) == ramp


def _box(x: float, y: float, size: float = 50.0) -> FaceBox:
    return FaceBox(x, y, x + size, y + size, 0.9)


def test_box_iou():
    assert box_iou(_box(0, 0), _box(0, 0)) == pytest.approx(1.0)
    assert box_iou(_box(0, 0), _box(25, 0)) == pytest.approx(1 / 3)
    assert box_iou(_box(0, 0), _box(100, 0)) == 0.0


def test_track_two_faces_with_skipped_frames_interpolated():
    detections = []
    for t in range(20):
        faces = [_box(10 + t, 10), _box(300, 200 - t)] if t % 3 == 0 or t == 19 else None
        detections.append(faces)
    tubes = track_faces(detections)
    assert [(tube.start, tube.end) for tube in tubes] == [(0, 20), (0, 20)]
    left = next(tube for tube in tubes if tube.boxes[0].x0 < 100)
    assert left.num_frames == 20 and len(left.boxes) == 20
    np.testing.assert_allclose([box.x0 for box in left.boxes], 10 + np.arange(20))  # linear interpolation


def test_track_splits_on_disappearance_and_drift():
    present = [[_box(100, 100)]] * 10 + [[]] * 8 + [[_box(100, 100)]] * 10
    assert [(t.start, t.end) for t in track_faces(present, max_gap=6)] == [(0, 10), (18, 28)]
    assert [(t.start, t.end) for t in track_faces(present, max_gap=10)] == [(0, 28)]
    # A face sliding steadily: each step overlaps, but it drifts away from where its tube began.
    sliding = [[_box(100 + 5 * t, 100)] for t in range(30)]
    tubes = track_faces(sliding, min_iou_with_first=0.25)
    assert len(tubes) > 1 and tubes[0].start == 0 and tubes[-1].end == 30
    assert all(box_iou(tube.boxes[0], tube.boxes[-1]) >= 0.25 for tube in tubes)
    assert len(track_faces(sliding, min_iou_with_first=0.0)) == 1
    assert track_faces([None, [], None]) == []
