"""Turn raw talking-head videos into a FOMM-style dataset of face crops (``ostnet prepare``).

Per video: detect faces (MediaPipe, every ``detect_every``-th frame, boxes interpolated in between), link
them into tubes (``track_faces``), choose a square crop per tube, and write 256x256 PNG frames in the
video-preprocessing layout (reference-architecture.md §7.1)::

    DATASET/{train,test}/<identity>#<video>#<start>#<end>.mp4/0000000.png

(the folder name ends in ".mp4" by that convention; ``start`` / ``end`` are source frame numbers, end
exclusive) plus ``DATASET/manifest.csv`` with one row per clip.

Crops: ``crop="static"`` (default) keeps one box per clip, like VoxCeleb: the head moves inside a still
frame and the background stays still. The box is centred on the union of the tube's face boxes, its side is
(1 + margin) x the median face size, enlarged if needed so the union fits. ``crop="track"`` follows the face
with a per-frame box smoothed by ``BoxSmoother`` (head translation removed).
"""

from __future__ import annotations

import csv
import signal
import sys
from collections.abc import Iterator
from contextlib import ExitStack, closing
from pathlib import Path
from typing import Literal, NamedTuple

import numpy as np
from PIL import Image

from ostnet.errors import OstnetError
from ostnet.face.coefficients import CoefficientEstimator, save_clip_coefficients
from ostnet.face.crop import (
    DEFAULT_MARGIN,
    DEFAULT_SHIFT,
    BoxSmoother,
    CropBox,
    FaceTube,
    crop_and_resize,
    square_box,
    track_faces,
)
from ostnet.face.detector import FaceBox, FaceDetector
from ostnet.io.atomic import AtomicFolder, atomic_output, remove_temporaries
from ostnet.io.paths import check_outputs, check_readable
from ostnet.io.video import VideoInfo, iter_frames, probe_video
from ostnet.options import declared, option

VIDEO_SUFFIXES = (".mp4", ".mov", ".webm", ".mkv", ".gif", ".avi", ".m4v")


@declared(frozen=False)
class PrepareConfig:
    """Options of ``ostnet prepare``; sizes are in pixels of the source video unless said otherwise."""

    size: int = option(256, help="output frame side in pixels", bounds=(8, 4096))
    min_face: int = option(64, help="ignore faces smaller than this (max of box width, height; px)", bounds=(1, None))
    min_frames: int = option(32, help="drop face tubes shorter than this (before any time split)", bounds=(1, None))
    margin: float = option(DEFAULT_MARGIN, help="crop side = (1 + M) x face size (face/crop.py)", bounds=(-0.5, 4.0))
    shift: float = option(DEFAULT_SHIFT, help="raise the crop centre by this x face size", bounds=(-1.0, 1.0))
    crop: Literal["static", "track"] = option(
        "static", help="static: one box per clip (VoxCeleb-like); track: smoothed per-frame box"
    )
    smooth_sigma: float = 3.0  # frames; BoxSmoother for crop="track"
    # Detector on every n-th frame (and the last), boxes interpolated between. Measured on the sample clips:
    # n = 2 halves detection time; crop boxes move by <= 1.6 % of the crop vs n = 1 (below the detector's
    # own frame-to-frame jitter of 1-2.5 %); n = 5 reaches 4.6 %.
    detect_every: int = option(2, metavar="N", help="run the face detector every N frames", bounds=(1, 1000))
    min_score: float = 0.5
    model: Literal["full", "short", "auto"] = option("full", help="MediaPipe face detection model")
    max_frames: int | None = option(None, metavar="N", help="use only the first N frames per video", bounds=(1, None))
    split_by_time: float | None = option(
        None, metavar="F", help="first F of every clip goes to train, the rest to test (e.g. 0.8)", bounds=(0.01, 0.99)
    )
    test_fraction: float = option(
        0.0, help="otherwise: this fraction of identities goes to test (seeded, sorted ids)", bounds=(0.0, 0.99)
    )
    identity: str | None = option(None, help="identity for every input (default: the video file's stem)")
    seed: int = 0
    coefficients: bool = option(
        False, help="also store each frame's face coefficients (head pose, expression, landmarks; MediaPipe face "
        "mesh) in <clip>/coefficients.npz, for PECHead training",
    )  # fmt: skip

    def __post_init__(self) -> None:
        if self.split_by_time is not None and self.test_fraction:
            raise OstnetError("give --split-by-time or --test-fraction, not both")


class ClipRecord(NamedTuple):
    """One prepared clip = one row of manifest.csv (times in seconds, crop box in source pixels)."""

    name: str
    split: str
    identity: str
    source: str
    tube: int
    start_frame: int
    end_frame: int
    start_time: float
    end_time: float
    num_frames: int
    crop_x0: float
    crop_y0: float
    crop_size: float
    crop_mode: str
    fps: float
    source_width: int
    source_height: int


