"""``ostnet evaluate``: score checkpoints on an evaluation protocol (paper Sec. 4.1, Tables 1-3)."""

from __future__ import annotations

import argparse

PROTOCOL_HELP = (
    "same-scale (DaGAN's 2083 same-identity pairs), different-scale (the same pairs, driving frame "
    "augmented, 2 per pair = 4166), reconstruction (FOMM: frame 0 drives every frame), cross-identity "
    "(no ground truth)"
)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "evaluate",
        help="evaluate checkpoints on a protocol (SSIM, PSNR, LPIPS, L1, AKD, AED, scale error)",
        description=(
            "Evaluate one or more checkpoints on a test split. Writes OUT/pairs.csv (the pair list, DaGAN's "
            "source,driving,frame format), OUT/<checkpoint>/per_pair.csv, OUT/results.{md,csv,json} and "
            "OUT/samples.png. Rerunning the same command resumes an interrupted run."
        ),
    )
    parser.add_argument(
        "--checkpoint",
        action="append",
        required=True,
        metavar="CKPT",
        help="an ostnet checkpoint (.safetensors); repeat to compare several",
    )
    parser.add_argument("--data", required=True, metavar="DATASET", help="dataset folder holding test/")
    parser.add_argument("--protocol", required=True, metavar="NAME", help=PROTOCOL_HELP)
    parser.add_argument("--output", required=True, metavar="DIR", help="folder for the results")
    parser.add_argument("--split", default="test", help="split folder to evaluate on (test)")
    parser.add_argument("--pairs", metavar="CSV", help="use this pair list (DaGAN format) instead of sampling")
    parser.add_argument(
        "--allow-outside", action="store_true", help="let --pairs name frames outside the dataset folder"
    )
    parser.add_argument("--num-pairs", type=int, default=2083, metavar="N", help="pairs to sample (2083)")
    parser.add_argument("--num-videos", type=int, default=100, metavar="N", help="videos to sample from (100)")
    parser.add_argument("--seed", type=int, default=0, help="sampling seed (0)")
    parser.add_argument("--delta", type=float, default=0.3, help="different-scale factor range 1 +- delta (0.3)")
    variants_help = "different-scale augmentations per pair (2: 2 x 2083 = 4166)"
    parser.add_argument("--variants", type=int, default=2, metavar="N", help=variants_help)
    parser.add_argument("--max-pairs", type=int, metavar="N", help="evaluate only the first N pairs")
    parser.add_argument(
        "--batch-size", type=int, default=None, metavar="B", help="pairs per batch (default: sized to the device)"
    )
    parser.add_argument("--device", default="cpu", help="cpu, cuda or mps (cpu)")
    parser.add_argument("--dtype", default="fp32", choices=["fp32", "bf16", "fp16"], help="autocast dtype")
    parser.add_argument("--face-detector", default="hog", choices=["hog", "cnn"], help="dlib face detector")
    parser.add_argument("--no-face-metrics", action="store_true", help="skip AKD/AED/CSIM/scale error")
    parser.add_argument("--lpips-alexnet", metavar="PTH", help="torchvision alexnet-owt-7be5be79.pth")
    parser.add_argument("--lpips-linear", metavar="PTH", help="lpips v0.1 alex.pth (linear layers)")
    parser.add_argument("--samples", type=int, default=8, metavar="N", help="pairs shown in samples.png (8)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    from ostnet.commands.control_options import add_motion_smooth_argument

    add_motion_smooth_argument(parser, "reconstruction protocol: animate each video in order with ")
    parser.set_defaults(handler=run)


def config_from_args(args: argparse.Namespace):
    """The EvalConfig described by parsed command-line arguments."""
    from ostnet.evaluation.evaluate import EvalConfig
    from ostnet.evaluation.face_metrics import FaceConfig
    from ostnet.evaluation.protocols import SamplingOptions

    sampling = SamplingOptions(args.num_pairs, args.num_videos, args.seed, args.delta, args.variants)
    return EvalConfig(
        data=args.data,
        protocol=args.protocol,
        output=args.output,
        checkpoints=tuple(args.checkpoint),
        split=args.split,
        pairs_csv=args.pairs,
        allow_outside=args.allow_outside,
        sampling=sampling,
        batch_size=args.batch_size,
        device=args.device,
        dtype=args.dtype,
        face_metrics=not args.no_face_metrics,
        face=FaceConfig(detector=args.face_detector),
        lpips_alexnet=args.lpips_alexnet,
        lpips_linear=args.lpips_linear,
        num_samples=args.samples,
        max_pairs=args.max_pairs,
        progress=not args.no_progress,
        motion_smooth=args.motion_smooth,
    )


def _check_numbers(args: argparse.Namespace) -> None:
    from ostnet.errors import OstnetError

    numbers = {"--num-pairs": args.num_pairs, "--num-videos": args.num_videos, "--variants": args.variants}
    if args.batch_size is not None:
        numbers["--batch-size"] = args.batch_size
    for flag, value in numbers.items():
        if value < 1:
            raise OstnetError(f"{flag} must be at least 1, got {value}")
    if args.max_pairs is not None and args.max_pairs < 1:
        raise OstnetError(f"--max-pairs must be at least 1, got {args.max_pairs}")
    if args.samples < 0:
        raise OstnetError(f"--samples must be 0 or more, got {args.samples}")
    if not 0 <= args.delta < 1:
        raise OstnetError(f"--delta must be in [0, 1) (factors 1 +- delta stay positive), got {args.delta}")


def run(args: argparse.Namespace) -> int:
    import sys
    from pathlib import Path

    from ostnet.evaluation.evaluate import run_evaluation
    from ostnet.evaluation.protocols import check_protocol

    check_protocol(args.protocol)
    _check_numbers(args)
    try:
        summaries = run_evaluation(config_from_args(args))
    except KeyboardInterrupt as exc:
        from ostnet.errors import Terminated, interrupt_exit_code

        kept = Path(args.output) / "<checkpoint>" / "per_pair.csv"
        what = "terminated" if isinstance(exc, Terminated) else "interrupted"
        print(f"ostnet evaluate: {what}; finished pairs are kept in {kept}; rerun to resume", file=sys.stderr)
        return interrupt_exit_code(exc)
    print((Path(args.output) / "results.md").read_text(encoding="utf-8"), end="")
    failed = sum(s.pairs_failed for s in summaries)
    if failed:
        print(f"{failed} pair(s) failed; see per_pair.csv for the reasons")
    return 0
