"""``ostnet synth``: write a synthetic talking-head dataset (FOMM layout plus synthetic.json ground truth)."""

from __future__ import annotations

import argparse
import dataclasses
import time

from ostnet.data.synthetic import SyntheticSpec
from ostnet.options import add_command, declared, nested, option


@declared
class SynthOptions:
    """The ``ostnet synth`` options (declared once; docs/cli.md): the folder and the ``SyntheticSpec``."""

    output: str = option(metavar="DIR", help="dataset folder to create")
    spec: SyntheticSpec = nested(SyntheticSpec)
    overwrite: bool = option(False, help="replace an existing dataset folder")


OPTIONS = SynthOptions


def register(subparsers: argparse._SubParsersAction) -> None:
    add_command(
        subparsers,
        OPTIONS,
        run,
        "synth",
        help="write a synthetic talking-head dataset with known face scale",
        description=(
            "Draw procedural talking heads and write them as root/{train,test}/<id>#<video>#000000#<n>.mp4/"
            "0000000.png with root/synthetic.json holding each frame's true scale and face centre."
        ),
    )


def run(options: SynthOptions) -> int:
    from ostnet.data.synthetic import write_synthetic_dataset

    spec = options.spec
    start = time.perf_counter()
    root = write_synthetic_dataset(options.output, **dataclasses.asdict(spec), overwrite=options.overwrite)
    print(
        f"wrote {spec.num_identities * spec.videos_per_identity} videos x {spec.num_frames} frames at "
        f"{spec.size}x{spec.size} to {root} ({spec.num_identities - spec.test_identities} train / "
        f"{spec.test_identities} test identities, {time.perf_counter() - start:.1f} s); ground truth in "
        f"{root / 'synthetic.json'}"
    )
    return 0
