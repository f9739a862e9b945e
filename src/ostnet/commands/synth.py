"""``ostnet synth``: write a synthetic talking-head dataset (FOMM layout plus synthetic.json ground truth)."""

from __future__ import annotations

import argparse
import time


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "synth",
        help="write a synthetic talking-head dataset with known face scale",
        description=(
            "Draw procedural talking heads and write them as root/{train,test}/<id>#<video>#000000#<n>.mp4/"
            "0000000.png with root/synthetic.json holding each frame's true scale and face centre."
        ),
    )
    parser.add_argument("--output", required=True, metavar="DIR", help="dataset folder to create")
    parser.add_argument("--identities", type=int, default=8, metavar="N", help="number of people (8)")
    parser.add_argument("--videos", type=int, default=2, metavar="N", help="videos per person (2)")
    parser.add_argument("--test-identities", type=int, default=2, metavar="N", help="people in test/ (2)")
    parser.add_argument("--size", type=int, default=64, metavar="S", help="frame size in pixels (64)")
    parser.add_argument("--frames", type=int, default=32, metavar="F", help="frames per video (32)")
    parser.add_argument(
        "--scale-range",
        type=float,
        nargs=2,
        default=(0.6, 1.0),
        metavar=("LOW", "HIGH"),
        help="range of each video's face scale (0.6 1.0)",
    )
    parser.add_argument("--motion", type=float, default=1.0, metavar="M", help="head-motion factor (1)")
    parser.add_argument(
        "--camera", type=float, default=0.0, metavar="A", help="camera-pan amplitude, frame units (0: still)"
    )
    parser.add_argument(
        "--texture", type=float, default=0.0, metavar="T", help="shading-pattern strength in [0, 1) (0: flat colours)"
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed (0)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing dataset folder")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from ostnet.data.synthetic import write_synthetic_dataset

    start = time.perf_counter()
    root = write_synthetic_dataset(
        args.output,
        num_identities=args.identities,
        videos_per_identity=args.videos,
        num_frames=args.frames,
        size=args.size,
        scale_range=(args.scale_range[0], args.scale_range[1]),
        seed=args.seed,
        test_identities=args.test_identities,
        motion=args.motion,
        camera=args.camera,
        texture=args.texture,
        overwrite=args.overwrite,
    )
    num_videos = args.identities * args.videos
    print(
        f"wrote {num_videos} videos x {args.frames} frames at {args.size}x{args.size} to {root} "
        f"({args.identities - args.test_identities} train / {args.test_identities} test identities, "
        f"{time.perf_counter() - start:.1f} s); ground truth in {root / 'synthetic.json'}"
    )
    return 0
