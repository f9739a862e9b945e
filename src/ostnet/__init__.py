"""ostnet: one-shot talking-head video generation with online scale transformation (OSTNet).

Public API (imported lazily, so ``import ostnet`` is cheap and has no side effects):

* ``build_model(cfg_or_preset)``: a fresh model from a ModelConfig or a preset name.
* ``load_checkpoint(path)`` / ``save_checkpoint(model, path)``: self-describing safetensors checkpoints.
* ``Animator``: the single per-frame animation step shared by the CLI, evaluation and the web demo.
"""

from __future__ import annotations

from ostnet._lazy import lazy_getattr

__version__ = "0.1.0"

_LAZY = {
    "build_model": "ostnet.models.ostnet",
    "OSTNet": "ostnet.models.ostnet",
    "load_checkpoint": "ostnet.checkpoint",
    "save_checkpoint": "ostnet.checkpoint",
    "Animator": "ostnet.inference.animator",
    "ModelConfig": "ostnet.config",
    "model_preset": "ostnet.config",
}

__all__ = ["__version__", *_LAZY]

__getattr__ = lazy_getattr(__name__, _LAZY)
