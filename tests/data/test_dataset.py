"""Dataset layouts, FOMM pair sampling, determinism, flips, augmentation and error handling."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from ostnet.augment import expression_preserved_augmentation
from ostnet.data.dataset import (
    PairDataset,
    TrainingPair,
    collate_training,
    list_videos,
    num_frames,
    read_frame,
    read_frames_at,
    read_video,
)
from ostnet.data.transforms import apply_color_jitter, horizontal_flip, resize_image, sample_color_jitter
from ostnet.errors import OstnetError
from ostnet.face.coefficients import COEFFICIENT_DIM

SIZE = 16
VIDEOS = ["A#v0#000000#000006.mp4", "A#v1#000000#000006.mp4", "A#v2#000000#000006.mp4", "B#v0.mp4"]
NUM_FRAMES = 6


def _coded_frame(video: int, frame: int, size: int = SIZE) -> np.ndarray:
    """Red encodes the video, green the frame index; blue is bright on the left half only (shows flips)."""
    image = np.zeros((size, size, 3), dtype=np.uint8)
    image[..., 0] = 40 + 20 * video
    image[..., 1] = 10 + 12 * frame
    image[:, : size // 2, 2] = 200
    image[:, size // 2 :, 2] = 50
    return image


def _decode(image: torch.Tensor) -> tuple[int, int, bool]:
    """(video, frame, mirrored) of a float (3, H, W) coded frame."""
    pixels = (image * 255).round()
    video = int((pixels[0].mean() - 40) / 20 + 0.5)
    frame = int((pixels[1].mean() - 10) / 12 + 0.5)
    mirrored = bool(pixels[2, :, 0].mean() < pixels[2, :, -1].mean())
    return video, frame, mirrored


@pytest.fixture()
def coded_root(tmp_path: Path) -> Path:
    """Folders of coded PNG frames: identity A has three videos, identity B one."""
    for v, name in enumerate(VIDEOS):
        folder = tmp_path / "train" / name
        folder.mkdir(parents=True)
        for f in range(NUM_FRAMES):
            Image.fromarray(_coded_frame(v, f)).save(folder / f"{f:07d}.png")
    (tmp_path / "train" / "notes.txt").write_text("not a video")
    (tmp_path / "train" / ".hidden.mp4").write_text("")
    (tmp_path / "train" / "empty_folder").mkdir()
    (tmp_path / "test").mkdir()
    return tmp_path


def _plain(root: Path, **kwargs) -> PairDataset:
    options = dict(image_size=SIZE, augment=False, flip=False, time_flip=False, color_jitter=False)
    return PairDataset(root, "train", **{**options, **kwargs})


def _write_mp4(path: Path, frames: list[np.ndarray]) -> None:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = frames[0].shape[1], frames[0].shape[0], "yuv420p"
        stream.options = {"crf": "0"}
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode(None))


def test_list_videos_kinds_names_and_identities(coded_root, tmp_path):
    entries = list_videos(coded_root, "train")
    assert [e.name for e in entries] == sorted(VIDEOS)
    assert [e.identity for e in entries] == ["A", "A", "A", "B"]
    assert {e.kind for e in entries} == {"frames"}
    Image.fromarray(np.concatenate([_coded_frame(9, f) for f in range(3)], axis=1)).save(
        coded_root / "train" / "strip.png"
    )
    _write_mp4(coded_root / "train" / "clip.mp4", [np.full((16, 16, 3), 30 * i, np.uint8) for i in range(5)])
    kinds = {e.name: (e.kind, e.identity) for e in list_videos(coded_root, "train")}
    assert kinds["strip.png"] == ("strip", "strip.png") and kinds["clip.mp4"] == ("video", "clip.mp4")


def test_missing_and_empty_splits_say_what_was_expected(coded_root, tmp_path):
    with pytest.raises(OstnetError, match="dataset folder not found"):
        list_videos(tmp_path / "nowhere", "train")
    with pytest.raises(OstnetError, match=r"valid: split folder not found"):
        list_videos(coded_root, "valid")
    with pytest.raises(OstnetError) as info:
        PairDataset(coded_root, "test", image_size=SIZE)
    message = str(info.value)
    assert message.startswith(str(coded_root / "test"))
    assert "no videos found (expected folders of frames, .mp4/.gif/.mov files or PNG strips)" in message


def test_frame_folder_strip_and_mp4_read_the_same_frames(coded_root):
    frames = [_coded_frame(v, v) for v in range(4)]
    Image.fromarray(np.concatenate(frames, axis=1)).save(coded_root / "test" / "strip.png")
    _write_mp4(coded_root / "test" / "clip.mp4", [np.repeat(f, 2, 0).repeat(2, 1) for f in frames])
    entries = {e.kind: e for e in list_videos(coded_root, "test")}
    assert num_frames(entries["strip"]) == 4 and num_frames(entries["video"]) == 4
    assert read_video(entries["strip"]).shape == (4, SIZE, SIZE, 3)
    for i in range(4):
        assert np.array_equal(read_frame(entries["strip"], i), frames[i])
        decoded = read_frame(entries["video"], i).astype(int)[::2, ::2]  # crf 0, yuv420: near-exact
        assert np.abs(decoded - frames[i]).mean() < 4
    folder = list_videos(coded_root, "train")[1]
    assert num_frames(folder) == NUM_FRAMES
    assert np.array_equal(read_video(folder)[3], _coded_frame(1, 3))
    with pytest.raises(OstnetError, match="frame 7 requested"):
        read_frame(entries["video"], 7)


def test_bad_strip_width_is_an_error(tmp_path):
    (tmp_path / "train").mkdir()
    Image.fromarray(np.zeros((16, 40, 3), np.uint8)).save(tmp_path / "train" / "bad.png")
    with pytest.raises(OstnetError, match="not a multiple of its height"):
        num_frames(list_videos(tmp_path, "train")[0])


def test_shared_mp4_clip(shared_dir, tmp_path):
    (tmp_path / "train").mkdir()
    os.symlink(shared_dir / "data" / "clips" / "d0.mp4", tmp_path / "train" / "d0.mp4")
    entry = list_videos(tmp_path, "train")[0]
    assert entry.kind == "video" and num_frames(entry) == 78
    pair = PairDataset(tmp_path, image_size=64)[0]
    assert pair.source.shape == (3, 64, 64) and 0 <= pair.source.min() and pair.source.max() <= 1


def test_id_sampling_picks_identity_then_video(coded_root):
    by_identity = _plain(coded_root, num_repeats=3)
    assert len(by_identity) == 2 * 3 and by_identity.identities == ["A", "B"]
    seen = {0: set(), 1: set()}
    for epoch in range(8):
        by_identity.set_epoch(epoch)
        for index in range(len(by_identity)):
            pair = by_identity[index]
            video, source_frame, _ = _decode(pair.source)
            _, driving_frame, _ = _decode(pair.target)
            assert source_frame <= driving_frame  # sorted indices, no time flip
            assert torch.equal(pair.driving, pair.target) and float(pair.alpha) == 1.0
            seen[index % 2].add(video)
    assert seen == {0: {0, 1, 2}, 1: {3}}
    assert len(_plain(coded_root, id_sampling=False)) == 4


def test_items_are_deterministic_in_seed_epoch_and_index(coded_root):
    dataset = PairDataset(coded_root, image_size=SIZE, num_repeats=4)
    first = [dataset[i] for i in (5, 2, 7)]
    fresh = PairDataset(coded_root, image_size=SIZE, num_repeats=4)
    again = [fresh[i] for i in (7, 2, 5)][::-1]  # other order, other object
    for a, b in zip(first, again, strict=True):
        assert all(torch.equal(x, y) for x, y in zip(a[:5], b[:5], strict=True)) and a.index == b.index
    fresh.set_epoch(1)
    other_seed = PairDataset(coded_root, image_size=SIZE, num_repeats=4, seed=1)
    assert not torch.equal(fresh[5].driving, first[0].driving)
    assert not torch.equal(other_seed[5].driving, first[0].driving)


def test_time_flip_and_horizontal_flip_apply_to_both_frames(coded_root):
    time_only = _plain(coded_root, time_flip=True, num_repeats=20)
    orders, mirrored = [], []
    for i in range(len(time_only)):
        pair = time_only[i]
        (_, s, ms), (_, d, md) = _decode(pair.source), _decode(pair.target)
        orders.append(s > d)
        mirrored += [ms, md]
    assert 0.25 < np.mean(orders) < 0.75 and not any(mirrored)
    mirror_only = _plain(coded_root, flip=True, num_repeats=20)
    flags = []
    for i in range(len(mirror_only)):
        pair = mirror_only[i]
        (_, s, ms), (_, d, md) = _decode(pair.source), _decode(pair.target)
        assert s <= d and ms == md  # both frames mirrored together
        flags.append(ms)
    assert 0.25 < np.mean(flags) < 0.75


def test_color_jitter_is_identical_on_both_frames(tmp_path):
    folder = tmp_path / "train" / "still.mp4"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    still = rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)
    for f in range(3):
        Image.fromarray(still).save(folder / f"{f:07d}.png")
    dataset = _plain(tmp_path, color_jitter=True, num_repeats=4)
    raw = torch.from_numpy(still).permute(2, 0, 1).float() / 255
    for i in range(len(dataset)):
        pair = dataset[i]
        assert torch.allclose(pair.source, pair.target)  # same frame, same jitter
        assert not torch.allclose(pair.source, raw, atol=1e-3)  # but jittered
        assert 0 <= pair.source.min() and pair.source.max() <= 1


def test_augmentation_changes_the_driving_frame_only(coded_root):
    dataset = _plain(coded_root, augment=True, image_size=12, num_repeats=4)
    for i in range(len(dataset)):
        pair = dataset[i]
        assert pair.source.shape == pair.driving.shape == pair.target.shape == (3, 12, 12)
        assert 0.7 <= float(pair.alpha) <= 1.3 and 0.7 <= float(pair.beta) <= 1.3
        expected = expression_preserved_augmentation(pair.target, alpha=pair.alpha, beta=pair.beta).image
        assert torch.allclose(pair.driving, expected, atol=1e-6)
        assert not torch.allclose(pair.driving, pair.target, atol=1e-3)
    resized = _plain(coded_root, image_size=SIZE)[0]
    video, frame, _ = _decode(resized.source)
    assert torch.allclose(resized.source * 255, torch.from_numpy(_coded_frame(video, frame)).permute(2, 0, 1).float())


def test_dataloader_collates_training_pairs(coded_root):
    batch = next(iter(DataLoader(PairDataset(coded_root, image_size=SIZE, num_repeats=2), batch_size=3)))
    assert isinstance(batch, TrainingPair)
    assert batch.source.shape == (3, 3, SIZE, SIZE) and batch.alpha.shape == (3,)
    assert batch.index.tolist() == [0, 1, 2]


def _fomm_pair(dataset: PairDataset, index: int) -> tuple:
    """The FOMM pair sampler written out (the reference for clip_length 1): identity, video, two sorted frame
    indices, then the time flip (a swap) or the mirror, colour jitter, the driving frame's augmentation."""
    rng = dataset.generator_for(index)
    group = dataset._groups[index % len(dataset._groups)]
    entry = group[int(rng.integers(len(group)))]
    indices = [int(i) for i in np.sort(rng.integers(num_frames(entry), size=2))]
    pair = torch.stack([resize_image(torch.from_numpy(f).permute(2, 0, 1).float() / 255, SIZE, SIZE)
                        for f in read_frames_at(entry, indices)])  # fmt: skip
    u_time, u_flip = rng.random(2)
    jitter = sample_color_jitter(rng)
    generator = torch.Generator().manual_seed(int(rng.integers(2**62)))
    if u_time < 0.5:
        pair = pair.flip(0)
    elif u_flip < 0.5:
        pair = horizontal_flip(pair)
    source, target = apply_color_jitter(pair, jitter)
    augmented = expression_preserved_augmentation(target, generator=generator)
    return source, augmented.image, target, augmented.alpha, augmented.beta


