"""Talking-head video datasets in the layout the field uses, and the training-pair sampler.

Layout (reference-architecture.md §7.1): ``root/train/`` and ``root/test/``, each holding videos as
(a) a folder of frames (png/jpg, sorted by name; VoxCeleb's are named ``<id>#<yt>#<start>#<end>.mp4``),
(b) an ``.mp4``/``.gif``/``.mov`` file, or (c) one ``.png``/``.jpg`` strip of frames side by side
(width = N x height). A video's identity is its name up to the first ``#`` (the whole name otherwise).

Frames on this API are uint8 RGB ``(H, W, 3)``; ``PairDataset`` yields float tensors in [0, 1]: pairs, or a
source and a clip of consecutive driving frames (``clip_length``), which ``collate_training`` flattens into pairs.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Literal, NamedTuple

import numpy as np
import torch
from PIL import Image
from torch import Tensor
from torch.utils.data import Dataset, default_collate

from ostnet.augment import expression_preserved_augmentation, sample_scale_factors
from ostnet.config import PAPER_DELTA, AugmentationConfig, DataConfig
from ostnet.data.transforms import (
    ColorJitterParams,
    apply_color_jitter,
    horizontal_flip,
    resize_image,
    sample_color_jitter,
)
from ostnet.errors import OstnetError
from ostnet.face.coefficients import COEFFICIENT_DIM, flat_coefficients, load_clip_coefficients, mirror_flat
from ostnet.io.image import IMAGE_SUFFIXES, load_image, to_tensor
from ostnet.io.video import iter_frames, probe_video, read_frames

VIDEO_SUFFIXES = (".mp4", ".gif", ".mov")
STRIP_SUFFIXES = (".png", ".jpg", ".jpeg")
_EXPECTED = "expected folders of frames, .mp4/.gif/.mov files or PNG strips"

VideoKind = Literal["frames", "video", "strip"]


class VideoEntry(NamedTuple):
    """One video of a split. kind: "frames" (folder), "video" (mp4/gif/mov file) or "strip" (one image)."""

    name: str
    identity: str
    path: Path
    kind: VideoKind


def identity_of(name: str) -> str:
    """The identity of a video name: the prefix before the first ``#``, else the whole name."""
    return name.split("#", 1)[0] if "#" in name else name


def _frame_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith("."))


def _entry(path: Path) -> VideoEntry | None:
    """Classify one item of a split folder; None for anything that is not a video."""
    if path.name.startswith("."):
        return None
    suffix = path.suffix.lower()
    kind: VideoKind | None = None
    if path.is_dir():
        kind = "frames" if _frame_files(path) else None
    elif suffix in VIDEO_SUFFIXES:
        kind = "video"
    elif suffix in STRIP_SUFFIXES:
        kind = "strip"
    return None if kind is None else VideoEntry(path.name, identity_of(path.name), path, kind)


def list_videos(root: str | os.PathLike[str], split: str) -> list[VideoEntry]:
    """All videos of ``root/<split>``, sorted by name. Raises OstnetError for a missing root, a missing
    split folder or a split without videos, saying what was expected where."""
    root = Path(root)
    if not root.is_dir():
        raise OstnetError(f"{root}: dataset folder not found (expected a folder holding train/ and test/)")
    folder = root / split
    if not folder.is_dir():
        raise OstnetError(f"{folder}: split folder not found (expected {split}/ inside the dataset folder)")
    entries = [entry for path in sorted(folder.iterdir()) if (entry := _entry(path)) is not None]
    if not entries:
        raise OstnetError(f"{folder}: no videos found ({_EXPECTED})")
    return entries


def _strip_count(path: Path, width: int, height: int) -> int:
    if width % height:
        raise OstnetError(f"{path}: strip width {width} is not a multiple of its height {height}")
    return width // height


