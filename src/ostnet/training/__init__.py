"""Training: the loop (``Trainer``, ``train_step``), distributed set-up, run folders and logging.

Names are imported lazily so that ``import ostnet.training`` stays cheap.
"""

from __future__ import annotations

from ostnet._lazy import lazy_getattr

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

__getattr__ = lazy_getattr(__name__, _LAZY)
