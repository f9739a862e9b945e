"""The ``ostnet`` command line. Each subcommand lives in ``ostnet.commands.<name>`` and exposes
``register(subparsers)``; the handler it installs receives the parsed arguments and returns an exit code.

Side effects (thread counts, logging set-up) happen here, never at import of the library.
"""

from __future__ import annotations

import argparse
import importlib
import math
import signal
import sys
import threading

from ostnet import __version__
from ostnet.errors import OstnetError, Terminated, interrupt_exit_code

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
    _terminate_like_interrupt()
    try:
        check_finite(args)
        return int(args.handler(args) or 0)
    except OstnetError as exc:
        print(f"ostnet {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        what = "terminated" if isinstance(exc, Terminated) else "interrupted"
        print(f"ostnet {args.command}: {what}; no partial output was kept", file=sys.stderr)
        return interrupt_exit_code(exc)


def check_finite(args: argparse.Namespace) -> None:
    """No numeric option of any command may be NaN or infinite (``--smooth nan``, ``--margin inf``):
    argparse's ``type=float`` accepts both; every bound after it would compare False and let them through."""
    for name, value in vars(args).items():
        values = value if isinstance(value, list | tuple) else [value]
        bad = [v for v in values if isinstance(v, float) and not math.isfinite(v)]
        if bad:
            raise OstnetError(f"--{name.replace('_', '-')}: must be a finite number, got {bad[0]}")


def _terminate_like_interrupt() -> None:
    """SIGTERM raises ``Terminated`` (a KeyboardInterrupt) in the main thread: the clean-up that Ctrl-C runs
    (temporary files and folders removed, a training run's checkpoint kept) also runs on ``kill``."""

    def terminate(signum, frame) -> None:
        raise Terminated

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, terminate)


if __name__ == "__main__":
    sys.exit(main())