class VideoJob(NamedTuple):
    """One input video and where its clips go: ``split`` is "train"/"test" unless split by time."""

    source: Path
    identity: str
    video: str
    split: str


class _Part(NamedTuple):
    start: int
    end: int
    split: str
    name: str
    boxes: list[CropBox]  # one per frame of the part
    record: ClipRecord


def detect_faces(
    source: Path, info: VideoInfo, cfg: PrepareConfig, detector: FaceDetector
) -> list[list[FaceBox] | None]:
    """Faces per frame (``None`` for frames skipped by ``detect_every``); boxes below ``min_face`` dropped.

    The last frame is always examined so that tubes reach the end of the video.
    """
    total = info.num_frames if cfg.max_frames is None else min(info.num_frames, cfg.max_frames)
    detections: list[list[FaceBox] | None] = []
    for index, frame in _frames(source, total):
        if index % cfg.detect_every and index != total - 1:
            detections.append(None)
            continue
        faces = detector.detect(frame)
        detections.append([face for face in faces if max(face.width, face.height) >= cfg.min_face])
    return detections


def _frames(source: Path, total: int) -> Iterator[tuple[int, np.ndarray]]:
    with closing(iter_frames(source)) as frames:
        for index, frame in enumerate(frames):
            if index >= total:
                return
            yield index, frame


def tube_box(tube: FaceTube, frame_w: int, frame_h: int, cfg: PrepareConfig) -> CropBox:
    """One fixed crop for a whole tube: centred on the union of its boxes (raised by ``shift``), side
    (1 + margin) x the median face size but at most the frame's short side, then enlarged if needed so that
    the union plus 5 % fits; moved into the frame where it fits."""
    values = np.asarray([box[:4] for box in tube.boxes])  # (T, 4): x0, y0, x1, y1
    face_size = float(np.median(np.maximum(values[:, 2] - values[:, 0], values[:, 3] - values[:, 1])))
    ux0, uy0 = values[:, 0].min(), values[:, 1].min()
    ux1, uy1 = values[:, 2].max(), values[:, 3].max()
    cx, cy = (ux0 + ux1) / 2, (uy0 + uy1) / 2 - cfg.shift * face_size
    reach = max(cx - ux0, ux1 - cx, cy - uy0, uy1 - cy)
    # Rather a slightly tighter crop than smeared edge padding: never wider than the frame unless the
    # face's motion needs it.
    side = max(min((1 + cfg.margin) * face_size, min(frame_w, frame_h)), 2 * reach * 1.05)
    union = FaceBox(cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2, 1.0)
    return square_box(union, frame_w, frame_h, margin=0.0, shift=0.0)


def crop_boxes(tube: FaceTube, info: VideoInfo, cfg: PrepareConfig) -> list[CropBox]:
    """The crop box of every frame of ``tube`` (all equal for ``crop="static"``)."""
    if cfg.crop == "static":
        return [tube_box(tube, info.width, info.height, cfg)] * tube.num_frames
    boxes = [square_box(box, info.width, info.height, cfg.margin, shift=cfg.shift) for box in tube.boxes]
    return BoxSmoother(cfg.smooth_sigma).smooth(boxes)


def plan_parts(job: VideoJob, info: VideoInfo, tubes: list[FaceTube], cfg: PrepareConfig) -> list[_Part]:
    """Filter tubes (length, face size), choose their crops, and cut them into train / test parts."""
    parts = []
    for number, tube in enumerate(tubes):
        sizes = [max(box.width, box.height) for box in tube.boxes]
        if tube.num_frames < cfg.min_frames or float(np.median(sizes)) < cfg.min_face:
            continue
        boxes = crop_boxes(tube, info, cfg)
        cuts = [(tube.start, tube.end, job.split)]
        if cfg.split_by_time is not None:
            middle = tube.start + round(cfg.split_by_time * tube.num_frames)
            cuts = [(tube.start, middle, "train"), (middle, tube.end, "test")]
        for start, end, split in cuts:
            if end > start:
                part_boxes = boxes[start - tube.start : end - tube.start]
                parts.append(_make_part(job, info, number, (start, end, split), part_boxes, cfg.crop))
    return parts


def _make_part(
    job: VideoJob, info: VideoInfo, tube: int, cut: tuple[int, int, str], boxes: list[CropBox], mode: str
) -> _Part:
    start, end, split = cut
    name = f"{job.identity}#{job.video}#{start:06d}#{end:06d}.mp4"
    cx, cy, size = np.median(np.asarray(boxes), axis=0)
    record = ClipRecord(
        name, split, job.identity, str(job.source), tube, start, end, round(start / info.fps, 4),
        round(end / info.fps, 4), end - start, round(float(cx - size / 2), 2), round(float(cy - size / 2), 2),
        round(float(size), 2), mode, round(info.fps, 4), info.width, info.height,
    )  # fmt: skip
    return _Part(start, end, split, name, boxes, record)


