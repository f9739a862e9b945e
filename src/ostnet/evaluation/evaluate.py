"""The evaluation harness behind ``ostnet evaluate`` (paper Sec. 4.1 protocols, Tables 1-3).

For each checkpoint: stream the protocol's pairs in batches (grouped by video so frames are decoded once),
generate with ``Animator.animate_pairs`` (the model's own per-pair forward, the one generation path of the
project), score every pair (``ostnet.evaluation.metrics``, ``lpips``, ``face_metrics``), append the rows to
``<output>/<label>/per_pair.csv`` after every batch, and finally write the tables and a sample grid.

Images: frames are resized to the model's input size (stretching non-square frames, as FOMM's loader does)
and quantised to 8 bits; the ground truth is the driving frame at that size (before the different-scale
augmentation). For the metrics, prediction and ground truth are then resized to 256x256.

Output folder::

    pairs.csv            the pair list (DaGAN format, see protocols.py) and run.json (what it was made from)
    <label>/per_pair.csv per-pair metrics (resume journal), <label>/checkpoint.json, <label>/samples/*.png
    results.md/.csv/.json one row per checkpoint; samples.png a grid of sample pairs (all checkpoints)

Running the same command again resumes: finished pair ids are skipped. A different protocol, data set or
checkpoint file under the same output folder is an error rather than a silent mix.
"""

from __future__ import annotations

import json
import sys
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ostnet.augment import driving_as_fed
from ostnet.checkpoint import load_checkpoint, read_config
from ostnet.config import Precision
from ostnet.errors import OstnetError
from ostnet.evaluation import face_metrics as FM
from ostnet.evaluation import metrics as M
from ostnet.evaluation import protocols as P
from ostnet.evaluation.lpips import LPIPS, try_load_lpips
from ostnet.evaluation.report import (
    FACE_METRICS,
    CheckpointSummary,
    PairJournal,
    PairMetrics,
    bind_checkpoint_folder,
    checkpoint_labels,
    compose_grid,
    metrics_for,
    summarize,
    write_results,
)
from ostnet.inference.animator import Animator, anchorless_mode
from ostnet.inference.options import SMOOTH_HELP, dtype_option
from ostnet.inference.smoothing import SmoothMethod
from ostnet.io import atomic_output
from ostnet.io.image import load_image, save_image, to_uint8
from ostnet.io.paths import check_outputs
from ostnet.models.device import resolve_device
from ostnet.options import Device, declared, device_option, nested, option

PROTOCOL_HELP = (
    "same-scale (DaGAN's 2083 same-identity pairs), different-scale (the same pairs, driving frame "
    "augmented, 2 per pair = 4166), reconstruction (FOMM: frame 0 drives every frame), cross-identity "
    "(no ground truth)"
)


