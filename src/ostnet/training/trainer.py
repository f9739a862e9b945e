"""The training loop (paper Sec. 3.4 and App. A; optimiser and schedule of reference-architecture.md §6.4).

One readable loop in the nanoGPT style, importable and testable:

* ``train_step(model, objective, optimizer, scaler, batch)``: forward under autocast, the objective outside
  the networks, backward (scaled for fp16), clipping after ``unscale_``, optimiser step.
* ``Trainer(cfg, run_dir).fit()``: data sharded over ranks, DDP (``torchrun``), per-epoch MultiStepLR,
  logging on the main rank, atomic checkpoints and exact resume.

Randomness that reaches the gradients is tied to data, not to processes: each training pair is a function
of (seed, epoch, index) (``PairDataset``), and each pair's equivariance transform of (seed, step, index). So
a run on W processes with batch b follows a run on one process with batch W b, and a resumed run follows an
uninterrupted one.

With ``data.clip_length`` T > 1 an example is a source and T consecutive driving frames; the loader flattens
a batch of clips into pairs, clip by clip (``collate_training``), the model runs its temporal module over each
clip in order, and the losses average over all frames. T = 1 is plain pair training, the same code path.
"""

from __future__ import annotations

import json
import logging
import time
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

from ostnet import config as C
from ostnet.checkpoint import load_weights_into, save_checkpoint
from ostnet.data.dataset import PairDataset, TrainingPair, clip_length_of, collate_training
from ostnet.errors import OstnetError
from ostnet.io.atomic import atomic_write
from ostnet.io.paths import check_outputs
from ostnet.losses.objective import LossTerms, Objective
from ostnet.models.ostnet import build_model
from ostnet.models.outputs import ModelOutput
from ostnet.models.precision import DTYPES, autocast
from ostnet.training.adversary import Adversary
from ostnet.training.distributed import (
    DistInfo,
    ShardedSampler,
    all_gather_objects,
    configure_backends,
    convert_sync_batchnorm,
    seed_everything,
    setup_distributed,
)
from ostnet.training.ema import ModelEMA
from ostnet.training.init_from import INIT_FILENAME, InitReport, apply_freeze, init_from_checkpoint, read_frozen
from ostnet.training.state import (
    STATE_FORMAT,
    STATE_VERSION,
    CheckpointFiles,
    Progress,
    RunFolder,
    capture_rng,
    check_compatible,
    load_training_state,
    restore_rng,
)
from ostnet.training.visualize import TrainLogger

log = logging.getLogger(__name__)


class StepResult(NamedTuple):
    """terms: the losses of the step; output: the model output, detached (for visualisation); scalars: more
    detached values to log, keyed by their TensorBoard tag (the GAN terms, ``gan/...``)."""

    terms: LossTerms
    output: ModelOutput
    scalars: dict[str, Tensor] = {}


def _detach(value: Any) -> Any:
    if isinstance(value, Tensor):
        return value.detach()
    if isinstance(value, tuple) and hasattr(value, "_fields"):
        return type(value)(*(_detach(v) for v in value))
    if isinstance(value, list):
        return [_detach(v) for v in value]
    if isinstance(value, dict):
        return {k: _detach(v) for k, v in value.items()}
    return value


