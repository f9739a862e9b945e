"""The networks (one file per network) and the typed outputs they pass between them.

* ``ostnet``: ``OSTNet`` (keypoint detector + scale transformation + generator), ``build_model``,
  ``count_parameters``.
* ``keypoint_detector``: FOMM's keypoint detector F_kp; ``scale_transform``: the ST module (paper Sec. 3.2).
* ``generator_ostnet`` / ``generator_fomm``: the generator with the scale embedding (Sec. 3.3) and FOMM's.
* ``dense_motion``: FOMM's dense motion network; ``blocks``: the shared building blocks.
* ``outputs``: ``Keypoints``, ``MotionField``, ``GeneratorOutput``, ``ScaleTransformOutput``, ``ModelOutput``.

Models build on ``ostnet.geometry`` and ``ostnet.config`` only (docs/design.md, "Layers").
"""

from ostnet.models.ostnet import OSTNet, build_model, count_parameters
from ostnet.models.outputs import GeneratorOutput, Keypoints, ModelOutput, MotionField, ScaleTransformOutput

__all__ = [
    "GeneratorOutput",
    "Keypoints",
    "ModelOutput",
    "MotionField",
    "OSTNet",
    "ScaleTransformOutput",
    "build_model",
    "count_parameters",
]
