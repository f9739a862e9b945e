"""What ``ostnet web`` does with a submitted form, without any HTTP: one job at a time through
``ostnet.inference.pipeline.animate_video`` with the Animator loaded at start-up, progress for the page,
finished videos kept by an opaque id, and all files in one temporary folder deleted by ``close``.
"""

from __future__ import annotations

import re
import shutil
import tempfile
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ostnet.errors import OstnetError
from ostnet.inference.animator import Animator
from ostnet.inference.pipeline import (
    MODES,
    AnimateOptions,
    AnimateSummary,
    CropOptions,
    animate_video,
    animator_for,
)
from ostnet.io.video import probe_video
from ostnet.web.multipart import FormData, FormFile
from ostnet.web.page import PageInfo

NO_CROP_HINT = 'tick "The inputs are already face crops"'


@dataclass(frozen=True)
class JobRequest:
    """One submitted form: the two uploads and the options (``mode`` is one of pipeline ``MODES``)."""

    source: FormFile
    driving: FormFile
    mode: str = "auto"
    paste_back: bool = False
    side_by_side: bool = False
    adapt_scale: bool = False
    crop: bool = True

    @classmethod
    def from_form(cls, form: FormData) -> JobRequest:
        """Read a form; ``OstnetError`` for a missing upload or an unknown mode."""
        mode = form.text("mode", "auto").strip() or "auto"
        if mode not in MODES:
            raise OstnetError(f"form: unknown motion mode {mode!r}; choose one of {', '.join(MODES)}")
        return cls(
            source=form.file("source", "portrait"),
            driving=form.file("driving", "driving video"),
            mode=mode,
            paste_back=form.flag("paste_back"),
            side_by_side=form.flag("side_by_side"),
            adapt_scale=form.flag("adapt_scale"),
            crop=not form.flag("no_crop"),
        )


@dataclass(frozen=True)
class Result:
    """A finished video: its opaque ``id``, file, download name and the pipeline's summary."""

    id: str
    path: Path
    filename: str
    animate: AnimateSummary
    warnings: tuple[str, ...] = ()

    @property
    def video_url(self) -> str:
        return f"/result/{self.id}.mp4"

    @property
    def download_url(self) -> str:
        return f"{self.video_url}?download=1"

    @property
    def summary(self) -> str:
        """The pipeline's one-line summary, without server paths."""
        return self.animate.line(where=False)

    def to_json(self) -> dict:
        s = self.animate
        return {
            "id": self.id,
            "video": self.video_url,
            "download": self.download_url,
            "filename": self.filename,
            "summary": self.summary,
            "frames": s.frames,
            "fps": s.fps,
            "duration": s.duration,
            "audio_kept": s.audio_kept,
            "mode": s.mode,
            "warnings": list(self.warnings),
        }


