"""``ostnet evaluate``: score checkpoints on an evaluation protocol (paper Sec. 4.1, Tables 1-3).

The options are ``ostnet.evaluation.evaluate.EvalConfig`` (declared once; docs/cli.md).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ostnet.evaluation.evaluate import EvalConfig
from ostnet.options import add_command, from_namespace

OPTIONS = EvalConfig


def register(subparsers: argparse._SubParsersAction) -> None:
    add_command(
        subparsers,
        OPTIONS,
        run,
        "evaluate",
        help="evaluate checkpoints on a protocol (SSIM, PSNR, LPIPS, L1, AKD, AED, scale error)",
        description=(
            "Evaluate one or more checkpoints on a test split. Writes OUT/pairs.csv (the pair list, DaGAN's "
            "source,driving,frame format), OUT/<checkpoint>/per_pair.csv, OUT/results.{md,csv,json} and "
            "OUT/samples.png. Rerunning the same command resumes an interrupted run."
        ),
    )


def config_from_args(args: argparse.Namespace) -> EvalConfig:
    """The EvalConfig described by parsed command-line arguments."""
    return from_namespace(EvalConfig, args)


def run(cfg: EvalConfig) -> int:
    from ostnet.evaluation.evaluate import run_evaluation

    try:
        summaries = run_evaluation(cfg)
    except KeyboardInterrupt as exc:
        from ostnet.errors import Terminated, interrupt_exit_code

        kept = Path(cfg.output) / "<checkpoint>" / "per_pair.csv"
        what = "terminated" if isinstance(exc, Terminated) else "interrupted"
        print(f"ostnet evaluate: {what}; finished pairs are kept in {kept}; rerun to resume", file=sys.stderr)
        return interrupt_exit_code(exc)
    print((Path(cfg.output) / "results.md").read_text(encoding="utf-8"), end="")
    failed = sum(s.pairs_failed for s in summaries)
    if failed:
        print(f"{failed} pair(s) failed; see per_pair.csv for the reasons")
    return 0
