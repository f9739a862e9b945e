"""Size limits on what ostnet decodes, so that a small hostile file cannot claim gigabytes of memory.

A 69-byte PNG can claim 60000 x 60000 pixels (10.8 GB as RGB); a video header can claim any frame size. The
sizes are read from headers and checked before anything is decoded. The defaults fit in a few hundred MB and
pass every real photo and video up to 8K; each is raised (or lowered) with an environment variable:

=============================  =======  ==========================================================
variable                       default  what
=============================  =======  ==========================================================
OSTNET_MAX_IMAGE_MEGAPIXELS    64       pixels of one image (a portrait, a frame file)
OSTNET_MAX_FRAME_MEGAPIXELS    36       pixels of one video frame (8K UHD is 33.2)
OSTNET_MAX_VIDEO_FRAMES        150000   frames of one video (about 83 minutes at 30 fps)
=============================  =======  ==========================================================
"""

from __future__ import annotations

import math
import os
from pathlib import Path

from ostnet.errors import OstnetError

DEFAULTS = {
    "OSTNET_MAX_IMAGE_MEGAPIXELS": 64.0,
    "OSTNET_MAX_FRAME_MEGAPIXELS": 36.0,
    "OSTNET_MAX_VIDEO_FRAMES": 150_000,
}


def limit(name: str) -> float:
    """The limit ``name`` (one of ``DEFAULTS``): the environment's value, else the default."""
    text = os.environ.get(name, "").strip()
    if not text:
        return DEFAULTS[name]
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise OstnetError(f"{name}={text!r}: must be a positive number")
    return value


def check_pixels(path: Path | str, width: int, height: int, what: str = "image") -> None:
    """``OstnetError`` when a ``width`` x ``height`` image (``what="image"``) or video frame (``"frame"``)
    is over its limit."""
    check_megapixels(path, width * height / 1e6, what, f"{width}x{height} pixels")


def check_megapixels(path: Path | str, megapixels: float, what: str = "image", size: str = "") -> None:
    """``OstnetError`` when ``megapixels`` is over the limit for an image or a video frame."""
    name = "OSTNET_MAX_IMAGE_MEGAPIXELS" if what == "image" else "OSTNET_MAX_FRAME_MEGAPIXELS"
    most = limit(name)
    if megapixels > most:
        size = f"{size} " if size else ""
        raise OstnetError(
            f"{path}: {what} of {size}({megapixels:.0f} megapixels) is over the limit of {most:g}; "
            f"set {name} to allow more"
        )


def check_frame_count(path: Path | str, frames: int) -> None:
    """``OstnetError`` when a video holds more frames than ``OSTNET_MAX_VIDEO_FRAMES``."""
    most = limit("OSTNET_MAX_VIDEO_FRAMES")
    if frames > most:
        raise OstnetError(
            f"{path}: {frames} frames is over the limit of {most:g}; set OSTNET_MAX_VIDEO_FRAMES to allow more"
        )
