"""Blocks, keypoint detector, dense motion network, FOMM generator: shapes, gradients, analytics, keys."""

from __future__ import annotations

import dataclasses
import functools

import pytest
import torch
from torch import nn

from ostnet.config import (
    DenseMotionConfig,
    GeneratorConfig,
    KeypointDetectorConfig,
    ModelConfig,
    ScaleTransformConfig,
    model_preset,
)
from ostnet.geometry import make_coordinate_grid, resize_flow, warp
from ostnet.models.blocks import (
    AntiAliasDownsample,
    DownBlock2d,
    Hourglass,
    ResBlock2d,
    SameBlock2d,
    UpBlock2d,
    antialias_kernel_size,
)
from ostnet.models.dense_motion import DenseMotionNetwork
from ostnet.models.generator_fomm import FOMMGenerator
from ostnet.models.keypoint_detector import KeypointDetector, heatmap_expectation
from ostnet.models.outputs import Keypoints


def tiny_fomm(scale_embedding: bool = False, **generator) -> ModelConfig:
    """The ``tiny`` preset (64x64) with FOMM's generator."""
    cfg = model_preset("tiny")
    fields = dict(kind="fomm", num_down_blocks=2, num_bottleneck_blocks=2, skip_connections=False)
    fields.update(generator)
    cfg.generator = dataclasses.replace(cfg.generator, scale_embedding=scale_embedding, **fields)
    return cfg


def vox_like() -> ModelConfig:
    """FOMM vox-256 topology (K=10, 5-block hourglasses, scale 0.25, 2 down, 6 bottleneck) at small widths."""
    return ModelConfig(
        name="vox-like",
        keypoints=KeypointDetectorConfig(num_kp=10, block_expansion=8, max_features=64),
        dense_motion=DenseMotionConfig(block_expansion=8, max_features=64),
        generator=GeneratorConfig(
            kind="fomm", block_expansion=8, max_features=32, num_down_blocks=2, num_bottleneck_blocks=6,
            skip_connections=False, scale_embedding=False,
        ),
        scale_transform=ScaleTransformConfig(enabled=False),
    )  # fmt: skip


def random_kp(b: int, k: int, jacobian: bool = True) -> Keypoints:
    value = torch.rand(b, k, 2) * 1.4 - 0.7
    jac = torch.eye(2) + 0.2 * torch.randn(b, k, 2, 2) if jacobian else None
    return Keypoints(value, jac)


def assert_all_grads(module: nn.Module) -> None:
    for name, p in module.named_parameters():
        assert p.grad is not None, f"{name} has no gradient"
        assert torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, f"{name} has a zero gradient"


# ---------------------------------------------------------------- blocks


def test_block_shapes_and_fomm_attribute_names():
    x = torch.rand(2, 4, 16, 16)
    assert DownBlock2d(4, 6)(x).shape == (2, 6, 8, 8)
    assert UpBlock2d(4, 6)(x).shape == (2, 6, 32, 32)
    assert SameBlock2d(4, 6, kernel_size=7)(x).shape == (2, 6, 16, 16)
    assert ResBlock2d(4)(x).shape == x.shape
    assert set(dict(DownBlock2d(4, 6).named_children())) >= {"conv", "norm"}
    assert {"conv1.weight", "conv2.weight", "norm1.running_mean", "norm2.bias"} <= set(ResBlock2d(4).state_dict())


def test_upblock_upsamples_nearest_before_conv():
    block = UpBlock2d(1, 1).eval()
    with torch.no_grad():
        block.conv.weight.zero_()
        block.conv.weight[0, 0, 1, 1] = 1.0  # identity 3x3 conv
        block.conv.bias.zero_()
    x = torch.rand(1, 1, 3, 3)
    expected = x.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)
    torch.testing.assert_close(block(x), expected / (1 + block.norm.eps) ** 0.5)


def test_resblock_is_identity_when_second_conv_is_zero():
    block = ResBlock2d(3)
    with torch.no_grad():
        block.conv2.weight.zero_()
        block.conv2.bias.zero_()
    x = torch.randn(2, 3, 8, 8)
    torch.testing.assert_close(block(x), x)


