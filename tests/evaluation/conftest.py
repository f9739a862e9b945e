"""Fixtures of the evaluation tests: LPIPS weight files with random values in the public layouts."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from ostnet.evaluation.lpips import ALEX_CHANNELS, ALEXNET_FILENAME

# torchvision AlexNet conv layers: features index -> (out, in, kernel)
_ALEX_SHAPES = {0: (64, 3, 11), 3: (192, 64, 5), 6: (384, 192, 3), 8: (256, 384, 3), 10: (256, 256, 3)}


def _write(folder: Path, alex_name: str = ALEXNET_FILENAME, lin_name: str = "alex.pth") -> dict:
    """Save torchvision-style ``features.*`` (plus a classifier key) and lpips-style ``lin{k}.model.1.weight``."""
    gen = torch.Generator().manual_seed(3)
    alex = {}
    for i, (cout, cin, k) in _ALEX_SHAPES.items():
        alex[f"features.{i}.weight"] = torch.randn(cout, cin, k, k, generator=gen) * (2.0 / (cin * k * k)) ** 0.5
        alex[f"features.{i}.bias"] = torch.randn(cout, generator=gen) * 0.1
    alex["classifier.1.weight"] = torch.randn(8, 4, generator=gen)  # extra keys must be ignored
    lin = {f"lin{k}.model.1.weight": torch.rand(1, c, 1, 1, generator=gen) for k, c in enumerate(ALEX_CHANNELS)}
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(alex, folder / alex_name)
    torch.save(lin, folder / lin_name)
    return {**alex, **lin}


@pytest.fixture
def fake_lpips_weights():
    """``write(folder, alex_name=..., lin_name=...) -> state dict``: random LPIPS weight files."""
    return _write
