"""End-to-end ``ostnet animate`` benchmark (issue 4): frames per second of the whole pipeline, split into
decode, face detection + crop, model and compose + encode, at the model's 256x256 on CPU.

Usage:  python benchmarks/animate_benchmark.py [--source IMG] [--driving VIDEO] [--preset ostnet-vox-256]
                                                [--frames 24] [--batch-size 8] [--threads 2] [--dtype fp32]

The model is the preset with random weights (the speed does not depend on the weights). The defaults use the
sample material in ../shared/data (portrait s9, clip d3 with audio). Stage times are wall-clock seconds
measured inside ``animate_video``; "other" is start-up (checkpoint, source detection and crop, set_source,
face-detector set-up, probing). Prints a markdown table.
"""

from __future__ import annotations

import argparse
import platform
import tempfile
from pathlib import Path

import torch

from ostnet.inference.animator import Animator
from ostnet.inference.pipeline import AnimateOptions, animate_video
from ostnet.models.ostnet import build_model
from ostnet.models.precision import PRECISIONS

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def run(args: argparse.Namespace) -> None:
    torch.manual_seed(0)
    model = build_model(args.preset)
    mode = "relative" if args.mode == "best-frame" else args.mode
    animator = Animator(model, device=args.device, dtype=args.dtype, mode=mode)
    with tempfile.TemporaryDirectory() as tmp:
        options = AnimateOptions(
            source=args.source,
            driving=args.driving,
            output=Path(tmp) / "bench.mp4",
            mode=args.mode,
            paste_back=args.paste_back,
            batch_size=args.batch_size,
            max_frames=args.frames,
            progress=False,
        )
        summary = animate_video(options, animator=animator)
    times = summary.times
    stages = [
        ("decode", times.decode),
        ("detect + crop", times.detect_crop),
        ("model", times.model),
        ("compose + encode", times.encode),
    ]
    other = summary.seconds - sum(seconds for _, seconds in stages)
    n = summary.frames
    size = model.cfg.image_size
    print(
        f"machine: {platform.processor() or platform.machine()}, torch {torch.__version__}, device "
        f"{animator.device}, dtype {args.dtype}, {torch.get_num_threads()} threads, batch {args.batch_size}, "
        f"preset {args.preset} ({size}x{size}), mode {summary.mode}, {n} frames of {args.driving.name}"
    )
    print()
    print("| stage | total (s) | ms / frame | frames/s (stage alone) | share |")
    print("|---|---|---|---|---|")
    for name, seconds in [*stages, ("other (start-up)", other)]:
        rate = f"{n / seconds:.1f}" if seconds > 0 and not name.startswith("other") else "-"
        print(
            f"| {name} | {seconds:.2f} | {1000 * seconds / n:.1f} | {rate} | {100 * seconds / summary.seconds:.0f} % |"
        )
    print(
        f"| **end to end** | {summary.seconds:.2f} | {1000 * summary.seconds / n:.1f} | "
        f"**{n / summary.seconds:.2f}** | 100 % |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=SHARED / "portraits" / "s9.jpg")
    parser.add_argument("--driving", type=Path, default=SHARED / "clips" / "d3.mp4")
    parser.add_argument("--preset", default="ostnet-vox-256")
    parser.add_argument("--mode", default="auto", choices=("auto", "anchor-free", "relative", "absolute", "best-frame"))
    parser.add_argument("--frames", type=int, default=24, help="driving frames to animate")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="fp32", choices=PRECISIONS)
    parser.add_argument("--paste-back", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    run(args)


if __name__ == "__main__":
    main()
