"""Frozen VGG-19 feature extractor for the perceptual loss (paper Eq. 7; reference-architecture.md §6.1).

Our own definition of torchvision's ``vgg19().features`` up to relu5_1 (layers 0-29). The module keeps the
layers in an ``nn.Sequential`` named ``features`` so its state-dict keys are torchvision's
(``features.0.weight``, ``features.2.weight``, ``features.5.weight``, ...) and the ImageNet file
``vgg19-dcbb9e9d.pth`` loads as is (its ``classifier.*`` keys and the layers after relu5_1 are ignored).

The weights come from ``LossConfig.vgg_weights`` or, when that is None, from the torch hub cache
(``$TORCH_HOME/hub/checkpoints`` or ``~/.cache/torch/hub/checkpoints``). Nothing is downloaded. Random
weights are used only with the explicit opt-in ``allow_random_vgg=True``, and then with a loud warning: a
perceptual loss on a random network trains, but not to the paper's quality.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torch import Tensor, nn

from ostnet.errors import OstnetError

VGG19_FILENAME = "vgg19-dcbb9e9d.pth"

# torchvision's configuration "E" (VGG-19) up to relu5_1: conv widths, "M" = 2x2 max pool.
_LAYOUT: tuple[int | str, ...] = (
    64,
    64,
    "M",
    128,
    128,
    "M",
    256,
    256,
    256,
    256,
    "M",
    512,
    512,
    512,
    512,
    "M",
    512,
)
# Exclusive end index of each slice in ``features``: relu1_1, relu2_1, relu3_1, relu4_1, relu5_1.
SLICE_ENDS: tuple[int, ...] = (2, 7, 12, 21, 30)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_RANDOM_INIT_SEED = 20240713  # fixed, so every rank and every resumed run gets the same random network


def _build_features() -> nn.Sequential:
    layers: list[nn.Module] = []
    in_ch = 3
    for item in _LAYOUT:
        if item == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            layers.append(nn.Conv2d(in_ch, int(item), kernel_size=3, padding=1))
            layers.append(nn.ReLU(inplace=True))
            in_ch = int(item)
    return nn.Sequential(*layers)


class Vgg19Features(nn.Module):
    """VGG-19 slices ending at relu1_1, relu2_1, relu3_1, relu4_1, relu5_1, frozen and in eval mode.

    ``forward(image)``: image (B, 3, H, W) RGB in [0, 1] (ImageNet normalisation is applied inside, with mean
    and std held as non-persistent buffers) -> list of 5 feature maps with 64, 128, 256, 512, 512 channels at
    H, H/2, H/4, H/8, H/16.
    """

    def __init__(self) -> None:
        super().__init__()
        self.features = _build_features()
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> Vgg19Features:
        """Always eval mode: an enclosing module's ``train()`` cannot switch the frozen network."""
        return super().train(False)

    def forward(self, image: Tensor, slices: int = len(SLICE_ENDS)) -> list[Tensor]:
        """The first ``slices`` feature maps (all 5 by default); the layers after them are not run."""
        if not 1 <= slices <= len(SLICE_ENDS):
            raise ValueError(f"slices must be in 1..{len(SLICE_ENDS)}, got {slices}")
        x = (image - self.mean.to(image.dtype)) / self.std.to(image.dtype)
        outputs = []
        start = 0
        for end in SLICE_ENDS[:slices]:
            for layer in self.features[start:end]:
                x = layer(x)
            outputs.append(x)
            start = end
        return outputs

    def randomize(self) -> None:
        """Deterministic random weights (Kaiming normal, fan-out, zero bias) from a fixed private seed."""
        generator = torch.Generator().manual_seed(_RANDOM_INIT_SEED)
        for module in self.features:
            if isinstance(module, nn.Conv2d):
                fan_out = module.out_channels * module.kernel_size[0] * module.kernel_size[1]
                std = (2.0 / fan_out) ** 0.5
                with torch.no_grad():
                    module.weight.copy_(torch.randn(module.weight.shape, generator=generator) * std)
                    module.bias.zero_()


def default_vgg_path() -> Path:
    """Where torchvision caches the ImageNet VGG-19: ``<torch hub dir>/checkpoints/vgg19-dcbb9e9d.pth``."""
    return Path(torch.hub.get_dir()) / "checkpoints" / VGG19_FILENAME


def _read_state_dict(path: Path) -> dict[str, Tensor]:
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is the user's to fix
        raise OstnetError(f"{path}: cannot read the VGG-19 weights ({exc.__class__.__name__}: {exc})") from exc
    if not isinstance(state, dict):
        raise OstnetError(f"{path}: not a state dict (found {type(state).__name__})")
    return state


def load_vgg_state(model: Vgg19Features, path: Path) -> None:
    """Copy torchvision-format VGG-19 weights from ``path`` into ``model``; OstnetError on a mismatch."""
    state = _read_state_dict(path)
    wanted = model.state_dict()
    missing = [k for k in wanted if k not in state]
    if missing:
        raise OstnetError(f"{path}: not a torchvision VGG-19 state dict (missing {', '.join(missing[:3])} ...)")
    for key, value in wanted.items():
        if tuple(state[key].shape) != tuple(value.shape):
            raise OstnetError(f"{path}: {key} has shape {tuple(state[key].shape)}, expected {tuple(value.shape)}")
    model.load_state_dict({k: state[k].float() for k in wanted}, strict=True)


def build_vgg19(weights: str | None = None, allow_random: bool = False) -> Vgg19Features:
    """The frozen VGG-19 of the perceptual loss.

    Args:
        weights: path to torchvision's ``vgg19-dcbb9e9d.pth`` (or a ``.safetensors`` with the same keys); None
            looks in the torch hub cache (``default_vgg_path()``).
        allow_random: when no file is found, use deterministic random weights (with a warning) instead of
            raising. An explicitly given ``weights`` path that does not exist is always an error.

    Raises:
        OstnetError: the file is missing (naming where we looked and how to opt in), unreadable or not VGG-19.
    """
    model = Vgg19Features()
    path = Path(weights).expanduser() if weights else default_vgg_path()
    if path.is_file():
        load_vgg_state(model, path)
        return model
    if weights or not allow_random:
        raise OstnetError(
            f"{path}: VGG-19 ImageNet weights not found (needed by the perceptual loss). Put torchvision's "
            f"{VGG19_FILENAME} there or pass --set loss.vgg_weights=PATH; for tests or offline demos only, "
            "--set loss.allow_random_vgg=true trains with a random VGG"
        )
    message = (
        f"VGG-19 weights not found at {path}: the perceptual loss uses a RANDOM VGG-19 "
        "(allow_random_vgg=True). Results will not match the paper."
    )
    warnings.warn(message, UserWarning, stacklevel=2)  # once; a log line as well printed it twice
    model.randomize()
    return model
