"""Import a FOMM checkpoint (``*.pth.tar``, reference-architecture.md §10) as an ostnet model.

``convert_fomm_checkpoint(path)`` reads the file with ``torch.load(weights_only=True)`` (no code is
unpickled), infers the architecture from tensor shapes alone, and returns a ``ModelConfig`` (generator kind
``fomm``, no scale transformation, no scale embedding) plus the state dict of our ``OSTNet``
(``kp_detector.<FOMM key>``, ``generator.<FOMM key>``). Discriminator and optimiser entries are dropped.

What the shapes determine: K, the image channels, every hourglass's block_expansion / num_blocks /
max_features, the generator's block_expansion / max_features / num_down_blocks / num_bottleneck_blocks, the
Jacobian and occlusion heads, and the anti-aliasing scale (a Gaussian of size k = 4n - 3 downsamples by 1/n;
no ``down.weight`` means scale 1). What they cannot determine keeps FOMM's vox values: temperature 0.1,
heat-map padding 0, kp_variance 0.01 (as in every published FOMM config). When max_features exceeds every
width actually used, the largest used width is recorded: the two networks are identical.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import NamedTuple

import torch
from torch import Tensor

from ostnet.config import (
    DenseMotionConfig,
    GeneratorConfig,
    KeypointDetectorConfig,
    ModelConfig,
    ScaleTransformConfig,
)
from ostnet.errors import OstnetError
from ostnet.io.tensors import load_trusted
from ostnet.models.ostnet import build_model

_PARTS = ("kp_detector", "generator")
_REQUIRED = {
    "kp_detector": ("kp.weight", "predictor.encoder.down_blocks.0.conv.weight"),
    "generator": (
        "first.conv.weight",
        "final.weight",
        "dense_motion_network.mask.weight",
        "dense_motion_network.hourglass.encoder.down_blocks.0.conv.weight",
    ),
}


class HourglassShape(NamedTuple):
    """Hyper-parameters of a FOMM Hourglass recovered from its weights."""

    block_expansion: int
    in_features: int
    num_blocks: int
    max_features: int


def convert_fomm_checkpoint(path: str | os.PathLike) -> tuple[ModelConfig, dict[str, Tensor]]:
    """FOMM checkpoint -> (ModelConfig, state dict of ``build_model(cfg)``).

    Raises OstnetError naming the file when it is missing, is not a torch checkpoint, lacks the
    ``generator``/``kp_detector`` state dicts, or its weights do not have FOMM's layout.
    """
    path = Path(path)
    parts = load_fomm_parts(path)
    cfg = infer_model_config(parts["kp_detector"], parts["generator"], path)
    state = {f"{part}.{key}": value for part in _PARTS for key, value in parts[part].items()}
    _check_layout(cfg, state, path)
    return cfg, state


def load_fomm_parts(path: Path) -> dict[str, dict[str, Tensor]]:
    """The ``kp_detector`` and ``generator`` state dicts of a FOMM file, with ``module.`` prefixes removed."""
    checkpoint = load_trusted(path, "FOMM checkpoint")
    if not isinstance(checkpoint, dict):
        raise OstnetError(f"{path}: not a FOMM checkpoint (top level is {type(checkpoint).__name__}, not a dict)")
    missing = [part for part in _PARTS if not isinstance(checkpoint.get(part), dict)]
    if missing:
        raise OstnetError(f"{path}: not a FOMM checkpoint: no {' or '.join(missing)} state dict")
    parts = {part: _clean_state(checkpoint[part]) for part in _PARTS}
    for part, keys in _REQUIRED.items():
        absent = [key for key in keys if key not in parts[part]]
        if absent:
            raise OstnetError(f"{path}: {part} state dict has no FOMM key {absent[0]!r}")
    return parts


def _clean_state(state: dict) -> dict[str, Tensor]:
    """Keep tensors, strip DataParallel's ``module.`` prefix."""
    return {
        (key[len("module.") :] if key.startswith("module.") else key): value
        for key, value in state.items()
        if isinstance(value, Tensor)
    }


def infer_model_config(kp: dict[str, Tensor], gen: dict[str, Tensor], path: Path) -> ModelConfig:
    """Build the ModelConfig from the shapes of the keypoint-detector and generator weights."""
    kp_hourglass = hourglass_shape(kp, "predictor.", path)
    num_channels = kp_hourglass.in_features
    num_kp = kp["kp.weight"].shape[0]
    jacobian = "jacobian.weight" in kp
    if jacobian and kp["jacobian.weight"].shape[0] != 4 * num_kp:
        raise OstnetError(f"{path}: jacobian head has {kp['jacobian.weight'].shape[0]} maps, expected 4 K")
    keypoints = KeypointDetectorConfig(
        num_kp=num_kp,
        block_expansion=kp_hourglass.block_expansion,
        max_features=kp_hourglass.max_features,
        num_blocks=kp_hourglass.num_blocks,
        scale_factor=scale_from_kernel(kp.get("down.weight"), path),
        estimate_jacobian=jacobian,
    )
    dm_hourglass = hourglass_shape(gen, "dense_motion_network.hourglass.", path)
    dense_motion = DenseMotionConfig(
        block_expansion=dm_hourglass.block_expansion,
        max_features=dm_hourglass.max_features,
        num_blocks=dm_hourglass.num_blocks,
        scale_factor=scale_from_kernel(gen.get("dense_motion_network.down.weight"), path),
        estimate_occlusion="dense_motion_network.occlusion.weight" in gen,
    )
    return ModelConfig(
        name="fomm-converted",
        image_size=256,
        num_channels=num_channels,
        keypoints=keypoints,
        dense_motion=dense_motion,
        generator=_generator_config(gen),
        scale_transform=ScaleTransformConfig(enabled=False),
    )


