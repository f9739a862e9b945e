"""VGG-19 of the perceptual loss: torchvision key layout, loading, missing-file error and random opt-in."""

from __future__ import annotations

import warnings

import pytest
import torch

from ostnet.errors import OstnetError
from ostnet.losses.vgg import VGG19_FILENAME, Vgg19Features, build_vgg19, default_vgg_path

# torchvision vgg19().features: conv layers at these indices (all 16 convs; we use the first 13).
TORCHVISION_CONV_INDICES = [0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28, 30, 32, 34]
TORCHVISION_WIDTHS = [64, 64, 128, 128, 256, 256, 256, 256, 512, 512, 512, 512, 512, 512, 512, 512]


def torchvision_like_state_dict(seed: int = 1) -> dict[str, torch.Tensor]:
    """A random state dict with torchvision's vgg19 keys (features up to 34 and the classifier)."""
    g = torch.Generator().manual_seed(seed)
    state = {}
    in_ch = 3
    for idx, width in zip(TORCHVISION_CONV_INDICES, TORCHVISION_WIDTHS, strict=True):
        state[f"features.{idx}.weight"] = torch.randn(width, in_ch, 3, 3, generator=g) * 0.05
        state[f"features.{idx}.bias"] = torch.randn(width, generator=g) * 0.01
        in_ch = width
    state["classifier.0.weight"] = torch.zeros(8, 4)  # shape irrelevant: must be ignored
    state["classifier.0.bias"] = torch.zeros(8)
    return state


def test_state_dict_keys_match_torchvision_layout():
    keys = set(Vgg19Features().state_dict())
    expected = {f"features.{i}.{p}" for i in TORCHVISION_CONV_INDICES[:13] for p in ("weight", "bias")}
    assert keys == expected  # mean/std are non-persistent buffers


def test_loads_torchvision_file_and_is_frozen(tmp_path):
    state = torchvision_like_state_dict()
    path = tmp_path / VGG19_FILENAME
    torch.save(state, path)
    vgg = build_vgg19(str(path))
    assert torch.equal(vgg.features[28].weight, state["features.28.weight"])
    assert all(not p.requires_grad for p in vgg.parameters())
    vgg.train()
    assert not vgg.training
    feats = vgg(torch.rand(2, 3, 32, 32))
    assert [f.shape[1:] for f in feats] == [
        (64, 32, 32),
        (128, 16, 16),
        (256, 8, 8),
        (512, 4, 4),
        (512, 2, 2),
    ]


def test_normalisation_uses_imagenet_statistics(tmp_path):
    vgg = Vgg19Features()
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1).expand(1, 3, 16, 16)
    # the ImageNet mean image is normalised to 0, so relu1_1 sees only the conv bias
    with torch.no_grad():
        vgg.features[0].bias.fill_(0.25)
    out = vgg(mean)[0]
    assert torch.allclose(out, torch.full_like(out, 0.25), atol=1e-6)


def test_loads_from_torch_hub_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    path = default_vgg_path()
    assert path == tmp_path / "hub" / "checkpoints" / VGG19_FILENAME
    path.parent.mkdir(parents=True)
    state = torchvision_like_state_dict(seed=3)
    torch.save(state, path)
    vgg = build_vgg19(None)
    assert torch.equal(vgg.features[0].weight, state["features.0.weight"])


def test_missing_file_without_opt_in_names_place_and_opt_in(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(OstnetError) as info:
        build_vgg19(None, allow_random=False)
    message = str(info.value)
    assert str(default_vgg_path()) in message and "allow_random_vgg" in message
    explicit = tmp_path / "nowhere.pth"
    with pytest.raises(OstnetError, match="nowhere.pth"):
        build_vgg19(str(explicit), allow_random=True)  # an explicit path must exist


def test_random_opt_in_warns_and_is_deterministic(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.warns(UserWarning, match="RANDOM VGG-19"):
        a = build_vgg19(None, allow_random=True)
    torch.manual_seed(123)  # the global RNG must not matter
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        b = build_vgg19(None, allow_random=True)
    assert torch.equal(a.features[0].weight, b.features[0].weight)
    assert a.features[0].weight.std() > 0


def test_wrong_file_is_a_user_error(tmp_path):
    bad = tmp_path / "bad.pth"
    torch.save({"features.0.weight": torch.zeros(3, 3)}, bad)
    with pytest.raises(OstnetError, match="bad.pth"):
        build_vgg19(str(bad))
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(OstnetError, match="junk.pth"):
        build_vgg19(str(junk))
