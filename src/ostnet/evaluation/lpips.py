"""LPIPS perceptual distance (Zhang et al., CVPR 2018; paper Sec. 4.1 "Metrics"), AlexNet backbone, v0.1.

Our own module, written so that the two public weight files load into it unchanged:

* torchvision's ImageNet AlexNet, ``alexnet-owt-7be5be79.pth``: only ``features.{0,3,6,8,10}.{weight,bias}``
  are used (the classifier keys are ignored);
* the LPIPS v0.1 linear calibration, ``alex.pth`` from the ``lpips`` package
  (``lin{0..4}.model.1.weight``, shapes ``(1, C, 1, 1)`` with C = 64, 192, 384, 256, 256).

Distance between two images: scale [0, 1] inputs to [-1, 1], apply LPIPS's fixed input shift/scale, take
the five ReLU outputs of AlexNet, normalise each feature vector to unit length over channels, square the
difference, weight channels with the linear layer, average over space and sum over the five layers.
0 for identical images; larger is more different; typical values 0..1.

Weights are looked up in the given paths, else in ostnet's weights cache (``alexnet.safetensors`` and
``lpips-alex.safetensors``, written by ``ostnet weights install``; see ``ostnet.weights.catalog``), else in the
torch hub cache (``torch.hub.get_dir()/checkpoints``: ``alexnet-owt-7be5be79.pth`` and ``lpips_v0.1_alex.pth``
or ``alex.pth``). When they are not there, :func:`try_load_lpips` returns the reason (with the install
command) instead of a model so that the evaluation leaves the LPIPS column empty and says why.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from ostnet.errors import OstnetError
from ostnet.evaluation.metrics import check_pair
from ostnet.weights.catalog import INSTALL_HINT, cache_path, read_weight_file

ALEXNET_FILENAME = "alexnet-owt-7be5be79.pth"
LINEAR_FILENAMES = ("lpips_v0.1_alex.pth", "alex.pth")
ALEX_CHANNELS = (64, 192, 384, 256, 256)  # channels of relu1..relu5
_ALEX_TAPS = (1, 4, 7, 9, 11)  # indices in `features` of the ReLUs whose outputs LPIPS compares
_SHIFT = (-0.030, -0.088, -0.188)  # LPIPS ScalingLayer constants for inputs in [-1, 1]
_SCALE = (0.458, 0.448, 0.450)
_EPS = 1e-10


class LpipsUnavailable(OstnetError):
    """The LPIPS weights are missing or unreadable; the message says which file and why."""


class AlexNetFeatures(nn.Module):
    """AlexNet's convolutional trunk with torchvision's layer indices (``features.0`` ... ``features.11``).

    ``forward`` takes ``(B, 3, H, W)`` normalised images and returns the five ReLU outputs relu1..relu5
    with ``ALEX_CHANNELS`` channels (at strides 4, 8, 16, 16, 16).
    """

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 64, kernel_size=11, stride=4, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(64, 192, kernel_size=5, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(192, 384, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.Conv2d(384, 256, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.Conv2d(256, 256, kernel_size=3, padding=1),
            nn.ReLU(),
        )

    def forward(self, x: Tensor) -> list[Tensor]:
        taps = []
        for index, layer in enumerate(self.features):
            x = layer(x)
            if index in _ALEX_TAPS:
                taps.append(x)
        return taps


class _LinearHead(nn.Module):
    """LPIPS "NetLinLayer": dropout then a bias-free 1x1 conv C -> 1 (keys ``model.1.weight``)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.model = nn.Sequential(nn.Dropout(), nn.Conv2d(channels, 1, kernel_size=1, bias=False))

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x)


