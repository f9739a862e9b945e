"""Training and evaluation data: dataset layouts, training pairs, transforms and synthetic talking heads.

* ``ostnet.data.dataset``: ``VideoEntry``, ``list_videos``, ``num_frames``, ``read_frame``, ``read_video``,
  ``TrainingPair``, ``PairDataset``.
* ``ostnet.data.synthetic``: ``HeadParams``, ``render_head``, ``sample_sequence``,
  ``write_synthetic_dataset``.
* ``ostnet.data.transforms``: resize, flip and colour jitter shared by both frames of a pair.

Names are imported lazily, so ``import ostnet.data`` loads nothing heavy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ostnet._lazy import lazy_getattr

if TYPE_CHECKING:  # the lazy names below, for editors and type checkers
    from ostnet.data.dataset import (
        PairDataset,
        TrainingPair,
        VideoEntry,
        identity_of,
        list_videos,
        num_frames,
        read_frame,
        read_frames_at,
        read_video,
    )
    from ostnet.data.synthetic import (
        ClipStyle,
        Expression,
        HeadParams,
        Identity,
        Pose,
        render_head,
        sample_identity,
        sample_sequence,
        write_synthetic_dataset,
    )

_LAZY = {
    "VideoEntry": "ostnet.data.dataset",
    "TrainingPair": "ostnet.data.dataset",
    "PairDataset": "ostnet.data.dataset",
    "list_videos": "ostnet.data.dataset",
    "num_frames": "ostnet.data.dataset",
    "read_frame": "ostnet.data.dataset",
    "read_frames_at": "ostnet.data.dataset",
    "read_video": "ostnet.data.dataset",
    "identity_of": "ostnet.data.dataset",
    "ClipStyle": "ostnet.data.synthetic",
    "HeadParams": "ostnet.data.synthetic",
    "Identity": "ostnet.data.synthetic",
    "Expression": "ostnet.data.synthetic",
    "Pose": "ostnet.data.synthetic",
    "render_head": "ostnet.data.synthetic",
    "sample_identity": "ostnet.data.synthetic",
    "sample_sequence": "ostnet.data.synthetic",
    "write_synthetic_dataset": "ostnet.data.synthetic",
}

__all__ = [
    "ClipStyle",
    "Expression",
    "HeadParams",
    "Identity",
    "PairDataset",
    "Pose",
    "TrainingPair",
    "VideoEntry",
    "identity_of",
    "list_videos",
    "num_frames",
    "read_frame",
    "read_frames_at",
    "read_video",
    "render_head",
    "sample_identity",
    "sample_sequence",
    "write_synthetic_dataset",
]

__getattr__ = lazy_getattr(__name__, _LAZY)
