"""File-level animation (``ostnet animate``): a portrait and a driving video in, a finished video out.

A thin orchestration around the ``Animator`` (which does all per-frame model work); one run is an
``AnimationJob``:

1. ``ostnet.inference.faces``: the source image is loaded, its face found (MediaPipe full-range model; a dog
   is not a face) and cropped to a square with ``ostnet.face.crop.square_box``; ``Animator.set_source`` runs
   once. Driving frames are decoded one at a time (PyAV), their face detected (MediaPipe ``auto``: full
   range plus short range for close-ups) and followed from frame to frame, and the square crops are smoothed
   by ``BoxSmoother`` over a centred window of ``ceil(3 sigma)`` frames of look-ahead (the same result as
   smoothing the whole track, with bounded memory);
2. the crops are animated in batches, composed by ``ostnet.inference.paste`` (plain, pasted back into the
   source, or side by side) and encoded as they go by ``VideoWriter`` (H.264 yuv420p at the driving fps,
   driving audio copied).

Memory does not grow with the video's length: at most ``batch_size`` plus the look-ahead frames are held.
``best-frame`` mode needs one extra decoding pass (see ``ostnet.inference.best_frame``) and keeps one crop
box per frame. Outputs appear only when complete (temporary file or folder, then rename), also on Ctrl-C.
"""

from __future__ import annotations

import sys
import time
import typing
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch
from torch import Tensor
from tqdm import tqdm

from ostnet.checkpoint import load_checkpoint
from ostnet.errors import OstnetError
from ostnet.inference.animator import Animator
from ostnet.inference.best_frame import scan_best_frame
from ostnet.inference.controls import check_supported
from ostnet.inference.export import OnnxAnimator
from ostnet.inference.faces import DrivingCrop, DrivingVideo, SourceImage, prepare_source
from ostnet.inference.options import AnimateMode, AnimateOptions, CropOptions
from ostnet.inference.paste import Composer
from ostnet.inference.timing import StageTimes, Stopwatch
from ostnet.io.image import FrameFolder, to_tensor
from ostnet.io.paths import check_outputs, removing_new_folders
from ostnet.io.video import VideoWriter, probe_video

MODES: tuple[str, ...] = typing.get_args(AnimateMode)
T = TypeVar("T")


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

    def line(self, where: bool = True) -> str:
        """The one-line summary of the run (command line and web app): frames, fps, duration, audio, mode and
        time taken; with ``where``, also the speed and the output path(s) (the web app shows no paths)."""
        audio = "audio kept" if self.audio_kept else "no audio"
        line = f"{self.frames} frames at {self.fps:g} fps ({round(self.duration, 2):g} s), {audio}, mode {self.mode}; "
        line += f"took {self.seconds:.1f} s"
        if not where:
            return line
        rate = self.frames / self.seconds if self.seconds > 0 else float("nan")
        extra = f" and {self.frames_dir}/" if self.frames_dir else ""
        return f"{line} ({rate:.1f} frames/s) -> {self.output}{extra}"


