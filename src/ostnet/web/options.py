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

from ostnet.errors import OstnetError

SERVER_SIDE = ("source", "driving", "checkpoint", "output", "frames", "device", "batch_size", "quiet")


@dataclass(frozen=True)
class WebOption:
    """One option as a control: ``dest`` (the parsed name), ``flag`` (``--paste-back``), ``kind`` (``bool``,
    ``choice``, ``int``, ``float``), ``default`` (None: not set unless given), ``choices``, ``help`` and the
    ``group`` it is shown in."""

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

    def convert(self, value: Any) -> Any:
        """A value from a page or an API call as the command line would parse it; empty = the default.
        ``OstnetError`` for a value the command line would refuse."""
        if self.kind == "bool":
            return bool(value)
        if value is None or (isinstance(value, str) and not value.strip()):
            return self.default
        if self.kind == "choice":
            if value not in self.choices:
                raise OstnetError(f"{self.flag}: {value!r} is not one of {', '.join(self.choices)}")
            return value
        number = int if self.kind == "int" else float
        try:
            converted = number(value.strip() if isinstance(value, str) else value)
        except (TypeError, ValueError):
            converted = None
        if converted is None or (number is int and converted != float(value)):
            raise OstnetError(
                f"{self.flag}: expected {'a whole number' if number is int else 'a number'}, got {value!r}"
            )
        return converted


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
    """The ``AnimateOptions`` for a page's ``values`` (by ``dest``, converted as the command line converts
    them) and the server's own (source, driving, output, device, ...), through the command line's own
    ``options_from_args``; options not given keep the command's defaults."""
    from ostnet.commands.animate import options_from_args

    args = animate_parser().parse_args(["--source", "-", "--driving", "-", "--checkpoint", "-", "--output", "-"])
    declared = {option.dest: option for option in animate_web_options()}
    for key, value in values.items():
        setattr(args, key, declared[key].convert(value))
    for key, value in server.items():
        setattr(args, key, Path(value) if key in ("source", "driving", "output", "checkpoint") else value)
    return options_from_args(args)


__all__ = ["SERVER_SIDE", "WebOption", "animate_parser", "animate_web_options", "options_for"]
