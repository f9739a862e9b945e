"""``ostnet export CKPT --format onnx --output DIR``: the Animator's steps as ONNX graphs, checked with onnxruntime.

Example::

    ostnet export ostnet-vox-256.safetensors --format onnx --output vox-onnx/
    ostnet animate --runtime onnx --onnx-dir vox-onnx/ --checkpoint ostnet-vox-256.safetensors ...
"""

from __future__ import annotations

import argparse
from pathlib import Path

EXPORT_MODES = ("auto", "anchor-free", "relative", "absolute")  # = ostnet.inference.animator.MODES


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export",
        help="export a checkpoint to ONNX (source preparation + per-frame step), checked with onnxruntime",
        description="Export the source-preparation step and the per-frame step (the prepared source as graph "
        "inputs, a dynamic batch of driving frames) of a checkpoint, and check them with onnxruntime against "
        "PyTorch (max |diff| <= 1e-4). The folder appears only when the check passes.",
    )
    p.add_argument("checkpoint", metavar="CKPT", type=Path, help="ostnet .safetensors checkpoint")
    p.add_argument("--format", choices=("onnx",), default="onnx", help="export format (default: onnx)")
    p.add_argument("--output", metavar="DIR", type=Path, required=True, help="output folder (replaced if it exists)")
    p.add_argument(
        "--mode", choices=EXPORT_MODES, default="auto", help="motion mode of the per-frame graph (default: auto)"
    )
    p.set_defaults(handler=run_export)


def run_export(args: argparse.Namespace) -> int:
    from ostnet.checkpoint import load_checkpoint
    from ostnet.inference.export import export_onnx
    from ostnet.io.paths import check_outputs

    # the output folder is replaced: it must not be, or hold, the checkpoint
    check_outputs({"CKPT": args.checkpoint}, {"--output": args.output}, folders=("--output",))
    model = load_checkpoint(args.checkpoint)
    print(export_onnx(model, args.checkpoint, args.output, args.mode).line())
    return 0