def test_pairs_are_the_fomm_sampler_bit_for_bit(coded_root):
    dataset = PairDataset(coded_root, image_size=SIZE, num_repeats=8)
    assert dataset.clip_length == 1
    for epoch in (0, 1):
        dataset.set_epoch(epoch)
        for index in range(len(dataset)):
            item = dataset[index]
            assert all(torch.equal(a, b) for a, b in zip(item[:5], _fomm_pair(dataset, index), strict=True))


def test_clips_are_consecutive_frames_of_one_video_flattened_clip_by_clip(coded_root):
    length = 3
    dataset = _plain(coded_root, clip_length=length, time_flip=True, flip=True, num_repeats=12, coefficients=True)
    items = [dataset[i] for i in range(len(dataset))]
    assert items[0].driving.shape == (length, 3, SIZE, SIZE)
    assert items[0].coefficients.shape == (length + 1, COEFFICIENT_DIM)
    batch = collate_training(items)
    assert batch.clip_length == length and batch.source.shape == (len(items) * length, 3, SIZE, SIZE)
    assert batch.coefficients.shape == (len(items) * length, 2, COEFFICIENT_DIM)
    assert batch.alpha.shape == (len(items) * length,)
    assert batch.index.tolist() == [i for i in range(len(items)) for _ in range(length)]
    forward = []
    for b, item in enumerate(items):
        rows = slice(b * length, (b + 1) * length)
        assert torch.equal(batch.source[rows], item.source.expand(length, -1, -1, -1))
        assert torch.equal(batch.driving[rows], item.driving) and torch.equal(batch.target[rows], item.target)
        decoded = [_decode(frame) for frame in item.target]
        video, _, mirrored = _decode(item.source)
        assert {d[0] for d in decoded} == {video} and {d[2] for d in decoded} == {mirrored}
        steps = {d[1] - c[1] for c, d in zip(decoded, decoded[1:], strict=False)}
        assert steps in ({1}, {-1}), decoded  # consecutive frames, played forward or backward
        forward.append(steps == {1})
    assert 0.25 < np.mean(forward) < 0.75  # the time flip plays the clip backward


