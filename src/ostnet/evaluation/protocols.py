"""Evaluation protocols and their pair lists (paper Sec. 4.1; reference-architecture.md §7.3).

Protocols (``PROTOCOLS``):

* ``same-scale``: same-identity pairs drawn as DaGAN/MCNet's ``create_same_id_test_set`` does: choose
  min(100, n) test videos at random without replacement, then 2083 times pick one of them and two distinct
  random frames -> (source, driving). Videos with fewer than two frames are dropped from the draw.
  Ground truth: the driving frame.
* ``different-scale``: the same-scale pairs (same seed, so the same (source, driving) list), each used
  ``variants`` = 2 times with its own expression-preserved augmentation factors (alpha = height factor,
  beta = width factor, each ~ U[1 - delta, 1 + delta], delta = 0.3, Sec. 3.4 and 4.1) applied to the driving
  frame. The original driving frame is the ground truth. 2 x 2083 = **4166 pairs**, the count the paper
  reports: the paper says each pair gets random alpha and beta yet has twice as many pairs as the
  same-scale set; two independent augmentations per original pair is our reading of that number.
* ``reconstruction``: FOMM's protocol: for each test video (all of them unless limited), frame 0 is the
  source and every frame (frame 0 included) a driving frame. Ground truth: the driving frame.
* ``cross-identity``: 2083 pairs whose source and driving videos have different identities (MCNet's
  ``vox_cross_id_evaluation.csv`` recipe): source video from min(100, n) random test videos, driving video
  from those of another identity, random frames. No ground truth.

Pair lists are CSV files in DaGAN's format: header ``source,driving,frame``, one row per pair, CRLF line
endings, the ``frame`` column empty. A different-scale list adds the columns ``alpha,beta``. A pair's id is
its 0-based row number. Frame references ("frame paths"):

* a frame stored as an image file in a folder of frames: the path of that file (``.../video.mp4/0000013.png``,
  as in DaGAN's list);
* a frame of a video file or of a horizontal strip image: the file's path, ``#`` and the 0-based frame
  index, e.g. ``data/test/d3.mp4#17``.

Paths are written as found under the dataset root given to the sampler; relative paths in a CSV are resolved
against the dataset root. Sampling is deterministic in ``seed`` (NumPy's PCG64 ``default_rng``).
``FrameLoader`` reads references as model-sized tensors, decoding each video once per batch.
"""

from __future__ import annotations

import csv
import math
import os
import re
import typing
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import Tensor

from ostnet.config import DELTA_BOUNDS, PAPER_DELTA, PAPER_EVAL_PAIRS, PAPER_EVAL_VIDEOS, PAPER_SCALE_VARIANTS
from ostnet.data.dataset import (
    STRIP_SUFFIXES,
    VIDEO_SUFFIXES,
    VideoEntry,
    identity_of,
    list_videos,
    num_frames,
    read_frames_at,
)
from ostnet.data.transforms import resize_image
from ostnet.errors import OstnetError
from ostnet.io import atomic_output
from ostnet.io.image import IMAGE_SUFFIXES, to_tensor
from ostnet.io.paths import check_readable
from ostnet.options import declared, option

GROUND_TRUTH_PROTOCOLS = ("same-scale", "different-scale", "reconstruction")
NUM_PAIRS = PAPER_EVAL_PAIRS  # DaGAN's vox_evaluation.csv (Sec. 4.1, ostnet.config)
NUM_VIDEOS = PAPER_EVAL_VIDEOS
DIFFERENT_SCALE_VARIANTS = PAPER_SCALE_VARIANTS  # 2 x 2083 = 4166 (Sec. 4.1)
SAMPLING = "pair sampling"
Protocol = Literal["same-scale", "different-scale", "reconstruction", "cross-identity"]
PROTOCOLS: tuple[str, ...] = typing.get_args(Protocol)
DELTA = PAPER_DELTA  # App. A, ostnet.config
HEADER = ["source", "driving", "frame"]
SCALE_COLUMNS = ["alpha", "beta"]
_INDEX_SUFFIX = re.compile(r"^(?P<file>.+)#(?P<index>\d+)$")