class Progress:
    """The running job's stage (``idle``, ``receiving``, ``preparing``, ``animating``, ``finishing``) and
    frames done out of ``total``; written by the job thread, read by ``/progress`` requests."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.stage, self.done, self.total = "idle", 0, 0

    def start(self, stage: str, total: int = 0) -> None:
        with self._lock:
            self.stage, self.done, self.total = stage, 0, total

    def add(self, frames: int) -> None:
        with self._lock:
            self.done += frames
            self.stage = "finishing" if self.total and self.done >= self.total else "animating"

    def stop(self) -> None:
        self.start("idle")

    def to_json(self) -> dict:
        with self._lock:
            return {"busy": self.stage != "idle", "stage": self.stage, "done": self.done, "total": self.total}


def _ascii_stem(name: str, fallback: str) -> str:
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(name).stem).strip("._")[:40]
    return stem or fallback


class WebApp:
    """The web demo's state. ``animator`` is the model loaded once at start-up; each job gets a light
    Animator (``pipeline.animator_for``) that shares its model, device and dtype, with the job's motion mode;
    frame progress comes from ``animate_video``'s ``on_frames`` callback.

    Args:
        animator: the loaded model.
        max_upload_mb: largest request body accepted (both files together).
        keep_results: finished videos kept for playback/download; older ones are deleted.
        log: where one line per job goes (None: nowhere).
    """

    def __init__(
        self,
        animator: Animator,
        *,
        max_upload_mb: float = 200.0,
        keep_results: int = 20,
        log: Callable[[str], None] | None = None,
    ) -> None:
        if not max_upload_mb > 0 or keep_results < 1:
            raise OstnetError("--max-upload-mb must be positive and keep_results at least 1")
        self.animator = animator
        self.max_upload_bytes = int(max_upload_mb * 2**20)
        self.keep_results = keep_results
        self.log = log
        self.lock = threading.Lock()  # one job at a time
        self.progress = Progress()
        self.folder = Path(tempfile.mkdtemp(prefix="ostnet-web-"))
        self._results: OrderedDict[str, Result] = OrderedDict()
        self._results_lock = threading.Lock()
        self.dtype = animator.precision
        model = animator.model
        self.info = PageInfo(
            model=model.cfg.name,
            image_size=animator.image_size,
            has_scale_transform=bool(model.has_scale_transform),
            device=str(animator.device),
            dtype=self.dtype,
            max_upload_mb=max_upload_mb,
        )

    def new_upload_folder(self) -> Path:
        folder = self.folder / "uploads" / uuid.uuid4().hex
        folder.mkdir(parents=True)
        return folder

    def animate(self, form: FormData) -> Result:
        """Run one job; ``OstnetError`` with a message that names the user's files, not the server's."""
        job = JobRequest.from_form(form)
        result_id = uuid.uuid4().hex
        output = self.folder / "results" / f"{result_id}.mp4"
        try:
            self.progress.start("preparing", probe_video(job.driving.path).num_frames)
            options = self._options(job, output)
            animator = animator_for(self.animator.model, options)  # the loaded model, this job's mode
            summary = animate_video(options, animator=animator, on_frames=self.progress.add)
        except OstnetError as exc:
            message = self._for_user(str(exc), job)
            self._log(f"refused {job.source.filename!r} + {job.driving.filename!r}: {message}")
            raise OstnetError(message) from None
        filename = f"{_ascii_stem(job.source.filename, 'portrait')}-{_ascii_stem(job.driving.filename, 'video')}.mp4"
        warnings = tuple(self._for_user(w, job) for w in summary.warnings)
        result = Result(result_id, output, filename, summary, warnings)
        self._remember(result)
        self._log(f"{job.source.filename!r} + {job.driving.filename!r}: {result.summary}")
        return result

    def result(self, result_id: str) -> Result | None:
        with self._results_lock:
            result = self._results.get(result_id)
        return result if result is not None and result.path.is_file() else None

    def progress_json(self) -> dict:
        return self.progress.to_json()

    def close(self) -> None:
        """Delete every upload and result."""
        shutil.rmtree(self.folder, ignore_errors=True)

    def _options(self, job: JobRequest, output: Path) -> AnimateOptions:
        return AnimateOptions(
            source=job.source.path,
            driving=job.driving.path,
            output=output,
            mode=job.mode,
            adapt_scale=job.adapt_scale,
            crop=CropOptions(enabled=job.crop),
            paste_back=job.paste_back,
            side_by_side=job.side_by_side,
            device=str(self.animator.device),
            dtype=self.dtype,
            progress=False,
        )

    def _for_user(self, message: str, job: JobRequest) -> str:
        """Name the uploads as the user knows them and turn command-line hints into the page's words."""
        message = message.replace(str(job.source.path), f"portrait '{job.source.filename}'")
        message = message.replace(str(job.driving.path), f"driving video '{job.driving.filename}'")
        message = message.replace(f"{self.folder}/", "")
        return message.replace("use --no-crop", NO_CROP_HINT)

    def _remember(self, result: Result) -> None:
        with self._results_lock:
            self._results[result.id] = result
            while len(self._results) > self.keep_results:
                _, old = self._results.popitem(last=False)
                old.path.unlink(missing_ok=True)

    def _log(self, line: str) -> None:
        if self.log is not None:
            self.log(line)


__all__ = ["JobRequest", "Progress", "Result", "WebApp"]
