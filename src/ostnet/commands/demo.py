"""``ostnet demo``: synthetic data -> train the Baseline and OSTNet -> different-scale evaluation -> animation
-> one self-contained ``report.html``. Needs no dataset, no GPU and no network; uses ImageNet VGG features for
the perceptual loss when ``ostnet weights install`` ran (``make demo`` runs it), else a random VGG."""

from __future__ import annotations

import argparse
import shlex
import sys

from ostnet.errors import OstnetError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="show the method end to end on synthetic data (about 10 minutes on 2 CPU cores)",
        description=(
            "Write a synthetic talking-head dataset, train OSTNet (ST + SE) for the time budget and the "
            "Baseline (no ST, no SE) for the same number of steps, evaluate both on the different-scale "
            "protocol, animate a person whose driving face is at another scale, and write OUTPUT/report.html "
            "(self-contained, opens offline). Needs no dataset, no GPU, no network; the perceptual loss uses the "
            "ImageNet VGG installed by `ostnet weights install` when there is one (--features)."
        ),
    )
    parser.add_argument("--output", default="demo", metavar="DIR", help="output folder (demo)")
    parser.add_argument(
        "--budget",
        type=float,
        metavar="SECONDS",
        help="training seconds of OSTNet; the Baseline trains as many steps (180; --quick: 6)",
    )
    parser.add_argument("--quick", action="store_true", help="a smoke test in under 2 minutes (tiny sizes)")
    parser.add_argument("--overwrite", action="store_true", help="replace a previous demo in a non-empty --output")
    parser.add_argument("--device", default="auto", help="auto (default: cuda if available), cpu or cuda")
    parser.add_argument("--seed", type=int, default=0, help="seed of data, training and sampling (0)")
    parser.add_argument("--threads", type=int, metavar="N", help="CPU threads (default: the idle cores)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    parser.add_argument(
        "--features",
        default="auto",
        choices=["auto", "imagenet", "random"],
        help="perceptual-loss VGG: auto (default: ImageNet if `ostnet weights install` ran, else random), "
        "imagenet (required), random",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from ostnet.demo.run import DemoConfig, run_demo

    if args.budget is not None and not args.budget > 0:
        raise OstnetError(f"--budget: must be a positive number of seconds, got {args.budget}")
    command = "ostnet " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv[1:2] == ["demo"] else "ostnet demo"
    cfg = DemoConfig(
        output=args.output,
        quick=args.quick,
        budget=args.budget,
        overwrite=args.overwrite,
        device=args.device,
        seed=args.seed,
        threads=args.threads,
        progress=not args.no_progress,
        command=command,
        features=args.features,
    )
    run_demo(cfg)
    return 0