@declared(frozen=False)
class EvalConfig:
    """Everything ``ostnet evaluate`` needs: its options, declared once (docs/cli.md). ``metric_size`` and
    ``lpips_hub_dir`` are for Python callers only."""

    data: str = option(metavar="DATASET", help="dataset folder holding test/ (or --split)")
    protocol: P.Protocol = option(help=PROTOCOL_HELP)
    output: str = option(metavar="DIR", help="folder for the results")
    checkpoints: tuple[str, ...] = option(
        (), flag="--checkpoint", required=True, metavar="CKPT",
        help="an ostnet checkpoint (.safetensors); repeat to compare several",
    )  # fmt: skip
    split: str = option("test", help="split folder to evaluate on")
    pairs_csv: str | None = option(
        None, flag="--pairs", metavar="CSV", help="use this pair list (DaGAN format) instead of sampling"
    )
    allow_outside: bool = option(False, help="let --pairs name frames outside the dataset folder")
    sampling: P.SamplingOptions = nested(P.SamplingOptions)
    max_pairs: int | None = option(None, metavar="N", help="evaluate only the first N pairs", bounds=(1, None))
    batch_size: int | None = option(
        None, metavar="B", help="pairs per batch (default: sized to the device)", bounds=(1, None)
    )
    device: Device = device_option()
    dtype: Precision = dtype_option(group=None)
    metric_size: int = M.METRIC_SIZE
    face_metrics: bool = option(True, flag="--no-face-metrics", help="skip AKD/AED/CSIM/scale error")
    face: FM.FaceConfig = nested(FM.FaceConfig)
    lpips_alexnet: str | None = option(None, metavar="PTH", help="torchvision alexnet-owt-7be5be79.pth")
    lpips_linear: str | None = option(None, metavar="PTH", help="lpips v0.1 alex.pth (linear layers)")
    lpips_hub_dir: str | None = None
    num_samples: int = option(8, flag="--samples", metavar="N", help="pairs shown in samples.png", bounds=(0, 1000))
    progress: bool = option(True, flag="--no-progress", help="hide the progress bar")
    # Temporal smoothing of the motion (ostnet.inference.smoothing); anything but "none" animates each video
    # of the reconstruction protocol in order with a stateful Animator instead of independent pairs.
    motion_smooth: SmoothMethod = option(
        "none", help="reconstruction protocol: animate each video in order with this " + SMOOTH_HELP
    )

    def __post_init__(self) -> None:
        if self.motion_smooth != "none" and self.protocol != "reconstruction":
            raise OstnetError("--motion-smooth needs --protocol reconstruction (frames of a video in order)")


class PairScorer:
    """Scores one generated pair for a protocol (images (3, S, S) in [0, 1] at the model's size).

    Same identity: L1/PSNR/SSIM/LPIPS and AKD/AED/scale error of the prediction vs the ground truth
    (the original driving frame). Cross identity: CSIM and descriptor distance vs the source,
    pose/expression distance vs the driving frame, scale error vs the source. Face observations of
    dataset frames are cached, so several checkpoints share them.
    """

    def __init__(
        self,
        protocol: str,
        metric_size: int,
        lpips: LPIPS | None,
        analyzer: FM.FaceAnalyzer | None,
        device: str = "cpu",
        max_cached: int = 4096,
    ) -> None:
        self.protocol, self.metric_size, self.lpips, self.analyzer = protocol, metric_size, lpips, analyzer
        self.device, self.max_cached = device, max_cached
        self._faces: OrderedDict[tuple[str, int], FM.FaceObservation] = OrderedDict()

    def _face(self, ref: str, image: Tensor) -> FM.FaceObservation:
        key = (ref, image.shape[-1])
        if key not in self._faces:
            self._faces[key] = FM.observe_tensor(self.analyzer, image, size=self.metric_size)
            while len(self._faces) > self.max_cached:
                self._faces.popitem(last=False)
        return self._faces[key]

    def score(self, pair: P.Pair, pred: Tensor, source: Tensor, driving: Tensor) -> PairMetrics:
        if self.protocol == "cross-identity":
            return self._score_cross(pair, pred, source, driving)
        p, g = M.resize_for_metrics(pred, self.metric_size), M.resize_for_metrics(driving, self.metric_size)
        result = PairMetrics(pair.pair_id, l1=M.l1(p, g).item(), psnr=M.psnr(p, g).item(), ssim=M.ssim(p, g).item())
        if self.lpips is not None:
            result.lpips = self.lpips(p[None].to(self.device), g[None].to(self.device)).item()
        if self.analyzer is None:
            return result
        out = FM.observe_tensor(self.analyzer, pred, size=self.metric_size)
        ref = self._face(pair.driving, driving)  # the ground truth: the original driving frame
        result.face_note = _face_note(("prediction", out), ("ground truth", ref))
        if not result.face_note:
            result.akd = FM.akd(out.landmarks, ref.landmarks)
            result.aed = FM.aed(out.embedding, ref.embedding)
            result.scale_error = _finite(FM.scale_error(out.landmarks, ref.landmarks))
        return result

    def _score_cross(self, pair: P.Pair, pred: Tensor, source: Tensor, driving: Tensor) -> PairMetrics:
        result = PairMetrics(pair.pair_id)
        if self.analyzer is None:
            return result
        out = FM.observe_tensor(self.analyzer, pred, size=self.metric_size)
        src, drv = self._face(pair.source, source), self._face(pair.driving, driving)
        result.face_note = _face_note(("prediction", out), ("source", src), ("driving", drv))
        if not result.face_note:
            result.csim = FM.csim(out.embedding, src.embedding)
            result.identity_distance = FM.aed(out.embedding, src.embedding)
            result.pose_distance = _finite(FM.pose_expression_distance(out.landmarks, drv.landmarks))
            result.scale_error = _finite(FM.scale_error(out.landmarks, src.landmarks))
        return result


