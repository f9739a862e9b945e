"""File-level animation (``ostnet animate``): a portrait and a driving video in, a finished video out.

A thin orchestration around the ``Animator`` (which does all per-frame model work):

1. the source image is loaded, its face found (MediaPipe full-range model; a dog is not a face) and cropped
   to a square with ``ostnet.face.crop.square_box``; ``Animator.set_source`` runs once;
2. driving frames are decoded one at a time (PyAV), their face detected (MediaPipe ``auto``: full range
   plus short range for close-ups) and followed from frame to frame, and the square crops are smoothed by
   ``BoxSmoother`` over a centred window of ``ceil(3 sigma)`` frames of look-ahead (the same result as
   smoothing the whole track, with bounded memory);
3. crops are animated in batches, composed (plain, pasted back into the source, or side by side) and
   encoded as they go by ``VideoWriter`` (H.264 yuv420p at the driving fps, driving audio copied).

Memory does not grow with the video's length: at most ``batch_size`` plus the look-ahead frames are held.
``best-frame`` mode needs one extra decoding pass (see ``ostnet.inference.best_frame``) and keeps one crop
box per frame. Outputs appear only when complete (temporary file or folder, then rename), also on Ctrl-C.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack, closing, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple, TypeVar

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from ostnet.errors import OstnetError
from ostnet.face.crop import BoxSmoother, CropBox, crop_and_resize
from ostnet.inference.animator import Animator
from ostnet.inference.best_frame import LANDMARK_SIZE, BestFrameFinder
from ostnet.inference.paste import (
    CropOptions,
    DrivingFaces,
    PasteBack,
    SourceImage,
    prepare_source,
    side_by_side,
    smooth_stream,
)
from ostnet.io.atomic import AtomicFolder
from ostnet.io.image import to_tensor, to_uint8
from ostnet.io.video import VideoWriter, iter_frames, probe_video

MODES = ("auto", "anchor-free", "relative", "absolute", "best-frame")
STAGES = ("decode", "detect_crop", "model", "encode")
T = TypeVar("T")


@dataclass(frozen=True)
class AnimateOptions:
    """Everything ``animate_video`` needs; the fields mirror the ``ostnet animate`` flags."""

    source: Path
    driving: Path
    output: Path
    checkpoint: Path | None = None
    mode: str = "auto"  # one of MODES; auto = anchor-free for OSTNet (ST) models, relative otherwise
    adapt_scale: bool = False
    crop: CropOptions = field(default_factory=CropOptions)
    paste_back: bool = False
    side_by_side: bool = False
    frames_dir: Path | None = None
    batch_size: int = 8
    device: str | None = None  # None = best available
    dtype: str = "fp32"
    max_frames: int | None = None
    crf: int = 18
    progress: bool = True


@dataclass(frozen=True)
class StageTimes:
    """Wall-clock seconds spent per stage (``best-frame``'s scan pass included)."""

    decode: float
    detect_crop: float
    model: float
    encode: float


@dataclass(frozen=True)
class AnimateSummary:
    """What ``animate_video`` did: frames written, the driving fps, whether the audio was copied, the motion
    mode used, total seconds and per-stage times, driving frames without a usable face, the best frame
    (best-frame mode) and warnings for the user."""

    output: Path
    frames: int
    fps: float
    audio_kept: bool
    mode: str
    seconds: float
    times: StageTimes
    frames_without_face: int = 0
    best_frame: int | None = None
    frames_dir: Path | None = None
    warnings: tuple[str, ...] = ()

    @property
    def duration(self) -> float:
        return self.frames / self.fps

    def line(self) -> str:
        """One-line summary for the command line."""
        rate = self.frames / self.seconds if self.seconds > 0 else float("nan")
        audio = "audio kept" if self.audio_kept else "no audio"
        extra = f" and {self.frames_dir}/" if self.frames_dir else ""
        return (
            f"{self.frames} frames at {self.fps:g} fps ({self.duration:.2f} s), {audio}, mode {self.mode}; "
            f"took {self.seconds:.1f} s ({rate:.1f} frames/s) -> {self.output}{extra}"
        )


class DrivingCrop(NamedTuple):
    """One driving frame: the decoded frame (H, W, 3) uint8, its crop (S, S, 3) uint8 and the crop box."""

    frame: np.ndarray
    crop: np.ndarray
    box: CropBox


class _Stopwatch:
    def __init__(self) -> None:
        self.seconds = dict.fromkeys(STAGES, 0.0)

    @contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[stage] += time.perf_counter() - start

    def times(self) -> StageTimes:
        return StageTimes(**self.seconds)


def animate_video(
    options: AnimateOptions,
    animator: Animator | None = None,
    on_frames: Callable[[int], None] | None = None,
) -> AnimateSummary:
    """Animate ``options.source`` with ``options.driving`` into ``options.output`` (see the module docstring).

    ``animator`` (optional) is used as is, e.g. with a model built in memory: its own mode, device and dtype
    win over the options' (best-frame needs a ``relative`` Animator); otherwise the checkpoint is loaded.
    ``on_frames(n)`` (optional) is called after every animated batch of n frames (progress for a UI).
    Raises ``OstnetError`` ("<file>: <problem>") for any bad input; the output then does not exist.
    """
    start = time.perf_counter()
    _check_options(options)
    if animator is not None and options.mode == "best-frame" and animator.mode != "relative":
        raise ValueError(f"best-frame mode needs an Animator in relative mode, got {animator.mode!r}")
    info = probe_video(options.driving)
    total = info.num_frames if options.max_frames is None else min(info.num_frames, options.max_frames)
    audio = None if options.driving.is_dir() else options.driving
    writer = VideoWriter(options.output, info.fps, audio_from=audio, crf=options.crf)
    folder = FrameFolder(options.frames_dir) if options.frames_dir is not None else None
    animator = animator if animator is not None else load_animator(options)
    source = prepare_source(options.source, options.crop, animator.image_size)
    animator.set_source(to_tensor(source.crop)[None])
    watch, warnings = _Stopwatch(), []
    with DrivingFaces(options.driving, options.crop) as faces:
        crops, best = _driving_crops(options, total, source, animator, faces, watch, warnings)
        compose = _Composer(options, source, animator.image_size)
        _encode(options, total, crops, animator, compose, writer, folder, watch, on_frames)
    if faces.missing:
        warnings.append(f"{options.driving}: no usable face in {faces.missing} of {total} frames; kept the last crop")
    return AnimateSummary(
        output=options.output,
        frames=writer.frames_written,
        fps=info.fps,
        audio_kept=writer.audio_kept,
        mode=animator.mode if best is None else f"best-frame (frame {best})",
        seconds=time.perf_counter() - start,
        times=watch.times(),
        frames_without_face=faces.missing,
        best_frame=best,
        frames_dir=options.frames_dir,
        warnings=tuple(warnings),
    )


def _driving_crops(
    options: AnimateOptions,
    total: int,
    source: SourceImage,
    animator: Animator,
    faces: DrivingFaces,
    watch: _Stopwatch,
    warnings: list[str],
) -> tuple[Iterator[DrivingCrop], int | None]:
    """The lazy stream of driving crops, and the best frame (best-frame mode, whose anchor it sets)."""
    faces.prime(_decode(options.driving, total, watch))
    if options.mode != "best-frame":
        return crop_stream(_decode(options.driving, total, watch), faces, animator.image_size, watch), None
    size = animator.image_size
    scan = _best_frame_scan(options, total, source, size, faces, watch)
    if not scan.found:
        warnings.append("best-frame: no facial landmarks in the source or the driving crops; anchor = frame 0")
    animator.set_anchor(to_tensor(scan.anchor)[None])
    return _replay(options.driving, total, scan.boxes, size, watch), scan.best


def _encode(
    options: AnimateOptions,
    total: int,
    crops: Iterable[DrivingCrop],
    animator: Animator,
    compose: _Composer,
    writer: VideoWriter,
    folder: FrameFolder | None,
    watch: _Stopwatch,
    on_frames: Callable[[int], None] | None = None,
) -> None:
    """The streaming loop: batch crops, animate, compose, encode; outputs are renamed into place at the end."""
    with ExitStack() as stack:
        if folder is not None:
            stack.enter_context(folder)
        stack.enter_context(writer)
        bar = stack.enter_context(_progress(options, total, "animate"))
        for batch in batched(crops, options.batch_size):
            with watch("model"):
                faces = animator.animate(to_tensor(np.stack([item.crop for item in batch]))).prediction
            with watch("encode"):
                for frame in compose(batch, faces):
                    writer.write(frame)
                    if folder is not None:
                        folder.write(frame)
            bar.update(len(batch))
            if on_frames is not None:
                on_frames(len(batch))
        with watch("encode"):
            writer.close()


def _check_options(options: AnimateOptions) -> None:
    if options.mode not in MODES:
        raise OstnetError(f"unknown mode {options.mode!r}; choose one of {', '.join(MODES)}")
    if options.batch_size < 1:
        raise OstnetError(f"--batch-size must be at least 1, got {options.batch_size}")
    if options.max_frames is not None and options.max_frames < 1:
        raise OstnetError(f"--max-frames must be at least 1, got {options.max_frames}")
    crop = options.crop
    if crop.face_index < 0 or crop.driving_face_index < 0:
        raise OstnetError("--face-index must be 0 (largest face) or more")
    if crop.margin <= -1 or crop.min_face < 0 or crop.smooth_sigma < 0:
        raise OstnetError("--margin must be > -1, --min-face and --smooth must be >= 0")
    if options.device == "mps" and not torch.backends.mps.is_available():
        raise OstnetError("--device mps was asked for but MPS is not available")


def load_animator(options: AnimateOptions) -> Animator:
    """Load ``options.checkpoint`` and wrap it in an Animator with the options' device, dtype and mode."""
    from ostnet.checkpoint import load_checkpoint

    if options.checkpoint is None:
        raise OstnetError("no checkpoint given (--checkpoint)")
    return animator_for(load_checkpoint(options.checkpoint), options)


def animator_for(model, options: AnimateOptions) -> Animator:
    """An Animator for ``model`` with the options' device, dtype and mode (best-frame sets a relative anchor)."""
    mode = "relative" if options.mode == "best-frame" else options.mode
    return Animator(model, device=options.device, dtype=options.dtype, mode=mode, adapt_scale=options.adapt_scale)


def _decode(path: Path, total: int, watch: _Stopwatch) -> Iterator[np.ndarray]:
    """At most ``total`` decoded frames, timing the decoder."""
    with closing(iter_frames(path)) as frames:
        for _ in range(total):
            with watch("decode"):
                frame = next(frames, None)
            if frame is None:
                return
            yield frame


def batched(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """Consecutive lists of ``size`` items (the last one may be shorter)."""
    batch: list[T] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def crop_stream(
    frames: Iterable[np.ndarray], faces: DrivingFaces, size: int, watch: _Stopwatch
) -> Iterator[DrivingCrop]:
    """Detected, smoothed and cropped driving frames (``faces.prime`` must have run for face crops)."""

    def raw_boxes() -> Iterator[tuple[np.ndarray, CropBox]]:
        for frame in frames:
            with watch("detect_crop"):
                box = faces.box_for(frame)
            yield frame, box

    for frame, box in smooth_stream(raw_boxes(), BoxSmoother(faces.smooth_sigma)):
        with watch("detect_crop"):
            crop = crop_and_resize(frame, box, size)
        yield DrivingCrop(frame, crop, box)


class _BestFrameScan(NamedTuple):
    best: int  # index of the best driving frame
    found: bool  # False when no landmarks were found (best = 0)
    anchor: np.ndarray  # its crop, (S, S, 3) uint8
    boxes: list[CropBox]  # the smoothed crop box of every frame


def _best_frame_scan(
    options: AnimateOptions, total: int, source: SourceImage, size: int, faces: DrivingFaces, watch: _Stopwatch
) -> _BestFrameScan:
    """First pass of best-frame mode: detect, smooth and crop every frame, compare landmarks with the source."""
    finder = BestFrameFinder(crop_and_resize(source.image, source.box, LANDMARK_SIZE))
    boxes: list[CropBox] = []
    anchor = None
    with _progress(options, total, "best frame") as bar:
        for item in crop_stream(_decode(options.driving, total, watch), faces, size, watch):
            boxes.append(item.box)
            if finder.add(crop_and_resize(item.frame, item.box, LANDMARK_SIZE)):
                anchor = item.crop
            bar.update(1)
    return _BestFrameScan(finder.best, finder.found, anchor, boxes)


def _replay(path: Path, total: int, boxes: list[CropBox], size: int, watch: _Stopwatch) -> Iterator[DrivingCrop]:
    """Second pass of best-frame mode: the same crops from the recorded boxes, without detection."""
    for frame, box in zip(_decode(path, total, watch), boxes, strict=False):
        with watch("detect_crop"):
            crop = crop_and_resize(frame, box, size)
        yield DrivingCrop(frame, crop, box)


class _Composer:
    """Turns animated faces into output frames: plain, pasted back, and/or side by side."""

    def __init__(self, options: AnimateOptions, source: SourceImage, size: int) -> None:
        self.paste = PasteBack(source.image, source.box, size) if options.paste_back else None
        self.side_by_side = options.side_by_side
        self.source_panel = source.image if options.paste_back else source.crop
        self._resized: dict[int, np.ndarray] = {}

    def __call__(self, batch: list[DrivingCrop], faces: torch.Tensor) -> list[np.ndarray]:
        results = self.paste(faces) if self.paste is not None else list(to_uint8(faces))
        if not self.side_by_side:
            return results
        height = results[0].shape[0]
        if height not in self._resized:  # the source panel is resized once
            self._resized[height] = side_by_side([self.source_panel], height)
        driving = [item.frame if self.paste is not None else item.crop for item in batch]
        return [side_by_side([self._resized[height], d, r], height) for d, r in zip(driving, results, strict=True)]


def _progress(options: AnimateOptions, total: int, what: str) -> tqdm:
    return tqdm(total=total, desc=what, unit="frame", disable=not options.progress, file=sys.stderr, leave=False)


class FrameFolder:
    """PNG frames (``000000.png``, ...) written to a temporary folder beside ``path`` and renamed onto it
    when complete; on error or Ctrl-C the temporary folder is removed. ``path`` must not exist or be empty."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        if self.path.exists() and (not self.path.is_dir() or any(self.path.iterdir())):
            raise OstnetError(f"{self.path}: exists and is not an empty folder (--frames)")
        self._folder = AtomicFolder(self.path)
        self.count = 0

    def write(self, frame: np.ndarray) -> None:
        Image.fromarray(frame).save(self._folder.start() / f"{self.count:06d}.png")
        self.count += 1

    def __enter__(self) -> FrameFolder:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self._folder.__exit__(exc_type, exc, tb)


__all__ = [
    "MODES",
    "AnimateOptions",
    "AnimateSummary",
    "CropOptions",
    "DrivingCrop",
    "FrameFolder",
    "StageTimes",
    "animate_video",
    "batched",
    "crop_stream",
    "load_animator",
]
