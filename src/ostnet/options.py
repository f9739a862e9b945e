"""Declare each option once: typed dataclass fields from which the command line, the web controls, the docs
table and the value checks are all derived (docs/design.md, "Options are declared once").

Declaring (a frozen dataclass per command, e.g. ``ostnet.inference.options.AnimateOptions``)::

    @dataclass(frozen=True)
    class CropOptions:
        margin: float = option(0.7, help="crop side = (1 + margin) x face size", bounds=(0.0, 4.0))
        smooth_sigma: float = option(3.0, flag="--smooth", metavar="SIGMA", help="...", bounds=(0.0, 100.0))
        enabled: bool = option(True, flag="--no-crop", help="inputs are already face crops")  # flag turns it off

        def __post_init__(self) -> None:
            check_options(self)  # the same checks for Python callers, the CLI and the web app

    @dataclass(frozen=True)
    class AnimateOptions:
        source: Path = option(help="portrait image", metavar="IMAGE", group="inputs and outputs")  # required
        mode: Mode = option("auto", help="...")  # a Literal type gives the choices
        crop: CropOptions = nested(CropOptions)  # its options are flags of the same command
        ...

* ``option(default, *, help, bounds, flag, metavar, group, required, web, title)``: one field. No default = required
  (in Python and on the command line); ``required=True`` with a default = required on the command line only.
  Supported types: ``bool``, ``int``, ``float``, ``str``, ``Path``, ``Literal[...]`` of strings, any of those
  ``| None``, and ``tuple[str, ...]`` / ``tuple[Path, ...]`` (a repeatable flag).
* ``bounds=(lo, hi)``: inclusive, ``None`` = open; every ``int``/``float`` option should have them. Floats must
  also be finite: ``nan`` and ``inf`` are refused everywhere.
* ``flag``: the command-line name (default ``--field-name``); for a ``bool`` defaulting to True it is the flag
  that switches it off (``--no-crop``, ``--quiet``). ``aliases``: more names (``("-o",)``); ``positional=True``:
  an argument without a flag (a ``tuple[X, ...]`` one takes one or more values); ``tuple[X, X]``: a flag followed
  by that many values. ``group``: the heading in ``--help``, the docs and the web
  form. ``web=False``: not a web control (file paths, devices, progress bars).

Reading a declaration (for a front end: Gradio, docs, ...): ``specs(cls)`` yields one ``OptionSpec`` per
option, nested declarations flattened, with ``name``, ``path`` (attribute path from ``cls``), ``type`` (the
base type: bool, int, float, str or Path), ``optional``, ``default``, ``required``, ``help``, ``choices``
(tuple or None), ``bounds`` ((lo, hi) or None), ``group``, ``flag``, ``metavar``, ``repeat``, ``web`` and ``title``
(a label for people, default: the name with spaces);
``OptionSpec.check(value)`` raises ``OstnetError`` with one line, ``OptionSpec.parse(text)`` converts and checks
a string.

Deriving: ``add_arguments(parser, cls)`` adds the argparse flags (converting and checking each value, so that a
bad one is a one-line usage error, exit 2), ``from_namespace(cls, args)`` builds the dataclass from the parsed
arguments, ``check_options(obj)`` checks a built one, ``markdown_table(cls)`` renders the docs table.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import types
import typing
from collections.abc import Callable, Iterator, Mapping
from dataclasses import MISSING, dataclass
from pathlib import Path
from typing import Any, Literal

from ostnet.errors import OstnetError

_KEY = "ostnet.option"
BASE_TYPES = (bool, int, float, str, Path)


@dataclass(frozen=True)
class _Meta:
    help: str
    bounds: tuple[float | None, float | None] | None
    flag: str | None
    metavar: str | tuple[str, ...] | None
    group: str | None
    required: bool
    web: bool
    title: str | None = None
    positional: bool = False
    aliases: tuple[str, ...] = ()
    nested: bool = False


def option(
    default: Any = MISSING,
    *,
    help: str = "",
    bounds: tuple[float | None, float | None] | None = None,
    flag: str | None = None,
    metavar: str | tuple[str, ...] | None = None,
    group: str | None = None,
    required: bool = False,
    web: bool = True,
    title: str | None = None,
    positional: bool = False,
    aliases: tuple[str, ...] = (),
) -> Any:
    """A declared option: a dataclass field carrying its help text, bounds and command-line name."""
    required = required or (default is MISSING and not positional)
    meta = _Meta(help, bounds, flag, metavar, group, required, web, title, positional, aliases)
    return dataclasses.field(default=default, metadata={_KEY: meta})


def option_bounds(f: dataclasses.Field) -> tuple[float | None, float | None] | None:
    """The ``bounds`` of a dataclass field declared with ``option`` (None for others)."""
    meta: _Meta | None = f.metadata.get(_KEY)
    return meta.bounds if meta is not None else None


def nested(cls: type) -> Any:
    """A field holding another declaration whose options belong to the same command."""
    meta = _Meta("", None, None, None, None, False, True, nested=True)
    return dataclasses.field(default_factory=cls, metadata={_KEY: meta})


@dataclass(frozen=True)
class OptionSpec:
    """One declared option, resolved (see the module docstring)."""

    name: str
    path: tuple[str, ...]
    type: type
    optional: bool
    default: Any
    required: bool
    help: str
    choices: tuple[str, ...] | None
    bounds: tuple[float | None, float | None] | None
    group: str | None
    flag: str
    metavar: str | tuple[str, ...] | None
    repeat: bool
    web: bool
    title: str
    nargs: int | None = None  # a fixed-length tuple[X, X]: that many values after one flag
    positional: bool = False
    aliases: tuple[str, ...] = ()

    @property
    def dest(self) -> str:
        """The argparse destination: the attribute path joined by ``__``."""
        return "__".join(self.path)

    def check(self, value: Any, label: str | None = None) -> Any:
        """``value`` if it has this option's type, choices and bounds; else ``OstnetError`` (one line naming
        ``label``, default: the flag)."""
        label = label or self.flag
        if value is None and (self.optional or (self.repeat and not self.required)):
            return value
        if self.repeat or self.nargs:
            if not isinstance(value, tuple) or (self.nargs and len(value) != self.nargs):
                raise OstnetError(f"{label} must be a tuple of {self.nargs or 'any number of'} values, got {value!r}")
            return tuple(self._check_one(v, label) for v in value)
        return self._check_one(value, label)

    def _check_one(self, value: Any, label: str) -> Any:
        tp = self.type
        if tp is bool:
            ok = isinstance(value, bool)
        elif tp is int:
            ok = isinstance(value, int) and not isinstance(value, bool)
        elif tp is float:
            ok = isinstance(value, int | float) and not isinstance(value, bool)
        elif tp is Path:
            ok = isinstance(value, str | os.PathLike)
        else:
            ok = isinstance(value, str)
        if not ok:
            raise OstnetError(f"{label} must be {_type_name(self)}, got {value!r}")
        if tp is float and not math.isfinite(value):
            raise OstnetError(f"{label} must be a finite number, got {value}")
        if self.choices is not None and value not in self.choices:
            raise OstnetError(f"unknown {self.title} {value!r}; choose one of: {', '.join(self.choices)}")
        if self.bounds is not None and tp in (int, float) and not _inside(value, self.bounds):
            raise OstnetError(f"{label} must be {_within(self.bounds)}, got {value}")
        return value

    def parse(self, text: str, label: str | None = None) -> Any:
        """Convert one command-line / form string to this option's type and check it."""
        label = label or self.flag
        try:
            value = self.type(text) if self.type in (int, float, Path) else text
        except ValueError:
            raise OstnetError(f"{label} must be {_type_name(self)}, got {text!r}") from None
        return self._check_one(value, label)


