"""Frozen VGG feature extractor for the perceptual loss (paper Eq. 7; reference-architecture.md §6.1).

Our own definition of torchvision's ``vgg19().features`` up to relu5_1 (layers 0-29), and of ``vgg16().features``
up to relu5_3 (layers 0-29). The layers sit in an ``nn.Sequential`` named ``features`` so the state-dict keys
are torchvision's (``features.0.weight``, ``features.2.weight``, ...) and the ImageNet files
(``vgg19-dcbb9e9d.pth``, ``vgg16-397923af.pth``, or the safetensors of ``ostnet weights install``) load as they
are (``classifier.*`` keys and later layers are ignored).

``LossConfig.perceptual_network`` chooses the network:

* ``vgg19`` (default, the paper's): slices end at relu1_1, relu2_1, relu3_1, relu4_1, relu5_1;
* ``vgg16``: slices end at relu1_2, relu2_2, relu3_3, relu4_3, relu5_3 (same channels and strides; the mapping
  and why are in docs/design.md).

The weights come from ``LossConfig.vgg_weights``, else ostnet's weights cache (``ostnet weights install``),
else the torch hub cache (``$TORCH_HOME/hub/checkpoints``). Nothing is downloaded. When ``vgg19`` is asked
for but only VGG-16 is installed (no package ships ImageNet VGG-19), the ImageNet VGG-16 is used with a
one-time warning, a documented departure. Random weights are used only with the explicit opt-in
``allow_random_vgg=True``, and then with a loud warning: a perceptual loss on a random network trains, but
not to the paper's quality.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torch import Tensor, nn

from ostnet.errors import OstnetError
from ostnet.weights.catalog import INSTALL_HINT, VGG16_LAYOUT, VGG19_LAYOUT, installed_path, read_weight_file

VGG_FILENAMES = {"vgg19": "vgg19-dcbb9e9d.pth", "vgg16": "vgg16-397923af.pth"}  # torchvision's
VGG19_FILENAME = VGG_FILENAMES["vgg19"]
NETWORKS = tuple(VGG_FILENAMES)
RANDOM = "random"  # ``loss.vgg_weights=random``: deliberately random weights (for comparisons), never a fallback

# torchvision's configurations "E" (VGG-19, to relu5_1) and "D" (VGG-16, to relu5_3): conv widths, "M" = pool.
_LAYOUTS: dict[str, tuple[int | str, ...]] = {"vgg19": VGG19_LAYOUT, "vgg16": VGG16_LAYOUT}
# Exclusive end index of each slice in ``features``.
SLICE_ENDS: dict[str, tuple[int, ...]] = {
    "vgg19": (2, 7, 12, 21, 30),  # relu1_1, relu2_1, relu3_1, relu4_1, relu5_1
    "vgg16": (4, 9, 16, 23, 30),  # relu1_2, relu2_2, relu3_3, relu4_3, relu5_3
}
SLICE_NAMES = {
    "vgg19": ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"),
    "vgg16": ("relu1_2", "relu2_2", "relu3_3", "relu4_3", "relu5_3"),
}
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_RANDOM_INIT_SEED = 20240713  # fixed, so every rank and every resumed run gets the same random network


def _build_features(network: str) -> nn.Sequential:
    layers: list[nn.Module] = []
    in_ch = 3
    for item in _LAYOUTS[network]:
        if item == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            layers.append(nn.Conv2d(in_ch, int(item), kernel_size=3, padding=1))
            layers.append(nn.ReLU(inplace=True))
            in_ch = int(item)
    return nn.Sequential(*layers)


class VggFeatures(nn.Module):
    """VGG slices (``SLICE_NAMES[network]``), frozen and in eval mode.

    ``forward(image)``: image (B, 3, H, W) RGB in [0, 1] (ImageNet normalisation is applied inside, with mean
    and std held as non-persistent buffers) -> list of 5 feature maps with 64, 128, 256, 512, 512 channels at
    H, H/2, H/4, H/8, H/16 (both networks). ``source`` says which weights were loaded (for logs and reports).
    """

    def __init__(self, network: str = "vgg19") -> None:
        super().__init__()
        if network not in NETWORKS:
            raise ValueError(f"perceptual_network: expected one of {', '.join(NETWORKS)}, got {network!r}")
        self.network = network
        self.source = "untrained"
        self.features = _build_features(network)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> VggFeatures:
        """Always eval mode: an enclosing module's ``train()`` cannot switch the frozen network."""
        return super().train(False)

    def forward(self, image: Tensor, slices: int = 5) -> list[Tensor]:
        """The first ``slices`` feature maps (all 5 by default); the layers after them are not run."""
        ends = SLICE_ENDS[self.network]
        if not 1 <= slices <= len(ends):
            raise ValueError(f"slices must be in 1..{len(ends)}, got {slices}")
        x = (image - self.mean.to(image.dtype)) / self.std.to(image.dtype)
        outputs = []
        start = 0
        for end in ends[:slices]:
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


