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

from ostnet._lazy import lazy_getattr

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

__all__ = list(_LAZY)

__getattr__ = lazy_getattr(__name__, _LAZY)