def _face_note(*observations: tuple[str, FM.FaceObservation]) -> str:
    return "; ".join(f"{obs.failure} in {name}" for name, obs in observations if not obs.found)


def _finite(value: float) -> float | None:
    return value if np.isfinite(value) else None


# ---------------------------------------------------------------------------------------------------
# Pair list and run identity
# ---------------------------------------------------------------------------------------------------


def _run_identity(cfg: EvalConfig) -> dict[str, object]:
    source = {"pairs_csv": str(Path(cfg.pairs_csv).resolve())} if cfg.pairs_csv else asdict(cfg.sampling)
    identity = {"protocol": cfg.protocol, "data": str(Path(cfg.data).resolve()), "split": cfg.split, **source}
    if cfg.motion_smooth != "none":  # other results: not to be mixed with unsmoothed ones
        identity["motion_smooth"] = cfg.motion_smooth
    return identity


def _pairs_from_csv(cfg: EvalConfig) -> list[P.Pair]:
    pairs = P.read_pairs_csv(cfg.pairs_csv)
    scaled = pairs[0].alpha is not None
    if scaled and cfg.protocol != "different-scale":
        raise OstnetError(
            f"{cfg.pairs_csv}: has alpha,beta columns (a different-scale list); use --protocol different-scale"
        )
    P.validate_pairs(pairs, cfg.data, str(cfg.pairs_csv), allow_outside=cfg.allow_outside)
    if cfg.protocol == "different-scale" and not scaled:
        opts = cfg.sampling
        pairs = P.make_different_scale(pairs, opts.delta, opts.variants, opts.seed)
    return pairs


def prepare_pairs(cfg: EvalConfig) -> list[P.Pair]:
    """The run's pair list: ``<output>/pairs.csv`` when resuming, else sampled (or read) and saved."""
    out = Path(cfg.output)
    identity = _run_identity(cfg)
    run_file, pairs_file = out / "run.json", out / "pairs.csv"
    if run_file.is_file() and pairs_file.is_file():
        stored = json.loads(run_file.read_text(encoding="utf-8"))
        if stored != identity:
            diff = ", ".join(k for k in identity if stored.get(k) != identity[k])
            raise OstnetError(f"{out}: holds an evaluation with other settings ({diff}); use another --output")
        return P.read_pairs_csv(pairs_file)
    if cfg.pairs_csv:
        pairs = _pairs_from_csv(cfg)
    else:
        pairs = P.build_pairs(cfg.protocol, cfg.data, cfg.split, cfg.sampling)
    if not pairs:
        raise OstnetError(f"{cfg.data}: the {cfg.protocol} protocol found no pairs (videos without frames?)")
    P.write_pairs_csv(pairs_file, pairs)
    with atomic_output(run_file) as tmp:
        tmp.write_text(json.dumps(identity, indent=2), encoding="utf-8")
    return pairs


# ---------------------------------------------------------------------------------------------------
# Evaluation
# ---------------------------------------------------------------------------------------------------


def _video_key(ref: str) -> str:
    head, sep, tail = ref.rpartition("#")
    return head if sep and tail.isdigit() else str(Path(ref).parent)