def write_coefficients(folder: Path) -> Path:
    """Face coefficients R of every frame of a clip folder (MediaPipe face mesh, tracked through the clip)
    -> ``folder/coefficients.npz`` (``ostnet.face.coefficients``); frames without a face are marked."""
    with CoefficientEstimator(static=False) as estimate:
        per_frame = [estimate(np.asarray(Image.open(path).convert("RGB"))) for path in sorted(folder.glob("*.png"))]
    return save_clip_coefficients(folder, per_frame)


def write_parts(source: Path, parts: list[_Part], dataset: Path, size: int, coefficients: bool = False) -> None:
    """Second pass over the video: crop, resize and save every frame of every part as PNG (and, with
    ``coefficients``, the clip's face coefficients).

    Each clip is written by an ``AtomicFolder`` (a hidden temporary folder renamed when complete, replacing an
    earlier clip of that name); on any error (or Ctrl-C) the unfinished folders are removed, so the dataset
    never holds half-written clips.
    """
    with ExitStack() as stack:
        temps = [stack.enter_context(AtomicFolder(dataset / part.split / part.name)) for part in parts]
        last = max(part.end for part in parts)
        for index, frame in _frames(source, last):
            for part, temp in zip(parts, temps, strict=True):
                if part.start <= index < part.end:
                    crop = crop_and_resize(frame, part.boxes[index - part.start], size)
                    # compress_level=1: 6x faster than PIL's default 6 for 256x256 crops, files ~15 % larger
                    Image.fromarray(crop).save(temp / f"{index - part.start:07d}.png", compress_level=1)
        for temp in temps if coefficients else []:
            write_coefficients(temp)


def prepare_video(job: VideoJob, dataset: Path, cfg: PrepareConfig, detector: FaceDetector) -> list[ClipRecord]:
    """Prepare one video; returns its clips (possibly none). Unreadable input raises ``OstnetError``."""
    info = probe_video(job.source)
    detections = detect_faces(job.source, info, cfg, detector)
    tubes = track_faces(detections, max_gap=max(6, 2 * cfg.detect_every))
    parts = plan_parts(job, info, tubes, cfg)
    if parts:
        write_parts(job.source, parts, dataset, cfg.size, cfg.coefficients)
    return [part.record for part in parts]


