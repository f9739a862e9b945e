"""Self-describing model checkpoints.

A checkpoint is one ``.safetensors`` file: the model's state dict plus, in the file's metadata, the full
``ModelConfig`` as JSON. Loading needs nothing else (no preset name, no YAML), and never unpickles code.
Training state (optimiser, scheduler, step, RNG) lives in a separate file written by ``ostnet.training``.

Writes are atomic (``ostnet.io.atomic``): the file is written next to its destination and renamed into place,
so an interrupted save leaves the previous checkpoint intact.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from ostnet import config as C
from ostnet.errors import OstnetError
from ostnet.io.atomic import atomic_write
from ostnet.io.paths import check_readable
from ostnet.models.ostnet import OSTNet, build_model

FORMAT = "ostnet"
FORMAT_VERSION = "1"


def save_checkpoint(model: OSTNet, path: str | os.PathLike, metadata: dict[str, str] | None = None) -> Path:
    """Write ``model``'s weights and config to ``path`` (a .safetensors file) atomically."""
    model = getattr(model, "module", model)  # unwrap DDP
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    meta = {"format": FORMAT, "format_version": FORMAT_VERSION, "model_config": C.to_json(model.cfg)}
    meta.update(metadata or {})
    return atomic_write(path, lambda tmp: save_file(state, tmp, metadata=meta))


def read_config(path: str | os.PathLike) -> C.ModelConfig:
    """The ModelConfig stored in a checkpoint, with a clear error for anything that is not one."""
    path = Path(path)
    check_readable(path, "checkpoint")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            shapes = {key: tuple(f.get_slice(key).get_shape()) for key in f.keys()}  # header only, no data
    except (SafetensorError, OSError, ValueError) as exc:
        hint = " (a FOMM .pth.tar? convert it with `ostnet convert-fomm`)" if path.suffix in {".tar", ".pth"} else ""
        raise OstnetError(f"{path}: not an ostnet checkpoint{hint}: {_first_line(exc)}") from None
    if meta.get("format") != FORMAT or "model_config" not in meta:
        raise OstnetError(f"{path}: a safetensors file without an ostnet model config in its metadata")
    try:
        cfg = C.from_dict(C.ModelConfig, json.loads(meta["model_config"]))
    except (ValueError, TypeError, AttributeError) as exc:
        raise OstnetError(f"{path}: its model config is invalid: {_first_line(exc)}") from None
    _check_shapes(path, cfg, shapes)
    return cfg


def _check_shapes(path: Path, cfg: C.ModelConfig, stored: dict[str, tuple[int, ...]]) -> None:
    """Refuse a config that does not describe the tensors the file carries, before any memory is allocated:
    the model is built on the ``meta`` device (shapes only) and its state dict compared with the header."""
    try:
        with torch.device("meta"):
            expected = {k: tuple(v.shape) for k, v in build_model(cfg).state_dict().items()}
    except (ValueError, TypeError, RuntimeError, ZeroDivisionError, OverflowError) as exc:
        raise OstnetError(f"{path}: its model config cannot be built: {_first_line(exc)}") from None
    missing = sorted(set(expected) - set(stored))
    unexpected = sorted(set(stored) - set(expected))
    if missing or unexpected:
        raise OstnetError(
            f"{path}: the model config does not match the stored tensors: {len(missing)} missing "
            f"(e.g. {missing[:2]}), {len(unexpected)} unexpected (e.g. {unexpected[:2]})"
        )
    for key, shape in expected.items():
        if stored[key] != shape:
            raise OstnetError(
                f"{path}: the model config does not match the stored tensors: {key} is stored as "
                f"{list(stored[key])}, the config asks for {list(shape)}"
            )


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]


def load_weights_into(model: OSTNet, path: str | os.PathLike, map_location: str | torch.device = "cpu") -> None:
    """Load a checkpoint's weights into an existing model; the configs must match exactly."""
    model = getattr(model, "module", model)
    stored = read_config(path)
    if C.to_dict(stored) != C.to_dict(model.cfg):
        raise OstnetError(
            f"{path}: checkpoint is for model {stored.name!r}, which does not match this model "
            f"{model.cfg.name!r} ({_first_difference(C.to_dict(stored), C.to_dict(model.cfg))})"
        )
    _load_state(model, path, map_location)


def load_checkpoint(
    path: str | os.PathLike, map_location: str | torch.device = "cpu", expected: str | None = None
) -> OSTNet:
    """Rebuild the model a checkpoint describes and load its weights. Returns it in eval mode.

    Args:
        path: a file written by ``save_checkpoint`` (or ``ostnet convert-fomm``).
        map_location: device for the weights.
        expected: optional preset/model name; a checkpoint of another model is an error naming both.
    """
    cfg = read_config(path)
    if expected is not None and cfg.name != expected:
        raise OstnetError(f"{path}: checkpoint is for model {cfg.name!r}, expected {expected!r}")
    model = build_model(cfg)
    _load_state(model, path, map_location)
    return model.to(map_location).eval()


def _load_state(model: OSTNet, path: str | os.PathLike, map_location: str | torch.device) -> None:
    from safetensors.torch import load_file

    state = load_file(str(path), device=str(map_location))
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # shape mismatches
        first = str(exc).strip().splitlines()[-1].strip()
        raise OstnetError(f"{path}: weights do not fit the model: {first}") from None
    if missing or unexpected:
        raise OstnetError(
            f"{path}: weights do not fit the model: {len(missing)} missing (e.g. {missing[:2]}), "
            f"{len(unexpected)} unexpected (e.g. {unexpected[:2]})"
        )


def _first_difference(a: dict, b: dict, prefix: str = "") -> str:
    for key in sorted(set(a) | set(b)):
        if isinstance(a.get(key), dict) and isinstance(b.get(key), dict):
            found = _first_difference(a[key], b[key], f"{prefix}{key}.")
            if found:
                return found
        elif a.get(key) != b.get(key):
            return f"{prefix}{key}: {a.get(key)!r} vs {b.get(key)!r}"
    return ""
