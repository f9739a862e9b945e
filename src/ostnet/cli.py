"""The ``ostnet`` command line. Each subcommand lives in ``ostnet.commands.<name>`` and exposes
``register(subparsers)``; the handler it installs receives the parsed arguments and returns an exit code.

Side effects (thread counts, logging set-up) happen here, never at import of the library.
"""

from __future__ import annotations

import argparse
import importlib
import signal
import sys
import threading

from ostnet import __version__
from ostnet.errors import OstnetError, Terminated, interrupt_exit_code
from ostnet.options import OptionParser, UsageError, markdown_table

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
    parser = OptionParser(prog="ostnet", description="OSTNet talking-head generation: train, animate, evaluate, demo.")
    parser.add_argument("--version", action="version", version=f"ostnet {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"ostnet.commands.{name}").register(sub)
    return parser


def reference_markdown() -> str:
    """docs/cli.md: every command and every option (type, choices, default, bounds, help), from each command's
    declaration (its module's ``OPTIONS``, or ``SUBCOMMANDS`` for ``weights install|list``).
    ``python scripts/make_cli_docs.py`` writes it; a test fails when the file is stale."""
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    parts = [
        "# The `ostnet` command line",
        "",
        "Made by `python scripts/make_cli_docs.py` from the commands' option declarations (`ostnet.options`); "
        "do not edit by hand. `ostnet COMMAND --help` says the same. A bad value is refused with one line "
        "naming the option and exit status 2. `--device auto` (every command's default) is the best available: "
        "cuda, else mps, else cpu.",
    ]
    for name in COMMANDS:
        command = name.replace("_", "-")
        module = importlib.import_module(f"ostnet.commands.{name}")
        about = sub.choices[command].description or next(a.help for a in sub._choices_actions if a.dest == command)
        parts += ["", f"## `ostnet {command}`", "", " ".join(about.split())]
        for action, declared in getattr(module, "SUBCOMMANDS", {}).items():  # ostnet weights install|list
            parts += ["", f"### `ostnet {command} {action}`", "", markdown_table(declared)]
        if hasattr(module, "OPTIONS"):
            parts += ["", markdown_table(module.OPTIONS)]
    return "\n".join(parts) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except UsageError as exc:  # a bad flag or value: one line, exit 2
        print(f"{exc.prog}: error: {exc}", file=sys.stderr)
        return 2
    if not getattr(args, "handler", None):
        parser.print_help()
        return 0
    _terminate_like_interrupt()
    try:
        return int(args.handler(args) or 0)
    except OstnetError as exc:
        print(f"ostnet {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        what = "terminated" if isinstance(exc, Terminated) else "interrupted"
        print(f"ostnet {args.command}: {what}; no partial output was kept", file=sys.stderr)
        return interrupt_exit_code(exc)


def _terminate_like_interrupt() -> None:
    """SIGTERM raises ``Terminated`` (a KeyboardInterrupt) in the main thread: the clean-up that Ctrl-C runs
    (temporary files and folders removed, a training run's checkpoint kept) also runs on ``kill``."""

    def terminate(signum, frame) -> None:
        raise Terminated

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, terminate)


if __name__ == "__main__":
    sys.exit(main())