def sample_ids(num_pairs: int, num_samples: int) -> list[int]:
    """Pair ids shown in the sample grid: ``num_samples`` ids spread evenly over the evaluated list."""
    if num_pairs <= 0 or num_samples <= 0:
        return []
    return sorted({int(round(x)) for x in np.linspace(0, num_pairs - 1, min(num_samples, num_pairs))})


@dataclass
class _Context:
    cfg: EvalConfig
    pairs: list[P.Pair]
    loader: P.FrameLoader
    scorer: PairScorer
    samples: set[int]
    previous: dict[str, tuple[int, Tensor, Tensor]] = field(default_factory=dict)  # jitter: last frame per video
    current_source: str | None = None  # sequential animation: the source the Animator holds


def _generate(animator, model_size: int, batch: list[P.Pair], ctx: _Context) -> tuple[list, Tensor | None, str]:
    """Load frames and run the animator; returns (loaded items, prediction batch or None, failure reason)."""
    frames = ctx.loader.load([p.source for p in batch] + [p.driving for p in batch], model_size)
    items = [(pair, frames[i], frames[len(batch) + i]) for i, pair in enumerate(batch)]
    good = [(p, s, d) for p, s, d in items if isinstance(s, Tensor) and isinstance(d, Tensor)]
    if not good:
        return items, None, ""
    source = torch.stack([s for _, s, _ in good])  # (B, 3, S, S)
    driving = torch.stack([d for _, _, d in good])
    if good[0][0].alpha is not None:  # different-scale: augment with the listed factors (Sec. 4.1)
        alpha = torch.tensor([p.alpha for p, _, _ in good])
        beta = torch.tensor([p.beta for p, _, _ in good])
        driving = driving_as_fed(driving, alpha, beta)
    try:
        with torch.inference_mode():
            prediction = _animate(animator, [p for p, _, _ in good], source, driving, ctx).float().cpu()
    except (RuntimeError, ValueError, OstnetError) as exc:
        return items, None, f"generation failed: {type(exc).__name__}: {exc}".splitlines()[0]
    return items, prediction, ""


def _animate(animator, pairs: list[P.Pair], source: Tensor, driving: Tensor, ctx: _Context) -> Tensor:
    """Independent pairs (``animate_pairs``), or, with motion smoothing, the frames of each video in order
    through the stateful Animator (a new source restarts its state)."""
    if ctx.cfg.motion_smooth == "none":
        return animator.animate_pairs(source, driving)
    out, start = [], 0
    while start < len(pairs):
        end = start
        while end < len(pairs) and pairs[end].source == pairs[start].source:
            end += 1
        if pairs[start].source != ctx.current_source:
            animator.set_source(source[start : start + 1])
            ctx.current_source = pairs[start].source
        out.append(animator.animate(driving[start:end]).prediction)
        start = end
    return torch.cat(out)


def frame_jitter(pred: Tensor, gt: Tensor, previous: tuple[Tensor, Tensor]) -> float:
    """Mean |(pred - pred_prev) - (gt - gt_prev)|: change of the result from the last frame against that of the
    ground truth (the ``jitter`` metric)."""
    return ((pred - previous[0]) - (gt - previous[1])).abs().mean().item()


def _add_jitter(result: PairMetrics, pair: P.Pair, pred: Tensor, driving: Tensor, ctx: _Context) -> None:
    if ctx.cfg.protocol != "reconstruction":
        return
    key, size = _video_key(pair.driving), ctx.cfg.metric_size
    p, g = M.resize_for_metrics(pred, size), M.resize_for_metrics(driving, size)
    last = ctx.previous.get(key)
    ctx.previous = {key: (pair.pair_id, p, g)}
    if last is not None and last[0] == pair.pair_id - 1 and result.status == "ok":
        result.jitter = frame_jitter(p, g, last[1:])


