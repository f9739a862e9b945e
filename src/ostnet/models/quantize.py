"""Vector quantisation with per-scale code allocation (codebooks paper, seed-systems.md §1; docs/design.md
"Codebooks").

    k*      = argmin_{k in slice(s)} ||z - e_k||^2                 nearest code within scale s's slice
    z_q     = z + sg(e_{k*} - z)                                   straight-through: dz_q/dz = I
    L_vq    = beta ||sg(e_{k*}) - z||^2 + ||e_{k*} - sg(z)||^2     beta = 0.25 [C]; both terms mean squared errors

Code allocation over S scales of a codebook of M codes (scale s = 0 .. S-1, coarsest first) [P, C]:

    "prefix"   : scale s searches [0, (s + 1) M / S)   (coarse scales use few codes, fine scales all)
    "disjoint" : scale s searches [s M / S, (s + 1) M / S)   (the official code's ablation)
    "none"     : every scale searches [0, M)

Code usage: ``perplexity`` = exp(-sum_k p_k log p_k) of the batch's code histogram within the slice (1 = one code,
slice size = uniform use). During training every code of the searched slice counts the steps since it was last
chosen (buffer ``idle_steps``); a code idle for ``dead_after`` steps is dead. With ``restart_dead`` each dead code
of the slice is moved onto a random input vector of the batch (under DDP rank 0's choice is broadcast).
"""

from __future__ import annotations

from typing import Literal, NamedTuple

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn

Allocation = Literal["prefix", "disjoint", "none"]


class QuantizerOutput(NamedTuple):
    """quantized: (..., D) straight-through codes; indices: (...) int64 into the whole codebook; loss: L_vq;
    perplexity: scalar; histogram: (slice size,) float counts of the slice's codes in this batch."""

    quantized: Tensor
    indices: Tensor
    loss: Tensor
    perplexity: Tensor
    histogram: Tensor


def code_slice(num_codes: int, num_scales: int, scale: int, allocation: Allocation) -> tuple[int, int]:
    """[start, stop) of the codes scale ``scale`` (0 = coarsest) of ``num_scales`` may use."""
    if num_codes % num_scales:
        raise ValueError(f"a codebook of {num_codes} codes cannot be split into {num_scales} scale slices")
    if not 0 <= scale < num_scales:
        raise ValueError(f"scale {scale} outside 0..{num_scales - 1}")
    part = num_codes // num_scales
    if allocation == "prefix":
        return 0, (scale + 1) * part
    if allocation == "disjoint":
        return scale * part, (scale + 1) * part
    if allocation == "none":
        return 0, num_codes
    raise ValueError(f"allocation: expected prefix, disjoint or none, got {allocation!r}")


class VectorQuantizer(nn.Module):
    """A codebook (``codebook.weight``, (M, D)) searched per scale slice.

    Args:
        num_codes, dim: M and D.
        num_scales: S, the number of slices' scales.
        allocation: "prefix", "disjoint" or "none" (module docstring).
        beta: commitment weight (0.25 [C]).
        dead_after: training steps without use after which a code counts as dead.
        restart_dead: move dead codes onto batch inputs.
    """

    def __init__(
        self,
        num_codes: int,
        dim: int,
        num_scales: int = 1,
        allocation: Allocation = "prefix",
        beta: float = 0.25,
        dead_after: int = 100,
        restart_dead: bool = False,
    ) -> None:
        super().__init__()
        code_slice(num_codes, num_scales, 0, allocation)  # validates
        self.num_codes, self.dim, self.num_scales, self.allocation = num_codes, dim, num_scales, allocation
        self.beta, self.dead_after, self.restart_dead = beta, dead_after, restart_dead
        self.codebook = nn.Embedding(num_codes, dim)
        nn.init.uniform_(self.codebook.weight, -1.0 / num_codes, 1.0 / num_codes)  # VQ-VAE / VQGAN init
        self.register_buffer("idle_steps", torch.zeros(num_codes, dtype=torch.long))

    def slice(self, scale: int) -> tuple[int, int]:
        return code_slice(self.num_codes, self.num_scales, scale, self.allocation)

    def codes(self, scale: int) -> Tensor:
        """The (stop - start, D) codes scale ``scale`` searches (with gradient when grad mode is on; detached
        otherwise, so that no inference-mode tensor claims to require a gradient)."""
        start, stop = self.slice(scale)
        codes = self.codebook.weight[start:stop]
        return codes if torch.is_grad_enabled() else codes.detach()

    def forward(self, z: Tensor, scale: int = 0) -> QuantizerOutput:
        """z (..., D) -> QuantizerOutput; updates the usage counters (and restarts dead codes) in training."""
        start, stop = self.slice(scale)
        flat = z.reshape(-1, self.dim)
        codes = self.codebook.weight[start:stop]
        with torch.no_grad():
            dist2 = flat.pow(2).sum(1, keepdim=True) - 2 * flat @ codes.T + codes.pow(2).sum(1)[None]
            local = dist2.argmin(dim=1)
        chosen = codes[local]  # gradient reaches only the chosen rows of the slice
        loss = self.beta * F.mse_loss(flat, chosen.detach()) + F.mse_loss(chosen, flat.detach())
        quantized = flat + (chosen - flat).detach()
        histogram = torch.bincount(local, minlength=stop - start).float()
        p = histogram / histogram.sum().clamp_min(1)
        perplexity = torch.exp(-(p * torch.log(p.clamp_min(1e-12))).sum())
        if self.training:
            self._track_usage(start, stop, histogram, flat.detach())
        indices = (local + start).reshape(z.shape[:-1])
        return QuantizerOutput(quantized.reshape(z.shape), indices, loss, perplexity, histogram)

    def dead_codes(self, scale: int) -> Tensor:
        """Boolean mask over scale ``scale``'s slice: codes idle for ``dead_after`` training steps or more."""
        start, stop = self.slice(scale)
        return self.idle_steps[start:stop] >= self.dead_after

    @torch.no_grad()
    def _track_usage(self, start: int, stop: int, histogram: Tensor, inputs: Tensor) -> None:
        counts = histogram.clone()
        distributed = dist.is_available() and dist.is_initialized()
        if distributed:
            dist.all_reduce(counts)
        idle = self.idle_steps[start:stop]
        idle.add_(1).masked_fill_(counts > 0, 0)
        if not self.restart_dead:
            return
        dead = (idle >= self.dead_after).nonzero().flatten()
        if dead.numel() == 0:
            return
        pick = torch.randint(0, inputs.shape[0], (dead.numel(),), device=inputs.device)
        new = inputs[pick]
        if distributed:
            dist.broadcast(new, src=0)
        self.codebook.weight.data[start + dead] = new.to(self.codebook.weight.dtype)
        idle[dead] = 0
