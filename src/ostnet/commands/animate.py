"""``ostnet animate``: a portrait and a driving video in, a finished talking-head video out.

Example::

    ostnet animate --source portrait.jpg --driving talk.mp4 --checkpoint ostnet-vox-256.safetensors \\
        --output out.mp4 --paste-back
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ostnet.commands.control_options import (
    add_control_arguments,
    add_motion_smooth_argument,
    controls_from_args,
    save_recipe,
)

MODES = ("auto", "anchor-free", "relative", "absolute", "best-frame")  # = ostnet.inference.pipeline.MODES
MODE_HELP = (
    "motion transfer: anchor-free (OSTNet's per-frame scale transformation, the default for models with it), "
    "relative (FOMM: motion relative to the first driving frame), absolute (driving keypoints as they are), "
    "best-frame (relative to the driving frame whose face matches the source's pose best); "
    "auto = anchor-free for OSTNet checkpoints, relative otherwise"
)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "animate",
        help="animate a portrait with a driving video",
        description="Animate a portrait with the head motion and expressions of a driving video. Faces are "
        "found and cropped automatically, the driving audio is kept.",
    )
    io = p.add_argument_group("inputs and outputs")
    io.add_argument("--source", metavar="IMAGE", type=Path, required=True, help="portrait image (jpg, png, webp, ...)")
    io.add_argument(
        "--driving",
        metavar="VIDEO",
        type=Path,
        required=True,
        help="driving video (mp4, mov, webm, mkv, gif) or a folder of frames",
    )
    io.add_argument("--checkpoint", metavar="CKPT", type=Path, required=True, help="ostnet .safetensors checkpoint")
    io.add_argument("--output", metavar="OUT", type=Path, required=True, help="output video (.mp4, .mov or .mkv)")
    io.add_argument("--frames", type=Path, metavar="DIR", help="also write the output frames as PNGs into DIR")
    io.add_argument("--max-frames", type=int, metavar="N", help="animate only the first N driving frames")
    io.add_argument("--crf", type=int, default=18, help="H.264 quality, 0 = lossless, 23 = x264 default (default: 18)")
    motion = p.add_argument_group("motion")
    motion.add_argument("--mode", choices=MODES, default="auto", help=MODE_HELP)
    motion.add_argument(
        "--adapt-scale", action="store_true", help="relative/best-frame: scale the motion by the keypoint hull areas"
    )
    add_motion_smooth_argument(motion)
    crop = p.add_argument_group("face crop and composition")
    crop.add_argument("--no-crop", action="store_true", help="inputs are already face crops: no face detection")
    crop.add_argument(
        "--face-index", metavar="K", type=int, default=0, help="face of the source, 0 = largest (default: 0)"
    )
    crop.add_argument(
        "--driving-face-index",
        metavar="K",
        type=int,
        default=0,
        help="face to follow in the driving video, 0 = largest",
    )
    crop.add_argument(
        "--margin", metavar="M", type=float, default=None, help="crop side = (1 + margin) x face size (default: 0.7)"
    )
    crop.add_argument(
        "--min-face", metavar="PX", type=float, default=32.0, help="smallest usable face in pixels (default: 32)"
    )
    crop.add_argument(
        "--smooth",
        metavar="SIGMA",
        type=float,
        default=3.0,
        help="crop smoothing, Gaussian sigma in frames (default: 3; 0 = off)",
    )
    crop.add_argument("--paste-back", action="store_true", help="put the animated face back into the full source image")
    crop.add_argument("--side-by-side", action="store_true", help="write source | driving | result")
    add_control_arguments(p)
    run = p.add_argument_group("execution")
    run.add_argument("--device", choices=("cpu", "cuda", "mps"), default=None, help="default: best available")
    run.add_argument("--dtype", choices=("fp32", "bf16", "fp16"), default="fp32", help="inference precision (autocast)")
    run.add_argument(
        "--batch-size", metavar="N", type=int, default=None, help="frames per model call (default: sized to the device)"
    )
    run.add_argument(
        "--runtime",
        choices=("torch", "onnx"),
        default="torch",
        help="torch (default) or onnx: run an `ostnet export` folder (--onnx-dir) with onnxruntime on the CPU",
    )
    run.add_argument("--onnx-dir", metavar="DIR", type=Path, help="folder made by `ostnet export CKPT --format onnx`")
    run.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(handler=run_animate)


def options_from_args(args: argparse.Namespace):
    """The ``AnimateOptions`` for parsed command-line arguments."""
    from ostnet.face.crop import DEFAULT_MARGIN
    from ostnet.inference.pipeline import AnimateOptions, CropOptions

    crop = CropOptions(
        enabled=not args.no_crop,
        face_index=args.face_index,
        driving_face_index=args.driving_face_index,
        margin=DEFAULT_MARGIN if args.margin is None else args.margin,
        min_face=args.min_face,
        smooth_sigma=args.smooth,
    )
    return AnimateOptions(
        source=args.source,
        driving=args.driving,
        output=args.output,
        checkpoint=args.checkpoint,
        mode=args.mode,
        adapt_scale=args.adapt_scale,
        motion_smooth=args.motion_smooth,
        crop=crop,
        paste_back=args.paste_back,
        side_by_side=args.side_by_side,
        frames_dir=args.frames,
        batch_size=args.batch_size,
        device=args.device,
        dtype=args.dtype,
        runtime=args.runtime,
        onnx_dir=args.onnx_dir,
        max_frames=args.max_frames,
        crf=args.crf,
        progress=not args.quiet,
        controls=controls_from_args(args),
        pose_from=args.pose_from,
        expression_from=args.expression_from,
    )


def run_animate(args: argparse.Namespace) -> int:
    from ostnet.inference.pipeline import animate_video

    options = options_from_args(args)
    summary = animate_video(options)
    save_recipe(args, options.controls)
    for warning in summary.warnings:
        print(f"ostnet animate: warning: {warning}", file=sys.stderr)
    print(summary.line())
    return 0