Vgg19Features = VggFeatures  # the paper's network is the default


def default_vgg_path(network: str = "vgg19") -> Path:
    """Where torchvision caches the ImageNet file: ``<torch hub dir>/checkpoints/vgg19-dcbb9e9d.pth``."""
    return Path(torch.hub.get_dir()) / "checkpoints" / VGG_FILENAMES[network]


def load_vgg_state(model: VggFeatures, path: Path) -> None:
    """Copy torchvision-format VGG weights from ``path`` into ``model``; OstnetError on a mismatch."""
    state = read_weight_file(path, "the VGG weights")
    wanted = model.state_dict()
    name = model.network.upper().replace("VGG", "VGG-")
    missing = [k for k in wanted if k not in state]
    if missing:
        raise OstnetError(f"{path}: not a torchvision {name} state dict (missing {', '.join(missing[:3])} ...)")
    for key, value in wanted.items():
        if tuple(state[key].shape) != tuple(value.shape):
            raise OstnetError(f"{path}: {key} has shape {tuple(state[key].shape)}, expected {tuple(value.shape)}")
    model.load_state_dict({k: state[k].float() for k in wanted}, strict=True)
    model.source = f"ImageNet {name} ({', '.join(SLICE_NAMES[model.network])}) from {path}"


def find_vgg_file(network: str) -> Path | None:
    """The installed ImageNet weights of ``network``: ostnet's cache, else the torch hub cache; None if absent."""
    for path in (installed_path(network), default_vgg_path(network)):
        if path is not None and path.is_file():
            return path
    return None


def build_vgg(network: str = "vgg19", weights: str | None = None, allow_random: bool = False) -> VggFeatures:
    """The frozen VGG of the perceptual loss (see the module docstring for where weights are looked up).

    Args:
        network: ``vgg19`` (the paper's) or ``vgg16``.
        weights: a torchvision-format file (``.pth`` or ``.safetensors``) for ``network``; None looks in the caches;
            ``"random"`` asks for deterministic random weights even when ImageNet weights are installed.
        allow_random: when no file is found, use deterministic random weights (with a warning) instead of
            raising. An explicitly given ``weights`` path that does not exist is always an error.

    Raises:
        OstnetError: the file is missing (naming where we looked, the install command and the opt-in),
        unreadable or not the network.
    """
    model = VggFeatures(network)
    if weights == RANDOM:
        return _randomized(model, "loss.vgg_weights=random: the perceptual loss uses a RANDOM {name}, as asked")
    path = Path(weights).expanduser() if weights else find_vgg_file(network)
    if path is not None and path.is_file():
        load_vgg_state(model, path)
        return model
    stand_in = find_vgg_file("vgg16") if network == "vgg19" and not weights else None
    if stand_in is not None:
        warnings.warn(
            "ImageNet VGG-19 is not installed (no package ships it): the perceptual loss uses the installed "
            "ImageNet VGG-16 at relu1_2, relu2_2, relu3_3, relu4_3, relu5_3 instead (see docs/design.md); "
            "`ostnet weights install vgg19 --from vgg19-dcbb9e9d.pth` gives the paper's network",
            UserWarning,
            stacklevel=2,
        )
        return build_vgg("vgg16", str(stand_in))
    name = network.upper().replace("VGG", "VGG-")
    where = path if path is not None else default_vgg_path(network)
    if weights or not allow_random:
        raise OstnetError(
            f"{where}: {name} ImageNet weights not found (needed by the perceptual loss); {INSTALL_HINT}, or "
            f"put torchvision's {VGG_FILENAMES[network]} there or pass --set loss.vgg_weights=PATH; for tests "
            "or offline demos only, --set loss.allow_random_vgg=true trains with a random VGG"
        )
    return _randomized(model, f"{name} weights not found at {where}: the perceptual loss uses a RANDOM {{name}} "
                              "(allow_random_vgg=True)")  # fmt: skip


def _randomized(model: VggFeatures, why: str) -> VggFeatures:
    name = model.network.upper().replace("VGG", "VGG-")
    message = why.format(name=name) + ". Results will not match the paper."
    warnings.warn(message, UserWarning, stacklevel=3)  # once; a log line as well printed it twice
    model.randomize()
    model.source = f"random {name}"
    return model


def build_vgg19(weights: str | None = None, allow_random: bool = False) -> VggFeatures:
    """``build_vgg("vgg19", weights, allow_random)``."""
    return build_vgg("vgg19", weights, allow_random)
