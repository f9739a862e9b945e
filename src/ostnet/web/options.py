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

SERVER_SIDE = (
    "source", "driving", "checkpoint", "output", "frames", "device", "batch_size", "quiet", "runtime", "onnx_dir",
)  # fmt: skip
CONTROLS_GROUP = "pose and expression controls"  # the title the control flags are declared under (its start)


@dataclass(frozen=True)
class WebOption:
    """One option as a control: ``dest`` (the parsed name), ``flag`` (``--paste-back``), ``kind`` (``bool``,
    ``choice``, ``int``, ``float``, ``text``), ``default`` (None: not set unless given), ``choices``, ``help``
    and the ``group`` it is shown in."""

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

    @property
    def is_control(self) -> bool:
        """A pose/expression control (PECHead models)."""
        return self.group.startswith(CONTROLS_GROUP)

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
        if self.kind == "text":
            return str(value).strip()
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


def command_parser(name: str) -> argparse.ArgumentParser:
    """The parser of ``ostnet NAME`` (``animate``, ``edit``), as the command line registers it."""
    import importlib

    sub = argparse.ArgumentParser(prog="ostnet").add_subparsers()
    importlib.import_module(f"ostnet.commands.{name}").register(sub)
    return sub.choices[name]


def animate_parser() -> argparse.ArgumentParser:
    return command_parser("animate")


def _kind(action: argparse.Action) -> str:
    if isinstance(action, argparse._StoreTrueAction):
        return "bool"
    if action.choices:
        return "choice"
    return {int: "int", float: "float"}.get(action.type, "text")


def animate_web_options() -> list[WebOption]:
    """Every ``ostnet animate`` option a visitor may set, in the command's order and groups."""
    return web_options(animate_parser())


def web_options(parser: argparse.ArgumentParser) -> list[WebOption]:
    """A command's options a visitor may set: all but the server's own and those naming files."""
    options = []
    for group in parser._action_groups:
        for action in group._group_actions:
            server_side = action.dest in SERVER_SIDE or action.type is Path or action.dest == "help"
            if not action.option_strings or server_side:
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


__all__ = [
    "CONTROLS_GROUP",
    "SERVER_SIDE",
    "WebOption",
    "animate_parser",
    "animate_web_options",
    "command_parser",
    "options_for",
    "web_options",
]
