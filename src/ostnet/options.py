"""Declare each option once: typed dataclass fields from which the command line, the web controls, the docs
table and the value checks are all derived (docs/design.md, "Options are declared once").

Declaring (one ``@declared`` dataclass per command, e.g. ``ostnet.inference.options.AnimateOptions``; it is
frozen, and checked whenever it is built: the same checks for Python callers, the CLI and the web app)::

    @declared
    class CropOptions:
        margin: float = option(0.7, help="crop side = (1 + margin) x face size", bounds=(0.0, 4.0))
        smooth_sigma: float = option(3.0, flag="--smooth", metavar="SIGMA", help="...", bounds=(0.0, 100.0))
        enabled: bool = option(True, flag="--no-crop", help="inputs are already face crops")  # flag turns it off

    @declared
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
(a label for people, default: the name with spaces) and ``dest`` (the flag without dashes: the option's name
on the parsed namespace, in a web form and in ``from_values``; flags are unique within a command);
``OptionSpec.check(value)`` raises ``OstnetError`` with one line, ``OptionSpec.parse(text)`` converts and checks
a string, ``value_from_page(spec, value)`` takes what a web page sent.

Deriving: ``add_arguments(parser, cls)`` adds the argparse flags (converting and checking each value; with the
command line's ``OptionParser`` a bad one is a one-line usage error, exit 2), ``from_namespace(cls, args)`` /
``from_values(cls, {dest: value})`` build the dataclass (a ``bool`` value says whether its flag is given),
``check_options(obj)`` checks a built one, ``markdown_table(cls)`` renders the docs table (docs/cli.md).

Shared declarations: ``Device`` / ``device_option()``, the one ``--device`` of every command (default ``auto``,
the best available; ``ostnet.models.device`` resolves it).
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

# Shared declarations: the one ``--device`` of every command (resolved by ``ostnet.models.device``).
Device = Literal["auto", "cpu", "cuda", "mps"]
DEVICES: tuple[str, ...] = typing.get_args(Device)
DEFAULT_DEVICE: Device = "auto"
DEVICE_HELP = "auto = the best available: cuda, else mps, else cpu"
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


def device_option(group: str | None = None) -> Any:
    """The ``--device`` option (the same type, default and help in every command; never a web control)."""
    return option(DEFAULT_DEVICE, help=DEVICE_HELP, group=group, web=False)


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
    def label(self) -> str:
        """How messages name the option: its flag, or a positional's metavar."""
        return self.metavar if self.positional and isinstance(self.metavar, str) else self.flag

    @property
    def dest(self) -> str:
        """The option's name on the command line's namespace, in a web form and in ``from_values``: its flag
        without dashes (``--no-crop`` -> ``no_crop``; a positional's own name). Unique within a command."""
        return _dest(self.flag)

    def check(self, value: Any, label: str | None = None) -> Any:
        """``value`` if it has this option's type, choices and bounds; else ``OstnetError`` (one line naming
        ``label``, default: the flag)."""
        label = label or self.label
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
            raise OstnetError(f"{label}: unknown {self.title} {value!r}; choose one of: {', '.join(self.choices)}")
        if self.bounds is not None and tp in (int, float) and not _inside(value, self.bounds):
            raise OstnetError(f"{label} must be {_within(self.bounds)}, got {value}")
        return value

    def parse(self, text: str, label: str | None = None) -> Any:
        """Convert one command-line / form string to this option's type and check it."""
        label = label or self.label
        try:
            value = self.type(text) if self.type in (int, float, Path) else text
        except ValueError:
            raise OstnetError(f"{label} must be {_type_name(self)}, got {text!r}") from None
        return self._check_one(value, label)


def _dest(flag: str) -> str:
    return flag.lstrip("-").replace("-", "_")


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
        flag = _flag(f.name, meta)
        yield OptionSpec(f.name, (*_path, f.name), tp, optional, default, meta.required, meta.help, choices,
                         meta.bounds, meta.group, flag, meta.metavar, repeat, meta.web,
                         meta.title or f.name.replace("_", " "), nargs, meta.positional, meta.aliases)  # fmt: skip


@typing.dataclass_transform(frozen_default=True, field_specifiers=(option, nested, dataclasses.field))
def declared(cls: type | None = None, /, *, frozen: bool = True, kw_only: bool = False) -> Any:
    """``@declared``: a declaration, i.e. a dataclass (frozen unless ``frozen=False``) whose options are
    checked whenever it is built (``check_options``, after the class's own ``__post_init__``, if any)."""

    def wrap(c: type) -> type:
        own = c.__dict__.get("__post_init__")

        def __post_init__(self) -> None:
            if own is not None:
                own(self)
            check_options(self)

        c.__post_init__ = __post_init__  # type: ignore[attr-defined]
        return dataclass(frozen=frozen, kw_only=kw_only)(c)

    return wrap if cls is None else wrap(cls)


def check_options(obj: Any) -> None:
    """Check every option of a built declaration (call it from ``__post_init__``); nested ones check
    themselves."""
    own = {s.path[0]: s for s in specs(type(obj)) if len(s.path) == 1}
    for name, spec in own.items():
        spec.check(getattr(obj, name))


def _help_text(spec: OptionSpec) -> str:
    text = spec.help
    if spec.bounds is not None:
        text += f"; {_range(spec.bounds)}"
    if spec.type is not bool and spec.default is not None and not spec.required and spec.default != ():
        text += f" (default: {spec.default})"
    return text