def train_step(
    model: nn.Module,
    objective: Objective,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    batch: TrainingPair,
    *,
    precision: str = "fp32",
    grad_clip: float | None = None,
    tps_seed: int | None = None,
    adversary: Adversary | None = None,
) -> StepResult:
    """One optimisation step on ``batch`` (tensors already on the model's device).

    Args:
        model: OSTNet or its DDP wrapper, in train mode.
        objective: the loss (Eq. 6 / 10).
        scaler: a GradScaler, enabled only for fp16 (a disabled one is a pass-through).
        precision: "fp32", "bf16" or "fp16" autocast for the forward pass and the losses.
        grad_clip: max global L2 norm of the gradients (after unscaling), or None.
        tps_seed: seed of the equivariance transforms (see ``Objective``).
        adversary: when given, the GAN term joins the generator loss and the discriminator takes one step
            after the generator (``ostnet.training.adversary``); the caller passes it only once the GAN starts.
    """
    optimizer.zero_grad(set_to_none=True)
    scalars: dict[str, Tensor] = {}
    with autocast(batch.source.device.type, precision):
        out = model(batch.source, batch.driving, **model_inputs(model, batch))
        terms = objective(model, batch, out, tps_seed=tps_seed)
        total = terms.total
        scalars.update(terms.code_usage or {})
        if adversary is not None:
            gan, weight = adversary.generator_term(model, terms.total, out.prediction)
            total = total + weight * gan
            scalars.update({"gan/g_loss": gan.detach().float(), "gan/weight": weight.float()})
    scaler.scale(total).backward()
    if grad_clip is not None:
        scaler.unscale_(optimizer)
        params = [p for group in optimizer.param_groups for p in group["params"]]
        torch.nn.utils.clip_grad_norm_(params, grad_clip)
    scaler.step(optimizer)
    scaler.update()
    if adversary is not None:
        scalars.update(adversary.discriminator_step(batch.target, out.prediction.detach(), precision))
    return StepResult(_detach(terms), _detach(out), scalars)


def model_inputs(model: nn.Module, batch: TrainingPair) -> dict[str, Any]:
    """Inputs besides (source, driving) that a model takes from the batch: PECHead's known coefficients and
    the clip length (its CAP runs over each clip of the batch)."""
    if not getattr(getattr(model, "module", model), "controllable", False):
        return {}
    known = batch.coefficients if batch.coefficients is not None and batch.coefficients.shape[-1] else None
    return {"coefficients": known, "clip_length": clip_length_of(batch)}


def check_train_config(cfg: C.TrainConfig) -> None:
    """OstnetError for values the dataclasses cannot rule out (precision names, non-positive intervals)."""
    if cfg.precision not in DTYPES:
        raise OstnetError(f"precision: expected one of {', '.join(DTYPES)}, got {cfg.precision!r}")
    for name in ("log_every", "image_every", "checkpoint_every"):
        if getattr(cfg, name) < 1:
            raise OstnetError(f"{name}: must be >= 1, got {getattr(cfg, name)}")
    if cfg.data.batch_size < 1 or cfg.data.num_repeats < 1:
        raise OstnetError("data.batch_size and data.num_repeats must be >= 1")
    if cfg.max_steps is not None and cfg.max_steps < 1:
        raise OstnetError(f"max_steps: must be >= 1, got {cfg.max_steps}")
    if cfg.ema_decay is not None and not 0 <= cfg.ema_decay < 1:
        raise OstnetError(f"ema_decay: must be in [0, 1) or null, got {cfg.ema_decay}")
    if cfg.gan.enabled:
        _check_gan_config(cfg.gan, cfg.model.image_size)


def _check_gan_config(gan: C.AdversarialConfig, image_size: int) -> None:
    d = gan.discriminator
    if gan.start_step < 0:
        raise OstnetError(f"gan.start_step: must be >= 0, got {gan.start_step}")
    if d.num_layers < 1 or not d.scales or any(not 0 < s <= 1 for s in d.scales):
        raise OstnetError(f"gan.discriminator: num_layers must be >= 1 and scales in (0, 1], got {d}")
    smallest = min(d.scales) * image_size / 2**d.num_layers
    if smallest < 4:
        raise OstnetError(
            f"gan.discriminator: scale {min(d.scales)} of a {image_size} px image is too small for "
            f"{d.num_layers} stride-2 layers (needs >= 4 px after them); fewer layers or larger scales"
        )


def step_seed(seed: int, step: int) -> int:
    """Seed of the equivariance transforms of global step ``step``."""
    return seed * 1_000_003 + step


