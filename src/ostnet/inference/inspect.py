"""What a model does with one (source, driving frame) pair, as images: ``ostnet inspect``.

For any preset: the source, the driving frame (and the rectified one with ST), the prediction, the flow after
each compensated scale (only the dense motion's flow without codebooks) drawn with the usual colour wheel
(hue = direction, saturation = length, white = no motion), the occlusion maps, and, for models with codebooks,
the histograms of the codes chosen at every scale (motion codes of the flow tokens; appearance codes of the
driving frame's features, the ones ACC's codebook learns from) with their perplexity.

``inspect_pair`` returns the images (uint8 arrays) by file name; ``write_images`` writes them into a folder
atomically (all or nothing).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw
from torch import Tensor

from ostnet.geometry import make_coordinate_grid
from ostnet.io.atomic import AtomicFolder
from ostnet.io.image import to_uint8
from ostnet.models.ostnet import OSTNet

_CELL = 256  # every image is drawn at least this large


def flow_to_rgb(flow: Tensor, max_length: float | None = None) -> np.ndarray:
    """(h, w, 2) backward flow (sampling grid) -> (h, w, 3) uint8: hue = direction of the displacement,
    saturation = its length relative to ``max_length`` (default: the largest), white = none."""
    grid = make_coordinate_grid(flow.shape[0], flow.shape[1], dtype=flow.dtype)
    disp = (flow.detach().cpu().float() - grid).numpy()
    length = np.hypot(disp[..., 0], disp[..., 1])
    scale = max_length or max(float(length.max()), 1e-6)
    hue = (np.arctan2(disp[..., 1], disp[..., 0]) / (2 * math.pi)) % 1.0
    sat = np.clip(length / scale, 0, 1)
    hsv = np.stack([hue * 255, sat * 255, np.full_like(hue, 255)], axis=-1).astype(np.uint8)
    return np.asarray(Image.fromarray(hsv, mode="HSV").convert("RGB"))


def _gray(map_: Tensor) -> np.ndarray:
    """(1, h, w) in [0, 1] -> (h, w, 3) uint8."""
    value = (map_.detach().cpu().float().clamp(0, 1)[0].numpy() * 255 + 0.5).astype(np.uint8)
    return np.repeat(value[..., None], 3, axis=-1)


def _enlarge(array: np.ndarray) -> np.ndarray:
    factor = max(1, math.ceil(_CELL / array.shape[0]))
    return np.asarray(Image.fromarray(array).resize((array.shape[1] * factor, array.shape[0] * factor), Image.NEAREST))


def histogram_image(counts: Tensor, start: int, total: int, title: str) -> np.ndarray:
    """A bar chart of code counts over the whole codebook (``total`` codes; the slice begins at ``start``),
    the searched slice shaded, with a title line."""
    width, height, top = 512, 200, 18
    canvas = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(canvas)
    x0, x1 = start * width / total, (start + len(counts)) * width / total
    draw.rectangle((x0, top, x1, height - 1), fill=(235, 240, 250))
    peak = max(float(counts.max()), 1.0)
    for k, c in enumerate(counts.tolist()):
        if c <= 0:
            continue
        x = (start + k) * width / total
        bar = (height - top - 2) * c / peak
        draw.rectangle((x, height - 1 - bar, max(x, x + width / total - 1), height - 1), fill=(40, 80, 200))
    draw.text((4, 2), title, fill="black")
    return np.asarray(canvas)


@torch.no_grad()
def inspect_pair(model: OSTNet, source: Tensor, driving: Tensor) -> dict[str, np.ndarray]:
    """source, driving: (1, 3, S, S) in [0, 1] at the model's size -> {file name: uint8 image}."""
    model.eval()
    comp = getattr(model.generator, "compensation", None)
    if comp is not None:
        comp.collect_codes = True
    try:
        out = model(source, driving)
    finally:
        if comp is not None:
            comp.collect_codes = False
    images = {"source.png": to_uint8(source[0]), "driving.png": to_uint8(driving[0]), "prediction.png":
              to_uint8(out.prediction[0])}  # fmt: skip
    if model.has_scale_transform:
        images["rectified.png"] = to_uint8(out.rectified[0])
    stats = out.codebooks
    flows = stats.flows if stats is not None and stats.flows else [out.deformation]
    occlusions = stats.occlusions if stats is not None and stats.occlusions else [out.occlusion]
    longest = max(float((f[0] - make_coordinate_grid(*f.shape[1:3], dtype=f.dtype)).norm(dim=-1).max()) for f in flows)
    for i, flow in enumerate(flows):
        images[f"flow_scale{i}.png"] = flow_to_rgb(flow[0], max(longest, 1e-6))
    for i, occ in enumerate(occlusions):
        if occ is not None:
            images[f"occlusion_scale{i}.png"] = _gray(occ[0])
    if stats is not None:
        kinds = [("motion", "motion codes", comp.mcc, stats.motion)]
        appearance = model.generator.quantize_appearance(driving, model.embedding_code(out.z))
        kinds.append(("appearance", "appearance codes of the driving frame", comp.acc, appearance))
        for kind, what, part, outputs in kinds:
            for i, q in enumerate(outputs):
                title = f"{what}, scale {i}: perplexity {q.perplexity.item():.1f}"
                start, _ = part.quantizer.slice(i)
                images[f"codes_{kind}_scale{i}.png"] = histogram_image(
                    q.histogram, start, part.quantizer.num_codes, title
                )
    return {name: (a if name.startswith("codes_") else _enlarge(a)) for name, a in images.items()}


def write_images(images: dict[str, np.ndarray], folder: str | Path) -> Path:
    """Write every image as PNG into ``folder`` (replaced as a whole, atomically)."""
    with AtomicFolder(folder) as tmp:
        for name, array in images.items():
            Image.fromarray(array).save(Path(tmp) / name)
    return Path(folder)