class UsageError(OstnetError):
    """A bad command line (an unknown flag, a missing or a bad value); ``prog`` is the (sub)command."""

    def __init__(self, prog: str, message: str) -> None:
        super().__init__(message)
        self.prog = prog


class OptionParser(argparse.ArgumentParser):
    """argparse whose usage errors raise ``UsageError`` (the command line prints it as one line and exits 2)
    instead of printing the usage and exiting; its subparsers are of the same class."""

    def error(self, message: str) -> typing.NoReturn:
        head, _, rest = message.partition(": ")
        if head.startswith("argument ") and rest.startswith(head.removeprefix("argument ").split("/")[0]):
            message = rest  # the option's own message names the flag already
        raise UsageError(self.prog, f"{message} (see {self.prog} --help)")


def add_arguments(parser: argparse.ArgumentParser, cls: type) -> None:
    """Add one flag per option of ``cls`` (grouped by ``group``); values are converted and checked. A ``bool``
    option is a flag whose value on the namespace says whether it was given (``no_crop=True``)."""
    groups: dict[str | None, Any] = {None: parser}
    for spec in specs(cls):
        if spec.group not in groups:
            groups[spec.group] = parser.add_argument_group(spec.group)
        target = groups[spec.group]
        kwargs: dict[str, Any] = {"help": _help_text(spec)}
        if spec.type is bool:
            target.add_argument(spec.flag, *spec.aliases, action="store_true", **kwargs)
            continue
        kwargs["type"] = _converter(spec)
        kwargs["metavar"] = spec.metavar or _metavar(spec)
        if spec.positional:
            nargs = ("*" if spec.default == () else "+") if spec.repeat else None  # () = none given is fine
            target.add_argument(spec.dest, nargs=nargs, **kwargs)
            continue
        if spec.repeat:
            kwargs["action"] = "append"
        else:
            kwargs["default"] = spec.default
            kwargs["nargs"] = spec.nargs
        target.add_argument(spec.flag, *spec.aliases, dest=spec.dest, required=spec.required, **kwargs)


def add_command(sub: argparse._SubParsersAction, cls: type, run: Callable[[Any], int], name: str, **kwargs: Any) -> Any:
    """``ostnet NAME``: a subparser with the flags of the declaration ``cls`` (``kwargs``: ``help``,
    ``description``); its handler builds ``cls`` from the parsed arguments and returns ``run(options)``."""
    parser = sub.add_parser(name, **kwargs)
    add_arguments(parser, cls)
    parser.set_defaults(handler=lambda args: run(from_namespace(cls, args)))
    return parser


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


def from_values(cls: type, values: Mapping[str, Any]) -> Any:
    """The declaration ``cls`` from ``{OptionSpec.dest: value}`` as the command line says it (a ``bool``:
    whether its flag is given); options not in ``values`` (or None there) keep their defaults. Checked as it
    is built (``OstnetError``, one line)."""
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for f in dataclasses.fields(cls):
        meta: _Meta | None = f.metadata.get(_KEY)
        if meta is None:
            continue
        if meta.nested:
            kwargs[f.name] = from_values(hints[f.name], values)
            continue
        value = values.get(_dest(_flag(f.name, meta)))
        if value is None:
            continue
        if isinstance(value, bool) and f.default is True:
            value = not value  # the flag that switches it off
        if isinstance(value, list):
            value = tuple(value)
        if _resolve(hints[f.name])[0] is Path:  # a path given as text (a page, a server) becomes a Path
            value = tuple(map(_path, value)) if isinstance(value, tuple) else _path(value)
        kwargs[f.name] = value
    return cls(**kwargs)


def _path(value: Any) -> Any:
    return Path(value) if isinstance(value, str) else value


def _flag(name: str, meta: _Meta) -> str:
    return meta.flag or (name if meta.positional else "--" + name.replace("_", "-"))


def form_name(spec: OptionSpec) -> str:
    """The web form field of an option: its ``dest`` (``--no-crop`` -> ``no_crop``)."""
    return spec.dest


def value_from_page(spec: OptionSpec, value: Any) -> Any:
    """A value sent by a web page or an API call, as the command line would take it: a ``bool`` is whether the
    flag is ticked; empty (None or blank) is None (the default); text is parsed, numbers are checked (a whole
    float is an integer: number inputs send 1.0). ``OstnetError`` (one line) for a value the command line
    refuses."""
    if spec.type is bool:
        return bool(value)
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, str):
        return spec.parse(value.strip())
    if spec.type is int and isinstance(value, float) and value.is_integer():
        value = int(value)
    return spec.check(value)


def markdown_table(cls: type) -> str:
    """The options of ``cls`` as a markdown table: flag, type, default, range, help."""
    rows = ["| option | type | default | range | description |", "|---|---|---|---|---|"]
    for spec in specs(cls):
        kind = " \\| ".join(spec.choices) if spec.choices else _type_name(spec).removeprefix("a ").removeprefix("an ")
        if spec.repeat:
            kind += " (repeatable)"
        if spec.nargs:
            kind += f" x {spec.nargs}"
        required = spec.required or (spec.positional and spec.default is None)
        default = "required" if required else ("" if spec.default in (None, ()) else f"`{spec.default}`")
        if spec.type is bool:
            kind, default = "flag", ""
        bounds = _range(spec.bounds) if spec.bounds else ""
        names = f"`{spec.metavar or spec.flag}` (positional)" if spec.positional else ""
        names = names or ", ".join(f"`{n}`" for n in (spec.flag, *spec.aliases))
        text = spec.help.replace("|", "\\|")
        rows.append(f"| {names} | {kind} | {default} | {bounds} | {text} |")
    return "\n".join(rows)