def test_a_clip_has_one_augmentation_and_starts_with_the_pair(coded_root):
    options = dict(image_size=SIZE, num_repeats=8, time_flip=False, color_jitter=False)  # frames stay decodable
    pairs, clips = PairDataset(coded_root, **options), PairDataset(coded_root, **options, clip_length=2)
    for index in range(len(pairs)):
        pair, clip = pairs[index], clips[index]
        assert torch.equal(clip.alpha, clip.alpha[:1].expand(2)) and torch.equal(clip.beta, clip.beta[:1].expand(2))
        assert torch.equal(clip.alpha[0], pair.alpha) and torch.equal(clip.source, pair.source)
        if _decode(pair.target)[1] < NUM_FRAMES - 1:  # the clip fits after the pair's driving frame
            assert torch.equal(clip.target[0], pair.target) and torch.equal(clip.driving[0], pair.driving)


def test_corrupt_frames_are_skipped_and_counted(coded_root):
    bad = coded_root / "train" / VIDEOS[3] / "0000002.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n this is not a png")
    dataset = _plain(coded_root, id_sampling=False, num_repeats=10)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pairs = [dataset[i] for i in range(len(dataset))]
    assert dataset.num_skipped > 0 and dataset.skipped_files == {bad}
    assert sum("0000002.png" in str(w.message) for w in caught) == 1  # warned once per bad file
    for pair in pairs:
        video, frame, _ = _decode(pair.source)
        assert not (video == 3 and frame == 2)
        assert _decode(pair.target)[:2] != (3, 2)


