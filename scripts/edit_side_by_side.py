"""A side-by-side video source | driving | plain animation | edited animation (PECHead checkpoints).

    OMP_NUM_THREADS=1 .venv/bin/python scripts/edit_side_by_side.py --checkpoint runs/real/final.safetensors \\
        --source ../shared/data/portraits/s42.jpg --driving ../shared/data/clips/d11.mp4 \\
        --output docs/media/edit_side_by_side.mp4 --max-frames 100 --yaw 15 --smile 0.5

The edit flags are those of ``ostnet animate`` (``--yaw``, ``--smile``, ``--pose``, ...). Both animations use the
same source, driving crops and model; only the controls differ.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from ostnet.checkpoint import load_checkpoint
from ostnet.inference.animator import Animator
from ostnet.inference.faces import CropOptions, DrivingVideo, prepare_source
from ostnet.inference.options import ControlOptions
from ostnet.inference.paste import side_by_side
from ostnet.inference.pipeline import batched
from ostnet.io.image import to_tensor, to_uint8
from ostnet.io.video import VideoWriter, probe_video
from ostnet.options import add_arguments, from_namespace


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, required=True)
    parser.add_argument("--source", type=Path, required=True)
    parser.add_argument("--driving", type=Path, required=True)
    parser.add_argument("--output", type=Path, required=True)
    parser.add_argument("--max-frames", type=int, default=100)
    parser.add_argument("--height", type=int, default=192, help="panel height in pixels")
    add_arguments(parser, ControlOptions)
    args = parser.parse_args()
    model = load_checkpoint(args.checkpoint)
    plain = Animator(model, device="cpu")
    edited = Animator(model, device="cpu", controls=from_namespace(ControlOptions, args).resolve())
    size = plain.image_size
    source = prepare_source(args.source, CropOptions(), size)
    for animator in (plain, edited):
        animator.set_source(to_tensor(source.crop)[None])
    info = probe_video(args.driving)
    total = min(info.num_frames, args.max_frames)
    with DrivingVideo(args.driving, CropOptions(), size, total) as video, VideoWriter(args.output, info.fps) as out:
        for batch in batched(video.crops(), 8):
            frames = to_tensor(np.stack([item.crop for item in batch]))
            a, b = to_uint8(plain.animate(frames).prediction), to_uint8(edited.animate(frames).prediction)
            for item, x, y in zip(batch, a, b, strict=True):
                out.write(side_by_side([source.crop, item.crop, x, y], args.height))
    print(f"{total} frames -> {args.output}")


if __name__ == "__main__":
    main()