@dataclass(frozen=True)
class Pair:
    """One evaluation pair. source / driving: frame references (see the module docstring).

    alpha, beta: the different-scale augmentation's height and width factors, None for other protocols.
    """

    pair_id: int
    source: str
    driving: str
    alpha: float | None = None
    beta: float | None = None


@dataclass(frozen=True)
class FrameRef:
    """A parsed frame reference: the video and the frame's 0-based index in it."""

    entry: VideoEntry
    index: int


def check_protocol(name: str) -> str:
    """Return ``name`` if it is a known protocol, else raise OstnetError listing the choices."""
    if name not in PROTOCOLS:
        raise OstnetError(f"unknown protocol {name!r}; choose one of: {', '.join(PROTOCOLS)}")
    return name


def has_ground_truth(protocol: str) -> bool:
    return check_protocol(protocol) in GROUND_TRUTH_PROTOCOLS


# ---------------------------------------------------------------------------------------------------
# Frame references
# ---------------------------------------------------------------------------------------------------


def _frame_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith("."))


def format_frame_ref(entry: VideoEntry, index: int, frame_files: Sequence[Path] | None = None) -> str:
    """The reference of frame ``index`` of ``entry``: a frame file's path, or ``<file>#<index>``."""
    if entry.kind == "frames":
        files = frame_files if frame_files is not None else _frame_files(entry.path)
        return str(files[index])
    return f"{entry.path}#{index}"


def parse_frame_ref(text: str, root: str | os.PathLike | None = None) -> FrameRef:
    """Resolve a frame reference (relative paths against ``root``); OstnetError if it names no frame."""
    match = _INDEX_SUFFIX.match(text)
    if match and Path(match["file"]).suffix.lower() in VIDEO_SUFFIXES + STRIP_SUFFIXES:
        path = _resolve(match["file"], root)
        if not path.is_file():
            raise OstnetError(f"{path}: video not found (named by {text!r})")
        kind = "video" if path.suffix.lower() in VIDEO_SUFFIXES else "strip"
        return FrameRef(VideoEntry(path.name, identity_of(path.name), path, kind), int(match["index"]))
    path = _resolve(text, root)
    if not path.is_file() or path.suffix.lower() not in IMAGE_SUFFIXES:
        raise OstnetError(f"{path}: frame not found (expected an image file or <video file>#<index>)")
    folder = path.parent
    files = _frame_files(folder)
    return FrameRef(VideoEntry(folder.name, identity_of(folder.name), folder, "frames"), files.index(path))


def _resolve(text: str, root: str | os.PathLike | None) -> Path:
    path = Path(text)
    return path if path.is_absolute() or root is None else Path(root) / path


# ---------------------------------------------------------------------------------------------------
# Sampling
# ---------------------------------------------------------------------------------------------------


class _Counts:
    """Frame counts, probed lazily (only for the videos a protocol actually draws from)."""

    def __init__(self, videos: Sequence[VideoEntry], counter: Callable[[VideoEntry], int]) -> None:
        self.videos, self._counter, self._cache = videos, counter, {}

    def __call__(self, i: int) -> int:
        if i not in self._cache:
            self._cache[i] = self._counter(self.videos[i])
        return self._cache[i]


def _ref(videos: Sequence[VideoEntry], i: int, frame: int) -> str:
    return format_frame_ref(videos[i], int(frame))


