"""How the animated face goes back for ``ostnet animate`` (where it was cut from is ``ostnet.inference.faces``).

* ``PasteBack``: the inverse of ``ostnet.face.crop.crop_and_resize``. A crop box ``(cx, cy, size)`` in source
  pixels (edge-based: pixel ``i`` covers ``[i, i + 1)``) was resized to the model's ``S x S`` image, so the
  source pixel whose centre is at ``x + 0.5`` sits at ``u = (x + 0.5 - x0) * S / size - 0.5`` pixel centres
  of the animated face, i.e. at ``2 u / (S - 1) - 1`` in the project's [-1, 1] convention
  (``align_corners=True``). The face is sampled there (bilinear, ``ostnet.geometry.warp``) and blended over
  the source with a feathered mask that is 1 inside the box and falls smoothly to 0 over its outer
  ``feather`` fraction, so the seam is invisible where the model reproduces the source's background.
* ``side_by_side``: panels resized to one height and put next to each other.
* ``Composer``: animated faces -> output frames (plain, pasted back, and/or side by side).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from ostnet.face.crop import CropBox
from ostnet.geometry import warp
from ostnet.inference.faces import DrivingCrop, SourceImage
from ostnet.io.image import to_tensor, to_uint8

DEFAULT_FEATHER = 0.12  # fraction of the half-side over which the mask fades out


def _smoothstep(x: Tensor) -> Tensor:
    x = x.clamp(0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


class PasteBack:
    """Composite animated faces into one full-resolution source image (all geometry computed once).

    Args:
        image: the original source, (H, W, 3) uint8 RGB.
        box: the square crop the model's source image was cut from (``ostnet.face.crop.square_box``).
        size: the model's image size S.
        feather: width of the soft border as a fraction of the box's half-side, in (0, 1].

    Calling it with faces (B, 3, S, S) float in [0, 1] returns B frames (H, W, 3) uint8: the source with the
    box region replaced by the (resampled) faces; pixels outside the box are the source's, unchanged.
    """

    def __init__(self, image: np.ndarray, box: CropBox, size: int, feather: float = DEFAULT_FEATHER) -> None:
        if not 0.0 < feather <= 1.0:
            raise ValueError(f"feather must be in (0, 1], got {feather}")
        if box.size <= 0 or size < 2:
            raise ValueError(f"need a positive box and a model size >= 2, got {box} and {size}")
        self.image = np.ascontiguousarray(image)
        height, width = image.shape[:2]
        # The integer pixel range touched by the box, clipped to the image.
        self.x0, self.y0 = max(math.floor(box.x0), 0), max(math.floor(box.y0), 0)
        self.x1, self.y1 = min(math.ceil(box.x1), width), min(math.ceil(box.y1), height)
        if self.x1 <= self.x0 or self.y1 <= self.y0:
            raise ValueError(f"crop box {box} does not overlap the {width}x{height} image")
        self.grid, self.mask = _region_geometry(box, size, (self.x0, self.y0, self.x1, self.y1), feather)
        region = self.image[self.y0 : self.y1, self.x0 : self.x1]
        self.background = to_tensor(region)[None]  # (1, 3, h, w)

    @property
    def shape(self) -> tuple[int, int]:
        """(H, W) of the output frames: the source image's size."""
        return self.image.shape[0], self.image.shape[1]

    def region(self, faces: Tensor) -> Tensor:
        """The blended box region (B, 3, h, w) in [0, 1] for faces (B, 3, S, S)."""
        faces = faces.detach().to("cpu", torch.float32)
        grid = self.grid.expand(faces.shape[0], -1, -1, -1)
        sampled = warp(faces, grid, padding_mode="border")  # (B, 3, h, w)
        return torch.lerp(self.background, sampled, self.mask)

    def __call__(self, faces: Tensor) -> list[np.ndarray]:
        regions = to_uint8(self.region(faces))  # (B, h, w, 3)
        frames = []
        for region in regions:
            frame = self.image.copy()
            frame[self.y0 : self.y1, self.x0 : self.x1] = region
            frames.append(frame)
        return frames


def _region_geometry(
    box: CropBox, size: int, bounds: tuple[int, int, int, int], feather: float
) -> tuple[Tensor, Tensor]:
    """Sampling grid (1, h, w, 2) into the S x S face and the feathered mask (1, 1, h, w) for a pixel region.

    ``bounds`` = (x0, y0, x1, y1) integer pixel edges of the region in the source image.
    """
    x0, y0, x1, y1 = bounds
    scale = size / box.size  # face pixels per source pixel

    def axis(start: int, stop: int, box_start: float) -> Tensor:
        centres = torch.arange(start, stop, dtype=torch.float64) + 0.5  # source pixel centres (edge coords)
        u = (centres - box_start) * scale - 0.5  # face pixel-centre index
        return (2.0 * u / (size - 1) - 1.0).float()  # [-1, 1] inside the box

    xs, ys = axis(x0, x1, box.x0), axis(y0, y1, box.y0)
    grid = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), dim=-1)[None]  # (1, h, w, 2), last axis (x, y)
    # Distance to the box edge in units of the half-side: 0 on the edge, 1 at the centre.
    half = 0.5 * box.size
    dist_x = 1.0 - (torch.arange(x0, x1, dtype=torch.float64) + 0.5 - box.cx).abs() / half
    dist_y = 1.0 - (torch.arange(y0, y1, dtype=torch.float64) + 0.5 - box.cy).abs() / half
    mask = _smoothstep(dist_y.float()[:, None] / feather) * _smoothstep(dist_x.float()[None, :] / feather)
    return grid, mask[None, None]  # mask: (1, 1, h, w)


def resize_to_height(image: np.ndarray, height: int) -> np.ndarray:
    """Resize (H, W, 3) uint8 to the given height, keeping the aspect ratio (bicubic, PIL)."""
    h, w = image.shape[:2]
    if h == height:
        return image
    width = max(1, round(w * height / h))
    return np.asarray(Image.fromarray(image).resize((width, height), Image.Resampling.BICUBIC))


def side_by_side(panels: list[np.ndarray], height: int) -> np.ndarray:
    """Concatenate (H_i, W_i, 3) uint8 panels left to right, each resized to ``height`` first."""
    return np.concatenate([resize_to_height(panel, height) for panel in panels], axis=1)


class Composer:
    """Turns animated faces into output frames: plain, pasted back into the source, and/or side by side
    (source, driving, result; the driving panel is the whole frame when pasting back, else its crop)."""

    def __init__(self, source: SourceImage, size: int, paste_back: bool = False, side_by_side: bool = False) -> None:
        self.paste = PasteBack(source.image, source.box, size) if paste_back else None
        self.side_by_side = side_by_side
        self.source_panel = source.image if paste_back else source.crop
        self._resized: dict[int, np.ndarray] = {}

    def __call__(self, batch: Sequence[DrivingCrop], faces: Tensor) -> list[np.ndarray]:
        results = self.paste(faces) if self.paste is not None else list(to_uint8(faces))
        if not self.side_by_side:
            return results
        height = results[0].shape[0]
        if height not in self._resized:  # the source panel is resized once
            self._resized[height] = side_by_side([self.source_panel], height)
        driving = [item.frame if self.paste is not None else item.crop for item in batch]
        return [side_by_side([self._resized[height], d, r], height) for d, r in zip(driving, results, strict=True)]
