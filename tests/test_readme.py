"""The README's Python examples run as written, with a tiny checkpoint as ``model.safetensors``.

The examples use ``source`` (1, 3, S, S) and ``driving`` (B, 3, S, S) as placeholders for the user's images;
the test defines them (random images at the checkpoint's size) and runs every ```python block of README.md that
imports ostnet, in a folder holding the checkpoint (a block that talks to a running server, such as the web app's
``gradio_client`` example, is the web app's tests' business).
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
import torch

from ostnet.checkpoint import read_config

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)
USES_OSTNET = re.compile(r"^\s*(import|from)\s.*\bostnet\b", re.M)


def python_blocks() -> list[str]:
    return [block for block in BLOCK.findall(README.read_text(encoding="utf-8")) if USES_OSTNET.search(block)]


def test_readme_has_a_python_example():
    assert python_blocks(), "README.md has no ```python block that uses ostnet"


@pytest.mark.usefixtures("one_thread")
@pytest.mark.parametrize("index", range(len(python_blocks())))
def test_readme_python_example_runs(index, tiny_checkpoint, tmp_path, monkeypatch):
    shutil.copy(tiny_checkpoint, tmp_path / "model.safetensors")
    monkeypatch.chdir(tmp_path)
    size = read_config(tiny_checkpoint).image_size
    generator = torch.Generator().manual_seed(0)
    namespace = {
        "__name__": "readme_example",
        "source": torch.rand(1, 3, size, size, generator=generator),
        "driving": torch.rand(4, 3, size, size, generator=generator),
    }
    exec(compile(python_blocks()[index], f"README.md python block {index}", "exec"), namespace)
    if "frames" in namespace:  # the Animator example: one animated frame per driving frame
        frames = namespace["frames"]
        assert frames.shape == (4, 3, size, size)
        assert torch.isfinite(frames).all() and 0 <= frames.min() and frames.max() <= 1