def sample_same_scale(
    videos: Sequence[VideoEntry],
    num_pairs: int = NUM_PAIRS,
    num_videos: int = NUM_VIDEOS,
    seed: int = 0,
    counter: Callable[[VideoEntry], int] = num_frames,
) -> list[Pair]:
    """Same-identity pairs (see the module docstring); ``counter`` gives a video's frame count."""
    if not videos:
        raise OstnetError("same-scale: the dataset has no test videos")
    rng = np.random.default_rng(seed)
    counts = _Counts(videos, counter)
    chosen = rng.choice(len(videos), size=min(num_videos, len(videos)), replace=False)
    usable = [int(i) for i in chosen if counts(int(i)) >= 2]
    if not usable:
        raise OstnetError("same-scale: no test video has two or more frames")
    pairs = []
    for pair_id in range(num_pairs):
        video = usable[rng.integers(len(usable))]
        source, driving = rng.choice(counts(video), size=2, replace=False)
        pairs.append(Pair(pair_id, _ref(videos, video, source), _ref(videos, video, driving)))
    return pairs


def make_different_scale(
    same_scale: Sequence[Pair], delta: float = DELTA, variants: int = DIFFERENT_SCALE_VARIANTS, seed: int = 0
) -> list[Pair]:
    """Each same-scale pair ``variants`` times with alpha, beta ~ U[1 - delta, 1 + delta] (6 decimals)."""
    if not 0.0 <= delta < 1.0:
        raise OstnetError(f"different-scale: delta must be in [0, 1), got {delta}")
    rng = np.random.default_rng([seed, 1])
    factors = np.round(rng.uniform(1.0 - delta, 1.0 + delta, size=(len(same_scale), variants, 2)), 6)
    pairs = []
    for i, base in enumerate(same_scale):
        for v in range(variants):
            alpha, beta = (float(x) for x in factors[i, v])
            pairs.append(Pair(len(pairs), base.source, base.driving, alpha, beta))
    return pairs


def sample_reconstruction(
    videos: Sequence[VideoEntry],
    num_videos: int | None = None,
    counter: Callable[[VideoEntry], int] = num_frames,
) -> list[Pair]:
    """FOMM reconstruction: frame 0 -> every frame, for the first ``num_videos`` videos (sorted by name)."""
    if not videos:
        raise OstnetError("reconstruction: the dataset has no test videos")
    pairs: list[Pair] = []
    for entry in list(videos)[:num_videos]:
        count = counter(entry)
        files = _frame_files(entry.path) if entry.kind == "frames" else None
        source = format_frame_ref(entry, 0, files) if count else ""
        for t in range(count):
            pairs.append(Pair(len(pairs), source, format_frame_ref(entry, t, files)))
    return pairs


def sample_cross_identity(
    videos: Sequence[VideoEntry],
    num_pairs: int = NUM_PAIRS,
    num_videos: int = NUM_VIDEOS,
    seed: int = 0,
    counter: Callable[[VideoEntry], int] = num_frames,
) -> list[Pair]:
    """Pairs whose source and driving videos belong to different identities (random frames)."""
    identities = [v.identity for v in videos]
    if len(set(identities)) < 2:
        raise OstnetError("cross-identity: the test split needs videos of at least two identities")
    rng = np.random.default_rng([seed, 2])
    counts = _Counts(videos, counter)
    chosen = [int(i) for i in rng.choice(len(videos), size=min(num_videos, len(videos)), replace=False)]
    pool = [i for i in chosen if counts(i) > 0]
    if len({identities[i] for i in pool}) < 2:  # the random subset has one identity: use every video
        pool = [i for i in range(len(videos)) if counts(i) > 0]
    pairs = []
    for pair_id in range(num_pairs):
        source = pool[rng.integers(len(pool))]
        others = [i for i in pool if identities[i] != identities[source]]
        driving = others[rng.integers(len(others))]
        s_frame, d_frame = rng.integers(counts(source)), rng.integers(counts(driving))
        pairs.append(Pair(pair_id, _ref(videos, source, s_frame), _ref(videos, driving, d_frame)))
    return pairs


