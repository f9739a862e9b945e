"""The demo's pictures and reference numbers, made with the ``Animator`` on the evaluation's own pairs.

* ``example_pairs``: a few different-scale pairs with the rectified driving frame and both predictions.
* ``rectification_scores``: OSTNet's scale transformation alone (Sec. 3.2), scored over every pair.
* ``source_copy_reference``: the "no motion" predictor (the source image), scored like the models.
* ``animate_comparison``: an unseen person driven by a video whose face is narrower (GIF, mp4, strips).

Motion modes (see ``ostnet.inference.animator``): OSTNet animates ``anchor-free`` (its ST rectifies every
driving frame, Sec. 3.2); the Baseline has no ST, so without an anchor frame it can only use the driving
keypoints ``absolute``ly, the mode the evaluation protocol uses for it. The animation also shows the Baseline
in FOMM's ``relative`` mode with the first driving frame as anchor, the usual work-around the paper argues
against (Sec. 1, Fig. 1): its motion is measured at the driving face's scale.

Images are uint8 (H, W, 3) RGB at the model's 64x64; tensors on the model side are (B, 3, 64, 64) in [0, 1].
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch

from ostnet.augment import driving_as_fed
from ostnet.checkpoint import load_checkpoint
from ostnet.data.synthetic import ClipStyle, render_head, sample_sequence
from ostnet.demo.report import (
    AnimatedRow,
    AnimationResult,
    ExamplePair,
    ModelImage,
    Rectification,
    Reference,
    TrainedModel,
)
from ostnet.errors import OstnetError
from ostnet.evaluation import metrics as M
from ostnet.evaluation.lpips import try_load_lpips
from ostnet.evaluation.protocols import FrameLoader, read_pairs_csv
from ostnet.evaluation.report import compose_grid
from ostnet.inference.animator import Animator, anchorless_mode
from ostnet.io import atomic_output
from ostnet.io.image import to_tensor, to_uint8
from ostnet.io.video import VideoWriter

FACE_SCALE = 0.8  # the animated person's face scale (``render_head``)
# The driving video is the ground-truth motion after the paper's expression-preserved augmentation (Sec. 3.4)
# with fixed factors: height x1.0, width x0.7, so the driving face is 0.7x as wide as the source's. That is the
# kind of scale change ST learns: the augmentation pads to a square and resizes back, which cancels any equal
# change of height and width, so training never shows ST a face that is only larger or smaller (docs/demo.md:
# with a 1.7x larger driving face OSTNet scored below the Baseline).
DRIVING_FACTORS = (1.0, 0.7)  # (alpha, beta)
UNSEEN_IDENTITY = 1_000_003  # identity seed of the animated person; the dataset's seeds are 32-bit hashes
FPS = 25.0
STRIP_COLUMNS = 8


def _animator(model: TrainedModel, device: str, mode: str | None = None):
    """An Animator for a trained demo model: ``anchor-free`` with ST, ``absolute`` without (unless ``mode``)."""

    net = load_checkpoint(model.weights, map_location=device)
    chosen = mode or anchorless_mode(net)
    return Animator(net, device=device, mode=chosen)


def pick_examples(pairs, count: int) -> list:
    """The ``count`` pairs with the most extreme face-size change sqrt(alpha beta): half shrunk, half enlarged.

    Chosen from the scale factors alone, before any result is looked at.
    """
    ranked = sorted(pairs, key=lambda p: (p.alpha * p.beta, p.pair_id))
    low, high = ranked[: count // 2], ranked[len(ranked) - (count - count // 2) :]
    unique = {p.pair_id: p for p in [*low, *high]}
    return [unique[k] for k in sorted(unique)]


def _read_pair(loader, pair, size: int):
    """(source, fed driving, ground truth), each (1, 3, S, S) in [0, 1], as the harness builds them (the
    driving frame resized by the pair's alpha, beta; Sec. 4.1); None when a frame cannot be read."""
    source, truth = loader.load([pair.source, pair.driving], size)
    if not isinstance(source, torch.Tensor) or not isinstance(truth, torch.Tensor):
        return None
    fed = driving_as_fed(truth[None], pair.alpha, pair.beta)
    return source[None], fed, truth[None]


def _ssim(a: torch.Tensor, b: torch.Tensor, size: int) -> float:

    return M.ssim(M.resize_for_metrics(a.cpu(), size), M.resize_for_metrics(b.cpu(), size)).item()


def example_pairs(eval_cfg, models: list[TrainedModel], ssim: list[dict[int, float]], count: int, device: str):
    """Re-run a few evaluated pairs to show driving, rectified driving, ground truth and both predictions.

    Args:
        eval_cfg: the EvalConfig the harness ran (its pairs.csv and dataset are reused).
        ssim: per model (same order as ``models``), pair id -> SSIM from the harness's per-pair journal.
    Returns: list[ExamplePair].
    """

    pairs = read_pairs_csv(Path(eval_cfg.output) / "pairs.csv")
    animators = [_animator(m, device) for m in models]
    loader, size = FrameLoader(eval_cfg.data), animators[0].image_size
    examples = []
    for pair in pick_examples(pairs, count):
        images = _read_pair(loader, pair, size)
        if images is None:
            continue
        source, fed, truth = images
        rectified, outputs = None, []
        for model, animator, by_pair in zip(models, animators, ssim, strict=True):
            animator.set_source(source)
            frames = animator.animate(fed)
            if animator.model.has_scale_transform:
                rectified = to_uint8(frames.rectified[0])
            outputs.append(ModelImage(model.label, to_uint8(frames.prediction[0]), by_pair.get(pair.pair_id)))
        examples.append(
            ExamplePair(pair.pair_id, pair.alpha, pair.beta, to_uint8(source[0]), to_uint8(fed[0]), rectified,
                        to_uint8(truth[0]), tuple(outputs))
        )  # fmt: skip
    return examples


def rectification_scores(eval_cfg, model: TrainedModel, device: str) -> Rectification | None:
    """How well OSTNet's scale transformation alone undoes the protocol's scaling (Sec. 3.2): mean SSIM of the
    fed driving frame to the ground truth before and after ST, over the evaluation's pairs at 256x256."""

    animator = _animator(model, device)
    if not animator.model.has_scale_transform:
        return None
    loader, before, after = FrameLoader(eval_cfg.data), [], []
    for pair in read_pairs_csv(Path(eval_cfg.output) / "pairs.csv"):
        images = _read_pair(loader, pair, animator.image_size)
        if images is None:
            continue
        source, fed, truth = images
        animator.set_source(source)
        rectified = animator.animate(fed).rectified
        before.append(_ssim(fed, truth, eval_cfg.metric_size))
        after.append(_ssim(rectified, truth, eval_cfg.metric_size))
    return Rectification(float(np.mean(before)), float(np.mean(after)), len(before)) if before else None


def source_copy_reference(eval_cfg, size: int) -> Reference | None:
    """Score the "no motion" predictor (the source frame as the prediction) on the evaluation's pairs with the
    harness's metric functions at the harness's sizes; None when no pair could be read."""

    loader, scores = FrameLoader(eval_cfg.data), []
    lpips, _ = try_load_lpips()
    for pair in read_pairs_csv(Path(eval_cfg.output) / "pairs.csv"):
        source, truth = loader.load([pair.source, pair.driving], size)
        if isinstance(source, torch.Tensor) and isinstance(truth, torch.Tensor):
            p, g = (M.resize_for_metrics(t[None], eval_cfg.metric_size) for t in (source, truth))
            perceptual = lpips(p, g).item() if lpips is not None else float("nan")
            scores.append((M.ssim(p, g).item(), M.psnr(p, g).item(), M.l1(p, g).item(), perceptual))
    if not scores:
        return None
    ssim, psnr, l1, perceptual = np.mean(np.array(scores), axis=0)
    return Reference(float(ssim), float(psnr), float(l1), len(scores), None if lpips is None else float(perceptual))


def synthetic_sequence(num_frames: int, seed: int, style: ClipStyle) -> tuple[np.ndarray, np.ndarray]:
    """An unseen person talking in clips of ``style``: (driving, truth), each uint8 (N, 64, 64, 3).

    ``truth`` is the motion rendered at FACE_SCALE (what a perfect model makes of the source ``truth[0]``);
    ``driving`` is ``truth`` after the expression-preserved augmentation with DRIVING_FACTORS.
    """

    rng = np.random.default_rng([seed, 4242])
    params = sample_sequence(
        UNSEEN_IDENTITY + seed, num_frames, scale=FACE_SCALE, rng=rng, motion=style.motion, camera=style.camera
    )
    truth = np.stack([render_head(p, 64, style.texture) for p in params])
    alpha, beta = DRIVING_FACTORS
    driving = driving_as_fed(to_tensor(truth), alpha, beta)
    return to_uint8(driving), truth


def _scores(prediction: torch.Tensor, truth: torch.Tensor) -> tuple[float, float]:
    """Mean SSIM and L1 over frames, at 256x256 as the evaluation harness scores."""

    p, g = M.resize_for_metrics(prediction), M.resize_for_metrics(truth)
    return float(M.ssim(p, g).mean()), float(M.l1(p, g).mean())


def animate_comparison(
    models: list[TrainedModel], out_dir: Path, num_frames: int, seed: int, device: str, style: ClipStyle
):
    """Animate the unseen person (in clips of ``style``, as the training clips) with each model; write
    ``comparison.gif``, ``comparison.mp4`` and return an AnimationResult (strips, scores against the ground
    truth and the GIF's bytes)."""
    driving, truth = synthetic_sequence(num_frames, seed, style)
    driving_t, truth_t = to_tensor(driving), to_tensor(truth)  # (N, 3, 64, 64)
    rows = []
    for model in models:
        animator = _animator(model, device)
        runs = [(model.label, animator)]
        if not animator.model.has_scale_transform:  # also FOMM's anchor-based work-around
            runs.append((f"{model.label} relative", _animator(model, device, "relative")))
        for label, runner in runs:
            runner.set_source(truth_t[:1])
            prediction = runner.animate(driving_t).prediction.cpu()  # relative: anchor = first driving frame
            ssim, l1 = _scores(prediction, truth_t)
            rows.append(AnimatedRow(label, runner.mode, to_uint8(prediction), ssim, l1))
    frames = _grid_frames(truth[0], driving, truth, rows)
    copied = np.repeat(truth[:1], num_frames, axis=0)  # the "no motion" reference
    ssim, l1 = _scores(to_tensor(copied), truth_t)
    rows.append(AnimatedRow("reference: source copied", "no motion", copied, ssim, l1))
    gif = _gif_bytes(frames)
    out_dir.mkdir(parents=True, exist_ok=True)
    files = (_write_bytes(out_dir / "comparison.gif", gif), _write_mp4(out_dir / "comparison.mp4", frames))
    shown = tuple(int(i) for i in np.linspace(0, num_frames - 1, min(STRIP_COLUMNS, num_frames)).round())
    return AnimationResult(truth[0], driving, truth, tuple(rows), gif, files, DRIVING_FACTORS, shown)


def _grid_frames(source: np.ndarray, driving: np.ndarray, truth: np.ndarray, rows) -> list[np.ndarray]:
    """One labelled uint8 grid per time step: source | driving | ground truth | each model row."""

    headers = ["source", "driving", "ground truth", *(r.label for r in rows)]
    return [
        compose_grid([[source, driving[t], truth[t], *(r.frames[t] for r in rows)]], headers, tile=128)
        for t in range(driving.shape[0])
    ]


def _gif_bytes(frames: list[np.ndarray]) -> bytes:
    from PIL import Image

    images = [Image.fromarray(f) for f in frames]
    buffer = io.BytesIO()
    images[0].save(buffer, format="GIF", save_all=True, append_images=images[1:], duration=int(1000 / FPS), loop=0)
    return buffer.getvalue()


def _write_bytes(path: Path, data: bytes) -> Path:

    with atomic_output(path) as tmp:
        tmp.write_bytes(data)
    return path


def _write_mp4(path: Path, frames: list[np.ndarray]) -> Path:

    try:
        with VideoWriter(path, fps=FPS) as writer:
            for frame in frames:
                writer.write(frame)
    except ValueError as exc:  # a frame of the wrong size: a bug, reported without a traceback
        raise OstnetError(f"{path}: cannot encode the animation ({exc})") from None
    return path
