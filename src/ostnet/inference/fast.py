"""The inference fast path: a copy of a model rewritten for inference, with the same function.

``optimize_for_inference`` returns a deep copy (the caller's model, e.g. one still being trained, is untouched):

* **batch norm folded into the convolutions** (``fold_batchnorm``): in eval mode a BatchNorm2d right after a
  convolution is an affine map per channel, so it becomes the convolution's weight and bias and the norm layer
  an ``nn.Identity``. Every ``SameBlock2d``/``DownBlock2d``/``UpBlock2d`` (conv -> norm -> ReLU) and the
  ``norm2`` of every ``ResBlock2d`` (conv1 -> norm2) folds; a ResBlock's ``norm1`` precedes its convolution
  behind a ReLU and stays.
* **bf16 weights** (``dtype=bf16``): the convolution and linear weights are stored in bf16, so autocast does
  not cast 56 M parameters on every call.
* **channels-last** memory layout for the convolutions (``channels_last=True``).

What is kept is decided by ``benchmarks/fast_path.py``; see docs/benchmarks.md.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from ostnet.models.blocks import ResBlock2d, SameBlock2d, UpBlock2d


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


def replace_up_blocks(model: nn.Module) -> nn.Module:
    """Replace every ``UpBlock2d`` of ``model`` by its ``SubpixelUpBlock2d``, in place; returns model."""
    for parent in list(model.modules()):
        for name, child in parent.named_children():
            if type(child) is UpBlock2d:
                setattr(parent, name, SubpixelUpBlock2d(child))
    return model


def optimize_for_inference(
    model: nn.Module, *, dtype: torch.dtype = torch.float32, channels_last: bool = False, subpixel: bool = True
) -> nn.Module:
    """An eval-mode copy of ``model`` with batch norm folded, weights in ``dtype`` for convolutions and linear
    layers (bf16/fp16 under autocast), and optionally channels-last convolution weights."""
    fast = fold_batchnorm(copy.deepcopy(model).eval())
    if subpixel:
        replace_up_blocks(fast)
    for p in fast.parameters():
        p.requires_grad_(False)
    if dtype != torch.float32:
        for module in fast.modules():
            if isinstance(module, nn.Conv2d | nn.Linear):
                module.to(dtype)
    if channels_last:
        fast.to(memory_format=torch.channels_last)
    return fast


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
        return F.relu(self.norm(out))
