"""Each option is declared once (docs/design.md, "Options are declared once"): docs/cli.md is generated from
the declarations and must be current; every command's ``--device`` is the same option (default ``auto``, the
best available device) and ``--dtype`` takes ``models.precision.PRECISIONS``."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
import torch

from ostnet.cli import COMMANDS, build_parser, reference_markdown
from ostnet.models.device import best_device, resolve_device
from ostnet.models.precision import PRECISIONS
from ostnet.options import DEFAULT_DEVICE, DEVICES, UsageError

REPO = Path(__file__).resolve().parents[1]


def _parsers() -> dict[str, argparse.ArgumentParser]:
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return {c.replace("_", "-"): sub.choices[c.replace("_", "-")] for c in COMMANDS}


def _flag(parser: argparse.ArgumentParser, flag: str) -> argparse.Action | None:
    return next((a for a in parser._actions if flag in a.option_strings), None)


def test_docs_cli_md_is_generated_from_the_declarations():
    text = (REPO / "docs" / "cli.md").read_text(encoding="utf-8")
    assert text == reference_markdown(), "docs/cli.md is stale: run python scripts/make_cli_docs.py"
    for command in _parsers():
        assert f"## `ostnet {command}`" in text
    assert "| `--crf` | integer | `18` | [0, 51] |" in text  # type, default and bounds of a declared option


def test_every_command_has_one_declaration():
    import importlib
    import typing

    from ostnet.commands.weights import WeightName
    from ostnet.weights.catalog import ENTRIES

    for name in COMMANDS:
        module = importlib.import_module(f"ostnet.commands.{name}")
        assert hasattr(module, "OPTIONS") or hasattr(module, "SUBCOMMANDS"), name
    assert typing.get_args(WeightName) == tuple(ENTRIES)


def test_every_device_option_is_the_one_declaration():
    with_device = {name: p for name, p in _parsers().items() if _flag(p, "--device") is not None}
    assert {"animate", "evaluate", "live", "edit", "web"} <= set(with_device)
    for name, parser in with_device.items():
        action = _flag(parser, "--device")
        assert action.default == DEFAULT_DEVICE == "auto", name
        for device in DEVICES:
            assert action.type(device) == device, name
        with pytest.raises(argparse.ArgumentTypeError, match="unknown device 'tpu'; choose one of: auto, cpu"):
            action.type("tpu")


def test_every_dtype_option_takes_the_precision_table():
    with_dtype = {name: p for name, p in _parsers().items() if _flag(p, "--dtype") is not None}
    assert {"animate", "evaluate", "live"} <= set(with_dtype)
    for name, parser in with_dtype.items():
        action = _flag(parser, "--dtype")
        assert [action.type(p) for p in PRECISIONS] == list(PRECISIONS) and action.default == "fp32", name
        with pytest.raises(argparse.ArgumentTypeError):
            action.type("bf17")


def test_a_bad_device_is_one_line_exit_2(capsys):
    from ostnet.cli import main

    assert main(["evaluate", "--device", "tpu"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("ostnet evaluate: error: --device: unknown device 'tpu'"), err


def test_auto_is_the_best_available_device():
    assert resolve_device("auto") == resolve_device(None) == torch.device(best_device())
    assert best_device() == ("cuda" if torch.cuda.is_available() else best_device())
    assert resolve_device("cpu") == torch.device("cpu")
    if not torch.cuda.is_available():
        with pytest.raises(Exception, match="CUDA is not available"):
            resolve_device("cuda")


def test_usage_errors_are_one_line_not_argparse_usage():
    parser = _parsers()["animate"]
    with pytest.raises(UsageError, match=r"^--crf must be in \[0, 51\], got 99"):
        parser.parse_args(["--crf", "99"])
