"""Sharding and synchronised batch norm: W processes with batch b compute what 1 process does with W b."""

from __future__ import annotations

import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from ostnet.errors import OstnetError
from ostnet.training.distributed import DistInfo, DistributedBatchNorm, ShardedSampler, convert_sync_batchnorm


def global_batches(size, world, batch, epoch, start=0):
    samplers = [ShardedSampler(size, batch_size=batch, rank=r, world_size=world, seed=4) for r in range(world)]
    per_rank = []
    for s in samplers:
        s.set_epoch(epoch, start)
        idx = list(s)
        per_rank.append([idx[i : i + batch] for i in range(0, len(idx), batch)])
    return [sorted(sum((ranks[k] for ranks in per_rank), [])) for k in range(len(per_rank[0]))]


def test_sharding_gives_same_global_batches_for_any_world_size():
    one = global_batches(23, 1, 6, epoch=2)
    three = global_batches(23, 3, 2, epoch=2)
    assert one == three and len(one) == 3  # 23 // 6, the remainder is dropped
    assert len({i for b in one for i in b}) == 18  # no repeats within an epoch
    assert global_batches(23, 1, 6, epoch=3) != one  # reshuffled every epoch


def test_sharding_resume_skips_trained_batches():
    full = global_batches(40, 2, 3, epoch=1)
    assert global_batches(40, 2, 3, epoch=1, start=4) == full[4:]
    s = ShardedSampler(40, batch_size=3, rank=1, world_size=2)
    s.set_epoch(0, 6)
    assert len(s) == len(list(s)) == 0


def test_too_small_dataset_is_a_user_error():
    with pytest.raises(OstnetError, match="fewer than one global batch"):
        ShardedSampler(5, batch_size=4, world_size=2)


# -------------------------------------------------------------------------------------------------------------


def make_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Conv2d(4, 2, 3, padding=1), nn.BatchNorm2d(2)
    )


def batch_data() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return torch.randn(6, 3, 5, 5, generator=g), torch.randn(6, 2, 5, 5, generator=g)


def loss_fn(out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return ((out - target) ** 2 * torch.linspace(0.5, 2.0, out.shape[-1])).mean()


def _worker(rank: int, world: int, init_file: str, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        net = convert_sync_batchnorm(make_net(), DistInfo(rank=rank, world_size=world))
        assert isinstance(net[1], DistributedBatchNorm)
        ddp = nn.parallel.DistributedDataParallel(net)
        x, y = batch_data()
        chunk = x.shape[0] // world
        out = ddp(x[rank * chunk : (rank + 1) * chunk])
        loss_fn(out, y[rank * chunk : (rank + 1) * chunk]).backward()
        grads = {n: p.grad for n, p in net.named_parameters()}
        torch.save({"out": out.detach(), "grads": grads, "state": net.state_dict()}, f"{out_dir}/rank{rank}.pt")
        dist.barrier()  # no rank tears down while its peer still talks (Gloo then aborts the peer)
    finally:
        dist.destroy_process_group()


def test_distributed_batchnorm_matches_one_process(tmp_path):
    world = 2
    mp.spawn(_worker, args=(world, str(tmp_path / "init"), str(tmp_path)), nprocs=world, join=True)
    results = [torch.load(tmp_path / f"rank{r}.pt") for r in range(world)]

    net = make_net()
    x, y = batch_data()
    out = net(x)
    loss_fn(out, y).backward()
    torch.testing.assert_close(torch.cat([r["out"] for r in results]), out.detach(), atol=1e-5, rtol=1e-5)
    for name, p in net.named_parameters():
        for r in results:  # DDP averaged the gradients: every rank holds the full-batch gradient
            torch.testing.assert_close(r["grads"][name], p.grad, atol=1e-5, rtol=1e-4)
    for key, value in net.state_dict().items():  # running statistics and counters as well
        torch.testing.assert_close(results[0]["state"][key], value, atol=1e-6, rtol=1e-5)
    assert set(results[0]["state"]) == set(net.state_dict())


def test_conversion_is_a_no_op_in_one_process():
    net = make_net()
    assert convert_sync_batchnorm(net, DistInfo()) is net
    assert type(net[1]) is nn.BatchNorm2d
    assert not dist.is_initialized()
    assert os.environ.get("WORLD_SIZE", "1") == "1"
