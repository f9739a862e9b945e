"""Reading PyTorch pickle files (training states, FOMM checkpoints, VGG/LPIPS weights) without trusting them.

``load_trusted(path, what)`` unpickles with ``torch.load(weights_only=True)``: only tensors and plain
containers are rebuilt, never code. Every failure is one ``OstnetError`` line naming the file; a file that
holds anything else is "not a trusted <what>", and PyTorch's advice to retry with ``weights_only=False``
(which would run the file's code) never reaches the user.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ostnet.errors import unpickling_error
from ostnet.io.paths import check_readable


def load_trusted(path: str | os.PathLike[str], what: str) -> Any:
    """``torch.load(path, weights_only=True)`` on the CPU; ``OstnetError`` for a missing, unreadable, corrupt
    or untrusted file."""
    import torch

    path = Path(path)
    check_readable(path, what)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch.load raises many types (pickle, zip, EOF, ...) for bad files
        raise unpickling_error(path, what, exc) from None