@dataclass
class AnimationJob:
    """One ``animate_video`` run: its options and everything opened for it (``AnimationJob.open``).

    ``crops()`` is the stream of driving crops (best-frame mode first scans for its anchor), ``encode`` the
    streaming loop and ``summary`` what the run did. Every stage adds its time to ``watch``.
    """

    options: AnimateOptions
    animator: Animator
    source: SourceImage
    driving: DrivingVideo
    writer: VideoWriter
    folder: FrameFolder | None
    fps: float
    watch: Stopwatch
    on_frames: Callable[[int], None] | None = None
    warnings: list[str] = field(default_factory=list)
    best: int | None = None
    tracks: tuple[Tensor | None, Tensor | None] = (None, None)  # pose / expression coefficients per frame
    not_finite: int = 0  # frames whose model output held NaN or infinite values

    @classmethod
    def open(
        cls,
        options: AnimateOptions,
        animator: Animator | None = None,
        on_frames: Callable[[int], None] | None = None,
    ) -> AnimationJob:
        """Check the options, probe the driving video, load the model and crop the source (in this order),
        then create the outputs."""
        _check_options(options)
        if animator is not None and options.mode == "best-frame" and animator.mode != "relative":
            raise ValueError(f"best-frame mode needs an Animator in relative mode, got {animator.mode!r}")
        info = probe_video(options.driving)
        total = info.num_frames if options.max_frames is None else min(info.num_frames, options.max_frames)
        animator = animator if animator is not None else load_animator(options)
        source = prepare_source(options.source, options.crop, animator.image_size)
        animator.set_source(to_tensor(source.crop)[None])
        # every input is checked; only now are the outputs (and their missing folders) created
        audio = None if options.driving.is_dir() else options.driving
        writer = VideoWriter(options.output, info.fps, audio_from=audio, crf=options.crf)
        folder = FrameFolder(options.frames_dir) if options.frames_dir is not None else None
        watch = Stopwatch()
        tracks = driver_tracks(options, animator, total)
        driving = DrivingVideo(options.driving, options.crop, animator.image_size, total, watch)
        job = cls(options, animator, source, driving, writer, folder, info.fps, watch, on_frames)
        job.tracks = tracks
        return job

    @property
    def total(self) -> int:
        """The number of driving frames animated (at most ``--max-frames``)."""
        return self.driving.total

    def crops(self) -> Iterator[DrivingCrop]:
        """The lazy stream of driving crops; in best-frame mode after a scan that sets the relative anchor."""
        if self.options.mode != "best-frame":
            return self.driving.crops()
        with self.progress("best frame") as bar:
            scan = scan_best_frame(self.driving, self.source, on_frame=lambda: bar.update(1))
        if not scan.found:
            self.warnings.append("best-frame: no facial landmarks in the source or the driving crops; anchor = frame 0")
        self.animator.set_anchor(to_tensor(scan.anchor)[None])
        self.best = scan.best
        return self.driving.replay(scan.boxes)

    def encode(self, crops: Iterable[DrivingCrop]) -> None:
        """The streaming loop: batch crops, animate, compose, encode; outputs are renamed into place at the end."""
        watch = self.watch
        compose = Composer(self.source, self.animator.image_size, self.options.paste_back, self.options.side_by_side)
        with ExitStack() as stack:
            if self.folder is not None:
                stack.enter_context(self.folder)
            stack.enter_context(self.writer)
            bar = stack.enter_context(self.progress("animate"))
            done = 0
            for batch in batched(crops, self.options.batch_size or self.animator.batch_size):
                with watch("model"):
                    frames = to_tensor(np.stack([item.crop for item in batch]))
                    faces = self.animator.animate(frames, **self._drivers(done, len(batch))).prediction
                    self.not_finite += int((~torch.isfinite(faces).flatten(1).all(dim=1)).sum())
                done += len(batch)
                with watch("encode"):
                    for frame in compose(batch, faces):
                        self.writer.write(frame)
                        if self.folder is not None:
                            self.folder.write(frame)
                bar.update(len(batch))
                if self.on_frames is not None:
                    self.on_frames(len(batch))
            with watch("encode"):
                self.writer.close()

    def _drivers(self, start: int, count: int) -> dict[str, Tensor]:
        """The second drivers' coefficients of frames start .. start+count (only those given: ``--pose-from``,
        ``--expression-from``), as ``Animator.animate``'s keyword arguments."""
        names = ("pose_coefficients", "expression_coefficients")
        slices = {name: _track_slice(track, start, count) for name, track in zip(names, self.tracks, strict=True)}
        return {name: value for name, value in slices.items() if value is not None}

    def summary(self, seconds: float) -> AnimateSummary:
        """What the run did (after ``encode``), taking ``seconds`` in all."""
        missing = self.driving.missing
        warnings = list(self.warnings)
        if self.not_finite:
            frames, checkpoint = self.writer.frames_written, self.options.checkpoint or "the model"
            warnings.append(
                f"the model's output is not finite (NaN or infinite values) in {self.not_finite} of {frames} "
                f"frames; check {checkpoint}"
            )
        if missing:
            warnings.append(
                f"{self.options.driving}: no usable face in {missing} of {self.total} frames; kept the last crop"
            )
        return AnimateSummary(
            output=self.options.output,
            frames=self.writer.frames_written,
            fps=self.fps,
            audio_kept=self.writer.audio_kept,
            mode=self.animator.mode if self.best is None else f"best-frame (frame {self.best})",
            seconds=seconds,
            times=self.watch.times(),
            frames_without_face=missing,
            best_frame=self.best,
            frames_dir=self.options.frames_dir,
            warnings=tuple(warnings),
        )

    def progress(self, what: str) -> tqdm:
        """A progress bar over the driving frames (on stderr; off with ``progress=False``)."""
        disable = not self.options.progress
        return tqdm(total=self.total, desc=what, unit="frame", disable=disable, file=sys.stderr, leave=False)


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
    with removing_new_folders(options.output, options.frames_dir):  # a failed run leaves no new folder
        job = AnimationJob.open(options, animator, on_frames)
        with job.driving:
            job.encode(job.crops())
    return job.summary(time.perf_counter() - start)


