"""``ostnet export CKPT --format onnx --output DIR``: the Animator's steps as ONNX graphs, checked with onnxruntime.

Example::

    ostnet export ostnet-vox-256.safetensors --format onnx --output vox-onnx/
    ostnet animate --runtime onnx --onnx-dir vox-onnx/ --checkpoint ostnet-vox-256.safetensors ...
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Literal

from ostnet.inference.animator import Mode
from ostnet.options import add_command, declared, option


@declared
class ExportOptions:
    """The ``ostnet export`` options (declared once; docs/cli.md)."""

    checkpoint: Path = option(positional=True, metavar="CKPT", help="ostnet .safetensors checkpoint")
    output: Path = option(metavar="DIR", help="output folder (replaced if it exists)")
    format: Literal["onnx"] = option("onnx", help="export format")
    mode: Mode = option("auto", help="motion mode of the per-frame graph")


OPTIONS = ExportOptions


def register(sub: argparse._SubParsersAction) -> None:
    add_command(
        sub,
        OPTIONS,
        run_export,
        "export",
        help="export a checkpoint to ONNX (source preparation + per-frame step), checked with onnxruntime",
        description="Export the source-preparation step and the per-frame step (the prepared source as graph "
        "inputs, a dynamic batch of driving frames) of a checkpoint, and check them with onnxruntime against "
        "PyTorch (max |diff| <= 1e-4). The folder appears only when the check passes.",
    )


def run_export(options: ExportOptions) -> int:
    from ostnet.checkpoint import load_checkpoint
    from ostnet.inference.export import export_onnx
    from ostnet.io.paths import check_outputs

    # the output folder is replaced: it must not be, or hold, the checkpoint
    check_outputs({"CKPT": options.checkpoint}, {"--output": options.output}, folders=("--output",))
    model = load_checkpoint(options.checkpoint)
    print(export_onnx(model, options.checkpoint, options.output, options.mode).line())
    return 0