def _inside(value: float, bounds: tuple[float | None, float | None]) -> bool:
    lo, hi = bounds
    return (lo is None or value >= lo) and (hi is None or value <= hi)


def _num(value: float | None) -> str:
    return str(value) if isinstance(value, int) else f"{value:g}"


def _range(bounds: tuple[float | None, float | None]) -> str:
    """``[0, 51]``, ``>= 1`` or ``<= 5``."""
    lo, hi = bounds
    if lo is None or hi is None:
        return f">= {_num(lo)}" if hi is None else f"<= {_num(hi)}"
    return f"[{_num(lo)}, {_num(hi)}]"


def _within(bounds: tuple[float | None, float | None]) -> str:
    """``in [0, 51]``, ``at least 1`` or ``at most 5``."""
    lo, hi = bounds
    if lo is None or hi is None:
        return f"at least {_num(lo)}" if hi is None else f"at most {_num(hi)}"
    return f"in [{_num(lo)}, {_num(hi)}]"


def _type_name(spec: OptionSpec) -> str:
    if spec.choices is not None:
        return "one of " + ", ".join(spec.choices)
    return {bool: "true or false", int: "an integer", float: "a finite number", Path: "a path"}.get(
        spec.type, "a string"
    )


def _resolve(tp: Any) -> tuple[type, bool, tuple[str, ...] | None, bool, int | None]:
    """(base type, optional, choices, repeat, nargs) of an annotation."""
    optional = False
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        optional = len(args) < len(typing.get_args(tp))
        if len(args) != 1:
            raise TypeError(f"unsupported option type {tp}")
        tp = args[0]
    repeat, nargs = False, None
    if typing.get_origin(tp) is tuple:
        args = typing.get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            tp, repeat = args[0], True
        elif len(set(args)) == 1:
            tp, nargs = args[0], len(args)
        else:
            raise TypeError(f"unsupported option type {tp}: use tuple[X, ...] or tuple[X, X]")
    choices = None
    if typing.get_origin(tp) is Literal:
        choices = tuple(typing.get_args(tp))
        if not all(isinstance(c, str) for c in choices):
            raise TypeError(f"Literal options must be strings, got {tp}")
        tp = str
    if tp not in BASE_TYPES:
        raise TypeError(f"unsupported option type {tp}")
    return tp, optional, choices, repeat, nargs


