"""The inference fast path: a copy of a model rewritten for inference, with the same function.

``optimize_for_inference`` returns a deep copy (the caller's model, e.g. one still being trained, is untouched):

* **batch norm folded into the convolutions** (``fold_batchnorm``): in eval mode a BatchNorm2d right after a
  convolution is an affine map per channel, so it becomes the convolution's weight and bias and the norm layer
  an ``nn.Identity``. Every ``SameBlock2d``/``DownBlock2d``/``UpBlock2d`` (conv -> norm -> ReLU) and the
  ``norm2`` of every ``ResBlock2d`` (conv1 -> norm2) folds; a ResBlock's ``norm1`` precedes its convolution
  behind a ReLU and stays.
* **sub-pixel up blocks** (``subpixel=True``, ``SubpixelUpBlock2d``): an up block's nearest upsample + 3x3
  convolution computed as 2x2 convolutions at the low resolution (16/36 of the multiply-adds), for every up block
  whose input has at least 16 x 16 pixels (one blank forward pass finds them); smaller ones are weight-bound,
  and the sub-pixel form has 16/9 more weights, so they stay as they are.
* **bf16 weights** (``dtype=bf16``): the convolution and linear weights are stored in bf16, so autocast does
  not cast 56 M parameters on every call.
* **channels-last** memory layout for the convolutions (``channels_last=True``).
* **the first encoder convolution hoisted out of the per-frame work** (``hoist=True``; OSTNet's generator):
  the first down block's input is the per-source stem plus the per-frame constant W_0 z (Eq. 5), and a
  convolution is linear, so conv(stem + W_0 z) = conv(stem) + conv(W_0 z): the first is cached with the prepared
  source, the second is a map that is constant inside and differs only on the 1-pixel border (zero padding),
  computed exactly from the kernel's tap sums. The 256-px presets save 9.7 of their 92 GFLOPs per frame.
* **pre-packed convolutions with the ReLU fused** (``packed=True``; CPU, fp32): every convolution's weight is
  reordered once into oneDNN's blocked layout and run by ``torch.ops.mkldnn._convolution_pointwise`` (the kernel
  that ``torch.compile``'s CPU freezing emits), with the ReLU that follows it in a block done inside the
  convolution. Same function (differences ~1e-6, the kernels' summation order); saves the weight reorder of
  every call and one pass over every activation. Not for export (ONNX has no such operator) nor bf16/GPUs.

What is kept is decided by ``benchmarks/fast_path.py``; see docs/benchmarks.md.
"""

from __future__ import annotations

import copy
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from ostnet.models.blocks import DownBlock2d, ResBlock2d, SameBlock2d, UpBlock2d, embed
from ostnet.models.generator_ostnet import OSTNetGenerator
from ostnet.models.outputs import DenseMotionSource, Keypoints


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """Fold every eval-mode BatchNorm2d that directly follows a convolution into it, in place; returns model."""
    for module in model.modules():
        if isinstance(module, SameBlock2d) and isinstance(module.norm, nn.BatchNorm2d):
            module.conv = fuse_conv_bn_eval(module.conv.eval(), module.norm.eval())
            module.norm = nn.Identity()
        elif isinstance(module, ResBlock2d) and isinstance(module.norm2, nn.BatchNorm2d):
            module.conv1 = fuse_conv_bn_eval(module.conv1.eval(), module.norm2.eval())
            module.norm2 = nn.Identity()
    return model


SUBPIXEL_MIN_PIXELS = 256  # below 16 x 16 input pixels an up block is weight-bound: 16/9 more weights cost more


def up_block_inputs(model: nn.Module) -> dict[nn.Module, int]:
    """Input pixels (H x W) of every ``UpBlock2d`` in one forward pass of ``model`` (an OSTNet) on blank
    (source, driving) images of its size; {} for a model without ``cfg.image_size``."""
    size = getattr(getattr(model, "cfg", None), "image_size", None)
    if size is None:
        return {}
    pixels: dict[nn.Module, int] = {}
    blocks = [m for m in model.modules() if type(m) is UpBlock2d]

    def record(block: nn.Module, inputs: tuple[Tensor, ...]) -> None:
        pixels.setdefault(block, inputs[0].shape[-2] * inputs[0].shape[-1])

    hooks = [block.register_forward_pre_hook(record) for block in blocks]
    try:
        with torch.no_grad():
            blank = torch.zeros(1, model.cfg.num_channels, size, size, device=next(model.parameters()).device)
            model(blank, blank)
    finally:
        for hook in hooks:
            hook.remove()
    return pixels


