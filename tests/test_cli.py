"""The command line: every subcommand is reachable, and bad input is one line with a non-zero exit."""

import subprocess
import sys

import pytest

from ostnet.cli import COMMANDS, build_parser, main


def test_every_command_is_registered():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    assert set(sub.choices) == {c.replace("_", "-") for c in COMMANDS}


def test_presets_lists_every_preset(capsys):
    from ostnet.config import MODEL_PRESETS

    assert main(["presets"]) == 0
    out = capsys.readouterr().out
    for name in MODEL_PRESETS:
        assert name in out


def test_unknown_preset_is_one_line_exit_2(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "ostnet.cli",
            "train",
            "--preset",
            "nope",
            "--data",
            str(tmp_path),
            "--output",
            str(tmp_path / "run"),
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "unknown preset 'nope'" in lines[0] and "Traceback" not in proc.stderr
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("command", ["animate", "evaluate", "convert-fomm"])
def test_missing_file_is_one_line(tmp_path, command):
    missing = str(tmp_path / "missing.safetensors")
    args = {
        "animate": [
            "--source",
            missing,
            "--driving",
            missing,
            "--checkpoint",
            missing,
            "--output",
            str(tmp_path / "o.mp4"),
        ],
        "evaluate": [
            "--checkpoint",
            missing,
            "--data",
            str(tmp_path),
            "--protocol",
            "same-scale",
            "--output",
            str(tmp_path / "ev"),
        ],
        "convert-fomm": [missing, "--output", str(tmp_path / "c.safetensors")],
    }[command]
    proc = subprocess.run([sys.executable, "-m", "ostnet.cli", command, *args], capture_output=True, text=True)
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
