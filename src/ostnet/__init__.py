"""ostnet: one-shot talking-head video generation with online scale transformation (OSTNet).

Public API (imported lazily, so ``import ostnet`` is cheap and has no side effects):

* ``build_model(cfg_or_preset)``: a fresh model from a ModelConfig or a preset name.
* ``load_checkpoint(path)`` / ``save_checkpoint(model, path)``: self-describing safetensors checkpoints.
* ``Animator``: the single per-frame animation step shared by the CLI, evaluation and the web demo.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ostnet._lazy import lazy_getattr

__version__ = "0.1.0"

if TYPE_CHECKING:  # the lazy names below, for editors and type checkers
    from ostnet.checkpoint import load_checkpoint, save_checkpoint
    from ostnet.config import ModelConfig, model_preset
    from ostnet.inference.animator import Animator
    from ostnet.models.ostnet import OSTNet, build_model

_LAZY = {
    "build_model": "ostnet.models.ostnet",
    "OSTNet": "ostnet.models.ostnet",
    "load_checkpoint": "ostnet.checkpoint",
    "save_checkpoint": "ostnet.checkpoint",
    "Animator": "ostnet.inference.animator",
    "ModelConfig": "ostnet.config",
    "model_preset": "ostnet.config",
}

__all__ = [
    "Animator",
    "ModelConfig",
    "OSTNet",
    "__version__",
    "build_model",
    "load_checkpoint",
    "model_preset",
    "save_checkpoint",
]

__getattr__ = lazy_getattr(__name__, _LAZY)