def num_frames(entry: VideoEntry) -> int:
    """Number of frames of a video (probes files without decoding every frame)."""
    if entry.kind == "frames":
        return len(_frame_files(entry.path))
    if entry.kind == "strip":
        try:
            with Image.open(entry.path) as img:
                width, height = img.size
        except (OSError, ValueError) as exc:
            raise OstnetError(f"{entry.path}: not a readable image ({exc})") from None
        return _strip_count(entry.path, width, height)

    return probe_video(entry.path).num_frames


def _split_strip(path: Path, strip: np.ndarray) -> list[np.ndarray]:
    height, width = strip.shape[:2]
    return [strip[:, i * height : (i + 1) * height] for i in range(_strip_count(path, width, height))]


def _check_index(entry: VideoEntry, index: int, count: int) -> None:
    if not 0 <= index < count:
        raise OstnetError(f"{entry.path}: frame {index} requested, the video has {count} frames")


def read_frames_at(entry: VideoEntry, indices: Sequence[int]) -> list[np.ndarray]:
    """The frames at ``indices`` (any order, repeats allowed) as uint8 (H, W, 3); reads each file once and
    decodes a video file only up to the largest index."""
    if entry.kind == "frames":
        files = _frame_files(entry.path)
        for i in indices:
            _check_index(entry, i, len(files))
        loaded = {i: load_image(files[i]) for i in set(indices)}
        return [loaded[i] for i in indices]
    if entry.kind == "strip":
        frames = _split_strip(entry.path, load_image(entry.path))
        for i in indices:
            _check_index(entry, i, len(frames))
        return [frames[i] for i in indices]

    wanted, found, decoded = set(indices), {}, 0
    for position, frame in enumerate(iter_frames(entry.path)):
        decoded = position + 1
        if position in wanted:
            found[position] = frame
        if decoded > max(indices):
            break
    for i in indices:
        _check_index(entry, i, decoded)
    return [found[i] for i in indices]


def read_frame(entry: VideoEntry, index: int) -> np.ndarray:
    """One frame, uint8 (H, W, 3)."""
    return read_frames_at(entry, [index])[0]


def read_video(entry: VideoEntry) -> np.ndarray:
    """All frames, uint8 (T, H, W, 3). Raises OstnetError if the frames differ in size."""
    if entry.kind == "video":
        return read_frames(entry.path)
    if entry.kind == "strip":
        frames = _split_strip(entry.path, load_image(entry.path))
    else:
        frames = [load_image(path) for path in _frame_files(entry.path)]
    if not frames:
        raise OstnetError(f"{entry.path}: no frames")
    if any(frame.shape != frames[0].shape for frame in frames):
        raise OstnetError(f"{entry.path}: frames differ in size")
    return np.stack(frames)


class TrainingPair(NamedTuple):
    """One training example (Sec. 3.4). Images float RGB in [0, 1], shape (3, S, S) (batched: (B, 3, S, S)).

    source: the source frame I_S. driving: the driving frame after expression-preserved augmentation I_D'.
    target: the driving frame before it, I_D, the ground truth. alpha, beta: the augmentation's height and
    width factors (float32 tensors, 1 when augmentation is off). index: the dataset index. coefficients:
    (2, COEFFICIENT_DIM) face coefficients R of (source, target) from the clip's ``coefficients.npz`` (NaN rows
    where unknown) when the dataset was asked for them (PECHead), else (2, 0). skipped: how many unreadable
    pairs were skipped before this one was drawn; skipped_file: the last file that failed ("").

    A clip item (``PairDataset(clip_length=T)``, T > 1) has driving and target (T, 3, S, S), alpha and beta (T,)
    and coefficients (T + 1, COEFFICIENT_DIM) (source first). ``collate_training`` turns B of them into B x T
    pairs, clip by clip and each clip in order (the source repeated), with ``clip_length`` = T.
    """

    source: Tensor
    driving: Tensor
    target: Tensor
    alpha: Tensor
    beta: Tensor
    index: int
    coefficients: Tensor | None = None
    skipped: int = 0
    skipped_file: str = ""
    clip_length: int = 1


