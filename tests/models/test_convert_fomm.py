"""FOMM checkpoint import: the fixture equivalence test, shape inference, and bad input.

Fixture equivalence (/work/shared/fixtures, README there): the FOMM-format checkpoint is converted with the
CLI, reloaded through the public ``ostnet.load_checkpoint``, and every reference output is reproduced within
1e-4.

One output needed an explanation: ``absolute.deformed`` (the source warped by the 64x64 deformation resized
to 256x256). The reference resized the deformation with ``F.interpolate(mode="bilinear")`` and no
``align_corners``, i.e. ``align_corners=False`` under every PyTorch since 0.4 (FOMM's 1.0.0 included), while
its ``grid_sample`` used ``align_corners=True``. With the project's ``align_corners=True`` resize the output
is off by up to 0.68; ``FOMMGenerator`` therefore resizes like FOMM by default (``fomm_resize=True``), and
``test_deformed_needs_fomms_flow_resize`` pins that explanation. Everything else matches bit for bit.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch

import ostnet
from ostnet.cli import main
from ostnet.config import ScaleTransformConfig, model_preset
from ostnet.convert_fomm import convert_fomm_checkpoint
from ostnet.errors import OstnetError
from ostnet.inference.relative import normalize_relative
from ostnet.models.blocks import AntiAliasDownsample
from ostnet.models.generator_fomm import FOMMGenerator
from ostnet.models.keypoint_detector import KeypointDetector

ATOL = 1e-4


@pytest.fixture(scope="module")
def fixtures(shared_dir: Path) -> Path:
    return shared_dir / "fixtures"


@pytest.fixture(scope="module")
def reference(fixtures: Path) -> dict[str, torch.Tensor]:
    return torch.load(fixtures / "fomm-reference-outputs.pt", map_location="cpu", weights_only=True)


@pytest.fixture(scope="module")
def converted(fixtures: Path, tmp_path_factory: pytest.TempPathFactory):
    """The fixture checkpoint converted by ``ostnet convert-fomm``, reloaded by ``ostnet.load_checkpoint``."""
    out = tmp_path_factory.mktemp("convert") / "fomm.safetensors"
    assert main(["convert-fomm", str(fixtures / "fomm-reference.pth.tar"), "--output", str(out)]) == 0
    return ostnet.load_checkpoint(out)


def close(actual: torch.Tensor, expected: torch.Tensor, name: str) -> None:
    assert actual.shape == expected.shape, name
    error = (actual - expected).abs().max().item()
    assert error <= ATOL, f"{name}: max abs error {error:.3g}"


def test_fixture_equivalence(converted, reference):
    model = converted
    assert not model.training and model.scale_transform is None
    ref = reference
    with torch.no_grad():
        kps = {name: model.kp_detector(ref[name]) for name in ("source", "driving", "driving_initial")}
        for name, kp in kps.items():
            close(kp.value, ref[f"kp_{name}.value"], f"kp_{name}.value")
            close(kp.jacobian, ref[f"kp_{name}.jacobian"], f"kp_{name}.jacobian")
        out = model.generator(ref["source"], kps["source"], kps["driving"])
        close(out.motion.mask, ref["absolute.mask"], "mask")
        close(out.motion.sparse_deformed, ref["absolute.sparse_deformed"], "sparse_deformed")
        close(out.motion.occlusion, ref["absolute.occlusion_map"], "occlusion_map")
        close(out.deformed, ref["absolute.deformed"], "deformed")
        close(out.prediction, ref["absolute.prediction"], "prediction")
        relative = normalize_relative(
            kps["source"],
            kps["driving"],
            kps["driving_initial"],
            adapt_movement_scale=True,
            relative_movement=True,
            relative_jacobian=True,
        )
        close(relative.value, ref["relative.kp_driving.value"], "relative.kp_driving.value")
        close(relative.jacobian, ref["relative.kp_driving.jacobian"], "relative.kp_driving.jacobian")
        prediction = model.generator(ref["source"], kps["source"], relative).prediction
        close(prediction, ref["relative.prediction"], "relative.prediction")


def test_deformed_needs_fomms_flow_resize(converted, reference):
    """With the project's align_corners=True resize, ``deformed`` would not match (see the module doc)."""
    generator = FOMMGenerator(converted.cfg, fomm_resize=False).eval()
    generator.load_state_dict(converted.generator.state_dict())
    ref = reference
    with torch.no_grad():
        ks, kd = converted.kp_detector(ref["source"]), converted.kp_detector(ref["driving"])
        out = generator(ref["source"], ks, kd)
    close(out.prediction, ref["absolute.prediction"], "prediction")  # features and flow are both 64x64
    assert (out.deformed - ref["absolute.deformed"]).abs().max() > 0.1


