"""``ostnet convert-fomm FOMM.pth.tar --output CKPT``: turn a FOMM checkpoint into an ostnet checkpoint."""

from __future__ import annotations

import argparse
from pathlib import Path

from ostnet.options import add_command, declared, option


@declared
class ConvertFommOptions:
    """The ``ostnet convert-fomm`` options (declared once; docs/cli.md)."""

    checkpoint: Path = option(positional=True, metavar="CHECKPOINT", help="FOMM checkpoint file (.pth.tar)")
    output: Path | None = option(
        None, aliases=("-o",), metavar="OUTPUT",
        help="output .safetensors file (default: the input's name with .safetensors, beside it)",
    )  # fmt: skip


OPTIONS = ConvertFommOptions


def register(subparsers: argparse._SubParsersAction) -> None:
    add_command(
        subparsers,
        OPTIONS,
        run,
        "convert-fomm",
        help="convert a FOMM checkpoint (.pth.tar) into an ostnet checkpoint",
        description=(
            "Read a First Order Motion Model checkpoint (e.g. vox-cpk.pth.tar), infer its architecture "
            "from the weight shapes and write a self-describing ostnet checkpoint (.safetensors). The "
            "discriminator and optimiser states are dropped."
        ),
    )


def default_output(checkpoint: Path) -> Path:
    """``vox-cpk.pth.tar`` -> ``vox-cpk.safetensors`` in the same folder."""
    name = checkpoint.name
    for suffix in (".pth.tar", ".pth", ".pt", ".tar"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
            break
    return checkpoint.with_name(f"{name}.safetensors")


def run(options: ConvertFommOptions) -> int:
    from ostnet.checkpoint import save_checkpoint
    from ostnet.convert_fomm import convert_fomm_checkpoint, describe
    from ostnet.io.paths import check_outputs
    from ostnet.models.ostnet import build_model, count_parameters

    output = options.output if options.output is not None else default_output(options.checkpoint)
    check_outputs({"the FOMM checkpoint": options.checkpoint}, {"--output": output})
    cfg, state = convert_fomm_checkpoint(options.checkpoint)
    model = build_model(cfg)
    model.load_state_dict(state, strict=True)
    saved = save_checkpoint(model, output)
    print(f"{describe(cfg, count_parameters(model))} -> {saved}")
    return 0
