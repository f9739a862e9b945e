"""Still images on disk, and the ONE place where uint8 pixels become float tensors and back.

``load_image`` returns ``(H, W, 3)`` uint8 RGB whatever the file holds: 8- or 16-bit, greyscale, palette,
RGBA (composited over white), CMYK, with EXIF orientation applied. ``to_tensor`` / ``to_uint8`` convert
between that and ``(3, H, W)`` float tensors in [0, 1] (value = byte / 255, rounded back on the way out).
"""

from __future__ import annotations

import math
import os
import re
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from ostnet.errors import OstnetError
from ostnet.io.atomic import AtomicFolder, atomic_output
from ostnet.io.limits import check_megapixels, check_pixels
from ostnet.io.paths import check_readable

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")
_HIGH_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I")


def load_image(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an image file as ``(H, W, 3)`` uint8 RGB.

    Transparent images are composited over white; 16-bit images are scaled to 8 bits (value / 257, rounded).
    Raises ``OstnetError`` ("<path>: <problem>") for a missing file, a file that is not an image, or a
    truncated / corrupt image.
    """
    path = Path(path)
    check_readable(path, "image", missing="no such file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # check_pixels says it in one line
            img = Image.open(path)
        with img:
            check_pixels(path, *img.size)
            img.load()
            img = ImageOps.exif_transpose(img)
            return _to_rgb_array(img)
    except UnidentifiedImageError:
        raise OstnetError(f"{path}: not an image (unrecognised format)") from None
    except Image.DecompressionBombError as exc:  # Pillow's own limit (179 MP), also above ours
        pixels = re.search(r"\((\d+) pixels\)", str(exc))
        check_megapixels(path, int(pixels[1]) / 1e6 if pixels else math.inf)
        raise OstnetError(f"{path}: image too large to decode ({str(exc).split(',')[0]})") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise OstnetError(f"{path}: corrupt or truncated image ({exc})") from None


def _to_rgb_array(img: Image.Image) -> np.ndarray:
    """Any PIL mode -> (H, W, 3) uint8 RGB."""
    if img.mode in _HIGH_BIT_MODES or img.mode == "F":
        grey = np.asarray(img, dtype=np.float64)
        if img.mode != "F" and (img.mode != "I" or grey.max() > 255):
            grey = grey / 257.0  # 16-bit range 0..65535 -> 0..255
        elif img.mode == "F" and grey.max() <= 1.0:
            grey = grey * 255.0
        grey = np.clip(np.rint(grey), 0, 255).astype(np.uint8)
        return np.repeat(grey[:, :, None], 3, axis=2)
    has_alpha = img.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (img.mode == "P" and "transparency" in img.info)
    if has_alpha:
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(white, rgba)
    return np.array(img.convert("RGB"), dtype=np.uint8)


def save_image(path: str | os.PathLike[str], array: np.ndarray) -> None:
    """Write an ``(H, W, 3)`` (or ``(H, W)``) uint8 array atomically; the format follows the suffix.

    Raises ``OstnetError`` for an unknown suffix or an unwritable folder, ``ValueError`` for a bad array.
    """
    path = Path(path)
    fmt = Image.registered_extensions().get(path.suffix.lower())
    if fmt is None:
        raise OstnetError(f"{path}: unknown image format {path.suffix!r} (use .png, .jpg or .webp)")
    array = np.asarray(array)
    if array.dtype != np.uint8 or array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] != 3):
        raise ValueError(f"save_image expects uint8 (H, W, 3) or (H, W), got {array.dtype} {array.shape}")
    options = {"quality": 95} if fmt in ("JPEG", "WEBP") else {}
    with atomic_output(path) as tmp:
        Image.fromarray(array).save(tmp, format=fmt, **options)


def to_tensor(image: np.ndarray) -> torch.Tensor:
    """uint8 ``(..., H, W, 3)`` RGB -> float32 ``(..., 3, H, W)`` in [0, 1] (byte / 255)."""
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim < 3 or image.shape[-1] != 3:
        got = f"{type(image).__name__} {getattr(image, 'shape', '')}"
        raise ValueError(f"to_tensor expects a uint8 (..., H, W, 3) array, got {got}")
    if not image.flags.writeable:
        image = image.copy()
    tensor = torch.from_numpy(image).movedim(-1, -3)  # (..., 3, H, W)
    return tensor.to(torch.float32).div_(255.0).contiguous()


def to_uint8(tensor: torch.Tensor) -> np.ndarray:
    """float ``(..., 3, H, W)`` in [0, 1] -> uint8 ``(..., H, W, 3)``; values are clamped, then rounded."""
    if not torch.is_tensor(tensor) or tensor.ndim < 3 or tensor.shape[-3] != 3:
        shape = tuple(tensor.shape) if torch.is_tensor(tensor) else type(tensor).__name__
        raise ValueError(f"to_uint8 expects a (..., 3, H, W) tensor, got {shape}")
    values = tensor.detach().to("cpu", torch.float32).clamp(0.0, 1.0).mul(255.0).round_()
    return np.ascontiguousarray(values.to(torch.uint8).movedim(-3, -1).numpy())


class FrameFolder:
    """PNG frames (``000000.png``, ...) written to a temporary folder beside ``path`` and renamed onto it when
    complete (``AtomicFolder``); on error or Ctrl-C the temporary folder is removed. ``path`` must not exist
    or be an empty folder."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        if self.path.exists() and (not self.path.is_dir() or any(self.path.iterdir())):
            raise OstnetError(f"{self.path}: exists and is not an empty folder (--frames)")
        self._folder = AtomicFolder(self.path)
        self.count = 0

    def write(self, frame: np.ndarray) -> None:
        """Append one (H, W, 3) uint8 RGB frame."""
        Image.fromarray(frame).save(self._folder.start() / f"{self.count:06d}.png")
        self.count += 1

    def __enter__(self) -> FrameFolder:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self._folder.__exit__(exc_type, exc, tb)
