"""The limits of one ``ostnet web`` server (no heavy imports: the command line reads the defaults)."""

from __future__ import annotations

from dataclasses import dataclass

from ostnet.errors import OstnetError


@dataclass(frozen=True)
class WebLimits:
    """What one server accepts. ``max_upload_mb``: largest request (both files); ``max_video_seconds`` and
    ``max_video_frames``: longest driving video; ``max_queue``: jobs waiting at once (more are refused);
    ``per_model``: jobs running at once on one model; ``request_timeout``: seconds a request body may take
    to arrive (slow-drip uploads are cut off)."""

    max_upload_mb: float = 100.0
    max_video_seconds: float = 60.0
    max_video_frames: int = 1800
    max_queue: int = 8
    per_model: int = 1
    request_timeout: float = 60.0

    def __post_init__(self) -> None:
        numbers = {
            "--max-upload-mb": self.max_upload_mb,
            "--max-video-seconds": self.max_video_seconds,
            "--max-video-frames": self.max_video_frames,
            "--max-queue": self.max_queue,
            "--per-model": self.per_model,
            "--request-timeout": self.request_timeout,
        }
        for flag, value in numbers.items():
            if not 0 < value < float("inf"):
                raise OstnetError(f"{flag} must be a positive number, got {value}")


__all__ = ["WebLimits"]
