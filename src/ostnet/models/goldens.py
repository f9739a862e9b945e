"""Golden outputs of the ``tiny`` model of every family: any change to what a model computes shows up.

``GOLDEN_CASES`` lists one ``GoldenCase`` per family: a name and its tiny ``ModelConfig``. For each case the
golden file ``tests/goldens/<name>.safetensors`` (a few KB) holds the model's outputs on fixed inputs, with
the seed, the config and the command that made it in its metadata. ``scripts/make_goldens.py`` (re)writes the
files and ``tests/models/test_goldens.py`` compares a fresh run with them. A new family adds one entry here,
then runs ``python scripts/make_goldens.py <name>`` and commits the file.

The weights do not come from the model's own random initialisation, so that reordering the construction of
its modules (a harmless refactor) does not change them. Each parameter is drawn from a generator seeded with
the case's seed and the parameter's name: uniform in +-sqrt(6 / fan in) (He's bound, so that activations keep
their size through the layers) for a parameter the model initialises randomly; the model's own value plus a
little noise for one it sets deterministically (norm scales, FOMM's Jacobian head, the scale
transformation's base points), found by building the model under two seeds. Buffers keep their values. The
model runs in eval mode, in fp32 on the CPU, on two smooth random (source, driving) pairs; image-sized
outputs are stored average-pooled to 8 x 8.
"""

from __future__ import annotations

import dataclasses
import zlib
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from ostnet import config as C
from ostnet.models.ostnet import OSTNet, build_model

SEED = 0
POOLED = 8  # image-sized outputs are stored at POOLED x POOLED
GAIN = 6**0.5  # He-uniform bound sqrt(6 / fan in): activations keep their size through ReLU layers
ATOL = RTOL = 1e-4  # fp32 CPU results agree to ~1e-6 across machines; a real change moves them far more
GOLDEN_DIR = "tests/goldens"


def _tiny_fomm() -> C.ModelConfig:
    """The tiny model with FOMM's generator and no scale transformation: the FOMM kind (baseline)."""
    cfg = C.model_preset("tiny")
    generator = dataclasses.replace(cfg.generator, kind="fomm", num_bottleneck_blocks=2, skip_connections=False)
    generator = dataclasses.replace(generator, scale_embedding=False)
    return dataclasses.replace(
        cfg, name="tiny-fomm", generator=generator, scale_transform=C.ScaleTransformConfig(enabled=False)
    )


def _tiny_fomm_st_se() -> C.ModelConfig:
    """FOMM's generator with OSTNet's ST and SE (Table 5's fomm-st-se, tiny)."""
    cfg = _tiny_fomm()
    return dataclasses.replace(
        cfg,
        name="tiny-fomm-st-se",
        generator=dataclasses.replace(cfg.generator, scale_embedding=True),
        scale_transform=C.model_preset("tiny").scale_transform,
    )


@dataclass(frozen=True)
class GoldenCase:
    """One family's tiny model: ``name`` (the golden file's stem) and a function returning its config."""

    name: str
    config: Callable[[], C.ModelConfig]
    seed: int = SEED

    @property
    def command(self) -> str:
        return f"python scripts/make_goldens.py {self.name}"


GOLDEN_CASES: tuple[GoldenCase, ...] = (
    GoldenCase("tiny", lambda: C.model_preset("tiny")),  # OSTNet: its generator, ST and SE
    GoldenCase("tiny-fomm", _tiny_fomm),
    GoldenCase("tiny-fomm-st-se", _tiny_fomm_st_se),
    GoldenCase("tiny-codebooks", lambda: C.model_preset("tiny-codebooks")),  # multi-scale compensatory codebooks
    GoldenCase("tiny-pechead", lambda: C.model_preset("tiny-pechead")),  # PECHead: pose and expression control
)


def golden_case(name: str) -> GoldenCase:
    for case in GOLDEN_CASES:
        if case.name == name:
            return case
    raise KeyError(f"no golden case {name!r}; known: {', '.join(case.name for case in GOLDEN_CASES)}")


def _uniform(shape: torch.Size, seed: int, name: str) -> Tensor:
    generator = torch.Generator().manual_seed(seed * 2**32 + zlib.crc32(name.encode()))
    return torch.rand(shape, generator=generator, dtype=torch.float64).mul_(2).sub_(1).float()


def golden_model(cfg: C.ModelConfig, seed: int = SEED) -> OSTNet:
    """The model of ``cfg`` with weights that depend only on ``seed`` and the parameters' names (see above)."""
    torch.manual_seed(1)
    model = build_model(cfg)
    torch.manual_seed(2)
    other = dict(build_model(cfg).named_parameters())
    with torch.no_grad():
        for name, param in model.named_parameters():
            fan_in = param[0].numel() if param.dim() >= 2 else 1
            bound = GAIN * fan_in**-0.5 if param.dim() >= 2 else 0.1
            noise = _uniform(param.shape, seed, name)
            if torch.equal(param, other[name]):  # set deterministically by the model: keep it, perturbed
                param.add_(0.1 * bound * noise)
            else:
                param.copy_(bound * noise)
    return model.eval()


def golden_inputs(size: int, seed: int = SEED, pairs: int = 2) -> tuple[Tensor, Tensor]:
    """Smooth random source and driving images, each (pairs, 3, size, size) in [0, 1]."""
    generator = torch.Generator().manual_seed(seed)
    low = torch.rand(2 * pairs, 3, 8, 8, generator=generator, dtype=torch.float64).float()
    images = F.interpolate(low, size=(size, size), mode="bilinear", align_corners=True)
    return images[:pairs], images[pairs:]


def _pool(image: Tensor) -> Tensor:
    return F.adaptive_avg_pool2d(image, POOLED)


@torch.no_grad()
def golden_outputs(cfg: C.ModelConfig, seed: int = SEED) -> dict[str, Tensor]:
    """The outputs a golden file stores, freshly computed (CPU, fp32)."""
    model = golden_model(cfg, seed)
    source, driving = golden_inputs(cfg.image_size, seed)
    out = model(source, driving)
    tensors = {
        "prediction": _pool(out.prediction),
        "rectified": _pool(out.rectified),
        "deformed": _pool(out.deformed),
        "deformation": _pool(out.deformation.permute(0, 3, 1, 2)),
        "kp_source": out.kp_source.value,
        "kp_driving": out.kp_driving.value,
        "kp_rectified": out.kp_rectified.value,
        "occlusion": None if out.occlusion is None else _pool(out.occlusion),
        "jacobian_source": out.kp_source.jacobian,
        "z": out.z,
        "fiducial_points": out.fiducial_points,
    }
    return {name: value.float().contiguous().clone() for name, value in tensors.items() if value is not None}


def golden_metadata(case: GoldenCase) -> dict[str, str]:
    """What a golden file says about itself: case, seed, command, config and the torch that made it."""
    return {
        "case": case.name,
        "seed": str(case.seed),
        "command": case.command,
        "model_config": C.to_json(case.config()),
        "torch": torch.__version__,
    }
