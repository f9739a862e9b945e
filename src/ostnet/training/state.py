"""The run folder: resolved config, checkpoints and the training state needed to resume exactly.

Layout of ``RUN_DIR``::

    config.json                      the resolved TrainConfig (JSON)
    checkpoints/step_00000500.safetensors   weights + model config (ostnet.checkpoint.save_checkpoint)
    checkpoints/step_00000500.state.pt      optimiser, scheduler, scaler, progress, RNG states of every rank
    checkpoints/latest.json          {"step": 500, "weights": ..., "state": ...}: the last complete pair
    final.safetensors                the weights at the end of the last ``fit``
    tensorboard/, samples/           logs and image grids

Every file is written to a temporary name and renamed into place; ``latest.json`` is replaced only after both
files of a checkpoint are complete, and older checkpoints are deleted only after that. A kill at any moment
therefore leaves ``latest.json`` naming a complete, consistent pair.
"""

from __future__ import annotations

import json
import random
import re
import shutil
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch

from ostnet import config as C
from ostnet.checkpoint import save_checkpoint
from ostnet.errors import OstnetError
from ostnet.io.atomic import atomic_write, remove_temporaries
from ostnet.io.tensors import load_trusted

STATE_FORMAT = "ostnet-train-state"
STATE_VERSION = 1
STATE_KEYS = ("format", "progress", "optimizer", "scheduler", "scaler", "rng", "model_config")
MARKER = ".ostnet-run"  # written into every run folder: a new run may reuse a folder only when it holds this
MARKER_TEXT = "This folder is an ostnet training run (ostnet train); ostnet may replace the files it wrote here.\n"
# Pruning deletes only checkpoint files named as ``save`` names them (temporaries: ``io.atomic.is_temporary``).
_OWN_CHECKPOINT = re.compile(r"^step_\d{8}\.(safetensors|state\.pt|ema\.safetensors)$")


class Progress(NamedTuple):
    """Where training stands: optimiser steps done, current epoch, batches of that epoch already trained."""

    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0


class CheckpointFiles(NamedTuple):
    """The files of one checkpoint; ``ema``: the weight EMA (a loadable checkpoint) when the run keeps one."""

    step: int
    weights: Path
    state: Path
    ema: Path | None = None


# ------------------------------------------------------------------------------------------------------------
# RNG states (stored without pickled numpy objects so that torch.load(weights_only=True) reads them)
# ------------------------------------------------------------------------------------------------------------


