"""Fixtures for the training tests: a small synthetic dataset and a cheap ``tiny`` training config.

The config keeps the real objective but evaluates the perceptual loss only on the 1/4 pyramid level (16 px)
of the 64x64 ``tiny`` images, with a random VGG-19, so that a step costs about a CPU-second.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from ostnet import config as C
from ostnet.data.synthetic import write_synthetic_dataset

FAST_OVERRIDES = [
    "loss.allow_random_vgg=true",
    "loss.perceptual_scales=[0.25]",
    "data.num_workers=0",
    "data.batch_size=2",
    "data.num_repeats=2",
    "deterministic=true",
    "log_every=1",
    "image_every=2",
    "checkpoint_every=2",
]


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("train-data") / "data"
    return write_synthetic_dataset(
        root, num_identities=5, videos_per_identity=1, num_frames=6, size=64, test_identities=1, seed=3
    )


def fast_config(data_root: Path, *extra: str) -> C.TrainConfig:
    """The ``tiny`` preset with FAST_OVERRIDES, ``data.root`` and then ``extra`` overrides applied."""
    root = json.dumps(str(data_root))
    return C.apply_overrides(C.train_preset("tiny"), [*FAST_OVERRIDES, f"data.root={root}", *extra])


@pytest.fixture(scope="session")
def make_config(synthetic_root) -> Callable[..., C.TrainConfig]:
    return lambda *extra: fast_config(synthetic_root, *extra)


@pytest.fixture(scope="session")
def full_and_resumed(make_config, tmp_path_factory) -> Callable[..., tuple]:
    """A function: overrides (ending at ``max_steps=3``) -> (the Trainer of an uninterrupted run, the Trainer of
    a run stopped after 2 steps and resumed to the end)."""
    from ostnet.training.trainer import Trainer

    def fit(cfg: C.TrainConfig, run_dir: Path, resume: bool = False) -> Trainer:
        trainer = Trainer(cfg, run_dir, resume=resume, device="cpu", show_progress=False)
        trainer.fit()
        return trainer

    def run(*overrides: str) -> tuple:
        root = tmp_path_factory.mktemp("runs")
        warnings.filterwarnings("ignore", message=".*RANDOM VGG-19.*")
        full = fit(make_config(*overrides), root / "full")
        fit(make_config(*overrides, "max_steps=2"), root / "resumed")
        return full, fit(make_config(*overrides), root / "resumed", resume=True)

    return run


@pytest.fixture(autouse=True)
def _restore_global_torch_flags():
    """The Trainer switches deterministic algorithms on (deterministic=true); give the next test the old flags."""
    flags = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
        torch.backends.cudnn.deterministic,
        torch.backends.cudnn.benchmark,
    )
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*RANDOM VGG-19.*")
        yield
    torch.use_deterministic_algorithms(flags[0], warn_only=flags[1])
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = flags[2], flags[3]


@pytest.fixture(autouse=True)
def _single_thread(one_thread):
    """Every test in this folder runs with one thread (see ``one_thread`` in tests/conftest.py)."""