@declared
class SamplingOptions:
    """How to build a protocol's pair list from a dataset's test split (``ostnet evaluate``'s sampling
    options)."""

    num_pairs: int = option(NUM_PAIRS, metavar="N", help="pairs to sample", bounds=(1, None), group=SAMPLING)
    num_videos: int = option(NUM_VIDEOS, metavar="N", help="videos to sample from", bounds=(1, None), group=SAMPLING)
    seed: int = option(0, help="sampling seed", bounds=(0, None), group=SAMPLING)
    delta: float = option(
        DELTA, help="different-scale: the factors' range 1 +- delta (the paper's)", bounds=DELTA_BOUNDS, group=SAMPLING
    )
    variants: int = option(
        DIFFERENT_SCALE_VARIANTS, metavar="N", bounds=(1, 100), group=SAMPLING,
        help="different-scale augmentations per pair (the paper's: 2 x 2083 = 4166 pairs)",
    )  # fmt: skip
    reconstruction_videos: int | None = None  # None: every test video


def build_pairs(
    protocol: str, root: str | os.PathLike, split: str = "test", opts: SamplingOptions | None = None
) -> list[Pair]:
    """The pair list of ``protocol`` for the videos of ``root/<split>`` (sorted by name).

    Frame references are written with absolute paths: a relative path in a CSV means "relative to the dataset
    root", so paths relative to the working directory would be resolved twice.
    """
    opts = opts or SamplingOptions()
    check_protocol(protocol)
    videos = list_videos(Path(root).resolve(), split)
    if protocol == "reconstruction":
        return sample_reconstruction(videos, opts.reconstruction_videos)
    if protocol == "cross-identity":
        return sample_cross_identity(videos, opts.num_pairs, opts.num_videos, opts.seed)
    same = sample_same_scale(videos, opts.num_pairs, opts.num_videos, opts.seed)
    return same if protocol == "same-scale" else make_different_scale(same, opts.delta, opts.variants, opts.seed)


# ---------------------------------------------------------------------------------------------------
# CSV
# ---------------------------------------------------------------------------------------------------


def write_pairs_csv(path: str | os.PathLike, pairs: Sequence[Pair]) -> Path:
    """Write a pair list (DaGAN format, + alpha,beta when the pairs carry them) atomically."""

    scaled = any(p.alpha is not None for p in pairs)
    with atomic_output(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)  # CRLF rows, as DaGAN's vox_evaluation.csv
        writer.writerow(HEADER + (SCALE_COLUMNS if scaled else []))
        for p in pairs:
            row = [p.source, p.driving, ""]
            writer.writerow(row + ([f"{p.alpha:.6f}", f"{p.beta:.6f}"] if scaled else []))
    return Path(path)


def read_pairs_csv(path: str | os.PathLike, require_scale: bool = False) -> list[Pair]:
    """Read a pair list; ids are row numbers. OstnetError for a missing file or a malformed header/row."""
    path = Path(path)
    check_readable(path, "pair list")
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            rows = list(csv.reader(handle))
    except (UnicodeDecodeError, csv.Error) as exc:
        reason = str(exc).split(":")[0] if isinstance(exc, UnicodeDecodeError) else str(exc)
        raise OstnetError(f"{path}: not a text CSV pair list ({reason})") from None
    if not rows or [c.strip() for c in rows[0][:3]] != HEADER:
        raise OstnetError(f"{path}: expected the header 'source,driving,frame' (DaGAN's format)")
    header = [c.strip() for c in rows[0]]
    scaled = all(c in header for c in SCALE_COLUMNS)
    if require_scale and not scaled:
        raise OstnetError(f"{path}: a different-scale list needs the columns alpha,beta")
    pairs = []
    for line, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) < 2 or not row[0].strip() or not row[1].strip():
            raise OstnetError(f"{path}: line {line}: expected source,driving frame paths")
        alpha = beta = None
        if scaled:
            try:
                alpha, beta = (float(row[header.index(c)]) for c in SCALE_COLUMNS)
            except (ValueError, IndexError):
                raise OstnetError(f"{path}: line {line}: alpha and beta must be numbers") from None
            if not (math.isfinite(alpha) and math.isfinite(beta) and alpha > 0 and beta > 0):
                raise OstnetError(f"{path}: line {line}: alpha and beta must be positive finite numbers")
        pairs.append(Pair(len(pairs), row[0].strip(), row[1].strip(), alpha, beta))
    if not pairs:
        raise OstnetError(f"{path}: the pair list has no pairs")
    return pairs