def capture_rng() -> dict[str, Any]:
    """This process's Python, NumPy, torch CPU and CUDA generator states."""
    name, keys, pos, has_gauss, cached = np.random.get_state()  # noqa: NPY002
    return {
        "python": random.getstate(),
        "numpy": {"name": name, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }  # fmt: skip


def restore_rng(state: dict[str, Any]) -> None:
    """Inverse of ``capture_rng``."""
    random.setstate(_as_tuple(state["python"]))
    n = state["numpy"]
    np.random.set_state(  # noqa: NPY002
        (n["name"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"])
    )
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


def _as_tuple(value: Any) -> Any:
    return tuple(_as_tuple(v) for v in value) if isinstance(value, list | tuple) else value


# ------------------------------------------------------------------------------------------------------------
# Run folder
# ------------------------------------------------------------------------------------------------------------


class RunFolder:
    """Paths and atomic reads/writes of one training run (see the module docstring for the layout)."""

    def __init__(self, root: str | Path, keep_last: int = 2) -> None:
        self.root = Path(root)
        self.keep_last = keep_last

    @property
    def config_path(self) -> Path:
        return self.root / "config.json"

    @property
    def checkpoint_dir(self) -> Path:
        return self.root / "checkpoints"

    @property
    def pointer_path(self) -> Path:
        return self.checkpoint_dir / "latest.json"

    @property
    def final_weights(self) -> Path:
        return self.root / "final.safetensors"

    @property
    def final_raw_weights(self) -> Path:
        """The trained (not averaged) weights, written beside final.safetensors when that holds the EMA."""
        return self.root / "final.raw.safetensors"

    @property
    def marker_path(self) -> Path:
        return self.root / MARKER

    def check_new_run(self) -> bool:
        """Raise OstnetError unless a new run may start here: the folder is missing, empty or made by ostnet
        (it holds the ``.ostnet-run`` marker). Returns True when the folder is missing or empty."""
        if self.root.exists() and not self.root.is_dir():
            raise OstnetError(f"{self.root}: --output is a file, expected a run folder")
        try:
            empty = not self.root.exists() or not any(self.root.iterdir())
        except OSError as exc:
            raise OstnetError(f"{self.root}: cannot read the folder ({exc.strerror or exc})") from None
        if not empty and not self.marker_path.is_file():
            raise OstnetError(
                f"{self.root}: exists, is not empty and is not an ostnet run folder; "
                "give a new or empty --output folder so that nothing of yours is overwritten"
            )
        return empty

    def create(self) -> None:
        for folder in (self.root, self.checkpoint_dir, self.root / "samples", self.root / "tensorboard"):
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise OstnetError(f"{folder}: cannot create the run folder ({exc.strerror})") from None
        if not self.marker_path.is_file():
            atomic_write(self.marker_path, lambda tmp: Path(tmp).write_text(MARKER_TEXT))

    def remove_new(self) -> None:
        """Undo ``create`` and everything a run wrote before its first checkpoint, touching only the names
        ostnet writes (used when a run in a fresh folder fails before it saved anything)."""
        for name in ("samples", "tensorboard", "checkpoints"):
            shutil.rmtree(self.root / name, ignore_errors=True)
        for name in ("config.json", MARKER, "final.safetensors", "final.raw.safetensors"):
            (self.root / name).unlink(missing_ok=True)
        self.remove_stale_temporaries()
        try:
            self.root.rmdir()  # only when nothing else is left
        except OSError:
            pass

    def write_config(self, cfg: C.TrainConfig) -> None:
        text = C.to_json(cfg) + "\n"
        atomic_write(self.config_path, lambda tmp: Path(tmp).write_text(text))

    def read_config(self) -> C.TrainConfig:
        if not self.config_path.is_file():
            raise OstnetError(f"{self.config_path}: no training config here; is {self.root} a run folder?")
        try:
            return C.from_dict(C.TrainConfig, json.loads(self.config_path.read_text()))
        except (ValueError, TypeError) as exc:
            raise OstnetError(f"{self.config_path}: not a valid training config ({exc})") from None

    def latest(self) -> CheckpointFiles | None:
        """The last complete checkpoint, or None when the run has none yet."""
        if not self.pointer_path.is_file():
            return None
        try:
            data = json.loads(self.pointer_path.read_text())
            ema = self.checkpoint_dir / data["ema"] if data.get("ema") else None
            files = CheckpointFiles(
                int(data["step"]), self.checkpoint_dir / data["weights"], self.checkpoint_dir / data["state"], ema
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise OstnetError(f"{self.pointer_path}: unreadable checkpoint pointer ({exc})") from None
        for path in (files.weights, files.state, files.ema):
            if path is None:
                continue
            if not path.is_file():
                raise OstnetError(f"{path}: named by {self.pointer_path} but missing")
        return files

    def remove_stale_temporaries(self) -> None:
        """Delete temporary files a killed run left behind (their final names were never written).

        Only ostnet's own temporaries (``ostnet.io.atomic.is_temporary``) are touched."""
        for folder in (self.root, self.checkpoint_dir):
            remove_temporaries(folder)

    def save(
        self, model: torch.nn.Module, state: dict[str, Any], step: int, ema: torch.nn.Module | None = None
    ) -> CheckpointFiles:
        """Write weights (and the EMA's), then state, then the pointer; then delete checkpoints older than
        ``keep_last``."""

        name = f"step_{step:08d}"
        files = CheckpointFiles(
            step,
            self.checkpoint_dir / f"{name}.safetensors",
            self.checkpoint_dir / f"{name}.state.pt",
            None if ema is None else self.checkpoint_dir / f"{name}.ema.safetensors",
        )
        save_checkpoint(model, files.weights, metadata={"step": str(step)})
        if files.ema is not None:
            save_checkpoint(ema, files.ema, metadata={"step": str(step), "ema": "true"})
        atomic_write(files.state, lambda tmp: torch.save(state, tmp))
        pointer = {"step": step, "weights": files.weights.name, "state": files.state.name}
        if files.ema is not None:
            pointer["ema"] = files.ema.name
        atomic_write(self.pointer_path, lambda tmp: Path(tmp).write_text(json.dumps(pointer) + "\n"))
        self._prune(keep={p.name for p in files[1:] if p is not None})
        return files

    def _prune(self, keep: set[str]) -> None:
        ours = [p for p in self.checkpoint_dir.glob("step_*") if _OWN_CHECKPOINT.match(p.name)]
        steps = sorted({p.name.split(".")[0] for p in ours})
        for stem in steps[: max(0, len(steps) - self.keep_last)]:
            for path in ours:
                if path.name.split(".")[0] == stem and path.name not in keep:
                    path.unlink(missing_ok=True)


def load_training_state(path: Path) -> dict[str, Any]:
    """Read a state file written by ``RunFolder.save`` (``weights_only`` unpickling)."""
    state = load_trusted(path, "ostnet training state")
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
        raise OstnetError(f"{path}: not an ostnet training-state file")
    missing = [key for key in STATE_KEYS if key not in state]
    if missing:
        raise OstnetError(f"{path}: incomplete ostnet training state (missing {', '.join(missing)})")
    return state


def check_compatible(stored: C.ModelConfig, current: C.ModelConfig, where: Path) -> None:
    """OstnetError naming the first difference when a run is resumed with another model config."""
    a, b = C.to_dict(stored), C.to_dict(current)
    if a == b:
        return
    raise OstnetError(
        f"{where}: cannot resume: the run was trained with a different model config "
        f"({_first_difference(a, b)}); use a new --output folder"
    )


def _first_difference(a: dict[str, Any], b: dict[str, Any], prefix: str = "") -> str:
    for key in sorted(set(a) | set(b)):
        va, vb = a.get(key), b.get(key)
        if isinstance(va, dict) and isinstance(vb, dict):
            if va != vb:
                return _first_difference(va, vb, f"{prefix}{key}.")
        elif va != vb:
            return f"model.{prefix}{key}: run has {va!r}, now {vb!r}"
    return "unknown difference"
