"""The limits of one ``ostnet web`` server, declared once: the command line's flags (``--max-upload-mb`` ...)
are made from these fields (no heavy imports: the command line reads them at start-up)."""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass, field

from ostnet.errors import OstnetError


def _limit(default: float, metavar: str, help: str):
    return field(default=default, metadata={"metavar": metavar, "help": help})


@dataclass(frozen=True)
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

    @classmethod
    def add_arguments(cls, group: argparse._ArgumentGroup) -> None:
        """One flag per field, with its type, default and help."""
        for f in dataclasses.fields(cls):
            number = int if f.type in (int, "int") else float
            help = f"{f.metadata['help']} (default: {f.default:g})"
            group.add_argument(flag(f.name), type=number, default=f.default, metavar=f.metadata["metavar"], help=help)

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> WebLimits:
        return cls(**{f.name: getattr(args, f.name) for f in dataclasses.fields(cls)})


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


__all__ = ["WebLimits"]