def clip_length_of(batch: TrainingPair) -> int:
    """T of a batch: consecutive groups of T pairs are clips (``collate_training``); 1 for batches of pairs
    collated otherwise (whose ``clip_length`` became a tensor of ones)."""
    return batch.clip_length if isinstance(batch.clip_length, int) else 1


def collate_training(items: list[TrainingPair]) -> TrainingPair:
    """A batch of pairs from ``PairDataset`` items: ``default_collate`` for pairs; B clips of T frames become
    B x T pairs (clip b's frame t at b T + t) with the source repeated and ``clip_length`` = T. ``skipped`` and
    ``skipped_file`` stay per clip (they count draws, not frames)."""
    batch = default_collate(items)
    if batch.driving.dim() == 4:
        return batch._replace(clip_length=1)
    size, length = batch.driving.shape[:2]
    coefficients = batch.coefficients
    if coefficients is not None:  # (B, T + 1, D) -> (B T, 2, D): (source, frame t)
        source = coefficients[:, :1].expand(-1, length, -1)
        coefficients = torch.stack([source, coefficients[:, 1:]], dim=2).flatten(0, 1)
    return batch._replace(
        source=batch.source.repeat_interleave(length, dim=0),
        driving=batch.driving.flatten(0, 1),
        target=batch.target.flatten(0, 1),
        alpha=batch.alpha.flatten(0, 1),
        beta=batch.beta.flatten(0, 1),
        index=batch.index.repeat_interleave(length),
        coefficients=coefficients,
        clip_length=int(length),
    )


class _Draws(NamedTuple):
    """The random choices of one item, drawn before any frame is read (in the order of the pair sampler)."""

    first: int  # the two frame indices, sorted
    second: int
    time_flip: bool
    mirror: bool
    jitter: ColorJitterParams
    torch_seed: int


