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
from pathlib import Path

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
    declaration (its module's ``OPTIONS``) or, for a command without one yet, from its parser.
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
        declared = getattr(importlib.import_module(f"ostnet.commands.{name}"), "OPTIONS", None)
        table = markdown_table(declared) if declared is not None else _parser_table(sub.choices[command])
        about = sub.choices[command].description or next(a.help for a in sub._choices_actions if a.dest == command)
        parts += ["", f"## `ostnet {command}`", "", " ".join(about.split()), "", table]
    return "\n".join(parts) + "\n"


def _parser_table(parser: argparse.ArgumentParser) -> str:
    rows = ["| option | type | default | range | description |", "|---|---|---|---|---|"]
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        names = ", ".join(f"`{n}`" for n in action.option_strings) or f"`{action.dest}` (positional)"
        if action.nargs == 0:
            kind, default = "flag", ""
        else:
            kind = " \\| ".join(map(str, action.choices)) if action.choices else _type_word(action.type)
            kind += " (repeatable)" if isinstance(action, argparse._AppendAction) else ""
            required = action.required or not action.option_strings
            default = "required" if required else ("" if action.default in (None, [], "") else f"`{action.default}`")
        text = (action.help or "").replace("|", "\\|")
        rows.append(f"| {names} | {kind} | {default} |  | {text} |")
    return "\n".join(rows)


def _type_word(tp) -> str:
    return {int: "integer", float: "finite number", Path: "path"}.get(tp, "string")


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
