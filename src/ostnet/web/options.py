"""The options a web page offers, derived from the commands' declarations (``ostnet.inference.options``:
``AnimateOptions`` for the Animate tab, ``EditOptions`` for the Edit tab), and the way back: the values a page
sends become the same options object the command line builds (``ostnet.options.from_values``).

Options that belong to the server, not to a visitor (files, device, batch size, progress bar), are declared
``web=False`` and are not offered; the server fills them in. A page names an option by its ``dest`` (its flag
without dashes: ``paste_back``, ``no_crop``, ``smooth``), as the command line's namespace does.
"""

from __future__ import annotations

import argparse
from typing import Any

from ostnet.inference.options import CONTROLS, AnimateOptions, EditOptions
from ostnet.options import OptionParser, OptionSpec, add_arguments, from_values, specs, value_from_page


def web_options(cls: type) -> list[OptionSpec]:
    """The options of the declaration ``cls`` a visitor may set, in the command's order and groups."""
    return [spec for spec in specs(cls) if spec.web]


def animate_web_options() -> list[OptionSpec]:
    """Every ``ostnet animate`` option a visitor may set."""
    return web_options(AnimateOptions)


def edit_web_options() -> list[OptionSpec]:
    """Every ``ostnet edit`` option a visitor may set."""
    return web_options(EditOptions)


def is_control(spec: OptionSpec) -> bool:
    """A pose/expression control (PECHead models)."""
    return spec.group == CONTROLS


def label(spec: OptionSpec) -> str:
    """What the page calls an option: its flag in words (``--paste-back`` -> ``paste back``)."""
    return spec.dest.replace("_", " ")


def page_values(cls: type, values: dict[str, Any]) -> dict[str, Any]:
    """A page's ``{dest: value}`` converted and checked as the command line would take them (empty = the
    default); ``OstnetError`` (one line) for a value the command line refuses."""
    declared = {spec.dest: spec for spec in web_options(cls)}
    return {key: value_from_page(declared[key], value) for key, value in values.items()}


def options_for(values: dict[str, Any], server: dict[str, Any], cls: type = AnimateOptions) -> Any:
    """The options object of ``cls`` (default: ``AnimateOptions``) for a page's ``values`` and the server's own
    (``source``, ``driving``, ``output``, ``device``, ``quiet``, ... by ``dest``); options not given keep the
    command's defaults."""
    return from_values(cls, {**page_values(cls, values), **server})


def animate_parser() -> argparse.ArgumentParser:
    """The ``ostnet animate`` command line (made from the same declaration)."""
    parser = OptionParser(prog="ostnet animate")
    add_arguments(parser, AnimateOptions)
    return parser


__all__ = [
    "animate_parser",
    "animate_web_options",
    "edit_web_options",
    "is_control",
    "label",
    "options_for",
    "page_values",
    "web_options",
]