class PairDataset(Dataset[TrainingPair]):
    """FOMM training pairs (reference-architecture.md §7.2) with the driving frame augmented (Sec. 3.4).

    Item ``i`` picks identity ``i % num_identities`` (``id_sampling``) or video ``i % num_videos``, then a
    random video of it and two frame indices a <= b drawn uniformly with replacement: source a, driving b.
    Both frames are resized to ``image_size`` and, identically, time-flipped (p = 0.5: source b, driving a; as
    FOMM, a time flip skips the horizontal flip) or else mirrored (p = 0.5) and colour-jittered. Last, the
    driving frame gets the expression-preserved augmentation with factors ~ U[1 - delta, 1 + delta]; ``target``
    keeps it unaugmented.

    ``clip_length`` T > 1 (for PECHead's CAP): the driving frame becomes a clip of T consecutive frames b, b + 1,
    ... (the video played forward; moved back to fit in the video), or with the time flip a, a - 1, ... from the
    source b (the video played backward); a video shorter than T repeats its end frames. Flips and jitter apply
    to all frames alike, and one pair of augmentation factors to the whole clip. T = 1 is the pair above.

    Every random choice comes from a generator seeded by (seed, epoch, index), so an item does not depend
    on workers, ranks or order: call ``set_epoch`` before each epoch (before the DataLoader starts its
    workers) to resume or to shard across DDP ranks reproducibly.

    Unreadable frames or videos are skipped: another pair is drawn, the skip is counted in
    ``num_skipped`` / ``skipped_files`` and a RuntimeWarning names the file. With DataLoader workers each
    worker process counts its own skips. Only ``max_retries`` failures in a row raise OstnetError.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        split: str = "train",
        *,
        image_size: int,
        id_sampling: bool = True,
        num_repeats: int = 1,
        augment: bool = True,
        delta: float = PAPER_DELTA,
        flip: bool = True,
        time_flip: bool = True,
        color_jitter: bool = True,
        seed: int = 0,
        max_retries: int = 20,
        coefficients: bool = False,
        clip_length: int = 1,
    ) -> None:
        if image_size < 2 or num_repeats < 1 or max_retries < 1 or clip_length < 1:
            raise ValueError("image_size must be >= 2, num_repeats, max_retries and clip_length >= 1")
        self.clip_length = clip_length
        self.root, self.split = Path(root), split
        self.videos = list_videos(root, split)
        self.image_size, self.num_repeats, self.max_retries = image_size, num_repeats, max_retries
        self.id_sampling, self.augment, self.delta = id_sampling, augment, delta
        self.flip, self.time_flip, self.color_jitter, self.seed = flip, time_flip, color_jitter, seed
        self.epoch = 0
        self.coefficients = coefficients
        self._coefficients: dict[Path, np.ndarray | None] = {}
        by_identity: dict[str, list[VideoEntry]] = {}
        for entry in self.videos:
            by_identity.setdefault(entry.identity, []).append(entry)
        self.identities = sorted(by_identity)
        self._groups = [by_identity[name] for name in self.identities] if id_sampling else [[v] for v in self.videos]
        self._lengths: dict[Path, int] = {}
        self.num_skipped = 0
        self.skipped_files: set[Path] = set()
        self.warn_skips = True  # the Trainer turns this off and reports the skips once per epoch

    @classmethod
    def from_config(
        cls,
        data: DataConfig,
        augmentation: AugmentationConfig,
        *,
        image_size: int,
        split: str = "train",
        seed: int = 0,
    ) -> PairDataset:
        """Build from the training config (DataConfig.root, sampling flags; AugmentationConfig.delta)."""
        return cls(
            data.root,
            split,
            image_size=image_size,
            id_sampling=data.id_sampling,
            num_repeats=data.num_repeats,
            delta=augmentation.delta,
            flip=data.flip,
            time_flip=data.time_flip,
            color_jitter=data.color_jitter,
            seed=seed,
            clip_length=data.clip_length,
        )

    def __len__(self) -> int:
        return self.num_repeats * len(self._groups)

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose random draws ``__getitem__`` makes."""
        self.epoch = int(epoch)

    def generator_for(self, index: int) -> np.random.Generator:
        """The generator of item ``index`` in the current epoch (a function of seed, epoch and index)."""
        return np.random.default_rng([self.seed, self.epoch, index])

    def __getitem__(self, index: int) -> TrainingPair:
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} items")
        rng = self.generator_for(index)
        group = self._groups[index % len(self._groups)]
        last_error: Exception | None = None
        bad_file = ""
        for attempt in range(self.max_retries):
            entry = group[int(rng.integers(len(group)))]
            try:
                count = self._num_frames(entry)
                if count < 1:
                    raise OstnetError(f"{entry.path}: no frames")
                draws = self._draw(count, rng)
                indices = self._frame_indices(count, draws)
                frames = read_frames_at(entry, indices)
            except (OstnetError, OSError, ValueError, EOFError) as exc:
                bad_file = str(self._record_skip(entry, exc))
                last_error = exc
                group = self._groups[int(rng.integers(len(self._groups)))]  # retry anywhere
                continue
            pair = self._make_pair(frames, draws, index, self._pair_coefficients(entry, indices))
            return pair._replace(skipped=attempt, skipped_file=bad_file)
        raise OstnetError(
            f"{self.root / self.split}: {self.max_retries} training pairs in a row were unreadable (last: {last_error})"
        )

    def _num_frames(self, entry: VideoEntry) -> int:
        if entry.path not in self._lengths:
            self._lengths[entry.path] = num_frames(entry)
        return self._lengths[entry.path]

    @staticmethod
    def _draw(count: int, rng: np.random.Generator) -> _Draws:
        """Every random choice of an item (unconditionally, so that switching an option off leaves the others')."""
        first, second = (int(i) for i in np.sort(rng.integers(count, size=2)))  # with replacement, sorted
        u_time, u_flip = rng.random(2)
        jitter = sample_color_jitter(rng)
        return _Draws(first, second, bool(u_time < 0.5), bool(u_flip < 0.5), jitter, int(rng.integers(2**62)))

    def _frame_indices(self, count: int, draws: _Draws) -> list[int]:
        """[source, driving frames in order]: source a and b, b + 1, ...; time-flipped: source b and a, a - 1, ..."""
        length = self.clip_length
        if self.time_flip and draws.time_flip:
            start = min(max(draws.first, length - 1), count - 1)
            source, clip = draws.second, [start - t for t in range(length)]
        else:
            start = max(min(draws.second, count - length), 0)
            source, clip = draws.first, [start + t for t in range(length)]
        return [source, *(min(max(i, 0), count - 1) for i in clip)]

    def _pair_coefficients(self, entry: VideoEntry, indices: list[int]) -> Tensor:
        """(T + 1, COEFFICIENT_DIM) R of the frames (NaN without a stored file), or (T + 1, 0) when not asked
        for."""
        if not self.coefficients:
            return torch.zeros(len(indices), 0)
        if entry.path not in self._coefficients:
            arrays = load_clip_coefficients(entry.path) if entry.path.is_dir() else None
            self._coefficients[entry.path] = None if arrays is None else flat_coefficients(arrays)
        table = self._coefficients[entry.path]
        if table is None or max(indices) >= len(table):
            return torch.full((len(indices), COEFFICIENT_DIM), float("nan"))
        return torch.from_numpy(table[indices].copy())

    def _record_skip(self, entry: VideoEntry, exc: Exception) -> Path:
        """Count a skip and return the bad file; warn once per file, and only outside DataLoader workers
        (each worker would repeat it; the Trainer reports the workers' skips once per epoch instead)."""
        self.num_skipped += 1
        self._lengths.pop(entry.path, None)
        message = str(exc)
        # OstnetError messages start with "<file>: ", naming the bad frame rather than the whole video.
        bad = Path(message.split(":", 1)[0]) if isinstance(exc, OstnetError) and ":" in message else entry.path
        if bad not in self.skipped_files and self.warn_skips and torch.utils.data.get_worker_info() is None:
            warnings.warn(f"skipping an unreadable training pair: {message}", RuntimeWarning, stacklevel=3)
        self.skipped_files.add(bad)
        return bad

    def _make_pair(self, frames: list[np.ndarray], draws: _Draws, index: int, coefficients: Tensor) -> TrainingPair:
        """The item from the frames [source, driving...] (already in the time-flipped order when flipped)."""
        size = self.image_size
        stack = torch.stack([resize_image(to_tensor(frame), size, size) for frame in frames])  # (T + 1, 3, S, S)
        if not (self.time_flip and draws.time_flip) and self.flip and draws.mirror:  # FOMM: time flip or mirror
            stack = horizontal_flip(stack)
            if coefficients.shape[1]:
                coefficients = torch.from_numpy(mirror_flat(coefficients.numpy()))
        if self.color_jitter:
            stack = apply_color_jitter(stack, draws.jitter)
        source, target = stack[0], stack[1:]
        if self.augment:  # one pair of factors for the whole clip
            alpha, beta = sample_scale_factors(1, self.delta, torch.Generator().manual_seed(draws.torch_seed))
            augmented = expression_preserved_augmentation(target, alpha=alpha, beta=beta)
            driving, alpha, beta = augmented.image, augmented.alpha, augmented.beta
        else:
            driving, alpha, beta = target.clone(), torch.ones(len(target)), torch.ones(len(target))
        if self.clip_length == 1:  # a pair: no time axis
            driving, target, alpha, beta = driving[0], target[0], alpha[0], beta[0]
        return TrainingPair(source, driving, target, alpha, beta, index, coefficients)