def replace_up_blocks(model: nn.Module, pixels: dict[nn.Module, int] | None = None) -> nn.Module:
    """Replace every ``UpBlock2d`` of ``model`` by its ``SubpixelUpBlock2d``, in place, except those whose input
    has fewer than ``SUBPIXEL_MIN_PIXELS`` pixels in ``pixels`` (``up_block_inputs``); returns model."""
    pixels = {} if pixels is None else pixels
    for parent in list(model.modules()):
        for name, child in parent.named_children():
            if type(child) is UpBlock2d and pixels.get(child, SUBPIXEL_MIN_PIXELS) >= SUBPIXEL_MIN_PIXELS:
                setattr(parent, name, SubpixelUpBlock2d(child))
    return model


def optimize_for_inference(
    model: nn.Module,
    *,
    dtype: torch.dtype = torch.float32,
    channels_last: bool = False,
    subpixel: bool = True,
    packed: bool = False,
    hoist: bool = False,
) -> nn.Module:
    """An eval-mode copy of ``model`` with batch norm folded, weights in ``dtype`` for convolutions and linear
    layers (bf16/fp16 under autocast), optionally channels-last convolution weights and (CPU fp32 only)
    pre-packed convolutions with their ReLUs fused (``packed``) and the generator's first convolution hoisted
    into the per-source work (``hoist``)."""
    fast = fold_batchnorm(copy.deepcopy(model).eval())
    if subpixel:
        replace_up_blocks(fast, up_block_inputs(fast))
    if hoist:
        hoist_first_convolution(fast)
    for p in fast.parameters():
        p.requires_grad_(False)
    if dtype != torch.float32:
        for module in fast.modules():
            if isinstance(module, nn.Conv2d | nn.Linear):
                module.to(dtype)
    if channels_last:
        fast.to(memory_format=torch.channels_last)
    if packed:
        if dtype != torch.float32 or not packing_available():
            raise ValueError("packed convolutions need fp32 weights and a CPU build of torch with oneDNN")
        pack_convolutions(fast)
    return fast


def packing_available() -> bool:
    """oneDNN's pointwise-fused convolution exists in this torch build (CPU)."""
    return torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_convolution_pointwise")