def build_dataset(cfg: C.TrainConfig) -> PairDataset:
    """The training split of ``cfg.data.root`` with the expression-preserved augmentation (Sec. 3.4)."""
    d = cfg.data
    if not d.root:
        raise OstnetError("no training data given: pass --data DATASET (a folder holding train/)")
    return PairDataset(
        d.root,
        "train",
        image_size=cfg.model.image_size,
        id_sampling=d.id_sampling,
        num_repeats=d.num_repeats,
        augment=True,
        delta=cfg.augmentation.delta,
        flip=d.flip,
        time_flip=d.time_flip,
        color_jitter=d.color_jitter,
        seed=cfg.seed,
        coefficients=cfg.model.pechead.enabled,
        clip_length=d.clip_length,
    )


def _to_device(batch: TrainingPair, device: torch.device) -> TrainingPair:
    return TrainingPair(*(t.to(device, non_blocking=True) if isinstance(t, Tensor) else t for t in batch))


def _batches(loader: DataLoader) -> Iterator[TrainingPair]:
    """Iterate ``loader``, turning an error re-raised from a worker back into its one-line message."""
    it = iter(loader)
    while True:
        try:
            batch = next(it)
        except StopIteration:
            return
        except OstnetError as exc:
            lines = [line for line in str(exc).splitlines() if line.strip()]
            raise OstnetError(lines[-1].removeprefix("ostnet.errors.OstnetError: ")) from None
        yield batch


class _Skips:
    """Unreadable pairs skipped by the data loader during one epoch (counted from the batches)."""

    def __init__(self) -> None:
        self.count, self.example = 0, ""

    def add(self, batch: TrainingPair) -> None:
        skipped = batch.skipped
        self.count += int(skipped.sum()) if isinstance(skipped, Tensor) else int(skipped)
        files = batch.skipped_file if isinstance(batch.skipped_file, list | tuple) else [batch.skipped_file]
        self.example = self.example or next((f for f in files if f), "")


