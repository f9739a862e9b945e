"""``ostnet demo``: synthetic data -> train the Baseline and OSTNet -> different-scale evaluation -> animation
-> one self-contained ``report.html``. Needs no dataset, no GPU and no network; uses ImageNet VGG features for
the perceptual loss when ``ostnet weights install`` ran (``make demo`` runs it), else a random VGG."""

from __future__ import annotations

import argparse
import dataclasses
import shlex
import sys

from ostnet.demo.run import DemoConfig
from ostnet.options import add_command

OPTIONS = DemoConfig


def register(subparsers: argparse._SubParsersAction) -> None:
    add_command(
        subparsers,
        OPTIONS,
        run,
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


def run(options: DemoConfig) -> int:
    from ostnet.demo.run import run_demo

    command = "ostnet " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv[1:2] == ["demo"] else "ostnet demo"
    run_demo(dataclasses.replace(options, command=command))
    return 0
