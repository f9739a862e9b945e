"""``ostnet train``: train a preset on a dataset folder into a run folder (1 process or under torchrun).

    ostnet train --preset ostnet-vox-256 --data vox --output runs/vox [--set loss.lambda_eq=5 ...]
    torchrun --nproc_per_node 8 -m ostnet.cli train --preset ostnet-vox-256 --data vox --output runs/vox
    ostnet train --output runs/vox --resume            # continue where the run stopped
    ostnet train --preset fomm-st-se --data vox --output runs/st --init fomm.safetensors --freeze kp_detector,generator

``--init CKPT`` starts a new run from every tensor of CKPT (an ostnet checkpoint or FOMM's .pth.tar) whose name
and shape match, and reports what was loaded, left fresh and ignored (also in the run's ``init.json``);
``--freeze`` keeps the loaded tensors under the given modules fixed (``ostnet.training.init_from``).

With ``--resume`` the preset and overrides may be left out: the run's ``config.json`` is used (``--set`` and
``--max-steps`` still apply; a changed model config is refused). On several nodes the run folder must be on a
file system every node sees (rank 0 writes it, every rank reads it to resume).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from ostnet.errors import OstnetError, Terminated, interrupt_exit_code
from ostnet.options import Device, add_command, declared, device_option, option


@declared(kw_only=True)
class TrainOptions:
    """The ``ostnet train`` options (declared once; docs/cli.md). The model and training settings themselves
    are the preset's ``TrainConfig`` with ``--set`` overrides (``ostnet.config``, checked field by field)."""

    preset: str | None = option(None, help="model preset (see `ostnet presets`); optional with --resume")
    data: str | None = option(
        None, metavar="DIR", help="dataset folder holding train/ (frame folders, mp4 files or PNG strips)"
    )
    output: str = option(metavar="DIR", help="run folder for config, checkpoints and logs")
    overrides: tuple[str, ...] = option(
        (), flag="--set", metavar="KEY=VALUE",
        help="config override, e.g. --set loss.lambda_eq=5 --set precision=bf16 (repeatable)",
    )  # fmt: skip
    max_steps: int | None = option(
        None, metavar="N", help="stop after this many optimiser steps in total", bounds=(1, None)
    )
    resume: bool = option(False, help="continue from the run folder's last checkpoint")
    init: str | None = option(
        None, metavar="CKPT", help="start a new run from CKPT's tensors that match in name and shape"
    )
    freeze: str = option(
        "", metavar="MODULES",
        help="with --init: comma-separated modules (e.g. kp_detector,generator) whose loaded tensors stay fixed",
    )  # fmt: skip
    device: Device = device_option()
    progress: bool = option(True, flag="--quiet", help="no progress bar")


OPTIONS = TrainOptions


def register(sub: argparse._SubParsersAction) -> None:
    add_command(sub, OPTIONS, run, "train", help="train a model (DDP via torchrun, AMP, atomic checkpoints, resume)")


def resolve_config(args: TrainOptions):
    """The TrainConfig from --preset (or the run's config.json on --resume), --set, --data and --max-steps."""
    from ostnet import config as C
    from ostnet.training.state import RunFolder

    if args.preset:
        try:
            cfg = C.train_preset(args.preset)
        except ValueError as exc:
            raise OstnetError(f"--preset: {exc}") from None
    elif args.resume:
        cfg = RunFolder(args.output).read_config()
    else:
        raise OstnetError("--preset is required (see `ostnet presets`) unless --resume is given")
    extra = list(args.overrides)
    if args.data:
        extra.append(f"data.root={_json_string(str(Path(args.data).expanduser().resolve()))}")
    if args.max_steps is not None:
        extra.append(f"max_steps={args.max_steps}")
    try:
        return C.apply_overrides(cfg, extra)
    except (ValueError, TypeError) as exc:
        raise OstnetError(f"--set: {exc}") from None


def _json_string(text: str) -> str:
    import json

    return json.dumps(text)


def run(args: TrainOptions) -> int:
    from ostnet.training.distributed import cleanup_distributed
    from ostnet.training.trainer import Trainer

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.init and args.resume:
        raise OstnetError("--init starts a new run and --resume continues one: give only one of them")
    cfg = resolve_config(args)
    freeze = tuple(p.strip() for p in args.freeze.split(",") if p.strip())
    trainer = Trainer(
        cfg, args.output, resume=args.resume, device=args.device, show_progress=args.progress,
        init=args.init, freeze=freeze,
    )  # fmt: skip
    if trainer.init_report is not None and trainer.dist.is_main:
        print(trainer.init_report.summary(), file=sys.stderr)
    completed = False
    try:
        final = trainer.fit()
        completed = True
    except KeyboardInterrupt as exc:
        if trainer.dist.is_main:
            latest = trainer.folder.latest() if trainer.folder.root.is_dir() else None
            what = "terminated" if isinstance(exc, Terminated) else "interrupted"
            step = trainer.progress.step
            if latest is None:
                line = f"{what} at step {step}, before the first checkpoint; nothing was kept"
            else:
                line = (f"{what} at step {step} (checkpoint of step {latest.step} kept); "
                        f"continue with `ostnet train --output {args.output} --resume`")  # fmt: skip
            print(f"ostnet train: {line}", file=sys.stderr)
        return interrupt_exit_code(exc)
    finally:
        cleanup_distributed(trainer.dist, completed=completed)
    if trainer.dist.is_main:
        print(f"trained {trainer.progress.step} steps; weights: {final}")
    return 0
