"""``ostnet prepare``: FOMM layout, manifest, filters, splits, skipping bad inputs, no half-written clips."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from ostnet.cli import main
from ostnet.data import prepare as prep
from ostnet.data.prepare import PrepareConfig, VideoJob, plan_jobs, prepare_video, tube_box
from ostnet.face.crop import CropBox, FaceTube, crop_and_resize
from ostnet.face.detector import FaceBox, FaceDetector
from ostnet.io.image import load_image
from ostnet.io.video import VideoWriter, read_frames


def _manifest(dataset: Path) -> list[dict[str, str]]:
    with open(dataset / "manifest.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def test_prepare_two_short_clips(shared_dir, tmp_path, capsys):
    clips = shared_dir / "data/clips"
    bad = tmp_path / "broken.mp4"
    bad.write_text("not a video")
    dataset = tmp_path / "ds"
    args = [str(clips / "d0.mp4"), str(clips / "d11.mp4"), str(bad), "--output", str(dataset)]
    args += ["--max-frames", "40", "--min-frames", "16", "--split-by-time", "0.75", "--workers", "1", "--quiet"]
    assert main(["prepare", *args]) == 0
    err = capsys.readouterr().err
    assert f"skipped {bad}: not a video" in err
    expected = {
        "train": ["d0#d0#000000#000030.mp4", "d11#d11#000000#000030.mp4"],
        "test": ["d0#d0#000030#000040.mp4", "d11#d11#000030#000040.mp4"],
    }
    for split, names in expected.items():
        assert sorted(p.name for p in (dataset / split).iterdir()) == names
    rows = {row["name"]: row for row in _manifest(dataset)}
    assert sorted(rows) == sorted(expected["train"] + expected["test"])
    for name, row in rows.items():
        frames = sorted((dataset / row["split"] / name).iterdir())
        count = int(row["end_frame"]) - int(row["start_frame"])
        assert [p.name for p in frames] == [f"{i:07d}.png" for i in range(count)] and int(row["num_frames"]) == count
        assert load_image(frames[0]).shape == (256, 256, 3)
        assert row["identity"] == name.split("#")[0] and row["crop_mode"] == "static"
    # The written frame is exactly the recorded crop of the source frame.
    row = rows["d0#d0#000030#000040.mp4"]
    source = read_frames(clips / "d0.mp4", max_frames=31)[30]
    box = CropBox(float(row["crop_x0"]) + float(row["crop_size"]) / 2, 0, float(row["crop_size"]))
    box = box._replace(cy=float(row["crop_y0"]) + box.size / 2)
    written = load_image(dataset / "test" / row["name"] / "0000000.png")
    assert np.abs(written.astype(int) - crop_and_resize(source, box, 256)).mean() < 1.5
    # These clips are face-centred crops already, so the calibrated margin keeps most of the frame.
    assert 0.75 * 512 < float(row["crop_size"]) <= 512
    assert not list(dataset.glob("*/.*"))


def test_nothing_prepared_is_an_error(tmp_path, capsys):
    bad = tmp_path / "a.mp4"
    bad.write_text("no")
    args = [str(bad), str(tmp_path / "missing.mp4"), "-o", str(tmp_path / "ds"), "--quiet", "--workers", "2"]
    assert main(["prepare", *args]) == 2  # also runs the process pool
    err = capsys.readouterr().err
    assert "skipped" in err and "missing.mp4: no such file" in err
    assert "nothing was prepared from 2 input(s)" in err.strip().splitlines()[-1]
    assert not (tmp_path / "ds" / "manifest.csv").exists()


def test_video_without_faces_is_skipped_and_clip_writing_is_atomic(shared_dir, tmp_path, monkeypatch):
    blank = tmp_path / "blank.mp4"
    with VideoWriter(blank, 25, preset="ultrafast") as writer:
        for t in range(40):
            writer.write(np.full((64, 64, 3), 3 * t, np.uint8))
    cfg = PrepareConfig(min_frames=8, max_frames=20)
    result = prep._run_job(VideoJob(blank, "blank", "blank", "train"), tmp_path / "ds", cfg)
    assert result.records == [] and result.error.startswith(f"{blank}: no face tube")

    def failing_crop(frame, box, size):
        if failing_crop.calls == 5:
            raise KeyboardInterrupt
        failing_crop.calls += 1
        return crop_and_resize(frame, box, size)

    failing_crop.calls = 0
    monkeypatch.setattr(prep, "crop_and_resize", failing_crop)
    job = VideoJob(shared_dir / "data/clips/d12.mp4", "d12", "d12", "train")
    with pytest.raises(KeyboardInterrupt), FaceDetector() as detector:
        prepare_video(job, tmp_path / "ds", cfg, detector)
    assert list((tmp_path / "ds" / "train").iterdir()) == []


def test_plan_jobs_names_identities_and_identity_split(tmp_path):
    sources = [tmp_path / "a" / "x.mp4", tmp_path / "b" / "x.mp4", tmp_path / "y#1.mov", tmp_path / "z.mp4"]
    jobs = plan_jobs(sources, PrepareConfig(test_fraction=0.4))
    assert [job.video for job in jobs] == ["x", "x_2", "y_1", "z"]
    assert [job.identity for job in jobs] == ["x", "x", "y_1", "z"]
    test_ids = {job.identity for job in jobs if job.split == "test"}
    assert len(test_ids) == 1  # round(0.4 * 3 identities)
    assert all(job.split == "test" for job in jobs if job.identity in test_ids)  # no identity in both splits
    assert plan_jobs(sources, PrepareConfig(test_fraction=0.4)) == jobs  # seeded
    assert {job.identity for job in plan_jobs(sources, PrepareConfig(identity="alice"))} == {"alice"}
    assert {job.split for job in plan_jobs(sources, PrepareConfig())} == {"train"}


def test_static_and_tracked_crop_boxes():
    boxes = [FaceBox(100.0 + 2 * t, 120.0, 200.0 + 2 * t, 220.0, 0.9) for t in range(40)]
    tube = FaceTube(0, 40, boxes)
    info = prep.VideoInfo(Path("v.mp4"), 640, 480, 25.0, 40, 1.6, False)
    static = prep.crop_boxes(tube, info, PrepareConfig(crop="static"))
    assert len(set(static)) == 1
    box = static[0]
    assert box.x0 <= 100 and box.x1 >= 278 and box.y0 <= 120 and box.y1 >= 220  # holds the whole motion
    # The union (178 px wide around centre x = 189) needs more than 1.7 x face: 2 x 89 x 1.05.
    assert box.size == pytest.approx(2 * 89 * 1.05)
    slow = FaceTube(0, 40, [box._replace(x0=box.x0 - 1.5 * t, x1=box.x1 - 1.5 * t) for t, box in enumerate(boxes)])
    assert tube_box(slow, 640, 480, PrepareConfig()).size == pytest.approx(1.7 * 100)  # margin rules
    assert tube_box(slow, 640, 160, PrepareConfig()).size == pytest.approx(160)  # capped by the frame
    tracked = np.asarray(prep.crop_boxes(tube, info, PrepareConfig(crop="track")))
    np.testing.assert_allclose(tracked[:, 0], 150 + 2 * np.arange(40), atol=1e-6)  # follows the face
    np.testing.assert_allclose(tracked[:, 2], 170.0)


def test_bad_options():
    with pytest.raises(prep.OstnetError):
        PrepareConfig(split_by_time=1.5)
    with pytest.raises(prep.OstnetError):
        PrepareConfig(test_fraction=1.0)


@pytest.mark.slow
def test_all_sample_clips_prepare_cleanly(shared_dir, tmp_path):
    dataset = tmp_path / "ds"
    clips = shared_dir / "data/clips"
    assert main(["prepare", str(clips), "-o", str(dataset), "--split-by-time", "0.8", "--workers", "2"]) == 0
    rows = _manifest(dataset)
    assert {row["identity"] for row in rows} == {p.stem for p in clips.glob("*.mp4")}
    assert {row["split"] for row in rows} == {"train", "test"}
    assert sum(int(row["num_frames"]) for row in rows) >= 0.95 * 3419
