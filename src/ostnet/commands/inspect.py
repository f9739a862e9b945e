"""``ostnet inspect``: what a model does with one source and one driving frame, as images.

    ostnet inspect CKPT --source portrait.png --driving talk.mp4 --output inspect/ [--frame 10]

Writes into OUTPUT the source, driving frame, prediction (and the rectified frame for models with ST), the
flow and occlusion after every compensated scale (the dense motion's own for models without codebooks) and,
for models with codebooks, the code histograms of every scale. Works for any preset. The inputs are used
whole, resized to the model's size: pass face crops (as `ostnet prepare` writes them).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ostnet.errors import OstnetError
from ostnet.options import add_command, declared, option


@declared
class InspectOptions:
    """The ``ostnet inspect`` options (declared once; docs/cli.md)."""

    checkpoint: Path = option(positional=True, metavar="CKPT", help="ostnet .safetensors checkpoint (any preset)")
    source: Path = option(metavar="IMAGE", help="source face crop")
    driving: Path = option(metavar="VIDEO", help="driving video, frame folder or image")
    output: Path = option(metavar="DIR", help="folder for the images (replaced)")
    frame: int = option(0, metavar="N", help="index of the driving frame", bounds=(0, None))


OPTIONS = InspectOptions


def register(sub: argparse._SubParsersAction) -> None:
    add_command(
        sub, OPTIONS, run, "inspect", help="write a model's per-scale flows, occlusions and code histograms as images"
    )


def run(args: InspectOptions) -> int:
    from ostnet.checkpoint import load_checkpoint
    from ostnet.data.transforms import resize_image
    from ostnet.inference.inspect import inspect_pair, write_images
    from ostnet.io.image import IMAGE_SUFFIXES, load_image, to_tensor
    from ostnet.io.paths import check_outputs
    from ostnet.io.video import read_frames

    inputs = {"CKPT": args.checkpoint, "--source": args.source, "--driving": args.driving}
    check_outputs(inputs, {"--output": args.output}, folders=("--output",))  # the folder is replaced
    model = load_checkpoint(args.checkpoint)
    size = model.cfg.image_size
    source = to_tensor(load_image(args.source))
    if args.driving.suffix.lower() in IMAGE_SUFFIXES:
        frames = load_image(args.driving)[None]
    else:
        frames = read_frames(args.driving, max_frames=args.frame + 1)
    if args.frame >= len(frames):
        raise OstnetError(f"--frame {args.frame}: {args.driving} has only {len(frames)} frame(s)")
    driving = to_tensor(frames[args.frame])
    images = inspect_pair(
        model, resize_image(source, size, size)[None].clamp(0, 1), resize_image(driving, size, size)[None].clamp(0, 1)
    )
    folder = write_images(images, args.output)
    print(f"wrote {len(images)} images to {folder}")
    return 0