def _run_batch(animator, model_size: int, batch: list[P.Pair], ctx: _Context, sample_dir: Path) -> list[PairMetrics]:
    items, prediction, reason = _generate(animator, model_size, batch, ctx)
    results, k = [], 0
    for pair, source, driving in items:
        bad = next((x for x in (source, driving) if isinstance(x, OstnetError)), None)
        if bad is not None:
            results.append(PairMetrics(pair.pair_id, "failed", f"cannot read frame: {bad}"))
            continue
        if prediction is None:
            results.append(PairMetrics(pair.pair_id, "failed", reason))
            continue
        pred = prediction[k]
        k += 1
        if not torch.isfinite(pred).all():
            results.append(PairMetrics(pair.pair_id, "failed", "prediction has NaN or infinite values"))
            continue
        results.append(ctx.scorer.score(pair, pred.clamp(0, 1), source, driving))
        _add_jitter(results[-1], pair, pred.clamp(0, 1), driving, ctx)
        if pair.pair_id in ctx.samples:
            save_image(sample_dir / f"{pair.pair_id:06d}.png", to_uint8(pred))
    return results


def evaluate_checkpoint(checkpoint: str, label: str, ctx: _Context) -> list[PairMetrics]:
    """Evaluate one checkpoint on the run's pairs, resuming from its journal; returns its per-pair rows."""
    cfg = ctx.cfg
    folder = Path(cfg.output) / label
    bind_checkpoint_folder(folder, checkpoint)
    journal = PairJournal(folder / "per_pair.csv", metrics_for(cfg.protocol))
    done = journal.load()
    finished = {r.pair_id for r in done}
    limit = len(ctx.pairs) if cfg.max_pairs is None else min(cfg.max_pairs, len(ctx.pairs))
    pending = [p for p in ctx.pairs[:limit] if p.pair_id not in finished]
    pending.sort(key=lambda p: (_video_key(p.source), _video_key(p.driving), p.pair_id))
    if pending:
        _evaluate_pending(checkpoint, label, pending, limit, journal, done, ctx)
        journal.rewrite(sorted(done, key=lambda r: r.pair_id))  # complete: store in pair-id order
    return [r for r in done if r.pair_id < limit]


def _evaluate_pending(
    checkpoint: str,
    label: str,
    pending: list[P.Pair],
    limit: int,
    journal: PairJournal,
    done: list[PairMetrics],
    ctx: _Context,
) -> None:
    """Generate and score ``pending`` in batches, journalling (and appending to ``done``) after each."""
    from tqdm import tqdm

    cfg = ctx.cfg
    model = load_checkpoint(checkpoint, map_location=cfg.device)
    # Independent pairs have no anchor frame, and sequential (smoothed) animation drives like them.
    mode = anchorless_mode(model)
    animator = Animator(model, device=cfg.device, dtype=cfg.dtype, mode=mode, motion_smooth=cfg.motion_smooth)
    bar = tqdm(
        total=limit,
        initial=limit - len(pending),
        unit="pair",
        desc=label,
        disable=not cfg.progress,
        file=sys.stderr,
    )
    try:
        size = cfg.batch_size or animator.batch_size
        for start in range(0, len(pending), size):
            batch = pending[start : start + size]
            rows = _run_batch(animator, model.image_size, batch, ctx, journal.path.parent / "samples")
            journal.append(rows)
            done.extend(rows)
            bar.update(len(batch))
    finally:
        bar.close()


def _notes(cfg: EvalConfig, lpips_reason: str | None) -> dict[str, str]:
    notes = {}
    if lpips_reason and "lpips" in metrics_for(cfg.protocol):
        notes["lpips"] = lpips_reason
    if not cfg.face_metrics:
        notes.update({n: "face metrics disabled" for n in metrics_for(cfg.protocol) if n in FACE_METRICS})
    return notes