def test_hourglass_channel_rule_and_skip_to_input():
    hg = Hourglass(block_expansion=4, in_features=3, num_blocks=3, max_features=12)
    outs = [b.conv.out_channels for b in hg.encoder.down_blocks]
    ins = [b.conv.in_channels for b in hg.decoder.up_blocks]
    assert outs == [8, 12, 12]  # min(12, 4 * 2^(i+1))
    assert ins == [12, 24, 16]  # (1 if first else 2) * min(12, 4 * 2^(i+1)), i = 2, 1, 0
    assert [b.conv.out_channels for b in hg.decoder.up_blocks] == [12, 8, 4]
    x = torch.rand(2, 3, 16, 16)
    y = hg(x)
    assert hg.out_filters == 7 and y.shape == (2, 7, 16, 16)
    torch.testing.assert_close(y[:, 4:], x)  # the last concatenation is the input itself


def test_norm_layer_is_a_constructor_option():
    norm = functools.partial(nn.InstanceNorm2d, affine=True)
    hg = Hourglass(4, 3, 2, 16, norm_layer=norm)
    assert isinstance(hg.encoder.down_blocks[0].norm, nn.InstanceNorm2d)
    assert not any("running_mean" in k for k in hg.state_dict())
    assert isinstance(Hourglass(4, 3, 2, 16).decoder.up_blocks[0].norm, nn.BatchNorm2d)


@pytest.mark.parametrize(("scale", "size"), [(0.5, 5), (0.25, 13), (0.125, 29)])
def test_antialias_kernel_table(scale, size):
    down = AntiAliasDownsample(3, scale)
    assert antialias_kernel_size(scale) == size
    assert down.weight.shape == (3, 1, size, size)
    assert "weight" in dict(down.named_buffers()) and not list(down.parameters())
    torch.testing.assert_close(down.weight.sum(dim=(1, 2, 3)), torch.ones(3))
    torch.testing.assert_close(down.weight, down.weight.flip(-1).transpose(-1, -2))  # symmetric, centred
    x = torch.rand(2, 3, 64, 64)
    assert down(x).shape == (2, 3, int(64 * scale), int(64 * scale))


def test_antialias_keeps_every_nth_blurred_pixel_and_constants():
    down = AntiAliasDownsample(1, 0.25)
    x = torch.rand(1, 1, 32, 32)
    blurred = nn.functional.conv2d(x, down.weight, padding=6)
    torch.testing.assert_close(down(x), blurred[:, :, ::4, ::4])
    const = down(torch.full((1, 1, 64, 64), 0.7))
    torch.testing.assert_close(const[:, :, 2:-2, 2:-2], torch.full_like(const[:, :, 2:-2, 2:-2], 0.7))


def test_antialias_identity_and_bad_scale():
    x = torch.rand(1, 3, 8, 8)
    assert AntiAliasDownsample(3, 1.0)(x) is x
    with pytest.raises(ValueError):
        AntiAliasDownsample(3, 0.3)


# ---------------------------------------------------------------- keypoint detector


@pytest.mark.parametrize("cfg", [model_preset("tiny"), vox_like()], ids=["tiny", "vox-like"])
def test_keypoint_detector_shapes_identity_jacobian_and_range(cfg):
    detector = KeypointDetector(cfg.keypoints)
    s = cfg.image_size
    kp = detector(torch.rand(2, 3, s, s))
    k = cfg.keypoints.num_kp
    assert kp.value.shape == (2, k, 2) and kp.jacobian.shape == (2, k, 2, 2)
    assert kp.value.abs().max() <= 1.0
    torch.testing.assert_close(kp.jacobian, torch.eye(2).expand(2, k, 2, 2))


def test_keypoint_detector_gradients_and_keys():
    cfg = model_preset("tiny")
    detector = KeypointDetector(cfg.keypoints)
    with torch.no_grad():
        detector.jacobian.weight.normal_(0, 0.01)
    kp = detector(torch.rand(2, 3, 64, 64))
    (kp.value.sum() + kp.jacobian.square().sum()).backward()
    assert_all_grads(detector)
    keys = set(detector.state_dict())
    assert {
        "kp.weight",
        "jacobian.bias",
        "down.weight",
        "predictor.encoder.down_blocks.0.conv.weight",
    } <= keys
    no_down = KeypointDetector(dataclasses.replace(cfg.keypoints, scale_factor=1, estimate_jacobian=False))
    assert not any(k.startswith(("down.", "jacobian.")) for k in no_down.state_dict())
    assert no_down(torch.rand(1, 3, 32, 32)).jacobian is None