class PackedConv2d(nn.Module):
    """A CPU fp32 ``nn.Conv2d`` (zero padding) with its weight reordered once into oneDNN's blocked layout, and the
    ReLU that follows it fused in when ``relu``. Takes and returns (B, C, H, W) in either memory format (the
    result is channels-last)."""

    def __init__(self, conv: nn.Conv2d, relu: bool) -> None:
        super().__init__()
        if conv.padding_mode != "zeros" or isinstance(conv.padding, str):
            raise ValueError("PackedConv2d needs an explicit zero padding")
        self.args = (list(conv.padding), list(conv.stride), list(conv.dilation), conv.groups)
        self.attr = "relu" if relu else "none"
        weight = conv.weight.detach().float()
        nominal = [1, conv.in_channels, 64, 64]  # the blocked layout does not depend on the input's size
        self.packed = torch.ops.mkldnn._reorder_convolution_weight(weight, *self.args, nominal)
        self.register_buffer("bias", None if conv.bias is None else conv.bias.detach().float(), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        return torch.ops.mkldnn._convolution_pointwise(x, self.packed, self.bias, *self.args, self.attr, [], "")


class _ConvReLU(nn.Module):
    """``SameBlock2d``/``DownBlock2d``/``UpBlock2d`` after folding: the up block's upsampling, conv + ReLU in one
    kernel, the down block's pooling."""

    def __init__(self, block: SameBlock2d) -> None:
        super().__init__()
        self.conv = PackedConv2d(block.conv, relu=True)
        self.pool = getattr(block, "pool", nn.Identity())
        self.up = type(block) is UpBlock2d

    def forward(self, x: Tensor) -> Tensor:
        if self.up:
            x = F.interpolate(x, scale_factor=2.0, mode="nearest")
        return self.pool(self.conv(x))


class _PackedResBlock(nn.Module):
    """``ResBlock2d`` after folding: x + conv2(relu(conv1'(relu(norm1(x))))), conv1' = conv1 and norm2 folded."""

    def __init__(self, block: ResBlock2d) -> None:
        super().__init__()
        self.norm1 = block.norm1
        self.conv1 = PackedConv2d(block.conv1, relu=True)
        self.conv2 = PackedConv2d(block.conv2, relu=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv2(self.conv1(F.relu(self.norm1(x)))) + x


def pack_convolutions(model: nn.Module) -> nn.Module:
    """Replace, in place, every folded conv -> ReLU block by its packed, fused form and every other ``nn.Conv2d``
    by a ``PackedConv2d``; returns model. Blocks whose norm did not fold keep their own ReLU."""
    for parent in list(model.modules()):
        for name, child in parent.named_children():
            folded = isinstance(getattr(child, "norm", None), nn.Identity)
            if type(child) in (SameBlock2d, DownBlock2d, UpBlock2d) and folded:
                setattr(parent, name, _ConvReLU(child))
            elif type(child) is ResBlock2d and isinstance(child.norm2, nn.Identity):
                setattr(parent, name, _PackedResBlock(child))
            elif type(child) is SubpixelUpBlock2d and folded:
                child.conv, child.fused_relu = PackedConv2d(child.conv, relu=True), True
            elif type(child) is nn.Conv2d and child.padding_mode == "zeros":
                setattr(parent, name, PackedConv2d(child, relu=False))
    return model


class HoistedPrepared(NamedTuple):
    """``PreparedSource`` and the first down block's convolution of the stem (before its ReLU, bias included)."""

    image: Tensor
    stem: Tensor
    motion: DenseMotionSource
    first: Tensor


def constant_response(weight: Tensor) -> Tensor:
    """(3, 3, O, I) tap sums of a 3x3 kernel: a 3x3 convolution (zero padding 1) of a constant image c is
    ``S[r, s] @ c`` at a pixel in row class r and column class s (0 = first, 1 = inner, 2 = last)."""
    taps = [slice(1, 3), slice(0, 3), slice(0, 2)]  # the kernel rows (columns) that fall inside the image
    return torch.stack([torch.stack([weight[:, :, r, c].sum((2, 3)) for c in taps]) for r in taps])


class HoistedDownBlock(nn.Module):
    """The generator's first down block (conv 3x3 -> folded norm -> ReLU -> pool), split so that the
    convolution of the stem is per-source work: ``forward`` is the block; ``shifted(first, c)`` is the block on
    stem + c (c per channel, (B, I)) given first = conv(stem)."""

    def __init__(self, block: DownBlock2d) -> None:
        super().__init__()
        self.conv, self.pool = block.conv, block.pool
        self.register_buffer("response", constant_response(block.conv.weight.detach().float()), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.pool(F.relu(self.conv(x)))

    def shifted(self, first: Tensor, c: Tensor) -> Tensor:
        t = torch.einsum("rsoi,bi->bors", self.response.to(c.dtype), c).to(first.dtype)  # (B, O, 3, 3)
        pre = first + t[:, :, 1:2, 1:2]  # inner pixels; then the border rows, columns and corners
        d = t - t[:, :, 1:2, 1:2]
        pre[:, :, 0] += d[:, :, 0, 1:2]
        pre[:, :, -1] += d[:, :, 2, 1:2]
        pre[:, :, :, 0] += d[:, :, 1:2, 0]
        pre[:, :, :, -1] += d[:, :, 1:2, 2]
        edge = {0: 0, 2: -1}  # class -> index; a corner has its row's and its column's correction already
        for r, col in ((0, 0), (0, 2), (2, 0), (2, 2)):
            pre[:, :, edge[r], edge[col]] += d[:, :, r, col] - d[:, :, r, 1] - d[:, :, 1, col]
        return self.pool(pre.relu_())  # pre is a fresh tensor: in place saves a 256-px allocation


class HoistedGenerator(OSTNetGenerator):
    """An ``OSTNetGenerator`` whose first down block is a ``HoistedDownBlock`` (``hoist_first_convolution``)."""

    def prepare_source(self, source: Tensor, kp_source: Keypoints) -> HoistedPrepared:
        prepared = super().prepare_source(source, kp_source)
        return HoistedPrepared(*prepared, self.down_blocks[0].conv(prepared.stem))

    def encode_prepared(self, prepared: HoistedPrepared, z: Tensor | None) -> list[Tensor]:  # type: ignore[override]
        first = self.down_blocks[0]
        if self.z_down is None or z is None:
            features = [prepared.stem, first.pool(F.relu(prepared.first))]
        else:
            features = [prepared.stem, first.shifted(prepared.first, self.z_down[0](z))]
        for i in range(1, len(self.down_blocks)):  # f_{i+1} = F_down^i(f_i + W_i z), as in the model
            features.append(self.down_blocks[i](embed(features[-1], z, self._layer(self.z_down, i))))
        return features


def hoist_first_convolution(model: nn.Module) -> nn.Module:
    """Turn, in place, every plain ``OSTNetGenerator`` of a folded model whose first down block is a 3x3 conv
    (padding 1, stride 1) -> folded norm -> ReLU -> pool into a ``HoistedGenerator``; returns model."""
    for module in model.modules():
        block = module.down_blocks[0] if type(module) is OSTNetGenerator and len(module.down_blocks) else None
        conv = getattr(block, "conv", None)
        if (
            type(block) is DownBlock2d
            and isinstance(block.norm, nn.Identity)
            and (conv.kernel_size, conv.padding, conv.stride, conv.groups) == ((3, 3), (1, 1), (1, 1), 1)
        ):
            module.down_blocks[0] = HoistedDownBlock(block)
            module.__class__ = HoistedGenerator
    return model


class SubpixelUpBlock2d(nn.Module):
    """``UpBlock2d`` (nearest x2 upsample -> 3x3 conv, padding 1 -> norm -> ReLU) computed at the low resolution.

    After a nearest x2 upsample, output row 2i sees input rows (i-1, i, i) through kernel rows (0, 1, 2) and row
    2i+1 sees (i, i, i+1): each of the four output phases is a 2x2 convolution of the input with summed kernel
    taps. One 2x2 convolution with 4 C_out channels over the input padded by 1 computes all four; phase (a, b)
    is its window [a:a+h, b:b+w]. Same function, 16/36 of the multiply-adds, no upsampled copy of the input.
    """

    def __init__(self, block: nn.Module) -> None:
        super().__init__()
        conv = block.conv
        if conv.kernel_size != (3, 3) or conv.padding != (1, 1) or conv.stride != (1, 1) or conv.groups != 1:
            raise ValueError("SubpixelUpBlock2d needs a 3x3, padding 1, stride 1 convolution")
        w = conv.weight.detach()  # (O, I, 3, 3)
        # taps per phase along one axis: phase 0 = (k0, k1 + k2) at offsets (-1, 0); phase 1 = (k0 + k1, k2) at (0, +1)
        rows = [
            torch.stack([w[:, :, 0], w[:, :, 1] + w[:, :, 2]], 2),
            torch.stack([w[:, :, 0] + w[:, :, 1], w[:, :, 2]], 2),
        ]
        kernels = []
        for a in range(2):
            for b in range(2):
                r = rows[a]  # (O, I, 2, 3)
                cols = [
                    torch.stack([r[..., 0], r[..., 1] + r[..., 2]], -1),
                    torch.stack([r[..., 0] + r[..., 1], r[..., 2]], -1),
                ]
                kernels.append(cols[b])  # (O, I, 2, 2)
        self.out_channels = w.shape[0]
        self.conv = nn.Conv2d(w.shape[1], 4 * w.shape[0], 2, padding=1, bias=conv.bias is not None)
        with torch.no_grad():
            self.conv.weight.copy_(torch.cat(kernels, 0))
            if conv.bias is not None:
                self.conv.bias.copy_(conv.bias.detach().repeat(4))
        self.norm = block.norm
        self.fused_relu = False  # True once ``pack_convolutions`` fused the ReLU into self.conv

    def forward(self, x: Tensor) -> Tensor:
        b, _, h, w = x.shape
        y = self.conv(x)  # (B, 4 O, h + 1, w + 1); phase (a, b) lives at rows a.., cols b..
        o = self.out_channels
        # phases as (B, h, w, O) views; interleaving them along w, then h, gives the result channels-last (the
        # layout of the fast path) in two cache-friendly copies (10x faster than interleaving NCHW planes)
        p = [y[:, (2 * a + c) * o : (2 * a + c + 1) * o, a : a + h, c : c + w] for a in range(2) for c in range(2)]
        p = [phase.permute(0, 2, 3, 1) for phase in p]
        rows = [torch.stack(p[2 * a : 2 * a + 2], dim=3) for a in range(2)]  # (B, h, w, 2, O): phase b along w
        out = torch.stack(rows, dim=2).reshape(b, 2 * h, 2 * w, o).permute(0, 3, 1, 2)  # (B, O, 2h, 2w)
        out = self.norm(out)
        return out if self.fused_relu else F.relu(out)
