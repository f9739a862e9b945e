"""The demo pipeline behind ``ostnet demo`` (issue 6): show OSTNet's claim on a machine with nothing installed.

Stages, each reusing the project's own code:

1. ``write_synthetic_dataset``: procedural talking heads with varied identities and face scales; the last
   identities are held out as the test split.
2. ``Trainer``: the ``tiny`` preset (OSTNet at 64x64, ST + SE) and the Baseline (the same with
   ``scale_transform.enabled=False`` and ``generator.scale_embedding=False``): same seed, data, batch, losses
   and number of optimiser steps. OSTNet trains for the time budget (``TrainConfig.max_seconds``), the
   Baseline then for as many steps (see ``train_models``). The perceptual loss uses the installed ImageNet
   VGG (``ostnet weights install``; VGG-19, else VGG-16), else a random VGG-19 (``loss.vgg_weights=random``);
   the report states which (``choose_features``).
3. ``run_evaluation``: the ``different-scale`` protocol (Sec. 4.1) on the held-out identities.
4. ``Animator``: a driving sequence whose face is narrower than the source's, animated by both models.
5. ``report.html``: one self-contained file (base64 PNG/GIF), written atomically.

Output folder layout: ``data/``, ``runs/{baseline,ostnet}/``, ``models/{Baseline,OSTNet}.safetensors``,
``evaluation/``, ``animation/``, ``report.html``, ``demo.json``. If the run fails or is interrupted, what it
created is removed again, so the folder never holds a half-finished demo.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

from ostnet.data.synthetic import ClipStyle, write_synthetic_dataset
from ostnet.demo.animation import (
    DRIVING_FACTORS,
    animate_comparison,
    example_pairs,
    rectification_scores,
    source_copy_reference,
)
from ostnet.demo.report import ReportData, TrainedModel, paired_difference, write_report
from ostnet.demo.training import (
    PerceptualFeatures,
    choose_features,
    choose_threads,
    demo_overrides,
    loss_curves_png,
    train_config,
    train_one,
)
from ostnet.errors import OstnetError
from ostnet.evaluation import evaluate
from ostnet.evaluation.evaluate import EvalConfig
from ostnet.evaluation.face_metrics import FaceConfig, get_face_analyzer
from ostnet.evaluation.protocols import SamplingOptions
from ostnet.evaluation.report import PairJournal, metrics_for
from ostnet.io import atomic_output
from ostnet.models.device import resolve_device
from ostnet.options import Device, declared, device_option, option
from ostnet.training.state import RunFolder

DEMO_ENTRIES = ("data", "runs", "models", "evaluation", "animation", "report.html", "demo.json")
BASELINE, OSTNET = "Baseline", "OSTNet"
BASELINE_TIME_FACTOR = 2.0  # the Baseline's time limit, in budgets (it trains OSTNet's number of steps)
# The demo's clips: plain head motion, a hand-held camera pan and textured surfaces (docs/demo.md has the
# experiments). With flat colours and a still camera neither model learned any motion within minutes of CPU
# training: the dense motion's mask settled on its identity channel (the static background), every flow was
# the identity and both models only blurred the source, so scale could not matter. A pan moves everything, so
# the identity flow is wrong everywhere and keypoint motion pays at once; texture gives the reconstruction loss
# a gradient with respect to motion inside regions that flat colours leave without one.
CLIPS = ClipStyle(motion=1.0, camera=0.2, texture=0.25)


@dataclass(frozen=True)
class DemoPlan:
    """Sizes of one demo run. ``budget_s``: training wall-clock seconds per model.

    ``eval_pairs``: same-identity (source, driving) pairs; the different-scale protocol uses each twice with
    its own scale factors, so ``2 * eval_pairs`` pairs are scored per model.
    """

    num_identities: int
    test_identities: int
    videos_per_identity: int
    num_frames: int
    scale_range: tuple[float, float]
    batch_size: int
    budget_s: float
    eval_pairs: int
    examples: int
    animation_frames: int
    log_every: int
    disk_mb: int  # free space asked for before starting
    clips: ClipStyle = CLIPS  # how the synthetic clips move and look (``write_synthetic_dataset``)


# About 7 minutes on two CPU cores: 5.5 min of training (OSTNet 180 s, the Baseline its steps), 1 min of evaluation.
FULL_PLAN = DemoPlan(
    num_identities=16, test_identities=4, videos_per_identity=2, num_frames=40, scale_range=(0.55, 1.0),
    batch_size=4, budget_s=180.0, eval_pairs=160, examples=4, animation_frames=40, log_every=5, disk_mb=300,
)  # fmt: skip
# Under a minute: a smoke test of every stage (the test suite runs it).
QUICK_PLAN = DemoPlan(
    num_identities=6, test_identities=2, videos_per_identity=1, num_frames=12, scale_range=(0.55, 1.0),
    batch_size=4, budget_s=6.0, eval_pairs=4, examples=2, animation_frames=8, log_every=1, disk_mb=50,
)  # fmt: skip


@declared(frozen=False)
class DemoConfig:
    """What ``ostnet demo`` was asked for: its options, declared once (docs/cli.md). ``budget``: seconds per
    model (None: the plan's). ``command`` (the command line, for the report) is set by the command."""

    output: str = option("demo", metavar="DIR", help="output folder")
    quick: bool = option(False, help="a smoke test in under 2 minutes (tiny sizes)")
    budget: float | None = option(
        None, metavar="SECONDS", bounds=(0.1, None),
        help="training seconds of OSTNet; the Baseline trains as many steps (default: 180; --quick: 6)",
    )  # fmt: skip
    overwrite: bool = option(False, help="replace a previous demo in a non-empty --output")
    device: Device = device_option()
    seed: int = option(0, help="seed of data, training and sampling", bounds=(0, None))
    threads: int | None = option(None, metavar="N", help="CPU threads (default: the idle cores)", bounds=(1, 1024))
    progress: bool = option(True, flag="--no-progress", help="hide the progress bars")
    command: str = "ostnet demo"
    features: Literal["auto", "imagenet", "random"] = option(
        "auto", help="perceptual-loss VGG: auto (ImageNet if `ostnet weights install` ran, else random), "
        "imagenet (required), random",
    )  # fmt: skip
    overrides: tuple[str, ...] = option(
        (), flag="--set", metavar="KEY=VALUE",
        help="config override of both models, after the demo's own settings (listed in the report), "
        "e.g. --set loss.pixel_weight=0 (repeatable)",
    )  # fmt: skip

    @property
    def plan(self) -> DemoPlan:
        return QUICK_PLAN if self.quick else FULL_PLAN

    @property
    def budget_s(self) -> float:
        return float(self.budget if self.budget is not None else self.plan.budget_s)


@dataclass
class DemoResult:
    """Where the report is, what was trained and the different-scale table (one summary per model)."""

    report: Path
    summary: Path
    models: list[TrainedModel]
    summaries: list = field(default_factory=list)  # list[CheckpointSummary], Baseline first
    seconds: float = 0.0


def _say(text: str) -> None:
    print(text, flush=True)


def _stage(number: int, text: str, start: float) -> None:
    """A stage line with the minutes:seconds since the demo started."""
    minutes, seconds = divmod(int(time.perf_counter() - start), 60)
    _say(f"[{number}/5 {minutes:d}:{seconds:02d}] {text}")


# ------------------------------------------------------------------------------------------------------------
# Output folder
# ------------------------------------------------------------------------------------------------------------


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def prepare_output(output: Path, overwrite: bool, disk_mb: int) -> bool:
    """Check and create the output folder; returns whether it was created (rather than reused).

    A folder that exists and is not empty is refused unless ``overwrite``; then only the demo's own entries
    (``DEMO_ENTRIES``) are removed, nothing else. Raises OstnetError for a path that is a file or cannot be
    created or written, and when the disk has less than ``disk_mb`` MB free.
    """
    if output.exists() and not output.is_dir():
        raise OstnetError(f"{output}: exists and is not a folder; choose another --output")
    reused = output.is_dir()
    if reused and any(output.iterdir()) and not overwrite:
        raise OstnetError(
            f"{output}: exists and is not empty; pass --overwrite to replace a previous demo there, "
            "or choose another --output"
        )
    try:
        output.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OstnetError(f"{output}: cannot create the output folder ({exc.strerror or exc})") from None
    if not os.access(output, os.W_OK | os.X_OK):
        raise OstnetError(f"{output}: the output folder is not writable")
    free_mb = shutil.disk_usage(output).free / 2**20
    if free_mb < disk_mb:
        if not reused:
            output.rmdir()
        raise OstnetError(
            f"{output}: not enough free disk space: the demo needs about {disk_mb} MB, {free_mb:.0f} MB free"
        )
    for name in DEMO_ENTRIES:
        _remove(output / name)
    return not reused


@contextmanager
def _cleanup_on_failure(output: Path, created: bool) -> Iterator[None]:
    """Remove what the demo wrote when the body raises (Ctrl-C included); turn ENOSPC into OstnetError."""
    try:
        yield
    except BaseException as exc:
        if created:
            shutil.rmtree(output, ignore_errors=True)
        else:
            for name in DEMO_ENTRIES:
                _remove(output / name)
        if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
            raise OstnetError(f"{output}: no space left on the device; partial results were removed") from None
        raise


def train_models(
    cfg: DemoConfig, data_root: Path, device: str, features: PerceptualFeatures | None = None
) -> list[TrainedModel]:
    """OSTNet for the time budget, then the Baseline for the same number of steps; returns [Baseline, OSTNet].

    Equal steps, not equal seconds: on a shared machine the seconds a step takes change with the load, so two
    runs of equal wall time can differ by half their steps and the comparison would measure the load. OSTNet
    is the slower model per step (ST and a second reconstruction term), so the Baseline normally needs less
    than the budget; it may use up to BASELINE_TIME_FACTOR times the budget when the machine slows down.
    """
    out, plan = Path(cfg.output), cfg.plan
    common = {"batch_size": plan.batch_size, "log_every": plan.log_every, "seed": cfg.seed, "features": features,
              "extra": cfg.overrides}  # fmt: skip
    ostnet_cfg = train_config(data_root, baseline=False, budget_s=cfg.budget_s, **common)
    ostnet = train_one(OSTNET, ostnet_cfg, out / "runs" / "ostnet", out / "models", device, cfg.progress)
    _say(f"      {OSTNET}: {ostnet.steps} steps in {ostnet.seconds:.0f} s")
    steps, seconds = max(1, ostnet.steps), BASELINE_TIME_FACTOR * cfg.budget_s
    baseline_cfg = train_config(data_root, baseline=True, budget_s=seconds, max_steps=steps, **common)
    baseline = train_one(BASELINE, baseline_cfg, out / "runs" / "baseline", out / "models", device, cfg.progress)
    _say(f"      {BASELINE}: {baseline.steps} steps in {baseline.seconds:.0f} s")
    if baseline.steps < ostnet.steps:
        _say(f"      note: the {BASELINE} ran out of time before {ostnet.steps} steps; the comparison favours {OSTNET}")
    return [baseline, ostnet]


# ------------------------------------------------------------------------------------------------------------
# Evaluation
# ------------------------------------------------------------------------------------------------------------


def _face_metrics_available() -> tuple[bool, str | None]:

    try:
        get_face_analyzer(FaceConfig())
    except (OstnetError, ImportError, RuntimeError) as exc:
        return False, f"face metrics (AKD, AED, scale error) are off: {exc}"
    return True, None


def evaluate_models(cfg: DemoConfig, data_root: Path, models: list[TrainedModel], device: str):
    """Run the evaluation harness on the different-scale protocol; returns (summaries, EvalConfig, note)."""

    face, note = _face_metrics_available()
    eval_cfg = EvalConfig(
        data=str(data_root),
        protocol="different-scale",
        output=str(Path(cfg.output) / "evaluation"),
        checkpoints=tuple(str(m.weights) for m in models),
        sampling=SamplingOptions(num_pairs=cfg.plan.eval_pairs, seed=cfg.seed),
        batch_size=16,
        device=device,
        face_metrics=face,
        num_samples=8,
        progress=cfg.progress,
    )
    summaries = evaluate.run_evaluation(eval_cfg)  # looked up at call time (tests replace it)
    failed = [s.label for s in summaries if s.pairs_evaluated == 0]
    if failed:  # a demo whose evaluation produced nothing must not look like a result
        raise OstnetError(
            f"the evaluation of {', '.join(failed)} failed for every pair; reasons in "
            f"{Path(eval_cfg.output) / failed[0] / 'per_pair.csv'}"
        )
    return summaries, eval_cfg, note


def _ssim_by_pair(eval_dir: Path, label: str) -> dict[int, float]:

    rows = PairJournal(eval_dir / label / "per_pair.csv", metrics_for("different-scale")).load()
    return {r.pair_id: r.ssim for r in rows if r.status == "ok" and r.ssim is not None}


# ------------------------------------------------------------------------------------------------------------
# The whole demo
# ------------------------------------------------------------------------------------------------------------


def _check_overrides(cfg: DemoConfig) -> None:
    """A bad ``--set`` is refused before anything is written."""
    try:
        train_config(Path("."), baseline=False, batch_size=1, log_every=1, seed=0, budget_s=1, extra=cfg.overrides)
    except (ValueError, TypeError) as exc:
        raise OstnetError(f"--set: {exc}") from None


def run_demo(cfg: DemoConfig) -> DemoResult:
    """Run every stage (see the module docstring) into ``cfg.output``; returns where the report is."""
    _check_overrides(cfg)
    start = time.perf_counter()
    output = Path(cfg.output).expanduser()
    device = resolve_device(cfg.device).type
    created = prepare_output(output, cfg.overwrite, cfg.plan.disk_mb)
    cfg = DemoConfig(**{**asdict(cfg), "output": str(output)})
    with _cleanup_on_failure(output, created):
        return _run_stages(cfg, device, start)


def _run_stages(cfg: DemoConfig, device: str, start: float) -> DemoResult:
    import torch

    out, plan, notes = Path(cfg.output), cfg.plan, []
    features = choose_features(cfg.features)
    if not features.imagenet and cfg.features == "auto":
        _say("ostnet demo: no ImageNet VGG installed (`ostnet weights install`): using a RANDOM VGG-19")
    threads, why = choose_threads(cfg.threads) if device == "cpu" else (torch.get_num_threads(), "GPU run")
    torch.set_num_threads(threads)
    machine = f"{device}" + (f", {threads} CPU thread(s) ({why})" if device == "cpu" else "")
    _say(f"ostnet demo{' --quick' if cfg.quick else ''}: output {out} on {machine}")
    low, high = plan.scale_range
    _stage(1, f"Writing a synthetic talking-head dataset ({plan.num_identities} identities, "
           f"{plan.test_identities} held out for testing, face scales {low}-{high})", start)  # fmt: skip
    data_root = write_synthetic_dataset(
        out / "data", num_identities=plan.num_identities, videos_per_identity=plan.videos_per_identity,
        num_frames=plan.num_frames, size=64, scale_range=plan.scale_range, seed=cfg.seed,
        test_identities=plan.test_identities, motion=plan.clips.motion, camera=plan.clips.camera,
        texture=plan.clips.texture,
    )  # fmt: skip
    _stage(2, f"Training {OSTNET} (ST + SE) for {cfg.budget_s:.0f} s, then the {BASELINE} (no ST, no SE) for "
           f"as many steps, on {device}; perceptual loss on {features.description} features", start)  # fmt: skip
    models = train_models(cfg, data_root, device, features)
    _stage(
        3, f"Evaluating both on the different-scale protocol ({2 * plan.eval_pairs} pairs of held-out people)", start
    )
    summaries, eval_cfg, face_note = evaluate_models(cfg, data_root, models, device)
    notes += [face_note] if face_note else []
    reference = source_copy_reference(eval_cfg, 64)
    rectification = rectification_scores(eval_cfg, models[1], device)
    _stage(4, f"Animating an unseen person whose driving face is {DRIVING_FACTORS[1]:g}x as wide", start)
    ssim = [_ssim_by_pair(Path(eval_cfg.output), m.label) for m in models]
    examples = example_pairs(eval_cfg, models, ssim, plan.examples, device)
    animation = animate_comparison(models, out / "animation", plan.animation_frames, cfg.seed, device, plan.clips)
    _stage(5, "Writing the report", start)
    data = ReportData(
        command=cfg.command, quick=cfg.quick, machine=machine, budget_s=cfg.budget_s, plan=asdict(plan),
        models=models, summaries=summaries, ssim_difference=paired_difference(ssim[0], ssim[1]),
        loss_png=loss_curves_png(models), examples=examples, animation=animation, notes=notes,
        seconds=time.perf_counter() - start, overrides=demo_overrides(features, cfg.overrides),
        features=features.description, reference=reference, rectification=rectification,
        pixel_weight=RunFolder(models[1].run_dir).read_config().loss.pixel_weight,
    )  # fmt: skip
    report = write_report(out / "report.html", data)
    summary = _write_summary(out / "demo.json", data)
    _print_headline(report, data)
    return DemoResult(report, summary, models, summaries, data.seconds)


def _write_summary(path: Path, data: ReportData) -> Path:
    """``demo.json``: the headline numbers, machine-readable."""

    payload = {
        "format": "ostnet-demo-1",
        "seconds": round(data.seconds, 1),
        "machine": data.machine,
        "budget_s_per_model": data.budget_s,
        "overrides": list(data.overrides),
        "models": [
            {
                "label": m.label,
                "preset": m.preset,
                "steps": m.steps,
                "seconds": round(m.seconds, 1),
                "weights": str(m.weights),
            }
            for m in data.models
        ],  # fmt: skip
        "different_scale": {
            s.label: {**s.means, "pairs": s.pairs_evaluated, "no_face": s.face_missing} for s in data.summaries
        },  # fmt: skip
        "no_motion_reference": data.reference._asdict() if data.reference is not None else None,
        "st_rectification_ssim": data.rectification._asdict() if data.rectification is not None else None,
        "verdict": data.verdict.text,
    }
    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps(payload, indent=2, allow_nan=True) + "\n", encoding="utf-8")
    return path


def _print_headline(report: Path, data: ReportData) -> None:
    _say(f"\nDone in {data.seconds / 60:.1f} min. Report: {report}")
    for s in data.summaries:
        values = ", ".join(
            f"{name.upper()} {_fmt(s.means.get(name))}" for name in ("ssim", "psnr", "l1", "scale_error")
        )
        _say(f"  {s.label:<8} different-scale: {values}")
    if data.reference is not None:
        ref = data.reference
        _say(f"  source copied (no motion): SSIM {ref.ssim:.4f}, PSNR {ref.psnr:.4f}, L1 {ref.l1:.4f}")
    if data.rectification is not None:
        r = data.rectification
        _say(
            f"  OSTNet's ST alone: SSIM of the scaled driving frame to the ground truth {r.before:.4f} -> {r.after:.4f}"
        )
    _say(f"  {data.verdict.text}")


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"
