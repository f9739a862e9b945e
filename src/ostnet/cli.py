"""The ``ostnet`` command line. Each subcommand lives in ``ostnet.commands.<name>`` and exposes
``register(subparsers)``; the handler it installs receives the parsed arguments and returns an exit code.

Side effects (thread counts, logging set-up) happen here, never at import of the library.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from ostnet import __version__
from ostnet.errors import OstnetError

COMMANDS = [
    "presets",
    "convert_fomm",
    "prepare",
    "synth",
    "train",
    "animate",
    "edit",
    "evaluate",
    "inspect",
    "export",
    "live",
    "demo",
    "web",
    "weights",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ostnet", description="OSTNet talking-head generation: train, animate, evaluate, demo."
    )
    parser.add_argument("--version", action="version", version=f"ostnet {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"ostnet.commands.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return 0
    try:
        return int(args.handler(args) or 0)
    except OstnetError as exc:
        print(f"ostnet {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"ostnet {args.command}: interrupted; no partial output was kept", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
