"""The one device rule of every command (``--device``, declared once in ``ostnet.options.Device``):
``auto``, the default, is the best available accelerator: CUDA, else Apple's MPS, else the CPU
(docs/design.md, "One default device")."""

from __future__ import annotations

import torch

from ostnet.errors import OstnetError
from ostnet.options import DEVICES


def best_device() -> str:
    if torch.cuda.is_available():
        return "cuda"
    if _mps_available():
        return "mps"
    return "cpu"


def resolve_device(device: str | torch.device | None) -> torch.device:
    """The torch device of a ``--device`` value: ``auto`` (or None) is ``best_device()``; ``cuda:1`` and torch
    devices are taken as they are. ``OstnetError`` (one line) for an unknown device or one this machine lacks."""
    if device is None or device == "auto":
        return torch.device(best_device())
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError):
        raise OstnetError(f"unknown device {device!r}; choose one of {', '.join(DEVICES)}") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise OstnetError(f"--device {device} was asked for but CUDA is not available")
    if resolved.type == "mps" and not _mps_available():
        raise OstnetError(f"--device {device} was asked for but MPS is not available")
    return resolved


def _mps_available() -> bool:
    return getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()


__all__ = ["best_device", "resolve_device"]
