"""The one table of numeric precisions (``--dtype`` for inference, ``precision`` for training) and autocast.

Weights stay fp32 in every case; ``bf16`` and ``fp16`` run the forward pass under ``torch.autocast``.
"""

from __future__ import annotations

import contextlib
import typing

import torch

from ostnet.config import Precision
from ostnet.errors import OstnetError

PRECISIONS: tuple[str, ...] = typing.get_args(Precision)
DTYPES: dict[str, torch.dtype] = dict(zip(PRECISIONS, (torch.float32, torch.bfloat16, torch.float16), strict=True))


def dtype_of(precision: str) -> torch.dtype:
    """The torch dtype of a precision name; an ``OstnetError`` naming the valid ones for anything else."""
    if precision not in DTYPES:
        raise OstnetError(f"unknown precision {precision!r}; choose one of {', '.join(DTYPES)}")
    return DTYPES[precision]


def precision_of(dtype: torch.dtype) -> str:
    """The precision name of a torch dtype (``torch.bfloat16`` -> ``"bf16"``)."""
    for name, value in DTYPES.items():
        if value == dtype:
            return name
    raise ValueError(f"no precision name for {dtype}")


def autocast(device_type: str, precision: str) -> contextlib.AbstractContextManager:
    """``torch.autocast`` to the precision's dtype on ``device_type``; nothing at all for ``fp32``."""
    dtype = dtype_of(precision)
    if dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device_type, dtype=dtype)
