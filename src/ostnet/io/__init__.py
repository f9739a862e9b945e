"""Reading and writing images and videos, and the one uint8 <-> float conversion.

* ``ostnet.io.image``: ``load_image``, ``save_image``, ``to_tensor``, ``to_uint8``.
* ``ostnet.io.video``: ``VideoInfo``, ``probe_video``, ``iter_frames``, ``read_frames``, ``VideoWriter``.
* here: ``atomic_output`` / ``temp_path_for``, so that no command ever leaves a half-written file behind.

Frames are ``(H, W, 3)`` uint8 RGB numpy arrays on disk-facing APIs and ``(3, H, W)`` float tensors in
[0, 1] inside the models. The submodules are imported lazily (PyAV is only loaded when video is used).
"""

from __future__ import annotations

import importlib
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ostnet.errors import OstnetError

_LAZY = {
    "load_image": "ostnet.io.image",
    "save_image": "ostnet.io.image",
    "to_tensor": "ostnet.io.image",
    "to_uint8": "ostnet.io.image",
    "VideoInfo": "ostnet.io.video",
    "VideoWriter": "ostnet.io.video",
    "probe_video": "ostnet.io.video",
    "iter_frames": "ostnet.io.video",
    "read_frames": "ostnet.io.video",
}

__all__ = ["atomic_output", "temp_path_for", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'ostnet.io' has no attribute {name!r}")


def temp_path_for(path: str | os.PathLike[str]) -> Path:
    """A fresh temporary file name beside ``path`` that keeps its suffix (so encoders can guess the format).

    Creates missing parent folders. Raises ``OstnetError`` naming ``path`` when its folder cannot be made or
    is not writable. The caller writes the temporary file, then ``os.replace``s it onto ``path``.
    """
    path = Path(path)
    folder = path.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OstnetError(f"{path}: cannot create the output folder ({exc.strerror or exc})") from None
    if not folder.is_dir():
        raise OstnetError(f"{path}: {folder} is not a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OstnetError(f"{path}: the output folder {folder} is not writable")
    if path.is_dir():
        raise OstnetError(f"{path}: is a folder, expected a file name")
    return folder / f".{path.stem}.{uuid.uuid4().hex[:8]}.part{path.suffix}"


@contextmanager
def atomic_output(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success move it onto ``path``, on any exception
    (including ``KeyboardInterrupt``) delete it, so ``path`` is either complete or untouched.

    Example::

        with atomic_output("out.png") as tmp:
            image.save(tmp)
    """
    tmp = temp_path_for(path)
    try:
        yield tmp
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise OstnetError(f"{path}: cannot write ({exc.strerror or exc})") from exc
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