def specs(cls: type, _path: tuple[str, ...] = ()) -> Iterator[OptionSpec]:
    """Every option of the declaration ``cls`` (nested ones flattened), in declaration order."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        meta: _Meta | None = f.metadata.get(_KEY)
        if meta is None:
            continue  # a plain field (not an option), e.g. a callback set from Python
        if meta.nested:
            yield from specs(hints[f.name], (*_path, f.name))
            continue
        tp, optional, choices, repeat, nargs = _resolve(hints[f.name])
        default = f.default if f.default is not MISSING else None
        flag = meta.flag or (f.name if meta.positional else "--" + f.name.replace("_", "-"))
        yield OptionSpec(f.name, (*_path, f.name), tp, optional, default, meta.required, meta.help, choices,
                         meta.bounds, meta.group, flag, meta.metavar, repeat, meta.web,
                         meta.title or f.name.replace("_", " "), nargs, meta.positional, meta.aliases)  # fmt: skip


def check_options(obj: Any) -> None:
    """Check every option of a built declaration (call it from ``__post_init__``); nested ones check
    themselves."""
    for f in dataclasses.fields(obj):
        meta: _Meta | None = f.metadata.get(_KEY)
        if meta is None or meta.nested:
            continue
        spec = next(s for s in specs(type(obj)) if s.path == (f.name,))
        spec.check(getattr(obj, f.name))


def _help_text(spec: OptionSpec) -> str:
    text = spec.help
    if spec.bounds is not None:
        text += f"; {_range(spec.bounds)}"
    if spec.type is not bool and spec.default is not None and not spec.required:
        text += f" (default: {spec.default})"
    return text


def add_arguments(parser: argparse.ArgumentParser, cls: type) -> None:
    """Add one flag per option of ``cls`` (grouped by ``group``); values are converted and checked."""
    groups: dict[str | None, Any] = {None: parser}
    for spec in specs(cls):
        if spec.group not in groups:
            groups[spec.group] = parser.add_argument_group(spec.group)
        target = groups[spec.group]
        kwargs: dict[str, Any] = {"dest": spec.dest, "help": _help_text(spec)}
        if spec.type is bool:
            action = "store_false" if spec.default is True else "store_true"
            target.add_argument(spec.flag, action=action, **kwargs)
            continue
        kwargs["type"] = _converter(spec)
        kwargs["metavar"] = spec.metavar or _metavar(spec)
        if spec.positional:
            del kwargs["dest"]  # argparse takes the positional's name as its destination
            target.add_argument(spec.dest, nargs="+" if spec.repeat else None, **kwargs)
            continue
        if spec.repeat:
            kwargs["action"] = "append"
        else:
            kwargs["default"] = spec.default
            kwargs["nargs"] = spec.nargs
        target.add_argument(spec.flag, *spec.aliases, required=spec.required, **kwargs)


def _metavar(spec: OptionSpec) -> str:
    if spec.choices:
        return "{" + ",".join(spec.choices) + "}"
    return {int: "N", float: "X", Path: "PATH"}.get(spec.type, "TEXT")


def _converter(spec: OptionSpec):
    def convert(text: str) -> Any:
        try:
            return spec.parse(text)
        except OstnetError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None  # the message names the flag itself

    convert.__name__ = spec.type.__name__  # argparse names it in "invalid <name> value" messages
    return convert


def from_namespace(cls: type, args: argparse.Namespace) -> Any:
    """The declaration ``cls`` built from arguments parsed by a parser set up with ``add_arguments``."""
    return from_values(cls, vars(args))


def from_values(cls: type, values: Mapping[str, Any], _path: tuple[str, ...] = ()) -> Any:
    """The declaration ``cls`` from ``{OptionSpec.dest: value}``; options not in ``values`` keep their
    defaults. Checked as it is built (``OstnetError``, one line)."""
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for f in dataclasses.fields(cls):
        meta: _Meta | None = f.metadata.get(_KEY)
        if meta is None:
            continue
        if meta.nested:
            kwargs[f.name] = from_values(hints[f.name], values, (*_path, f.name))
            continue
        dest = "__".join((*_path, f.name))
        value = values.get(dest)
        if value is not None or (dest in values and f.default is None):  # argparse's None: not given
            kwargs[f.name] = tuple(value) if isinstance(value, list) else value
    return cls(**kwargs)


def form_name(spec: OptionSpec) -> str:
    """The web form field of an option: its flag without dashes (``--no-crop`` -> ``no_crop``)."""
    return spec.flag.lstrip("-").replace("-", "_")


def values_from_form(cls: type, text: Callable[[str], str | None]) -> dict[str, Any]:
    """``{dest: value}`` for the web options of ``cls`` from a submitted form; ``text(name)`` is the field's
    string or None when it was not sent. A checkbox is ticked unless its text is empty, 0, off, false or no (a
    ``bool`` defaulting to True is switched off by ticking its flag's box, as on the command line); other
    fields are converted and checked, empty ones keep their defaults."""
    values: dict[str, Any] = {}
    for spec in specs(cls):
        if not spec.web:
            continue
        raw = (text(form_name(spec)) or "").strip()
        if spec.type is bool:
            ticked = raw.lower() not in ("", "0", "off", "false", "no")
            values[spec.dest] = ticked != (spec.default is True)
        elif raw:  # not sent or left empty: the default
            try:
                values[spec.dest] = spec.parse(raw, label=spec.title)
            except OstnetError as exc:
                raise OstnetError(f"form: {exc}") from None
    return values


def markdown_table(cls: type) -> str:
    """The options of ``cls`` as a markdown table: flag, type, default, range, help."""
    rows = ["| option | type | default | range | description |", "|---|---|---|---|---|"]
    for spec in specs(cls):
        kind = " \\| ".join(spec.choices) if spec.choices else _type_name(spec).removeprefix("a ").removeprefix("an ")
        if spec.repeat:
            kind += " (repeatable)"
        default = "required" if spec.required else ("" if spec.default is None else f"`{spec.default}`")
        if spec.type is bool:
            kind, default = "flag", ""
        bounds = _range(spec.bounds) if spec.bounds else ""
        text = spec.help.replace("|", "\\|")
        rows.append(f"| `{spec.flag}` | {kind} | {default} | {bounds} | {text} |")
    return "\n".join(rows)
