"""Fixtures for the training tests: a small synthetic dataset and a cheap ``tiny`` training config.

The config keeps the real objective but evaluates the perceptual loss only on the 1/2 and 1/4 pyramid
levels (32 and 16 px) of the 64x64 ``tiny`` images, with a random VGG-19, so a step takes well under a second.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from ostnet import config as C
from ostnet.data.synthetic import write_synthetic_dataset

FAST_OVERRIDES = [
    "loss.allow_random_vgg=true",
    "loss.perceptual_scales=[0.5, 0.25]",
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
    cfg = C.train_preset("tiny")
    return C.apply_overrides(cfg, [*FAST_OVERRIDES, f"data.root={str(data_root)!r}".replace("'", '"'), *extra])


@pytest.fixture(autouse=True)
def _quiet_random_vgg_warning():
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*RANDOM VGG-19.*")
        yield