def test_heatmap_expectation_pins_xy_order_and_pixel_centres():
    heat = torch.zeros(1, 3, 5, 7)
    heat[0, 0, 0, 0] = 1  # top-left pixel centre
    heat[0, 1, 4, 0] = 1  # bottom-left: y = +1, x = -1
    heat[0, 2, 2, 3] = 1  # centre
    value = heatmap_expectation(heat)
    torch.testing.assert_close(value, torch.tensor([[[-1.0, -1.0], [-1.0, 1.0], [0.0, 0.0]]]))


# ---------------------------------------------------------------- dense motion


def test_dense_motion_shapes_and_identity_motion():
    cfg = model_preset("tiny")
    net = DenseMotionNetwork(cfg.dense_motion, num_kp=10).eval()
    source = torch.rand(2, 3, 64, 64)
    kp = random_kp(2, 10)
    motion = net(source, kp, kp)  # driving == source: every sparse motion is the identity
    assert motion.mask.shape == (2, 11, 32, 32) and motion.sparse_deformed.shape == (2, 11, 3, 32, 32)
    assert motion.occlusion.shape == (2, 1, 32, 32)
    assert ((motion.occlusion > 0) & (motion.occlusion < 1)).all()
    torch.testing.assert_close(motion.mask.sum(1), torch.ones(2, 32, 32))
    grid = make_coordinate_grid(32, 32).expand(2, 32, 32, 2)
    torch.testing.assert_close(motion.deformation, grid, atol=1e-5, rtol=0)
    down = net.down(source)
    torch.testing.assert_close(motion.sparse_deformed, down[:, None].expand(2, 11, 3, 32, 32), atol=1e-5, rtol=0)


def test_sparse_motions_analytic():
    ks = Keypoints(torch.tensor([[[0.2, -0.1]]]), 2 * torch.eye(2).expand(1, 1, 2, 2))
    kd = Keypoints(torch.tensor([[[-0.3, 0.4]]]), torch.eye(2).expand(1, 1, 2, 2))
    motions = DenseMotionNetwork.sparse_motions(ks, kd, 5, 6)
    grid = make_coordinate_grid(5, 6)
    assert motions.shape == (1, 2, 5, 6, 2)
    torch.testing.assert_close(motions[0, 0], grid)  # background first
    torch.testing.assert_close(motions[0, 1], ks.value[0, 0] + 2 * (grid - kd.value[0, 0]))
    no_jac = DenseMotionNetwork.sparse_motions(Keypoints(ks.value), Keypoints(kd.value), 5, 6)
    torch.testing.assert_close(no_jac[0, 1], ks.value[0, 0] + grid - kd.value[0, 0])


def test_dense_motion_prepared_source_equals_forward():
    cfg = model_preset("tiny")
    net = DenseMotionNetwork(cfg.dense_motion, num_kp=10).eval()
    source, ks = torch.rand(1, 3, 64, 64), random_kp(1, 10)
    prepared = net.prepare_source(source, ks)
    assert prepared.image.shape == (1, 3, 32, 32) and prepared.gaussians.shape == (1, 10, 32, 32)
    for _ in range(2):
        kd = random_kp(1, 10)
        for a, b in zip(net(source, ks, kd), net.forward_prepared(prepared, kd), strict=True):
            assert torch.equal(a, b)


def test_dense_motion_without_occlusion_has_no_occlusion_keys():
    cfg = dataclasses.replace(model_preset("tiny").dense_motion, estimate_occlusion=False)
    net = DenseMotionNetwork(cfg, num_kp=4)
    assert not any(k.startswith("occlusion.") for k in net.state_dict())
    assert net(torch.rand(1, 3, 64, 64), random_kp(1, 4), random_kp(1, 4)).occlusion is None


# ---------------------------------------------------------------- generator


@pytest.mark.parametrize("cfg", [tiny_fomm(), vox_like()], ids=["tiny", "vox-like"])
def test_fomm_generator_shapes_and_gradients(cfg):
    gen = FOMMGenerator(cfg)
    s, k = cfg.image_size, cfg.keypoints.num_kp
    out = gen(torch.rand(2, 3, s, s), random_kp(2, k), random_kp(2, k))
    assert out.prediction.shape == (2, 3, s, s) and out.deformed.shape == (2, 3, s, s)
    assert ((out.prediction > 0) & (out.prediction < 1)).all()
    m = s // int(1 / cfg.dense_motion.scale_factor)
    assert out.motion.deformation.shape == (2, m, m, 2)
    out.prediction.square().mean().backward()
    assert_all_grads(gen)


