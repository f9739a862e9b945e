"""Process-group set-up, deterministic sharding, per-rank seeds and synchronised batch norm.

The same training code runs on 1 CPU, 1 GPU, N GPUs and N nodes. ``torchrun`` sets ``RANK``, ``LOCAL_RANK``
and ``WORLD_SIZE`` (plus ``MASTER_ADDR``/``MASTER_PORT``); when ``WORLD_SIZE > 1`` we join the process group
with NCCL on CUDA and Gloo on CPU. Without those variables the run is a single process.

PyTorch's ``nn.SyncBatchNorm`` only runs on accelerators, so on CPU process groups we use our own
``DistributedBatchNorm`` (same state-dict keys as BatchNorm): it all-reduces the batch statistics in the
forward pass and the two gradient sums in the backward pass, which makes an N-process run compute what one
process computes on the whole global batch.
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.utils.data import Sampler

from ostnet.errors import OstnetError
from ostnet.models.device import resolve_device


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits: global rank, rank on its node, number of processes and its device."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    device: torch.device = torch.device("cpu")
    backend: str | None = None

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def is_distributed(self) -> bool:
        return self.world_size > 1


def _pick_device(device: str, local_rank: int) -> torch.device:
    """``--device`` (``auto``: the best available, ``ostnet.models.device``); under torchrun each rank takes
    ``cuda:LOCAL_RANK``."""
    resolved = resolve_device(device)
    if resolved.type == "cuda":
        return torch.device("cuda", local_rank if resolved.index is None else resolved.index)
    return resolved


def setup_distributed(device: str = "auto") -> DistInfo:
    """Read torchrun's environment, pick the device and, for WORLD_SIZE > 1, init the process group."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    chosen = _pick_device(device, local_rank)
    if chosen.type == "cuda":
        torch.cuda.set_device(chosen)
    if world_size <= 1:
        return DistInfo(device=chosen)
    backend = "nccl" if chosen.type == "cuda" else "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend=backend, rank=rank, world_size=world_size)
    return DistInfo(rank, local_rank, world_size, chosen, backend)


def cleanup_distributed(info: DistInfo, *, completed: bool = False) -> None:
    """Tear the process group down. After a completed run every rank first waits for the others: Gloo aborts a
    process (``terminate called without an active exception``) whose peer closes its connection early."""
    if info.is_distributed and dist.is_initialized():
        if completed:
            dist.barrier()
        dist.destroy_process_group()


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's global generators (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 - the legacy global stream is what libraries use
    torch.manual_seed(seed)


def configure_backends(deterministic: bool) -> None:
    """Deterministic kernels (and no cuDNN autotuning) in deterministic mode, autotuning otherwise."""
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        # warn_only: a few CUDA backward kernels (grid_sample) have no deterministic version.
        torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.deterministic = deterministic
    torch.backends.cudnn.benchmark = not deterministic


def all_gather_objects(obj: Any, info: DistInfo) -> list[Any]:
    """[obj of rank 0, obj of rank 1, ...]; a one-element list in a single process."""
    if not info.is_distributed:
        return [obj]
    gathered: list[Any] = [None] * info.world_size
    dist.all_gather_object(gathered, obj)
    return gathered


def all_reduce_mean(values: dict[str, Tensor], info: DistInfo) -> dict[str, Tensor]:
    """Average scalar tensors over all ranks (for logging). Every rank must pass the same keys."""
    if not info.is_distributed or not values:
        return values
    keys = sorted(values)
    stacked = torch.stack([values[k].float() for k in keys])
    dist.all_reduce(stacked)
    return {k: v / info.world_size for k, v in zip(keys, stacked, strict=True)}


class ShardedSampler(Sampler[int]):
    """DistributedSampler-like deterministic sharding in whole global batches.

    Epoch e uses the permutation ``randperm(size, seed + e)`` cut to a multiple of the global batch
    (``world_size * batch_size``); rank r takes positions r, r + W, r + 2W, ... So global step k covers
    exactly the dataset indices ``perm[k W b : (k + 1) W b]`` whatever W is: one process with batch W b sees
    the same samples per step as W processes with batch b. ``set_epoch(e, start_batch)`` skips already
    trained batches on resume without loading them.
    """

    def __init__(
        self,
        size: int,
        *,
        batch_size: int,
        rank: int = 0,
        world_size: int = 1,
        seed: int = 0,
        shuffle: bool = True,
    ) -> None:
        self.size, self.batch_size, self.rank, self.world_size = size, batch_size, rank, world_size
        self.seed, self.shuffle = seed, shuffle
        self.epoch, self.start_batch = 0, 0
        if self.batches_per_epoch < 1:
            raise OstnetError(
                f"the dataset has {size} training pairs per epoch, fewer than one global batch of "
                f"{world_size} x {batch_size}; lower data.batch_size or raise data.num_repeats"
            )

    @property
    def batches_per_epoch(self) -> int:
        return self.size // (self.world_size * self.batch_size)

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        self.epoch, self.start_batch = int(epoch), int(start_batch)

    def __iter__(self) -> Iterator[int]:
        if self.shuffle:
            order = torch.randperm(self.size, generator=torch.Generator().manual_seed(self.seed + self.epoch))
        else:
            order = torch.arange(self.size)
        used = order[: self.batches_per_epoch * self.world_size * self.batch_size]
        mine = used[self.rank :: self.world_size]
        return iter(mine[self.start_batch * self.batch_size :].tolist())

    def __len__(self) -> int:
        return max(0, self.batches_per_epoch - self.start_batch) * self.batch_size


