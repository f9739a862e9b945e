"""``ostnet prepare``: build a FOMM-layout dataset of face crops from raw videos (see ostnet.data.prepare)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from ostnet.face.crop import DEFAULT_MARGIN, DEFAULT_SHIFT


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "prepare",
        help="detect, track and crop faces in videos into a training dataset",
        description="Detect faces, follow them over time and write square crops as PNG frames in the "
        "FOMM/video-preprocessing layout DATASET/{train,test}/<id>#<video>#<start>#<end>.mp4/0000000.png, "
        "plus DATASET/manifest.csv. A video that cannot be read is reported and skipped.",
    )
    parser.add_argument("inputs", nargs="+", type=Path, metavar="VIDEO_OR_DIR")
    parser.add_argument("--output", "-o", type=Path, required=True, metavar="DATASET")
    parser.add_argument("--size", type=int, default=256, help="output frame side in pixels (256)")
    parser.add_argument("--min-face", type=int, default=64, help="ignore faces smaller than this (px, 64)")
    parser.add_argument("--min-frames", type=int, default=32, help="drop face tubes shorter than this (32)")
    parser.add_argument("--margin", type=float, default=DEFAULT_MARGIN, help="crop side = (1+M) x face size")
    parser.add_argument("--shift", type=float, default=DEFAULT_SHIFT, help="raise crop by this x face size")
    parser.add_argument(
        "--crop", choices=("static", "track"), default="static",
        help="static: one box per clip (VoxCeleb-like, default); track: smoothed per-frame box",
    )  # fmt: skip
    parser.add_argument("--detect-every", type=int, default=2, help="run the face detector every N frames")
    parser.add_argument("--model", choices=("full", "short", "auto"), default="full", help="MediaPipe model")
    parser.add_argument("--max-frames", type=int, default=None, help="use only the first N frames per video")
    parser.add_argument("--identity", default=None, help="identity for all inputs (default: file stem)")
    split = parser.add_mutually_exclusive_group()
    split.add_argument("--test-fraction", type=float, default=0.0, help="fraction of identities for test")
    split.add_argument(
        "--split-by-time", type=float, default=None, metavar="F",
        help="first F of every clip goes to train, the rest to test (e.g. 0.8)",
    )  # fmt: skip
    parser.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1), help="parallel videos")
    parser.add_argument(
        "--coefficients", action="store_true",
        help="also store each frame's face coefficients (head pose, expression, landmarks; MediaPipe face "
        "mesh) in <clip>/coefficients.npz, for PECHead training",
    )  # fmt: skip
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from ostnet.data.prepare import PrepareConfig, prepare_dataset
    from ostnet.errors import OstnetError

    if args.workers < 1:
        raise OstnetError(f"--workers must be at least 1, got {args.workers}")
    cfg = PrepareConfig(
        size=args.size, min_face=args.min_face, min_frames=args.min_frames, margin=args.margin,
        shift=args.shift, crop=args.crop, detect_every=args.detect_every, model=args.model,
        max_frames=args.max_frames, split_by_time=args.split_by_time, test_fraction=args.test_fraction,
        identity=args.identity, coefficients=args.coefficients,
    )  # fmt: skip
    result = prepare_dataset(args.inputs, args.output, cfg, workers=args.workers, progress=not args.quiet)
    by_split = {name: [r for r in result.records if r.split == name] for name in ("train", "test")}
    counts = ", ".join(
        f"{name}: {len(recs)} clips / {sum(r.num_frames for r in recs)} frames" for name, recs in by_split.items()
    )
    videos = len({r.source for r in result.records})
    print(f"prepared {videos} video(s) into {args.output} ({counts}); skipped {len(result.skipped)}")
    return 0