def test_all_unreadable_raises_after_retries(tmp_path):
    folder = tmp_path / "train" / "broken.mp4"
    folder.mkdir(parents=True)
    (folder / "0000000.png").write_bytes(b"garbage")
    dataset = PairDataset(tmp_path, image_size=SIZE, max_retries=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(OstnetError, match="3 training pairs in a row were unreadable"):
            dataset[0]
    assert dataset.num_skipped == 3


def test_color_transforms_match_references():
    import colorsys

    from ostnet.data.transforms import (
        ColorJitterParams,
        adjust_contrast,
        adjust_hue,
        adjust_saturation,
        apply_color_jitter,
        hsv_to_rgb,
        rgb_to_hsv,
    )

    pixels = torch.rand(3, 5, 7, dtype=torch.float64)
    hsv = rgb_to_hsv(pixels)
    for y, x in [(0, 0), (2, 3), (4, 6)]:
        expected = colorsys.rgb_to_hsv(*pixels[:, y, x].tolist())
        assert torch.allclose(hsv[:, y, x], torch.tensor(expected, dtype=torch.float64), atol=1e-9)
    assert torch.allclose(hsv_to_rgb(hsv), pixels, atol=1e-9)
    red = torch.tensor([1.0, 0.0, 0.0]).view(3, 1, 1)
    assert torch.allclose(adjust_hue(red, 1 / 3), torch.tensor([0.0, 1.0, 0.0]).view(3, 1, 1), atol=1e-6)
    image = torch.rand(2, 3, 8, 8)
    grey = 0.299 * image[:, 0] + 0.587 * image[:, 1] + 0.114 * image[:, 2]
    assert torch.allclose(adjust_saturation(image, 0.0), grey[:, None].expand(-1, 3, -1, -1), atol=1e-6)
    flat = adjust_contrast(image, 0.0)
    assert torch.allclose(flat[0], grey[0].mean().expand(3, 8, 8), atol=1e-6)  # one mean per image
    assert torch.allclose(flat[1], grey[1].mean().expand(3, 8, 8), atol=1e-6)
    unchanged = apply_color_jitter(image, ColorJitterParams(1.0, 1.0, 1.0, 0.0, (3, 1, 0, 2)))
    assert torch.allclose(unchanged, image, atol=1e-5)


def test_from_config_uses_the_training_config(coded_root):
    from ostnet.config import AugmentationConfig, DataConfig

    data = DataConfig(root=str(coded_root), num_repeats=5, id_sampling=False, flip=False)
    dataset = PairDataset.from_config(data, AugmentationConfig(delta=0.1), image_size=SIZE, seed=3)
    assert len(dataset) == 4 * 5 and dataset.delta == 0.1 and not dataset.flip and dataset.seed == 3
    assert all(0.9 <= float(dataset[i].alpha) <= 1.1 for i in range(8))