def validate_pairs(
    pairs: Sequence[Pair], root: str | os.PathLike | None, origin: str, allow_outside: bool = False
) -> None:
    """Check that every frame a pair list names exists (each video probed once) and, unless
    ``allow_outside``, lies inside the dataset folder ``root``; OstnetError otherwise."""
    counts: dict[Path, int] = {}
    inside = None if allow_outside or root is None else Path(os.path.abspath(root))
    for pair in pairs:
        for text in (pair.source, pair.driving):
            try:
                ref = parse_frame_ref(text, root)
            except OstnetError as exc:
                raise OstnetError(f"{origin}: pair {pair.pair_id}: {exc}") from None
            if inside is not None and not Path(os.path.abspath(ref.entry.path)).is_relative_to(inside):
                raise OstnetError(
                    f"{origin}: pair {pair.pair_id}: {text} is outside the dataset {root}; "
                    "pass --allow-outside to read frames from anywhere"
                )
            if ref.entry.kind == "frames":
                continue
            if ref.entry.path not in counts:
                counts[ref.entry.path] = num_frames(ref.entry)
            if ref.index >= counts[ref.entry.path]:
                raise OstnetError(
                    f"{origin}: pair {pair.pair_id}: {text} names frame {ref.index}, "
                    f"but {ref.entry.path} has {counts[ref.entry.path]} frames"
                )


# ---------------------------------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------------------------------


class FrameLoader:
    """Loads frame references as (3, S, S) float tensors in [0, 1], with a small LRU cache (uint8)."""

    def __init__(self, root: str | os.PathLike | None, max_cached: int = 512) -> None:
        self.root, self.max_cached = root, max_cached
        self._cache: OrderedDict[tuple[str, int], Tensor] = OrderedDict()

    def load(self, refs: Sequence[str], size: int) -> list[Tensor | OstnetError]:
        """One entry per reference: the frame, or the OstnetError that prevented reading it."""
        todo: dict[Path, list[tuple[str, FrameRef]]] = {}
        out: dict[str, Tensor | OstnetError] = {}
        for ref in dict.fromkeys(refs):
            if (ref, size) in self._cache:
                self._cache.move_to_end((ref, size))
                out[ref] = self._cache[(ref, size)]
                continue
            try:
                parsed = parse_frame_ref(ref, self.root)
            except OstnetError as exc:
                out[ref] = exc
                continue
            todo.setdefault(parsed.entry.path, []).append((ref, parsed))
        for items in todo.values():
            try:
                frames = read_frames_at(items[0][1].entry, [parsed.index for _, parsed in items])
            except OstnetError:  # one bad frame: read the others one by one
                frames = [self._read_one(parsed) for _, parsed in items]
            for (ref, _), frame in zip(items, frames, strict=True):
                out[ref] = frame if isinstance(frame, OstnetError) else self._store(ref, size, frame)
        return [out[ref] if isinstance(out[ref], OstnetError) else out[ref].float() / 255.0 for ref in refs]

    @staticmethod
    def _read_one(parsed: FrameRef) -> np.ndarray | OstnetError:
        try:
            return read_frames_at(parsed.entry, [parsed.index])[0]
        except OstnetError as exc:
            return exc

    def _store(self, ref: str, size: int, frame: np.ndarray) -> Tensor:
        image = resize_image(to_tensor(frame), size, size).clamp(0, 1)
        pixels = image.mul(255).round().to(torch.uint8)  # (3, S, S)
        self._cache[(ref, size)] = pixels
        while len(self._cache) > self.max_cached:
            self._cache.popitem(last=False)
        return pixels
