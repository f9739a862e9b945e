"""The ``ostnet animate`` options a web page offers, derived from the command's one declaration (its parser),
and the way back: the values a page sends become the same ``AnimateOptions`` the command line builds.

Options that belong to the server, not to a visitor (files, device, batch size, progress bar), are not
offered; the server fills them in.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SERVER_SIDE = ("source", "driving", "checkpoint", "output", "frames", "device", "batch_size", "quiet")


@dataclass(frozen=True)
class WebOption:
    """One option as a control: ``dest`` (the parsed name), ``flag`` (``--paste-back``), ``kind`` (``bool``,
    ``choice``, ``int``, ``float``), ``default``, ``choices``, ``help`` and the ``group`` it is shown in."""

    dest: str
    flag: str
    kind: str
    default: Any
    choices: tuple[str, ...]
    help: str
    group: str

    @property
    def label(self) -> str:
        return self.flag.removeprefix("--").replace("-", " ")


def animate_parser() -> argparse.ArgumentParser:
    """The ``ostnet animate`` parser, as the command line registers it."""
    from ostnet.commands import animate

    sub = argparse.ArgumentParser(prog="ostnet").add_subparsers()
    animate.register(sub)
    return sub.choices["animate"]


def _kind(action: argparse.Action) -> str:
    if isinstance(action, argparse._StoreTrueAction):
        return "bool"
    if action.choices:
        return "choice"
    return "int" if action.type is int else "float"


def animate_web_options() -> list[WebOption]:
    """Every ``ostnet animate`` option a visitor may set, in the command's order and groups."""
    parser = animate_parser()
    options = []
    for group in parser._action_groups:
        for action in group._group_actions:
            if not action.option_strings or action.dest in SERVER_SIDE or action.dest == "help":
                continue
            options.append(
                WebOption(
                    dest=action.dest,
                    flag=max(action.option_strings, key=len),
                    kind=_kind(action),
                    default=action.default,
                    choices=tuple(action.choices or ()),
                    help=action.help or "",
                    group=group.title or "",
                )
            )
    return options


def options_for(values: dict[str, Any], server: dict[str, Any]) -> Any:
    """The ``AnimateOptions`` for a page's ``values`` (by ``dest``) and the server's own (source, driving,
    output, device, ...): the parser's defaults, overlaid, through the command line's own conversion."""
    from ostnet.commands.animate import options_from_args

    args = animate_parser().parse_args(["--source", "-", "--driving", "-", "--checkpoint", "-", "--output", "-"])
    for key, value in {**values, **server}.items():
        setattr(args, key, Path(value) if key in ("source", "driving", "output", "checkpoint") else value)
    return options_from_args(args)


__all__ = ["SERVER_SIDE", "WebOption", "animate_parser", "animate_web_options", "options_for"]
