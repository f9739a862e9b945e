"""Training: the loop (``Trainer``, ``train_step``), distributed set-up, run folders and logging.

Names are imported lazily so that ``import ostnet.training`` stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ostnet._lazy import lazy_getattr

if TYPE_CHECKING:  # the lazy names below, for editors and type checkers
    from ostnet.training.distributed import DistInfo, DistributedBatchNorm, ShardedSampler, setup_distributed
    from ostnet.training.state import Progress, RunFolder
    from ostnet.training.trainer import StepResult, Trainer, build_dataset, train_step

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

__all__ = [
    "DistInfo",
    "DistributedBatchNorm",
    "Progress",
    "RunFolder",
    "ShardedSampler",
    "StepResult",
    "Trainer",
    "build_dataset",
    "setup_distributed",
    "train_step",
]

__getattr__ = lazy_getattr(__name__, _LAZY)