def test_inferred_config_matches_reference_config(fixtures):
    cfg, state = convert_fomm_checkpoint(fixtures / "fomm-reference.pth.tar")
    params = json.loads((fixtures / "fomm-reference-config.json").read_text())["model_params"]
    kp, gen = params["kp_detector_params"], params["generator_params"]
    dm = gen["dense_motion_params"]
    assert cfg.keypoints.num_kp == params["common_params"]["num_kp"]
    assert cfg.keypoints.estimate_jacobian and cfg.dense_motion.estimate_occlusion
    for ours, theirs in ((cfg.keypoints, kp), (cfg.dense_motion, dm)):
        assert (ours.block_expansion, ours.max_features) == (
            theirs["block_expansion"],
            theirs["max_features"],
        )
        assert (ours.num_blocks, ours.scale_factor) == (theirs["num_blocks"], theirs["scale_factor"])
    g = cfg.generator
    assert (g.kind, g.block_expansion, g.max_features) == (
        "fomm",
        gen["block_expansion"],
        gen["max_features"],
    )
    assert (g.num_down_blocks, g.num_bottleneck_blocks) == (
        gen["num_down_blocks"],
        gen["num_bottleneck_blocks"],
    )
    assert not g.scale_embedding and not cfg.scale_transform.enabled and cfg.image_size == 256
    assert not any(k.startswith(("discriminator", "optimizer")) for k in state)
    assert all(k.startswith(("kp_detector.", "generator.")) for k in state)
    torch.testing.assert_close(state["kp_detector.down.weight"], AntiAliasDownsample(3, 0.25).weight)


# ---------------------------------------------------------------- inference on FOMM-format files we write


def fomm_file(path: Path, cfg, prefix: str = "", drop_tracked: bool = False) -> Path:
    """Save our nets for ``cfg`` in FOMM's checkpoint format (with a discriminator and optimiser entries)."""

    def state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
        items = module.state_dict().items()
        return {prefix + k: v for k, v in items if not (drop_tracked and k.endswith("num_batches_tracked"))}

    checkpoint = {
        "kp_detector": state(KeypointDetector(cfg.keypoints)),
        "generator": state(FOMMGenerator(cfg)),
        "discriminator": {"discs.1.conv.weight": torch.zeros(1, 8, 1, 1)},
        "optimizer_generator": {"state": {}, "param_groups": [{"lr": 2e-4}]},
        "epoch": 3,
    }
    torch.save(checkpoint, path)
    return path


def variant_config():
    cfg = model_preset("tiny")
    cfg.keypoints = dataclasses.replace(cfg.keypoints, num_kp=5, estimate_jacobian=False, scale_factor=1.0)
    cfg.dense_motion = dataclasses.replace(cfg.dense_motion, estimate_occlusion=False, scale_factor=0.5)
    cfg.generator = dataclasses.replace(
        cfg.generator, kind="fomm", num_down_blocks=3, num_bottleneck_blocks=2, skip_connections=False,
        scale_embedding=False, block_expansion=4, max_features=16,
    )  # fmt: skip
    cfg.scale_transform = ScaleTransformConfig(enabled=False)
    return cfg


@pytest.mark.parametrize(("prefix", "drop_tracked"), [("", False), ("module.", True)])
def test_shape_inference_on_other_topologies(tmp_path, prefix, drop_tracked):
    cfg = variant_config()
    cfg_out, state = convert_fomm_checkpoint(fomm_file(tmp_path / "v.pth.tar", cfg, prefix, drop_tracked))
    for part in ("keypoints", "dense_motion", "generator"):
        assert getattr(cfg_out, part) == getattr(cfg, part), part
    model = ostnet.build_model(cfg_out)
    model.load_state_dict(state, strict=True)
    assert model.kp_detector.down is None and model.kp_detector.jacobian is None


def test_not_a_checkpoint_is_an_ostnet_error(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("not a checkpoint")
    with pytest.raises(OstnetError, match="notes.txt"):
        convert_fomm_checkpoint(text)
    other = tmp_path / "other.pt"
    torch.save({"model": {"weight": torch.zeros(2)}}, other)
    with pytest.raises(OstnetError, match="other.pt.*kp_detector or generator"):
        convert_fomm_checkpoint(other)
    with pytest.raises(OstnetError, match="not found"):
        convert_fomm_checkpoint(tmp_path / "missing.pth.tar")


def test_wrong_shapes_are_an_ostnet_error(tmp_path):
    cfg = variant_config()
    path = fomm_file(tmp_path / "v.pth.tar", cfg)
    checkpoint = torch.load(path, weights_only=True)
    checkpoint["generator"]["final.weight"] = torch.zeros(3, 5, 7, 7)
    torch.save(checkpoint, path)
    with pytest.raises(OstnetError, match="wrong shape: generator.final.weight"):
        convert_fomm_checkpoint(path)


def test_cli_exits_2_with_one_line(tmp_path, capsys):
    text = tmp_path / "notes.txt"
    text.write_text("not a checkpoint")
    output = tmp_path / "out.safetensors"
    assert main(["convert-fomm", str(text), "--output", str(output)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "notes.txt" in err
    assert not output.exists() and list(tmp_path.iterdir()) == [text]


def test_cli_converts_and_reports(tmp_path, capsys):
    path = fomm_file(tmp_path / "v.pth.tar", variant_config())
    assert main(["convert-fomm", str(path)]) == 0
    out = capsys.readouterr().out.strip()
    assert len(out.splitlines()) == 1 and "K=5" in out and "v.safetensors" in out
    model = ostnet.load_checkpoint(tmp_path / "v.safetensors")
    assert model.cfg.name == "fomm-converted" and model.cfg.keypoints.num_kp == 5