def _check_options(options: AnimateOptions) -> None:
    """What the declaration cannot check alone (each value is checked as ``AnimateOptions`` is built):
    options that go together, and no output that is an input."""
    if options.runtime == "onnx" and options.onnx_dir is None:
        raise OstnetError("--runtime onnx needs --onnx-dir DIR (made by `ostnet export CKPT --format onnx`)")
    if options.runtime == "onnx" and options.motion_smooth != "none":
        raise OstnetError("--motion-smooth works with --runtime torch only")
    if options.runtime == "onnx" and (options.pose_from or options.expression_from):
        raise OstnetError("--pose-from and --expression-from work with --runtime torch only")
    inputs = {"--source": options.source, "--driving": options.driving, "--checkpoint": options.checkpoint}
    inputs.update({"--pose-from": options.pose_from, "--expression-from": options.expression_from})
    inputs["--onnx-dir"] = options.onnx_dir
    check_outputs(inputs, {"--output": options.output, "--frames": options.frames_dir}, folders=("--frames",))


def load_animator(options: AnimateOptions) -> Animator:
    """Load ``options.checkpoint`` and wrap it in an Animator with the options' device, dtype and mode."""
    if options.checkpoint is None:
        raise OstnetError("no checkpoint given (--checkpoint)")
    if options.runtime == "onnx":
        mode = "relative" if options.mode == "best-frame" else options.mode
        return OnnxAnimator(
            options.onnx_dir, options.checkpoint, mode=mode, adapt_scale=options.adapt_scale, controls=options.controls
        )
    return animator_for(load_checkpoint(options.checkpoint), options)


def animator_for(model, options: AnimateOptions) -> Animator:
    """An Animator for ``model`` with the options' device, dtype and mode (best-frame sets a relative anchor)."""
    mode = "relative" if options.mode == "best-frame" else options.mode
    return Animator(
        model,
        device=options.device,
        dtype=options.dtype,
        mode=mode,
        adapt_scale=options.adapt_scale,
        motion_smooth=options.motion_smooth,
        controls=options.controls,
    )


def coefficient_track(path: Path, crop: CropOptions, animator: Animator, total: int, batch: int = 16) -> Tensor:
    """Face coefficients (T, D) of the first ``total`` frames of a second driving video (``--pose-from`` /
    ``--expression-from``), face-cropped like the driving video. No usable face is an OstnetError."""
    probe_video(path)  # a one-line error for a missing or unreadable file
    rows = []
    with DrivingVideo(path, crop, animator.image_size, total) as video:
        for items in batched(video.crops(), batch):
            rows.append(animator.coefficients(to_tensor(np.stack([item.crop for item in items]))))
    return torch.cat(rows)


def driver_tracks(options: AnimateOptions, animator: Animator, total: int) -> tuple[Tensor | None, Tensor | None]:
    """The coefficient tracks of ``--pose-from`` and ``--expression-from`` (None where not given)."""
    extra = tuple(name for name, path in (("--pose-from", options.pose_from),
                                          ("--expression-from", options.expression_from)) if path)  # fmt: skip
    if options.runtime == "onnx":  # no second drivers (checked in _check_options), the controls checked on loading
        return (None, None)
    check_supported(animator.model, options.controls, extra)
    return tuple(
        None if path is None else coefficient_track(path, options.crop, animator, total)
        for path in (options.pose_from, options.expression_from)
    )  # type: ignore[return-value]


def _track_slice(track: Tensor | None, start: int, count: int) -> Tensor | None:
    """Frames start .. start+count of a track; a shorter track holds its last frame."""
    if track is None:
        return None
    index = torch.arange(start, start + count).clamp(max=len(track) - 1)
    return track[index]


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


__all__ = [
    "MODES",
    "AnimateOptions",
    "AnimateSummary",
    "AnimationJob",
    "CropOptions",
    "StageTimes",
    "animate_video",
    "animator_for",
    "batched",
    "load_animator",
]