class Trainer:
    """Trains ``cfg.model`` on ``cfg.data`` into ``run_dir``; see the module docstring.

    Args:
        cfg: the resolved training config (written to ``run_dir/config.json``).
        run_dir: the run folder (created; a folder already holding checkpoints needs ``resume=True``).
        resume: continue from the last checkpoint of ``run_dir`` (same model config required).
        device: "auto", "cpu" or "cuda" (under torchrun each rank takes cuda:LOCAL_RANK).
        show_progress: draw a tqdm bar on the main rank.
        dataset: use this dataset instead of building ``PairDataset`` from ``cfg.data`` (tests).
        init: start a new run from this checkpoint's matching tensors (``ostnet.training.init_from``).
        freeze: module prefixes whose tensors loaded by ``init`` stay fixed.

    Everything that can be checked is checked before anything is written: bad input raises OstnetError.
    """

    def __init__(
        self,
        cfg: C.TrainConfig,
        run_dir: str | Path,
        *,
        resume: bool = False,
        device: str = "auto",
        show_progress: bool = True,
        dataset: PairDataset | None = None,
        init: str | Path | None = None,
        freeze: Sequence[str] = (),
    ) -> None:
        check_train_config(cfg)
        if init is not None and resume:
            raise OstnetError("--init starts a new run and --resume continues one: give only one of them")
        if freeze and init is None:
            raise OstnetError("--freeze needs --init (it fixes the tensors --init loaded)")
        self.init_report: InitReport | None = None
        self.cfg, self.show_progress = cfg, show_progress
        self.dist: DistInfo = setup_distributed(device)
        configure_backends(cfg.deterministic)
        self.folder = RunFolder(run_dir)
        check_outputs({"--data": cfg.data.root or None}, {"--output": run_dir}, folders=("--output",))
        resume_from = self._check_folder(resume)
        state = load_training_state(resume_from.state) if resume_from is not None else None  # checked first
        self.dataset = dataset if dataset is not None else build_dataset(cfg)
        self.dataset.warn_skips = False  # reported once per epoch by _report_skips instead
        self.sampler = ShardedSampler(
            len(self.dataset),
            batch_size=cfg.data.batch_size,
            rank=self.dist.rank,
            world_size=self.dist.world_size,
            seed=cfg.seed,
        )
        self.raw_model, self.model = self._build_model(resume_from, init, freeze)
        self.objective = Objective(cfg.loss).to(self.dist.device)
        o = cfg.optim
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=o.lr, betas=o.betas, weight_decay=o.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.MultiStepLR(self.optimizer, list(o.milestones), gamma=o.gamma)
        self.scaler = torch.amp.GradScaler(self.dist.device.type, enabled=cfg.precision == "fp16")
        self.adversary = None
        if cfg.gan.enabled:
            torch.manual_seed(cfg.seed + 1)  # the same initial discriminator on every rank
            self.adversary = Adversary(cfg.gan, cfg.model.num_channels, self.dist, cfg.precision)
        self.ema = ModelEMA(self.raw_model, cfg.ema_decay) if cfg.ema_decay is not None else None
        self.progress = Progress()
        self.skipped_total = 0  # unreadable training pairs skipped by this process's fit (all ranks)
        self._deadline: float | None = None  # set by fit() from cfg.max_seconds
        seed_everything(cfg.seed + self.dist.rank)  # per-rank streams for anything not tied to the data
        if resume_from is not None:
            self._load_state(state, resume_from)
        per_epoch = self.sampler.batches_per_epoch
        self.max_steps = cfg.max_steps if cfg.max_steps is not None else o.num_epochs * per_epoch
        if self.dist.is_main:
            self.folder.create()
            self.folder.remove_stale_temporaries()
            self.folder.write_config(cfg)
            if self.init_report is not None:
                text = self.init_report.to_json()
                atomic_write(self.folder.root / INIT_FILENAME, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))

    # ---------------------------------------------------------------------------------------------- setup

    def _check_folder(self, resume: bool) -> CheckpointFiles | None:
        """The checkpoint to resume from (None for a new run); sets ``self.fresh`` (a new or empty folder)."""
        self.fresh = False
        latest = self.folder.latest()
        if not resume:
            if latest is not None:
                raise OstnetError(
                    f"{self.folder.root}: already holds a training run (step {latest.step}); "
                    "pass --resume to continue it or choose another --output folder"
                )
            self.fresh = self.folder.check_new_run()
            return None
        if latest is None:
            raise OstnetError(f"{self.folder.root}: nothing to resume (no {self.folder.pointer_path.name})")
        if self.folder.config_path.is_file():
            check_compatible(self.folder.read_config().model, self.cfg.model, self.folder.config_path)
        return latest

    def _build_model(
        self, resume_from: CheckpointFiles | None, init: str | Path | None, freeze: Sequence[str]
    ) -> tuple[nn.Module, nn.Module]:
        torch.manual_seed(self.cfg.seed)  # the same initial weights on every rank
        model = build_model(self.cfg.model)
        frozen: list[str] = []
        if resume_from is not None:
            load_weights_into(model, resume_from.weights)
            frozen = read_frozen(self.folder.root)
        elif init is not None:
            self.init_report = init_from_checkpoint(model, init, freeze)
            frozen = self.init_report.frozen
        model = convert_sync_batchnorm(model, self.dist).to(self.dist.device).train()
        apply_freeze(model, frozen)
        if not self.dist.is_distributed:
            return model, model
        device_ids = [self.dist.device.index] if self.dist.device.type == "cuda" else None
        return model, DistributedDataParallel(model, device_ids=device_ids)

    def _load_state(self, state: dict[str, Any], files: CheckpointFiles) -> None:
        try:
            stored = C.from_dict(C.ModelConfig, json.loads(state["model_config"]))
            check_compatible(stored, self.cfg.model, files.state)
            self.optimizer.load_state_dict(state["optimizer"])
            self.scheduler.load_state_dict(state["scheduler"])
            if state["scaler"]:
                self.scaler.load_state_dict(state["scaler"])
            self.progress = Progress(*(int(x) for x in state["progress"]))
            self._load_extras(state, files)
        except (ValueError, TypeError, KeyError, IndexError, AttributeError) as exc:
            reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
            raise OstnetError(f"{files.state}: not a usable ostnet training state ({reason})") from None
        rngs = state["rng"]
        if len(rngs) == self.dist.world_size:
            restore_rng(rngs[self.dist.rank])
        else:
            log.warning(
                "resuming on %d processes a run saved on %d: RNG streams restart",
                self.dist.world_size,
                len(rngs),
            )

    def _load_extras(self, state: dict[str, Any], files: CheckpointFiles) -> None:
        """The discriminator (its optimiser, scaler) and the weight EMA, when this run has them."""
        if self.adversary is not None:
            if state.get("adversary") is None:
                log.warning("%s: no discriminator in the checkpoint: a fresh one starts now", files.state)
            else:
                self.adversary.load_state_dict(state["adversary"])
        if self.ema is not None:
            if files.ema is None:
                log.warning("%s: no weight EMA in the checkpoint: it restarts from the current weights", files.state)
                self.ema = ModelEMA(self.raw_model, self.ema.decay)
            else:
                load_weights_into(self.ema.module, files.ema)

    def _training_state(self) -> dict[str, Any]:
        rngs = all_gather_objects(capture_rng(), self.dist)  # collective: every rank calls it
        return {
            "format": STATE_FORMAT,
            "version": STATE_VERSION,
            "progress": tuple(self.progress),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "rng": rngs,
            "adversary": None if self.adversary is None else self.adversary.state_dict(),
            "world_size": self.dist.world_size,
            "model_config": C.to_json(self.cfg.model),
            "train_config": C.to_json(self.cfg),
        }

    # ----------------------------------------------------------------------------------------------- loop

    def fit(self) -> Path:
        """Train until ``max_steps`` (or ``cfg.max_seconds`` of wall time); returns the final weights' path
        (``run_dir/final.safetensors``)."""
        self._deadline = None if self.cfg.max_seconds is None else time.monotonic() + self.cfg.max_seconds
        logger = TrainLogger(self.folder.root, self.dist, self.max_steps, self.progress.step, self.show_progress)
        saved_at = self.progress.step
        try:
            while self.progress.step < self.max_steps and not self.out_of_time():
                saved_at = self._train_epoch(logger, saved_at)
            if saved_at != self.progress.step:
                self.save_checkpoint()
            if self.dist.is_main:
                self._save_final()
        except BaseException:
            logger.close()
            if self.fresh and self.dist.is_main and self.folder.latest() is None:
                self.folder.remove_new()  # a new run that failed before its first checkpoint leaves nothing
            raise
        logger.close()
        if self.skipped_total and self.dist.is_main:
            log.warning("skipped %d unreadable training pair(s) in total", self.skipped_total)
        return self.folder.final_weights

    def _save_final(self) -> None:
        """final.safetensors: the EMA weights when the run keeps them (then final.raw.safetensors holds the
        trained weights), else the trained weights."""
        meta = {"step": str(self.progress.step)}
        if self.ema is None:
            save_checkpoint(self.raw_model, self.folder.final_weights, metadata=meta)
            return
        save_checkpoint(self.raw_model, self.folder.final_raw_weights, metadata=meta)
        save_checkpoint(self.ema.module, self.folder.final_weights, metadata={**meta, "ema_decay": str(self.ema.decay)})

    def _train_epoch(self, logger: TrainLogger, saved_at: int) -> int:
        """Train the rest of this epoch (or until max_steps); returns the step of the last checkpoint."""
        cfg, p = self.cfg, self.progress
        self.sampler.set_epoch(p.epoch, p.batch_in_epoch)
        self.dataset.set_epoch(p.epoch)
        loader = DataLoader(
            self.dataset,
            batch_size=cfg.data.batch_size,
            sampler=self.sampler,
            num_workers=cfg.data.num_workers,
            drop_last=True,
            pin_memory=self.dist.device.type == "cuda",
            collate_fn=collate_training,  # clips -> pairs, clip by clip (data.clip_length)
            # Its own generator: a DataLoader iterator otherwise draws its base seed from the global RNG, and a run
            # resumed at an epoch end opens one more (empty) iterator than an uninterrupted run, shifting every
            # later global draw (e.g. the codebooks' dead-code restarts) and breaking exact resume.
            generator=torch.Generator().manual_seed(step_seed(cfg.seed, p.epoch)),
        )
        skips = _Skips()
        for batch in _batches(loader):
            skips.add(batch)
            batch = _to_device(batch, self.dist.device)
            result = train_step(
                self.model,
                self.objective,
                self.optimizer,
                self.scaler,
                batch,
                precision=cfg.precision,
                grad_clip=cfg.optim.grad_clip,
                tps_seed=step_seed(cfg.seed, self.progress.step),
                adversary=self.adversary if self.adversary and self.adversary.active(p.step) else None,
            )
            if self.ema is not None:
                self.ema.update(self.raw_model)
            p = self.progress = Progress(p.step + 1, p.epoch, p.batch_in_epoch + 1)
            logger.after_step(p.step, batch, result, self.optimizer.param_groups[0]["lr"], cfg)
            if p.step % cfg.checkpoint_every == 0:
                self.save_checkpoint()
                saved_at = p.step
            if p.step >= self.max_steps or self.out_of_time():
                self._report_skips(skips, p.epoch)
                return saved_at
        self._report_skips(skips, p.epoch)
        with warnings.catch_warnings():
            # A run resumed exactly at an epoch end steps the scheduler before its first optimiser step;
            # that is the intended order here, not the mistake PyTorch's heuristic warns about.
            warnings.filterwarnings("ignore", message="Detected call of `lr_scheduler", category=UserWarning)
            self.scheduler.step()  # MultiStepLR counts epochs
        self.progress = Progress(p.step, p.epoch + 1, 0)
        return saved_at

    def _report_skips(self, skips: _Skips, epoch: int) -> None:
        """One line per epoch with the unreadable pairs skipped by every rank and worker (a collective)."""
        count, example = skips.count, skips.example
        if self.dist.is_distributed:
            gathered = all_gather_objects((count, example), self.dist)
            count, example = sum(c for c, _ in gathered), next((e for _, e in gathered if e), "")
        self.skipped_total += count
        if count and self.dist.is_main:
            log.warning(
                "epoch %d: skipped %d unreadable training pair(s) (e.g. %s); %d so far", epoch, count, example,
                self.skipped_total,
            )  # fmt: skip

    def out_of_time(self) -> bool:
        """True once ``cfg.max_seconds`` have passed since ``fit`` began; rank 0's clock decides for all ranks
        (a collective under DDP: every rank calls it at the same points)."""
        if self._deadline is None:
            return False
        late = time.monotonic() >= self._deadline
        if not self.dist.is_distributed:
            return late
        flag = torch.tensor([float(late)], device=self.dist.device)
        torch.distributed.broadcast(flag, src=0)
        return bool(flag.item())

    def save_checkpoint(self) -> None:
        """Weights + training state + pointer (main rank writes; every rank takes part in the RNG gather)."""
        state = self._training_state()
        if self.dist.is_main:
            ema = None if self.ema is None else self.ema.module
            self.folder.save(self.raw_model, state, self.progress.step, ema=ema)
