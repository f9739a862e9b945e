"""Training logs: tqdm bar, TensorBoard scalars and the image grid of a batch.

Grid columns: source | driving | rectified driving | prediction | keypoints.

One row per sample. The last column is the source with its keypoints (filled dots) and the keypoints of the
rectified driving image (rings) in the same colour per keypoint index, so the motion the generator sees can be
read off. Keypoints (x, y) in [-1, 1] map to pixels as ``(x + 1) / 2 * (S - 1)``.
"""

from __future__ import annotations

import colorsys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from PIL import Image, ImageDraw
from torch import Tensor

from ostnet.config import TrainConfig
from ostnet.data.dataset import TrainingPair
from ostnet.io.atomic import atomic_write
from ostnet.models.outputs import ModelOutput
from ostnet.training.distributed import DistInfo, all_reduce_mean

if TYPE_CHECKING:
    from ostnet.training.trainer import StepResult  # trainer imports this module

COLUMNS = ("source", "driving", "rectified", "prediction", "keypoints")


def _palette(count: int) -> list[tuple[int, int, int]]:
    hues = [i / max(count, 1) for i in range(count)]
    return [tuple(int(255 * c) for c in colorsys.hsv_to_rgb(h, 0.9, 1.0)) for h in hues]  # type: ignore[misc]


def _to_uint8(image: Tensor) -> np.ndarray:
    """(3, H, W) float in [0, 1] -> (H, W, 3) uint8."""
    return (image.detach().float().clamp(0, 1) * 255 + 0.5).byte().permute(1, 2, 0).cpu().numpy()


def _draw_keypoints(image: np.ndarray, filled: Tensor, rings: Tensor | None) -> np.ndarray:
    """Dots at ``filled`` (K, 2) and rings at ``rings`` (K, 2), coordinates in [-1, 1]."""
    canvas = Image.fromarray(image)
    draw = ImageDraw.Draw(canvas)
    size = image.shape[0]
    radius = max(1.5, size / 80)
    colours = _palette(filled.shape[0])

    def box(point: Tensor, r: float) -> tuple[float, float, float, float]:
        x, y = ((point.float().clamp(-1, 1) + 1) / 2 * (size - 1)).tolist()
        return (x - r, y - r, x + r, y + r)

    for k, colour in enumerate(colours):
        draw.ellipse(box(filled[k], radius), fill=colour)
        if rings is not None:
            draw.ellipse(box(rings[k], radius * 1.8), outline=colour, width=max(1, int(radius / 2)))
    return np.asarray(canvas)


def make_grid(source: Tensor, driving: Tensor, out: ModelOutput, max_rows: int = 4) -> np.ndarray:
    """Grid image, uint8 (rows * S, 5 * S, 3).

    Args:
        source, driving: (B, 3, S, S) in [0, 1] (the model's inputs).
        out: the model's output for them (only the first ``max_rows`` samples are drawn).
    """
    rows = []
    for b in range(min(max_rows, source.shape[0])):
        cells = [_to_uint8(t[b]) for t in (source, driving, out.rectified, out.prediction)]
        rings = out.kp_rectified.value[b].detach().cpu()
        cells.append(_draw_keypoints(cells[0].copy(), out.kp_source.value[b].detach().cpu(), rings))
        rows.append(np.concatenate(cells, axis=1))
    return np.concatenate(rows, axis=0)


def save_grid(path: str | Path, grid: np.ndarray) -> Path:
    """Write the grid as a PNG, atomically."""
    return atomic_write(path, lambda tmp: Image.fromarray(grid).save(tmp, format="PNG"))


@torch.no_grad()
def grid_for_tensorboard(grid: np.ndarray) -> Tensor:
    """(H, W, 3) uint8 -> (3, H, W) float in [0, 1] for ``SummaryWriter.add_image``."""
    return torch.from_numpy(grid).permute(2, 0, 1).float() / 255


class TrainLogger:
    """Progress bar, TensorBoard scalars and periodic image grids; only the main rank writes anything.

    ``after_step`` must be called on every rank (the logged losses are averaged over ranks).
    """

    def __init__(self, root: Path, info: DistInfo, total: int, initial: int, show_progress: bool = True) -> None:
        self.root, self.info = Path(root), info
        self.bar = None
        self.writer = None
        if info.is_main:
            from torch.utils.tensorboard import SummaryWriter
            from tqdm import tqdm

            self.bar = tqdm(total=total, initial=initial, unit="step", disable=not show_progress, dynamic_ncols=True)
            self.writer = SummaryWriter(str(self.root / "tensorboard"))
        self._last_time, self._last_step = time.perf_counter(), initial

    def after_step(self, step: int, batch: TrainingPair, result: StepResult, lr: float, cfg: TrainConfig) -> None:
        if self.bar is not None:
            self.bar.update(1)
        if step % cfg.log_every == 0:
            self._log_scalars(step, batch.source.shape[0], result, lr)
        if step % cfg.image_every == 0 and self.info.is_main:
            grid = make_grid(batch.source, batch.driving, result.output)
            save_grid(self.root / "samples" / f"step_{step:08d}.png", grid)
            self.writer.add_image("samples", grid_for_tensorboard(grid), step)

    def _log_scalars(self, step: int, batch_size: int, result: StepResult, lr: float) -> None:
        terms = all_reduce_mean(result.terms.as_dict(), self.info)  # collective
        extra = all_reduce_mean(dict(result.scalars), self.info)  # collective (same keys on every rank)
        now = time.perf_counter()
        rate = (step - self._last_step) * batch_size * self.info.world_size / max(now - self._last_time, 1e-9)
        self._last_time, self._last_step = now, step
        if not self.info.is_main:
            return
        values = {name: float(v) for name, v in terms.items()}
        for name, value in values.items():
            self.writer.add_scalar(f"loss/{name}", value, step)
        for tag, value in extra.items():
            self.writer.add_scalar(tag, float(value), step)
        self.writer.add_scalar("train/lr", lr, step)
        self.writer.add_scalar("train/samples_per_s", rate, step)
        self.bar.set_postfix(loss=f"{values['total']:.4g}", rec=f"{values['rec_driving']:.4g}", sps=f"{rate:.1f}")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        if self.writer is not None:
            self.writer.close()