def test_fomm_generator_keys_follow_fomm():
    keys = set(FOMMGenerator(vox_like()).state_dict())
    for key in [
        "dense_motion_network.down.weight",
        "first.conv.weight",
        "down_blocks.1.norm.running_var",
        "up_blocks.1.conv.bias",
        "bottleneck.r5.norm2.weight",
        "final.weight",
    ]:
        assert key in keys
    assert not any(k.startswith("z_") for k in keys)


def test_scale_embedding_requires_z_and_uses_it():
    cfg = tiny_fomm(scale_embedding=True)
    gen = FOMMGenerator(cfg).eval()
    z_dim = cfg.scale_transform.latent_dim
    assert [layer.out_features for layer in gen.z_down] == [8, 16]  # before down blocks: w(0), w(1)
    assert [layer.out_features for layer in gen.z_up] == [32, 16]  # before up blocks: w(2), w(1)
    source, ks, kd = torch.rand(1, 3, 64, 64), random_kp(1, 10), random_kp(1, 10)
    with pytest.raises(ValueError):
        gen(source, ks, kd)
    z = torch.randn(1, z_dim, requires_grad=True)
    a = gen(source, ks, kd, z).prediction
    b = gen(source, ks, kd, z + 1).prediction
    assert (a - b).abs().max() > 1e-4
    a.sum().backward()
    assert z.grad is not None and z.grad.abs().sum() > 0
    with pytest.raises(ValueError):
        FOMMGenerator(tiny_fomm()).eval()(source, ks, kd, z)


def test_generator_prepared_equals_forward():
    gen = FOMMGenerator(tiny_fomm()).eval()
    source, ks, kd = torch.rand(1, 3, 64, 64), random_kp(1, 10), random_kp(1, 10)
    with torch.no_grad():
        a = gen(source, ks, kd)
        b = gen.forward_prepared(gen.prepare_source(source, ks), kd)
    assert torch.equal(a.prediction, b.prediction) and torch.equal(a.deformed, b.deformed)


def test_flow_resize_convention_switch():
    """fomm_resize: FOMM's align_corners=False resize of D; False: resize_flow (align_corners=True)."""
    cfg = tiny_fomm(num_down_blocks=1)  # features 32x32, motion 32x32; image 64x64 -> ``deformed`` is resized
    source, ks, kd = torch.rand(1, 3, 64, 64), random_kp(1, 10), random_kp(1, 10)
    fomm = FOMMGenerator(cfg).eval()
    ours = FOMMGenerator(cfg, fomm_resize=False).eval()
    ours.load_state_dict(fomm.state_dict())
    with torch.no_grad():
        a, b = fomm(source, ks, kd), ours(source, ks, kd)
    torch.testing.assert_close(b.deformed, warp(source, resize_flow(b.motion.deformation, 64, 64)))
    torch.testing.assert_close(a.motion.deformation, b.motion.deformation)
    assert (a.deformed - b.deformed).abs().max() > 1e-3


def test_vox_256_preset_has_fomm_checkpoint_layout():
    """Shapes and parameter counts of reference-architecture.md §10 (built on the meta device: no memory)."""
    from ostnet.models.ostnet import build_model

    with torch.device("meta"):
        model = build_model("fomm-vox-256")
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert shapes["kp_detector.kp.weight"] == (10, 35, 7, 7)
    assert shapes["kp_detector.jacobian.weight"] == (40, 35, 7, 7)
    assert shapes["kp_detector.down.weight"] == (3, 1, 13, 13)
    assert shapes["kp_detector.predictor.decoder.up_blocks.1.conv.weight"] == (256, 1024, 3, 3)
    dm = "generator.dense_motion_network."
    assert shapes[dm + "hourglass.encoder.down_blocks.0.conv.weight"] == (128, 44, 3, 3)
    assert shapes[dm + "hourglass.decoder.up_blocks.1.conv.weight"] == (512, 2048, 3, 3)
    assert shapes[dm + "mask.weight"] == (11, 108, 7, 7) and shapes[dm + "occlusion.weight"] == (1, 108, 7, 7)
    assert shapes["generator.up_blocks.0.conv.weight"] == (128, 256, 3, 3)
    assert shapes["generator.bottleneck.r5.conv1.weight"] == (256, 256, 3, 3)
    assert shapes["generator.final.weight"] == (3, 64, 7, 7)
    assert round(sum(p.numel() for p in model.kp_detector.parameters()) / 1e5) == 142  # ~14.2 M
    assert round(sum(p.numel() for p in model.generator.parameters()) / 1e5) == 456  # ~45.6 M
