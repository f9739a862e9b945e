"""``ostnet prepare``: build a FOMM-layout dataset of face crops from raw videos (see ostnet.data.prepare)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ostnet.data.prepare import PrepareConfig
from ostnet.options import add_command, declared, nested, option


@declared
class PrepareOptions:
    """The ``ostnet prepare`` options (declared once; docs/cli.md): the inputs, the dataset folder, how the
    work runs, and the ``PrepareConfig`` of the crops."""

    inputs: tuple[Path, ...] = option(positional=True, metavar="VIDEO_OR_DIR", help="videos or folders of videos")
    output: Path = option(aliases=("-o",), metavar="DATASET", help="dataset folder to write")
    config: PrepareConfig = nested(PrepareConfig)
    workers: int | None = option(
        None, metavar="N", help="videos prepared in parallel (default: min(4, CPU cores))", bounds=(1, 256)
    )
    progress: bool = option(True, flag="--quiet", help="no progress bar")


OPTIONS = PrepareOptions


def register(subparsers: argparse._SubParsersAction) -> None:
    add_command(
        subparsers,
        OPTIONS,
        run,
        "prepare",
        help="detect, track and crop faces in videos into a training dataset",
        description="Detect faces, follow them over time and write square crops as PNG frames in the "
        "FOMM/video-preprocessing layout DATASET/{train,test}/<id>#<video>#<start>#<end>.mp4/0000000.png, "
        "plus DATASET/manifest.csv. A video that cannot be read is reported and skipped.",
    )


def run(options: PrepareOptions) -> int:
    import os

    from ostnet.data.prepare import prepare_dataset

    workers = options.workers or min(4, os.cpu_count() or 1)
    result = prepare_dataset(options.inputs, options.output, options.config, workers=workers, progress=options.progress)
    by_split = {name: [r for r in result.records if r.split == name] for name in ("train", "test")}
    counts = ", ".join(
        f"{name}: {len(recs)} clips / {sum(r.num_frames for r in recs)} frames" for name, recs in by_split.items()
    )
    videos = len({r.source for r in result.records})
    print(f"prepared {videos} video(s) into {options.output} ({counts}); skipped {len(result.skipped)}")
    return 0
