"""Reading PyTorch pickle files (training states, FOMM checkpoints, VGG/LPIPS weights) without trusting them.

``load_trusted(path, what)`` unpickles with ``torch.load(weights_only=True)``: only tensors and plain
containers are rebuilt, never code. Every failure is one ``OstnetError`` line naming the file; a file that
holds anything else is "not a trusted <what>", and PyTorch's advice to retry with ``weights_only=False``
(which would run the file's code) never reaches the user.
"""

from __future__ import annotations

import os
import pickle
import zipfile
from pathlib import Path
from typing import Any

from ostnet.errors import OstnetError
from ostnet.io.paths import check_readable


def load_trusted(path: str | os.PathLike[str], what: str) -> Any:
    """``torch.load(path, weights_only=True)`` on the CPU; ``OstnetError`` for a missing, unreadable, corrupt
    or untrusted file."""
    import torch

    path = Path(path)
    check_readable(path, what)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "global" in str(exc).lower():  # PyTorch refused to import a name: the file would run code
            raise OstnetError(
                f"{path}: not a trusted {what} (it holds Python objects other than tensors; not loaded)"
            ) from None
        raise OstnetError(f"{path}: cannot read {what}: corrupt or not a PyTorch file") from None
    except (zipfile.BadZipFile, EOFError, RuntimeError, OSError, ValueError, KeyError, TypeError) as exc:
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise OstnetError(f"{path}: cannot read {what}: corrupt or not a PyTorch file ({reason[:200]})") from None