def write_manifest(dataset: Path, records: list[ClipRecord], replaced_sources: set[str]) -> Path:
    """Write ``DATASET/manifest.csv`` atomically, keeping rows of earlier runs for other source videos."""
    path = dataset / "manifest.csv"
    rows = []
    if path.is_file():
        with open(path, newline="") as handle:
            rows = [row for row in csv.DictReader(handle) if row.get("source") not in replaced_sources]
    rows.extend(record._asdict() for record in records)
    rows.sort(key=lambda row: (row["split"], row["name"]))
    with atomic_output(path) as tmp, open(tmp, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=ClipRecord._fields, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return path


class PrepareResult(NamedTuple):
    records: list[ClipRecord]
    skipped: list[str]  # one line per video that could not be prepared


def collect_videos(inputs: list[Path]) -> list[Path]:
    """Expand folders: a folder holding videos (files, or frame folders named like ``x.mp4``) stands for
    them (sorted, not recursive); any other folder is taken as one video made of image frames."""
    sources = []
    for path in inputs:
        videos = sorted(p for p in path.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES) if path.is_dir() else []
        sources.extend(videos or [path])  # "<clip>.mp4/" frame folders (FOMM layout) count as videos
    return sources


def plan_jobs(sources: list[Path], cfg: PrepareConfig) -> list[VideoJob]:
    """Name every video (file stem, made unique) and choose its split when splitting by identity."""
    jobs, seen = [], set()
    for source in sources:
        stem = _safe(source.stem if source.suffix.lower() in VIDEO_SUFFIXES else source.name)
        video, n = stem, 1
        while video in seen:
            n += 1
            video = f"{stem}_{n}"
        seen.add(video)
        jobs.append(VideoJob(source, _safe(cfg.identity) if cfg.identity else stem, video, "train"))
    identities = sorted({job.identity for job in jobs})
    test_ids: set[str] = set()
    if cfg.split_by_time is None and cfg.test_fraction > 0 and len(identities) > 1:
        count = min(max(1, round(cfg.test_fraction * len(identities))), len(identities) - 1)
        rng = np.random.default_rng(cfg.seed)
        test_ids = {str(i) for i in rng.choice(identities, size=count, replace=False)}
    return [job._replace(split="test") if job.identity in test_ids else job for job in jobs]


def _safe(name: str) -> str:
    """A name usable inside ``<id>#<video>#...``: no '#', path separators or leading dots."""
    cleaned = "".join("_" if ch in '#/\\:*?"<>|' or ord(ch) < 32 else ch for ch in name).strip(". ")
    return cleaned or "video"


_DETECTOR: FaceDetector | None = None  # one per worker process, made by _init_worker


def _init_worker(min_score: float, model: str, ignore_interrupt: bool = False) -> None:
    global _DETECTOR
    if ignore_interrupt:  # pool workers: Ctrl-C is handled by the main process, which stops them
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    _DETECTOR = FaceDetector(min_score=min_score, model=model)


class JobResult(NamedTuple):
    job: VideoJob
    records: list[ClipRecord]
    error: str | None  # one line: why the video was skipped


def _run_job(job: VideoJob, dataset: Path, cfg: PrepareConfig) -> JobResult:
    """Prepare one video in the current (worker) process; failures become a one-line ``error``."""
    if _DETECTOR is None:
        _init_worker(cfg.min_score, cfg.model)
    try:
        records = prepare_video(job, dataset, cfg, _DETECTOR)
    except OstnetError as exc:
        return JobResult(job, [], str(exc))
    except Exception as exc:  # one broken video must not stop a batch of thousands
        return JobResult(job, [], f"{job.source}: {type(exc).__name__}: {exc}")
    if not records:
        reason = f"no face tube of >= {cfg.min_frames} frames with faces >= {cfg.min_face} px"
        return JobResult(job, [], f"{job.source}: {reason}")
    return JobResult(job, records, None)


def _run_packed(args: tuple[VideoJob, Path, PrepareConfig]) -> JobResult:
    return _run_job(*args)


def prepare_dataset(
    inputs: list[Path], dataset: Path, cfg: PrepareConfig, workers: int = 1, progress: bool = True
) -> PrepareResult:
    """Prepare every input video into ``dataset`` (``workers`` videos in parallel) and write the manifest.

    Videos that fail are reported on stderr and skipped; ``OstnetError`` if nothing was prepared. On Ctrl-C
    the workers are stopped, unfinished clip folders removed and the finished clips listed in the manifest.
    """
    from tqdm import tqdm

    check_outputs({f"input {path}": path for path in inputs}, {"--output": dataset}, folders=("--output",))
    for path in inputs:
        if Path(path).is_dir():  # a missing or broken video file is skipped and reported; a folder must open
            check_readable(path, "input folder", folder=True)
    jobs = plan_jobs(collect_videos(inputs), cfg)
    done: list[JobResult] = []
    bar = tqdm(total=len(jobs), unit="video", desc="prepare", disable=not progress)
    try:
        for result in _results(jobs, dataset, cfg, workers):
            done.append(result)
            if result.error:
                bar.write(f"skipped {result.error}", file=sys.stderr)
            bar.update()
    except BaseException:
        _remove_unfinished(dataset, jobs)
        _finish(dataset, done)
        raise
    finally:
        bar.close()
    records = _finish(dataset, done)
    if not records:
        raise OstnetError(f"{dataset}: nothing was prepared from {len(jobs)} input(s)")
    return PrepareResult(records, [result.error for result in done if result.error])


def _finish(dataset: Path, done: list[JobResult]) -> list[ClipRecord]:
    """Write the manifest for the finished videos (if any clip was made); returns their clips."""
    records = [record for result in done for record in result.records]
    if records:
        write_manifest(dataset, records, {str(result.job.source) for result in done if result.records})
    return records


def _remove_unfinished(dataset: Path, jobs: list[VideoJob]) -> None:
    """Delete the temporary clip folders of these jobs (left by workers that were stopped)."""
    for job in jobs:
        for split in ("train", "test"):
            remove_temporaries(dataset / split, prefix=f".{job.identity}#{job.video}#")


def _results(jobs: list[VideoJob], dataset: Path, cfg: PrepareConfig, workers: int) -> Iterator[JobResult]:
    if workers <= 1 or len(jobs) <= 1:
        for job in jobs:
            yield _run_job(job, dataset, cfg)
        return
    import multiprocessing

    context = multiprocessing.get_context("spawn")  # never fork a process that may hold threads
    pool = context.Pool(min(workers, len(jobs)), _init_worker, (cfg.min_score, cfg.model, True))
    try:
        yield from pool.imap_unordered(_run_packed, [(job, dataset, cfg) for job in jobs])
        pool.close()
    except BaseException:
        pool.terminate()
        raise
    finally:
        pool.join()