# --------------------------------------------------------------------------------------------------------
# Batch norm synchronised over a (Gloo) process group
# --------------------------------------------------------------------------------------------------------


def _channel_sum(x: Tensor) -> Tensor:
    return x.sum(dim=[d for d in range(x.dim()) if d != 1])


class _SyncBatchNormFn(torch.autograd.Function):
    """Batch norm over the union of all ranks' batches. Statistics and gradient sums are accumulated in
    float64, as PyTorch's CPU batch norm does; the all-reduced sums are per channel, so this costs little."""

    @staticmethod
    def forward(ctx, x, weight, bias, running_mean, running_var, eps, momentum):
        shape = [1, -1] + [1] * (x.dim() - 2)
        xd = x.double()
        count = torch.tensor([x.numel() // x.shape[1]], dtype=torch.float64, device=x.device)
        sums = torch.cat([_channel_sum(xd), count])
        dist.all_reduce(sums)
        total = sums[-1]
        mean = sums[:-1] / total
        centred = xd - mean.view(shape)
        var = _channel_sum(centred**2)
        dist.all_reduce(var)
        var = var / total
        invstd = torch.rsqrt(var + eps)
        if running_mean is not None:
            unbiased = var * total / (total - 1).clamp(min=1)
            running_mean.mul_(1 - momentum).add_(momentum * mean.to(running_mean.dtype))
            running_var.mul_(1 - momentum).add_(momentum * unbiased.to(running_var.dtype))
        xhat = centred * invstd.view(shape)
        ctx.save_for_backward(xhat, weight, invstd, total)
        ctx.shape = shape
        return (xhat * weight.double().view(shape) + bias.double().view(shape)).to(x.dtype)

    @staticmethod
    def backward(ctx, grad_out):
        xhat, weight, invstd, total = ctx.saved_tensors
        shape = ctx.shape
        dy = grad_out.double()
        local = torch.cat([_channel_sum(dy), _channel_sum(dy * xhat)])
        grad_bias, grad_weight = (part.to(weight.dtype) for part in local.chunk(2))  # this rank's share
        dist.all_reduce(local)
        sum_dy, sum_dy_xhat = local.chunk(2)
        grad_x = (weight.double() * invstd).view(shape) * (
            dy - (sum_dy / total).view(shape) - xhat * (sum_dy_xhat / total).view(shape)
        )
        return grad_x.to(grad_out.dtype), grad_weight, grad_bias, None, None, None, None


class DistributedBatchNorm(nn.modules.batchnorm._BatchNorm):
    """Batch norm whose training statistics cover the whole process group (any device, any backend).

    In eval mode, without a process group, or without affine parameters it is plain batch norm.
    """

    def _check_input_dim(self, input: Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"expected at least 2-D input, got {input.dim()}-D")

    def forward(self, x: Tensor) -> Tensor:
        synced = self.training and self.affine and dist.is_initialized() and dist.get_world_size() > 1
        if not synced:
            return super().forward(x)
        momentum = 0.0 if self.momentum is None else self.momentum
        if self.track_running_stats and self.num_batches_tracked is not None:
            self.num_batches_tracked.add_(1)
            if self.momentum is None:
                momentum = 1.0 / float(self.num_batches_tracked)
        running = self.track_running_stats
        return _SyncBatchNormFn.apply(
            x,
            self.weight,
            self.bias,
            self.running_mean if running else None,
            self.running_var if running else None,
            self.eps,
            momentum,
        )


def _to_distributed_bn(bn: nn.modules.batchnorm._BatchNorm) -> DistributedBatchNorm:
    new = DistributedBatchNorm(bn.num_features, bn.eps, bn.momentum, bn.affine, bn.track_running_stats)
    new.load_state_dict(bn.state_dict())
    new.train(bn.training)
    return new.to(bn.weight.device if bn.affine else "cpu")


def convert_sync_batchnorm(model: nn.Module, info: DistInfo) -> nn.Module:
    """Make every BatchNorm layer synchronise over the process group (no-op in a single process).

    CUDA: ``nn.SyncBatchNorm``; other devices: ``DistributedBatchNorm``. State-dict keys are unchanged.
    """
    if not info.is_distributed:
        return model
    if info.device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(model)
    for name, child in list(model.named_children()):
        if isinstance(child, nn.modules.batchnorm._BatchNorm):
            setattr(model, name, _to_distributed_bn(child))
        else:
            convert_sync_batchnorm(child, info)
    return model
