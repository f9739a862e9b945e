"""What the web app does with a request, without any Gradio: the served models, the limits, the checks a job
passes before it is queued, the job itself (``ostnet.inference.pipeline.animate_video``, the same call as
``ostnet animate``), and the temporary files of each browser session.
"""

from __future__ import annotations

import shutil
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ostnet.errors import OstnetError
from ostnet.inference.faces import prepare_source
from ostnet.inference.pipeline import AnimateSummary, animate_video, animator_for
from ostnet.io.video import VideoInfo, probe_video
from ostnet.models.device import resolve_device
from ostnet.web.limits import WebLimits
from ostnet.web.options import options_for

NO_CROP_HINT = 'tick "no crop" in the options'


@dataclass
class ServedModel:
    """One checkpoint the server offers: its ``label`` in the picker, the loaded model, the server's device,
    and a semaphore that keeps at most ``WebLimits.per_model`` jobs on it at once."""

    label: str
    path: Path
    model: Any
    device: str
    slots: threading.Semaphore

    @property
    def description(self) -> str:
        cfg = self.model.cfg
        scale = "with" if self.model.has_scale_transform else "without"
        return f"{cfg.name}, {cfg.image_size} px, {scale} OSTNet's scale transformation"


def load_models(paths: list[Path], device: str | None, per_model: int) -> dict[str, ServedModel]:
    """Load each checkpoint once; labels are the file stems, made unique with their parent folder."""
    from ostnet.checkpoint import load_checkpoint

    if not paths:
        raise OstnetError("give at least one --checkpoint")
    device = resolve_device(device).type
    models: dict[str, ServedModel] = {}
    for path in paths:
        label = path.stem if path.stem not in models else f"{path.parent.name}/{path.stem}"
        if label in models:
            raise OstnetError(f"{path}: given twice")
        models[label] = ServedModel(label, path, load_checkpoint(path), device, threading.Semaphore(per_model))
    return models


def check_video(path: str | Path | None, limits: WebLimits) -> VideoInfo:
    """The driving video's description; ``OstnetError`` for no file, a file that is not a complete video, or
    one longer than the limits."""
    if not path:
        raise OstnetError("no driving video: upload one or record it with the webcam")
    info = probe_video(Path(path))
    if info.num_frames > limits.max_video_frames or info.duration > limits.max_video_seconds:
        raise OstnetError(
            f"the driving video is too long ({info.duration:.1f} s, {info.num_frames} frames); this server "
            f"takes at most {limits.max_video_seconds:g} s and {limits.max_video_frames} frames"
        )
    return info


def check_source(path: str | Path | None, values: dict[str, Any], model: ServedModel) -> None:
    """``OstnetError`` when the portrait is missing, unreadable, or has no usable face with these options."""
    if not path:
        raise OstnetError("no portrait: upload an image with a face")
    options = options_for(values, {"source": path, "driving": path, "output": path})
    prepare_source(Path(path), options.crop, model.model.cfg.image_size)


class SessionFiles:
    """The temporary files of each browser session under the server's ``folder``, deleted when the session
    ends, with the folders that held only them (never ``folder``'s own subfolders: ``results/``, Gradio's
    cache).

    Gradio names uploads by their content, so two sessions can share one file, and the same file can be
    uploaded again after a session took it. A file is therefore deleted only when no open session holds it
    and it has not been written since the ending session took it (a newer upload belongs to someone else;
    Gradio's periodic cache sweep removes an upload that nobody ever submits)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._held: dict[str, dict[Path, float]] = {}  # session -> {path: when it was taken}
        self._lock = threading.Lock()

    def new_output(self) -> Path:
        """A fresh path for a job's video (its own folder under ``results/``)."""
        folder = self.folder / "results" / uuid.uuid4().hex
        folder.mkdir(parents=True)
        return folder / "animation.mp4"

    def discard_output(self, output: Path) -> None:
        """Remove a job's folder (made by ``new_output``)."""
        shutil.rmtree(output.parent, ignore_errors=True)

    def hold(self, session: str, *paths: str | Path | None) -> None:
        now = time.time()
        with self._lock:
            self._held.setdefault(session, {}).update((Path(p), now) for p in paths if p)

    def held(self, session: str) -> set[Path]:
        with self._lock:
            return set(self._held.get(session, {}))

    def release(self, session: str) -> list[Path]:
        """Delete the files only ``session`` held (and their folders when empty); the paths deleted."""
        with self._lock:
            mine = self._held.pop(session, {})
            others = set().union(*self._held.values()) if self._held else set()
        deleted = []
        for path, taken in sorted(mine.items()):
            if path in others or not path.is_file() or path.stat().st_mtime > taken:
                continue
            path.unlink(missing_ok=True)
            deleted.append(path)
            _remove_empty_parents(path.parent, self.folder)
        return deleted

    def close(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


def _remove_empty_parents(folder: Path, root: Path) -> None:
    """Remove ``folder`` and its parents while they are empty, up to (not including) ``root``'s children."""
    while root in folder.parent.parents:
        try:
            folder.rmdir()
        except OSError:
            return
        folder = folder.parent


@dataclass(frozen=True)
class JobResult:
    """A finished animation: the video and one line for the page."""

    video: Path
    summary: AnimateSummary
    waited: float
    warnings: tuple[str, ...] = field(default=())

    def line(self, label: str) -> str:
        s = self.summary
        audio = "audio kept" if s.audio_kept else "no audio"
        return (
            f"{label}: {s.frames} frames at {s.fps:g} fps ({s.duration:.1f} s), {audio}, mode {s.mode}; "
            f"took {s.seconds:.1f} s"
        )


def run_job(
    model: ServedModel,
    source: str | Path,
    driving: str | Path,
    values: dict[str, Any],
    output: Path,
    on_stage: Callable[[str, int, int], None],
) -> JobResult:
    """Animate ``source`` with ``driving`` into ``output`` through ``animate_video`` (the ``ostnet animate``
    path), with the page's option ``values``, once a slot on ``model`` is free. ``on_stage(stage, done,
    total)`` reports progress: ``waiting``, ``preparing``, ``animating`` (frames), ``finishing``."""
    total = probe_video(Path(driving)).num_frames
    options = options_for(
        values,
        {"source": source, "driving": driving, "output": output, "device": model.device, "quiet": True},
    )
    total = min(total, options.max_frames or total)
    start = time.perf_counter()
    on_stage("waiting", 0, total)
    with model.slots:
        waited = time.perf_counter() - start
        on_stage("preparing", 0, total)
        done = 0

        def frames(n: int) -> None:
            nonlocal done
            done += n
            on_stage("animating" if done < total else "finishing", done, total)

        animator = animator_for(model.model, options)  # the loaded model with this job's mode and dtype
        summary = animate_video(options, animator=animator, on_frames=frames)
    return JobResult(output, summary, waited, summary.warnings)


def for_user(message: str, names: dict[str, str]) -> str:
    """A pipeline message in the page's words: server paths become the names the visitor knows."""
    for path, name in names.items():
        if path:
            message = message.replace(str(path), name)
    message = message.replace("(use --no-crop for a face crop)", f"(if it is already a face crop, {NO_CROP_HINT})")
    return message.replace("use --no-crop", NO_CROP_HINT)


__all__ = [
    "JobResult",
    "ServedModel",
    "SessionFiles",
    "WebLimits",
    "check_source",
    "check_video",
    "for_user",
    "load_models",
    "run_job",
]
