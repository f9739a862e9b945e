"""The inference fast path (``Animator(fast=True)``, the default) computes the same function as the model."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from ostnet.config import MODEL_PRESETS
from ostnet.inference.animator import Animator
from ostnet.inference.fast import (
    SUBPIXEL_MIN_PIXELS,
    HoistedDownBlock,
    HoistedGenerator,
    PackedConv2d,
    SubpixelUpBlock2d,
    fold_batchnorm,
    optimize_for_inference,
    pack_convolutions,
    packing_available,
    up_block_inputs,
)
from ostnet.models.blocks import DownBlock2d, ResBlock2d, SameBlock2d, UpBlock2d
from ostnet.models.ostnet import build_model

pytestmark = pytest.mark.usefixtures("one_thread")


def randomise_norms(model: nn.Module, seed: int = 0) -> nn.Module:
    """Trained-looking batch-norm statistics and affine parameters (fresh ones are the identity, which would let
    a wrong fold pass)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                n = m.num_features
                m.running_mean.copy_(torch.rand(n, generator=gen) * 0.4 - 0.2)
                m.running_var.copy_(torch.rand(n, generator=gen) + 0.5)
                m.weight.copy_(torch.rand(n, generator=gen) * 0.4 + 0.8)
                m.bias.copy_(torch.rand(n, generator=gen) * 0.2 - 0.1)
    return model.eval()


def smooth_images(n: int, size: int, seed: int = 1) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    low = torch.rand(n, 3, 8, 8, generator=gen)
    return torch.nn.functional.interpolate(low, size=(size, size), mode="bilinear", align_corners=True)


def fast_and_eager(model: nn.Module, mode: str, frames: int, dtype: str = "fp32") -> tuple[torch.Tensor, ...]:
    images = smooth_images(frames + 1, model.cfg.image_size)
    outs = []
    for fast in (True, False):
        animator = Animator(model, device="cpu", mode=mode, fast=fast, dtype=dtype if fast else "fp32")
        animator.set_source(images[:1])
        batch = animator.animate(images[1:])
        outs += [batch.prediction, batch.rectified]
    return tuple(outs)


@pytest.mark.parametrize("mode", ["anchor-free", "relative", "absolute"])
def test_fast_equals_eager_tiny(mode):
    model = randomise_norms(build_model("tiny"))
    fast, fast_rect, eager, eager_rect = fast_and_eager(model, mode, frames=3)
    assert (fast - eager).abs().max() <= 1e-4
    assert (fast_rect - eager_rect).abs().max() <= 1e-4


@pytest.mark.slow
@pytest.mark.parametrize("preset", [name for name in MODEL_PRESETS if name != "tiny"])
def test_fast_equals_eager_per_preset(preset):
    torch.manual_seed(0)
    model = randomise_norms(build_model(preset))
    fast, fast_rect, eager, eager_rect = fast_and_eager(model, "auto", frames=1)
    assert (fast - eager).abs().max() <= 1e-4
    assert (fast_rect - eager_rect).abs().max() <= 1e-4


def test_bf16_fast_path_error_is_bounded():
    """bf16 (weights and convolutions; geometry and softmax stay fp32 under autocast) against the fp32 model."""
    model = randomise_norms(build_model("tiny"))
    fast, _, eager, _ = fast_and_eager(model, "anchor-free", frames=3, dtype="bf16")
    diff = (fast - eager).abs()
    assert 0 < diff.max() < 0.03 and diff.mean() < 0.004


def test_fold_and_subpixel_blocks_are_exact():
    torch.manual_seed(0)
    up = randomise_norms(UpBlock2d(6, 5))
    res = randomise_norms(ResBlock2d(6))
    x = torch.randn(2, 6, 7, 9)
    expected_up, expected_res = up(x), res(x)
    fold_batchnorm(up)
    fold_batchnorm(res)
    assert isinstance(up.norm, nn.Identity) and isinstance(res.norm2, nn.Identity)
    assert isinstance(res.norm1, nn.BatchNorm2d)  # behind a ReLU: cannot fold
    torch.testing.assert_close(res(x), expected_res, rtol=0, atol=1e-5)
    torch.testing.assert_close(SubpixelUpBlock2d(up)(x), expected_up, rtol=0, atol=1e-5)


