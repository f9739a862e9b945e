"""Reading and writing images and videos, and the one uint8 <-> float conversion.

* ``ostnet.io.image``: ``load_image``, ``save_image``, ``to_tensor``, ``to_uint8``, ``FrameFolder``.
* ``ostnet.io.video``: ``VideoInfo``, ``probe_video``, ``iter_frames``, ``read_frames``, ``VideoWriter``.
* ``ostnet.io.atomic`` (imported here): ``atomic_output``, ``AtomicFolder``, ``atomic_write``,
  ``temp_path_for``, ``is_temporary``, ``remove_temporaries``: the one file writer and the one folder
  writer, so that no command ever leaves a half-written output behind.

Frames are ``(H, W, 3)`` uint8 RGB numpy arrays on disk-facing APIs and ``(3, H, W)`` float tensors in
[0, 1] inside the models. The submodules are imported lazily (PyAV is only loaded when video is used).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ostnet._lazy import lazy_getattr
from ostnet.io.atomic import (
    AtomicFile,
    AtomicFolder,
    atomic_output,
    atomic_write,
    is_temporary,
    remove_temporaries,
    temp_path_for,
)

if TYPE_CHECKING:  # the lazy names below, for editors and type checkers
    from ostnet.io.image import FrameFolder, load_image, save_image, to_tensor, to_uint8
    from ostnet.io.video import VideoInfo, VideoWriter, iter_frames, probe_video, read_frames

_LAZY = {
    "load_image": "ostnet.io.image",
    "save_image": "ostnet.io.image",
    "to_tensor": "ostnet.io.image",
    "to_uint8": "ostnet.io.image",
    "FrameFolder": "ostnet.io.image",
    "VideoInfo": "ostnet.io.video",
    "VideoWriter": "ostnet.io.video",
    "probe_video": "ostnet.io.video",
    "iter_frames": "ostnet.io.video",
    "read_frames": "ostnet.io.video",
}

__all__ = [
    "AtomicFile",
    "AtomicFolder",
    "FrameFolder",
    "VideoInfo",
    "VideoWriter",
    "atomic_output",
    "atomic_write",
    "is_temporary",
    "iter_frames",
    "load_image",
    "probe_video",
    "read_frames",
    "remove_temporaries",
    "save_image",
    "temp_path_for",
    "to_tensor",
    "to_uint8",
]

__getattr__ = lazy_getattr(__name__, _LAZY)