class LPIPS(nn.Module):
    """LPIPS v0.1 (AlexNet) distance. ``forward(pred, target)``: images (B, 3, H, W) in [0, 1] -> (B,).

    Build with :func:`load_lpips` (pretrained weights) or directly (random weights, for tests). The module
    is frozen and stays in eval mode (dropout off).
    """

    def __init__(self) -> None:
        super().__init__()
        self.net = AlexNetFeatures()
        self.lins = nn.ModuleList(_LinearHead(c) for c in ALEX_CHANNELS)
        self.register_buffer("shift", torch.tensor(_SHIFT).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor(_SCALE).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> LPIPS:  # a metric never trains: dropout stays off
        return super().train(False)

    def linear_state_dict(self) -> dict[str, Tensor]:
        """The linear weights under the lpips file's key names (``lin{k}.model.1.weight``)."""
        return {f"lin{k}.model.1.weight": lin.model[1].weight.detach().clone() for k, lin in enumerate(self.lins)}

    def load_weights(self, alexnet_path: str | os.PathLike, linear_path: str | os.PathLike) -> LPIPS:
        """Load torchvision AlexNet ``features.*`` and lpips ``lin{k}.model.1.weight`` tensors from files."""
        alex = _read_state_dict(alexnet_path)
        features = {k: v for k, v in alex.items() if k.startswith("features.")}
        _load_exact(self.net, features, alexnet_path, "a torchvision AlexNet state dict")
        lin = _read_state_dict(linear_path)
        renamed = {f"{k[3]}.{k[5:]}": v for k, v in lin.items() if k.startswith("lin") and k[3:4].isdigit()}
        _load_exact(self.lins, renamed, linear_path, "an LPIPS v0.1 alex.pth (lin0..lin4) file")
        return self

    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        pred, target = check_pair(pred, target)
        dtype = self.shift.dtype
        feats_p = self.net((pred.to(dtype) * 2 - 1 - self.shift) / self.scale)
        feats_t = self.net((target.to(dtype) * 2 - 1 - self.shift) / self.scale)
        total = torch.zeros(pred.shape[0], dtype=dtype, device=pred.device)
        for lin, fp, ft in zip(self.lins, feats_p, feats_t, strict=True):
            diff = (_unit(fp) - _unit(ft)).pow(2)  # (B, C, h, w)
            total = total + lin(diff).mean(dim=(1, 2, 3))
        return total.double()


def _unit(features: Tensor) -> Tensor:
    """Normalise each spatial feature vector to unit L2 norm over channels (LPIPS ``normalize_tensor``)."""
    return features / (features.pow(2).sum(dim=1, keepdim=True).sqrt() + _EPS)


def _read_state_dict(path: str | os.PathLike) -> dict[str, Tensor]:
    path = Path(path)
    if not path.is_file():
        raise LpipsUnavailable(f"{path}: weight file not found")
    try:
        return read_weight_file(path)
    except OstnetError as exc:
        raise LpipsUnavailable(str(exc)) from None


def _load_exact(module: nn.Module, state: dict[str, Tensor], path: str | os.PathLike, what: str) -> None:
    expected = module.state_dict()
    missing = sorted(set(expected) - set(state))
    if missing:
        raise LpipsUnavailable(f"{path}: not {what} (missing {', '.join(missing[:3])})")
    for key, value in expected.items():
        if tuple(state[key].shape) != tuple(value.shape):
            raise LpipsUnavailable(f"{path}: {key} has shape {tuple(state[key].shape)}, expected {tuple(value.shape)}")
    module.load_state_dict({k: state[k].float() for k in expected})


@dataclass(frozen=True)
class LpipsWeights:
    """Paths of the two files LPIPS needs."""

    alexnet: Path
    linear: Path


def locate_lpips_weights(
    alexnet: str | os.PathLike | None = None,
    linear: str | os.PathLike | None = None,
    hub_dir: str | os.PathLike | None = None,
) -> LpipsWeights:
    """Find the weight files: explicit paths first, else ostnet's weights cache, else the torch hub cache's
    ``checkpoints`` folder.

    Raises ``LpipsUnavailable`` naming every place that was searched and the install command.
    """
    folder = Path(hub_dir if hub_dir is not None else torch.hub.get_dir()) / "checkpoints"
    alex_candidates = [Path(alexnet)] if alexnet else [cache_path("alexnet"), folder / ALEXNET_FILENAME]
    lin_candidates = [Path(linear)] if linear else [cache_path("lpips-alex")]
    lin_candidates += [] if linear else [folder / name for name in LINEAR_FILENAMES]
    found_alex = next((p for p in alex_candidates if p.is_file()), None)
    found_lin = next((p for p in lin_candidates if p.is_file()), None)
    for found, what, candidates in ((found_alex, "AlexNet", alex_candidates), (found_lin, "LPIPS v0.1 linear",
                                                                              lin_candidates)):  # fmt: skip
        if found is None:
            looked = ", ".join(map(str, candidates))
            raise LpipsUnavailable(f"{what} weights not found; {INSTALL_HINT} (looked for {looked})")
    return LpipsWeights(found_alex, found_lin)


def load_lpips(
    alexnet: str | os.PathLike | None = None,
    linear: str | os.PathLike | None = None,
    hub_dir: str | os.PathLike | None = None,
) -> LPIPS:
    """A pretrained LPIPS (AlexNet, v0.1); raises ``LpipsUnavailable`` with the reason when it cannot."""
    weights = locate_lpips_weights(alexnet, linear, hub_dir)
    return LPIPS().load_weights(weights.alexnet, weights.linear)


def try_load_lpips(
    alexnet: str | os.PathLike | None = None,
    linear: str | os.PathLike | None = None,
    hub_dir: str | os.PathLike | None = None,
) -> tuple[LPIPS | None, str | None]:
    """``(model, None)`` when the weights load, else ``(None, reason)``; never raises for missing weights."""
    try:
        return load_lpips(alexnet, linear, hub_dir), None
    except LpipsUnavailable as exc:
        return None, str(exc)
