"""Training: the loop (``Trainer``, ``train_step``), distributed set-up, run folders and logging.

Names are imported lazily so that ``import ostnet.training`` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "Trainer": "ostnet.training.trainer",
    "train_step": "ostnet.training.trainer",
    "StepResult": "ostnet.training.trainer",
    "build_dataset": "ostnet.training.trainer",
    "DistInfo": "ostnet.training.distributed",
    "ShardedSampler": "ostnet.training.distributed",
    "DistributedBatchNorm": "ostnet.training.distributed",
    "setup_distributed": "ostnet.training.distributed",
    "RunFolder": "ostnet.training.state",
    "Progress": "ostnet.training.state",
}

__all__ = list(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'ostnet.training' has no attribute {name!r}")
