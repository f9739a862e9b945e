"""``ostnet animate``: a portrait and a driving video in, a finished talking-head video out.

Example::

    ostnet animate --source portrait.jpg --driving talk.mp4 --checkpoint ostnet-vox-256.safetensors \\
        --output out.mp4 --paste-back

The options are ``ostnet.inference.options.AnimateOptions`` (declared once; docs/cli.md).
"""

from __future__ import annotations

import argparse
import sys
import typing

from ostnet.commands.control_options import save_recipe
from ostnet.inference.options import AnimateMode, AnimateOptions
from ostnet.options import add_command, from_namespace

OPTIONS = AnimateOptions
MODES: tuple[str, ...] = typing.get_args(AnimateMode)  # = ostnet.inference.pipeline.MODES


def register(sub: argparse._SubParsersAction) -> None:
    add_command(
        sub,
        OPTIONS,
        run_animate,
        "animate",
        help="animate a portrait with a driving video",
        description="Animate a portrait with the head motion and expressions of a driving video. Faces are "
        "found and cropped automatically, the driving audio is kept.",
    )


def options_from_args(args: argparse.Namespace) -> AnimateOptions:
    """The ``AnimateOptions`` for parsed command-line arguments."""
    return from_namespace(AnimateOptions, args)


def run_animate(options: AnimateOptions) -> int:
    from ostnet.inference.pipeline import animate_video

    summary = animate_video(options)
    save_recipe(options.control.edits.save_recipe, options.controls)
    for warning in summary.warnings:
        print(f"ostnet animate: warning: {warning}", file=sys.stderr)
    print(summary.line())
    return 0