def _load_lpips(cfg: EvalConfig):
    for given in (cfg.lpips_alexnet, cfg.lpips_linear):
        if given and not Path(given).is_file():
            raise OstnetError(f"{given}: LPIPS weight file not found")
    if "lpips" not in metrics_for(cfg.protocol):
        return None, None
    model, reason = try_load_lpips(cfg.lpips_alexnet, cfg.lpips_linear, cfg.lpips_hub_dir)
    return (model.to(cfg.device) if model is not None else None), reason


def run_evaluation(cfg: EvalConfig) -> list[CheckpointSummary]:
    """Evaluate every checkpoint of ``cfg`` and write the results; returns the CheckpointSummary rows."""
    cfg = replace(cfg, device=resolve_device(cfg.device).type)  # auto: the best available, once for all
    if not cfg.checkpoints:
        raise OstnetError("no --checkpoint given")
    inputs = {"--data": cfg.data, "--pairs": cfg.pairs_csv, "--lpips-alexnet": cfg.lpips_alexnet}
    inputs["--lpips-linear"] = cfg.lpips_linear
    inputs.update({f"--checkpoint #{i + 1}": c for i, c in enumerate(cfg.checkpoints)})
    check_outputs(inputs, {"--output": cfg.output}, folders=("--output",))
    for checkpoint in cfg.checkpoints:
        read_config(checkpoint)  # validate every checkpoint (config and tensor shapes) before writing anything
    analyzer = FM.get_face_analyzer(cfg.face) if cfg.face_metrics else None  # fails early without dlib models
    lpips_model, lpips_reason = _load_lpips(cfg)
    pairs = prepare_pairs(cfg)
    limit = len(pairs) if cfg.max_pairs is None else min(cfg.max_pairs, len(pairs))
    scorer = PairScorer(cfg.protocol, cfg.metric_size, lpips_model, analyzer, cfg.device)
    ctx = _Context(cfg, pairs, P.FrameLoader(cfg.data), scorer, set(sample_ids(limit, cfg.num_samples)))
    labels = checkpoint_labels(cfg.checkpoints)
    summaries = []
    for checkpoint, label in zip(cfg.checkpoints, labels, strict=True):
        rows = evaluate_checkpoint(checkpoint, label, ctx)
        summaries.append(
            summarize(label, checkpoint, rows, metrics_for(cfg.protocol), limit, _notes(cfg, lpips_reason))
        )
    extra = {
        "pairs_listed": len(pairs),
        "pair_list": str(Path(cfg.output) / "pairs.csv"),
        "run": _run_identity(cfg),
        "metric_size": cfg.metric_size,
        "face_detector": cfg.face.detector,
    }
    write_results(cfg.output, cfg.protocol, summaries, extra)
    write_sample_grid(ctx, labels)
    return summaries


def write_sample_grid(ctx: _Context, labels: Sequence[str], tile: int = 128) -> Path | None:
    """``<output>/samples.png``: one row per sample pair: source, driving (as fed), each checkpoint, GT."""
    rows = []
    for pair_id in sorted(ctx.samples):
        pair = ctx.pairs[pair_id]
        source, driving = ctx.loader.load([pair.source, pair.driving], tile)
        if not isinstance(source, Tensor) or not isinstance(driving, Tensor):
            continue
        fed = driving_as_fed(driving, pair.alpha, pair.beta)
        outputs = [Path(ctx.cfg.output) / label / "samples" / f"{pair_id:06d}.png" for label in labels]
        row = [to_uint8(source), to_uint8(fed), *(load_image(p) if p.is_file() else None for p in outputs)]
        rows.append(row + ([to_uint8(driving)] if P.has_ground_truth(ctx.cfg.protocol) else []))
    if not rows:
        return None
    headers = ["source", "driving", *labels] + (["ground truth"] if P.has_ground_truth(ctx.cfg.protocol) else [])
    path = Path(ctx.cfg.output) / "samples.png"
    save_image(path, compose_grid(rows, headers, tile))
    return path
