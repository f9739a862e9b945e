"""VGG-19 of the perceptual loss: torchvision key layout, loading, missing-file error and random opt-in."""

from __future__ import annotations

import warnings

import pytest
import torch

from ostnet.errors import OstnetError
from ostnet.losses.vgg import VGG19_FILENAME, Vgg19Features, VggFeatures, build_vgg, build_vgg19, default_vgg_path

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


def test_vgg16_layout_matches_torchvision_and_its_slices():
    vgg = VggFeatures("vgg16")
    convs = [0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28]  # torchvision vgg16().features
    assert set(vgg.state_dict()) == {f"features.{i}.{p}" for i in convs for p in ("weight", "bias")}
    feats = vgg(torch.rand(1, 3, 32, 32))
    assert [tuple(f.shape[1:]) for f in feats] == [(64, 32, 32), (128, 16, 16), (256, 8, 8), (512, 4, 4), (512, 2, 2)]
    with pytest.raises(ValueError, match="perceptual_network"):
        VggFeatures("vgg11")


def test_only_vgg16_installed_stands_in_for_vgg19_once_with_a_warning(real_weights, tmp_path, monkeypatch):
    """The installed ImageNet VGG-16 is used for the paper's VGG-19 (relu1_2..relu5_3), said in a warning; asking
    for vgg16 directly loads it silently; a random network stays an explicit opt-in."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # no torch hub files
    with pytest.warns(UserWarning, match="VGG-19 is not installed.*VGG-16 at relu1_2"):
        stand_in = build_vgg19(None)
    assert stand_in.network == "vgg16" and "ImageNet VGG-16" in stand_in.source
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        direct = build_vgg("vgg16")
    assert torch.equal(direct.features[28].weight, stand_in.features[28].weight)
    # the loaded tensors are the installed file's
    from safetensors.torch import load_file

    assert torch.equal(
        direct.features[0].weight, load_file(str(real_weights / "vgg16.safetensors"))["features.0.weight"]
    )
    with pytest.warns(UserWarning, match="RANDOM VGG-19, as asked"):  # random on purpose, weights installed or not
        random = build_vgg("vgg19", "random")
    assert random.network == "vgg19" and random.source == "random VGG-19"


def test_perceptual_network_option_is_checked_and_reaches_the_objective(tmp_path, monkeypatch):
    from ostnet import config as C
    from ostnet.losses.objective import Objective

    with pytest.raises(ValueError, match="perceptual_network"):
        C.apply_overrides(C.train_preset("tiny"), ["loss.perceptual_network=alexnet"])
    cfg = C.apply_overrides(C.train_preset("tiny"), ["loss.perceptual_network=vgg16", "loss.allow_random_vgg=true"])
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.warns(UserWarning, match="RANDOM VGG-16"):
        objective = Objective(cfg.loss)
    assert objective.perceptual.vgg.network == "vgg16"
    with pytest.raises(OstnetError, match="ostnet weights install"):
        Objective(C.apply_overrides(cfg, ["loss.allow_random_vgg=false"]).loss)
