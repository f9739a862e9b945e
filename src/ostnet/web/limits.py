"""The limits of one ``ostnet web`` server, declared once: its ``--max-*`` flags (``ostnet.commands.web``,
nested in ``WebOptions``) and docs/cli.md come from these fields (no heavy imports: the command line reads them
at start-up)."""

from __future__ import annotations

import dataclasses
from typing import Any

from ostnet.errors import OstnetError
from ostnet.options import declared, option

LIMITS = "limits"


def _limit(default: float, metavar: str, help: str) -> Any:
    low = 1 if isinstance(default, int) else 0.001
    return option(default, metavar=metavar, help=help, bounds=(low, None), group=LIMITS)


@declared
class WebLimits:
    """What one server accepts; every field is a positive number and the flag ``--<field-with-dashes>``."""

    max_upload_mb: float = _limit(100.0, "MB", "largest upload, per file")
    max_video_seconds: float = _limit(60.0, "S", "longest driving video in seconds")
    max_video_frames: int = _limit(1800, "N", "longest driving video in frames")
    max_queue: int = _limit(8, "N", "jobs waiting at most; more are refused with 'the queue is full'")
    per_model: int = _limit(1, "N", "jobs running at once on one model")
    request_timeout: float = _limit(60.0, "S", "seconds a request body may take to arrive (slow uploads are cut off)")

    def __post_init__(self) -> None:
        for name, value in dataclasses.asdict(self).items():
            if not 0 < value < float("inf"):
                raise OstnetError(f"{flag(name)} must be a positive number, got {value}")


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


__all__ = ["WebLimits"]
