"""The option declaration mechanism (``ostnet.options``): flags, defaults, nested options and checks all come
from one typed declaration; floats must be finite, numbers inside their bounds."""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass
from typing import Literal

import pytest

from ostnet.errors import OstnetError
from ostnet.options import add_arguments, check_options, declared, from_namespace, from_values, nested, option, specs


@dataclass(frozen=True)
class _Inner:
    ratio: float = option(0.5, help="a ratio", bounds=(0.0, 1.0))
    on: bool = option(True, flag="--off", help="switch it off")

    def __post_init__(self) -> None:
        check_options(self)


@dataclass(frozen=True)
class _Toy:
    name: str = option(help="required text")
    kind: Literal["a", "b"] = option("a", help="a choice")
    count: int | None = option(None, help="a count", bounds=(1, None))
    tags: tuple[str, ...] = option((), flag="--tag", help="repeatable")
    inner: _Inner = nested(_Inner)

    def __post_init__(self) -> None:
        check_options(self)


def _parse(*argv: str) -> _Toy:
    parser = argparse.ArgumentParser()
    add_arguments(parser, _Toy)
    return from_namespace(_Toy, parser.parse_args(argv))


def test_a_declaration_gives_flags_defaults_and_nested_options():
    toy = _parse("--name", "x", "--kind", "b", "--tag", "p", "--tag", "q", "--ratio", "0.25", "--off")
    assert toy == _Toy("x", "b", None, ("p", "q"), _Inner(0.25, False))
    assert _parse("--name", "y") == _Toy("y")
    found = {s.dest: s for s in specs(_Toy)}
    assert list(found) == ["name", "kind", "count", "tag", "ratio", "off"]  # the flags' names
    assert found["ratio"].path == ("inner", "ratio") and found["off"].path == ("inner", "on")
    assert found["kind"].choices == ("a", "b") and found["count"].bounds == (1, None) and found["name"].required
    assert found["off"].flag == "--off" and found["tag"].repeat


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: _Toy("x", kind="c"), "unknown kind 'c'"),
        (lambda: _Toy("x", count=0), "--count must be at least 1, got 0"),
        (lambda: _Toy("x", count=True), "--count must be an integer"),
        (lambda: _Inner(ratio=math.nan), "--ratio must be a finite number"),
        (lambda: _Inner(ratio=math.inf), "--ratio must be a finite number"),
        (lambda: _Inner(ratio=1.5), "--ratio must be in [0, 1], got 1.5"),
        (lambda: _Toy(3), "--name must be a string"),
    ],
)
def test_python_construction_is_checked_too(build, message):
    with pytest.raises(OstnetError) as info:
        build()
    assert message in str(info.value)


@declared
class _Declared:
    low: int = option(1, help="low end", bounds=(0, 10))
    high: int = option(2, help="high end", bounds=(0, 10))

    def __post_init__(self) -> None:
        if self.low > self.high:
            raise OstnetError("low above high")


def test_declared_is_a_frozen_checked_dataclass():
    assert _Declared() == _Declared(1, 2)
    with pytest.raises(OstnetError, match="--high must be in"):
        _Declared(high=11)
    with pytest.raises(OstnetError, match="low above high"):  # the class's own check runs too
        _Declared(low=5, high=3)
    with pytest.raises(AttributeError):
        _Declared().low = 3  # frozen
    assert from_values(_Declared, {"high": 7}) == _Declared(high=7)  # options not given keep their defaults
    assert from_values(_Toy, {"name": "n", "off": True}).inner.on is False  # a bool is "its flag is given"
