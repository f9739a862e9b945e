"""LPIPS module: loads torchvision/lpips weight-file layouts, matches a functional reference, degrades cleanly."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from ostnet.evaluation.lpips import (
    ALEXNET_FILENAME,
    LPIPS,
    LpipsUnavailable,
    load_lpips,
    locate_lpips_weights,
    try_load_lpips,
)

# torchvision AlexNet conv layers: features index -> (stride, padding), for the reference below
ALEX_CONVS = {0: (4, 2), 3: (1, 2), 6: (1, 1), 8: (1, 1), 10: (1, 1)}


def _reference_lpips(weights: dict, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Straight functional re-statement of LPIPS v0.1 (alex) used as the reference."""
    shift = torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1)
    scale = torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1)

    def feats(x):
        x, out = ((2 * x - 1) - shift) / scale, []
        for i, (stride, pad) in ALEX_CONVS.items():
            x = F.relu(F.conv2d(x, weights[f"features.{i}.weight"], weights[f"features.{i}.bias"], stride, pad))
            out.append(x)
            if i in (0, 3):
                x = F.max_pool2d(x, 3, 2)
        return out

    total = 0
    for k, (fa, fb) in enumerate(zip(feats(a), feats(b), strict=True)):
        na = fa / (fa.norm(dim=1, keepdim=True) + 1e-10)
        nb = fb / (fb.norm(dim=1, keepdim=True) + 1e-10)
        total = total + (((na - nb) ** 2) * weights[f"lin{k}.model.1.weight"]).sum(1).mean(dim=(1, 2))
    return total


def test_loads_file_layouts_and_matches_reference(tmp_path, fake_lpips_weights):
    weights = fake_lpips_weights(tmp_path / "checkpoints")
    model = load_lpips(hub_dir=tmp_path)  # found in <hub>/checkpoints
    a, b = torch.rand(2, 3, 64, 64), torch.rand(2, 3, 64, 64)
    ours = model(a, b)
    assert ours.shape == (2,)
    assert torch.allclose(ours.float(), _reference_lpips(weights, a, b), rtol=1e-4, atol=1e-6)
    assert torch.equal(model.linear_state_dict()["lin2.model.1.weight"], weights["lin2.model.1.weight"])


def test_identity_symmetry_and_eval_mode(tmp_path, fake_lpips_weights):
    fake_lpips_weights(tmp_path)
    model = load_lpips(tmp_path / ALEXNET_FILENAME, tmp_path / "alex.pth")
    model.train()
    assert not model.training  # dropout never switches on
    a, b = torch.rand(1, 3, 64, 64), torch.rand(1, 3, 64, 64)
    assert model(a, a).item() == pytest.approx(0.0, abs=1e-8)
    assert model(a, b).item() == pytest.approx(model(b, a).item(), rel=1e-5)
    assert model(a, b).item() > 0
    assert model(a, a * 0.9).item() < model(a, b).item()


def test_state_dict_keys_are_the_public_layouts():
    keys = set(LPIPS().net.state_dict())
    assert keys == {f"features.{i}.{p}" for i in ALEX_CONVS for p in ("weight", "bias")}


def test_missing_weights_give_a_reason_not_a_crash(tmp_path):
    model, reason = try_load_lpips(hub_dir=tmp_path)
    assert model is None and "AlexNet weights not found" in reason and str(tmp_path) in reason
    (tmp_path / "checkpoints").mkdir()
    torch.save({"features.0.weight": torch.zeros(1)}, tmp_path / "checkpoints" / ALEXNET_FILENAME)
    model, reason = try_load_lpips(hub_dir=tmp_path)
    assert model is None and "linear weights not found" in reason
    torch.save({"lin0.model.1.weight": torch.zeros(1, 64, 1, 1)}, tmp_path / "checkpoints" / "alex.pth")
    model, reason = try_load_lpips(hub_dir=tmp_path)
    assert model is None and "not a torchvision AlexNet state dict" in reason


def test_wrong_shapes_and_garbage_files(tmp_path, fake_lpips_weights):
    weights = fake_lpips_weights(tmp_path)
    weights["lin1.model.1.weight"] = torch.zeros(1, 7, 1, 1)
    torch.save({k: v for k, v in weights.items() if k.startswith("lin")}, tmp_path / "alex.pth")
    with pytest.raises(LpipsUnavailable, match="lin1|1.model.1.weight"):
        load_lpips(tmp_path / ALEXNET_FILENAME, tmp_path / "alex.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a torch file")
    _, reason = try_load_lpips(tmp_path / "junk.pth", tmp_path / "alex.pth")
    assert "cannot read weights" in reason


def test_locate_prefers_explicit_paths(tmp_path, fake_lpips_weights):
    fake_lpips_weights(tmp_path / "hub" / "checkpoints", lin_name="lpips_v0.1_alex.pth")
    found = locate_lpips_weights(hub_dir=tmp_path / "hub")
    assert found.linear.name == "lpips_v0.1_alex.pth"
    with pytest.raises(LpipsUnavailable, match="nowhere.pth"):
        locate_lpips_weights(alexnet=tmp_path / "nowhere.pth", hub_dir=tmp_path / "hub")