@pytest.mark.parametrize("size", [(6, 10), (2, 4)])
def test_hoisted_first_convolution_is_exact(size):
    """block(stem + c) = pool(relu(conv(stem) + conv(c))): the constant's response is exact on the inner pixels,
    the four border lines and the four corners (a non-square map with a different c per sample; a map of two
    rows has no inner row)."""
    torch.manual_seed(0)
    block = fold_batchnorm(randomise_norms(DownBlock2d(5, 4)))
    stem, c = torch.randn(1, 5, *size), torch.randn(3, 5)
    hoisted = HoistedDownBlock(block)
    expected = block(stem + c[:, :, None, None])
    torch.testing.assert_close(
        hoisted.shifted(hoisted.conv(stem).expand(3, -1, -1, -1), c), expected, rtol=0, atol=1e-5
    )
    torch.testing.assert_close(hoisted(stem), block(stem), rtol=0, atol=0)


@pytest.mark.skipif(not packing_available(), reason="this torch build has no oneDNN pointwise convolution")
def test_packed_convolutions_are_exact():
    """Packed convolutions with fused ReLUs compute the folded blocks' function, in either memory format."""
    torch.manual_seed(0)
    blocks = nn.Sequential(SameBlock2d(3, 6, kernel_size=7), DownBlock2d(6, 8), ResBlock2d(8), nn.Conv2d(8, 2, 1))
    blocks = fold_batchnorm(randomise_norms(blocks))
    x = torch.randn(2, 3, 12, 16)
    expected = blocks(x)
    pack_convolutions(blocks)
    assert not any(type(m) is nn.Conv2d for m in blocks.modules())
    assert sum(isinstance(m, PackedConv2d) for m in blocks.modules()) == 5
    with torch.no_grad():
        for memory_format in (torch.contiguous_format, torch.channels_last):
            got = blocks(x.contiguous(memory_format=memory_format))
            torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)


def test_cpu_fp32_animator_uses_every_rewrite():
    """The default CPU fp32 fast path hoists the first convolution and (where oneDNN exists) packs the rest, so
    the equality tests above cover them."""
    net = Animator(build_model("tiny"), device="cpu").net
    assert isinstance(net.generator, HoistedGenerator)
    assert any(isinstance(m, PackedConv2d) for m in net.modules()) == packing_available()


def test_subpixel_only_where_the_input_is_large():
    """Up blocks with at least 16 x 16 input pixels become sub-pixel blocks; the weight-bound small ones stay."""
    model = build_model("tiny")
    pixels = list(up_block_inputs(model).values())
    fast = optimize_for_inference(model)
    kept = sum(type(m) is UpBlock2d for m in fast.modules())
    subpixel = sum(type(m) is SubpixelUpBlock2d for m in fast.modules())
    assert kept == sum(p < SUBPIXEL_MIN_PIXELS for p in pixels) > 0
    assert subpixel == sum(p >= SUBPIXEL_MIN_PIXELS for p in pixels) > 0


def test_the_callers_model_is_untouched():
    model = randomise_norms(build_model("tiny"))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    fast = optimize_for_inference(model, dtype=torch.bfloat16, channels_last=True)
    assert any(isinstance(m, SubpixelUpBlock2d) for m in fast.modules())
    assert all(not p.requires_grad for p in fast.parameters())
    after = model.state_dict()
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
    assert any(isinstance(m, UpBlock2d) for m in model.modules())


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("preset", ["tiny", "ostnet-vox-256", "fomm-vox-256"])
def test_cuda_fast_path_equals_cpu_eager(preset):
    """The CUDA fast path (fp32 without TF32) equals the CPU eager path; bf16 stays within 0.05."""
    torch.manual_seed(0)
    model = randomise_norms(build_model(preset))
    images = smooth_images(5, model.cfg.image_size)
    cpu = Animator(model, device="cpu", fast=False)
    cpu.set_source(images[:1])
    expected = cpu.animate(images[1:]).prediction
    tf32 = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        for dtype, tol in (("fp32", 1e-4), ("bf16", 0.05)):
            gpu = Animator(model, device="cuda", dtype=dtype)
            gpu.set_source(images[:1])
            got = gpu.animate(images[1:]).prediction.cpu()
            assert (got - expected).abs().max() <= tol, dtype
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = tf32