def _generator_config(gen: dict[str, Tensor]) -> GeneratorConfig:
    block_expansion = gen["first.conv.weight"].shape[0]
    down = _indices(gen, r"down_blocks\.(\d+)\.conv\.weight")
    widths = [block_expansion] + [gen[f"down_blocks.{i}.conv.weight"].shape[0] for i in down]
    return GeneratorConfig(
        kind="fomm",
        block_expansion=block_expansion,
        max_features=max(widths),
        num_down_blocks=len(down),
        num_bottleneck_blocks=len(_indices(gen, r"bottleneck\.r(\d+)\.conv1\.weight")),
        skip_connections=False,
        scale_embedding=False,
    )


def hourglass_shape(state: dict[str, Tensor], prefix: str, path: Path) -> HourglassShape:
    """Recover an Hourglass's hyper-parameters from the weights under ``prefix``."""
    down = _indices(state, re.escape(prefix) + r"encoder\.down_blocks\.(\d+)\.conv\.weight")
    up = _indices(state, re.escape(prefix) + r"decoder\.up_blocks\.(\d+)\.conv\.weight")
    if not down or down != list(range(len(down))) or up != down:
        raise OstnetError(f"{path}: {prefix}* does not have the layout of a FOMM hourglass")
    enc = [state[f"{prefix}encoder.down_blocks.{i}.conv.weight"] for i in down]
    last_up = state[f"{prefix}decoder.up_blocks.{len(up) - 1}.conv.weight"]
    return HourglassShape(
        block_expansion=last_up.shape[0],
        in_features=enc[0].shape[1],
        num_blocks=len(down),
        max_features=max(w.shape[0] for w in enc),
    )


def _indices(state: dict[str, Tensor], pattern: str) -> list[int]:
    """Sorted integers captured by ``pattern`` (full match) over the keys of ``state``."""
    regex = re.compile(pattern)
    return sorted(int(m.group(1)) for key in state if (m := regex.fullmatch(key)))


def scale_from_kernel(kernel: Tensor | None, path: Path) -> float:
    """Anti-aliasing scale from the Gaussian buffer (C, 1, k, k): k = 4n - 3 for scale 1/n; None -> 1.

    (sigma = (n - 1)/2 and k = 2 round(4 sigma) + 1 = 4n - 3, reference-architecture.md §0.1.)
    """
    if kernel is None:
        return 1.0
    size = kernel.shape[-1]
    if kernel.dim() != 4 or kernel.shape[-2] != size or (size + 3) % 4:
        raise OstnetError(f"{path}: anti-aliasing kernel of shape {tuple(kernel.shape)} is not FOMM's")
    return 1.0 / ((size + 3) // 4)


def _check_layout(cfg: ModelConfig, state: dict[str, Tensor], path: Path) -> None:
    """Compare keys and shapes with the model ``cfg`` describes (built on the meta device: no memory).

    BatchNorm ``num_batches_tracked`` buffers missing from old checkpoints are added (0) in place.
    """

    with torch.device("meta"):
        expected = build_model(cfg).state_dict()
    for key, value in expected.items():
        if key.endswith("num_batches_tracked") and key not in state:
            state[key] = torch.zeros((), dtype=value.dtype)
    missing = [key for key in expected if key not in state]
    extra = [key for key in state if key not in expected]
    wrong = [key for key in expected if key in state and state[key].shape != expected[key].shape]
    if missing or extra or wrong:
        detail = "; ".join(
            f"{label}: {', '.join(keys[:3])}"
            for label, keys in (("missing", missing), ("unexpected", extra), ("wrong shape", wrong))
            if keys
        )
        raise OstnetError(f"{path}: weights do not have FOMM's layout ({detail})")


def describe(cfg: ModelConfig, num_parameters: int) -> str:
    """One-line summary of a converted model's architecture."""
    kp, dm, g = cfg.keypoints, cfg.dense_motion, cfg.generator
    return (
        f"K={kp.num_kp}, keypoint detector {kp.block_expansion}-{kp.max_features} x{kp.num_blocks}, "
        f"dense motion {dm.block_expansion}-{dm.max_features} x{dm.num_blocks}, "
        f"generator {g.block_expansion}-{g.max_features} ({g.num_down_blocks} down, "
        f"{g.num_bottleneck_blocks} bottleneck), scale {kp.scale_factor:g}, "
        f"jacobian {'yes' if kp.estimate_jacobian else 'no'}, "
        f"occlusion {'yes' if dm.estimate_occlusion else 'no'}, "
        f"{num_parameters:,} parameters"
    )
