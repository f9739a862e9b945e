"""Shared test fixtures.

Tests that use the real sample material read it from ``../shared`` beside the repository (present in CI and
in the developers' checkouts, absent in a user's clone); such tests use the ``shared_dir`` fixture, which
skips only when that folder is genuinely absent, and fails instead when ``CI`` is set.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from ostnet.checkpoint import save_checkpoint
from ostnet.models.ostnet import build_model

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED = REPO_ROOT.parent / "shared"


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not (SHARED / "data").is_dir():
        message = "../shared (sample clips, portraits, fixtures) is not beside this checkout"
        if os.environ.get("CI"):  # CI always has it: a missing folder there is a failure, never a silent skip
            pytest.fail(message)
        pytest.skip(message)
    return SHARED


@pytest.fixture(autouse=True)
def _seed_and_threads():
    torch.manual_seed(0)
    torch.set_num_threads(2)
    yield


@pytest.fixture
def one_thread(_seed_and_threads):
    """One intra-op thread for the tests of small models and convolutions: they are latency-bound, and on a busy
    machine OpenMP threads waiting for each other cost several times the work itself (7x measured)."""
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    """A randomly initialised ``tiny`` model (seed 0) saved as a checkpoint; read-only for the tests."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("tiny") / "tiny.safetensors"
    save_checkpoint(build_model("tiny"), path)
    return path
