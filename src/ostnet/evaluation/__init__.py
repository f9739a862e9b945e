"""Evaluation of talking-head models (paper Sec. 4.1): metrics, protocols and the ``ostnet evaluate`` harness.

* ``metrics``: L1, PSNR, SSIM (skimage conventions, data_range = 1, at 256x256).
* ``lpips``: our AlexNet LPIPS v0.1 that loads torchvision's and lpips' weight files.
* ``face_metrics``: dlib landmarks and descriptors -> AKD, AED, CSIM, scale error, pose/expression distance.
* ``protocols``: same-scale, different-scale, reconstruction and cross-identity pair lists (DaGAN CSV format).
* ``evaluate``: ``run_evaluation(EvalConfig)``, streaming, batched, resumable.
* ``report``: per-pair journal, result tables (markdown, CSV, JSON) and the sample grid.

Names are imported lazily, so ``import ostnet.evaluation`` loads neither dlib nor the dataset code.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ostnet._lazy import lazy_getattr

if TYPE_CHECKING:  # the lazy names below, for editors and type checkers
    from ostnet.evaluation.evaluate import EvalConfig, run_evaluation
    from ostnet.evaluation.face_metrics import FaceConfig, aed, akd, csim, get_face_analyzer, scale_error
    from ostnet.evaluation.lpips import LPIPS, load_lpips, try_load_lpips
    from ostnet.evaluation.metrics import l1, psnr, resize_for_metrics, ssim
    from ostnet.evaluation.protocols import PROTOCOLS, build_pairs, read_pairs_csv, write_pairs_csv

_LAZY = {
    "l1": "ostnet.evaluation.metrics",
    "psnr": "ostnet.evaluation.metrics",
    "ssim": "ostnet.evaluation.metrics",
    "resize_for_metrics": "ostnet.evaluation.metrics",
    "LPIPS": "ostnet.evaluation.lpips",
    "load_lpips": "ostnet.evaluation.lpips",
    "try_load_lpips": "ostnet.evaluation.lpips",
    "FaceConfig": "ostnet.evaluation.face_metrics",
    "get_face_analyzer": "ostnet.evaluation.face_metrics",
    "akd": "ostnet.evaluation.face_metrics",
    "aed": "ostnet.evaluation.face_metrics",
    "csim": "ostnet.evaluation.face_metrics",
    "scale_error": "ostnet.evaluation.face_metrics",
    "PROTOCOLS": "ostnet.evaluation.protocols",
    "build_pairs": "ostnet.evaluation.protocols",
    "read_pairs_csv": "ostnet.evaluation.protocols",
    "write_pairs_csv": "ostnet.evaluation.protocols",
    "EvalConfig": "ostnet.evaluation.evaluate",
    "run_evaluation": "ostnet.evaluation.evaluate",
}

__all__ = [
    "EvalConfig",
    "FaceConfig",
    "LPIPS",
    "PROTOCOLS",
    "aed",
    "akd",
    "build_pairs",
    "csim",
    "get_face_analyzer",
    "l1",
    "load_lpips",
    "psnr",
    "read_pairs_csv",
    "resize_for_metrics",
    "run_evaluation",
    "scale_error",
    "ssim",
    "try_load_lpips",
    "write_pairs_csv",
]

__getattr__ = lazy_getattr(__name__, _LAZY)
