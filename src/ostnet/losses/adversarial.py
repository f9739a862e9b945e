"""Hinge GAN losses and the adaptive GAN weight (codebooks paper's official settings [C], seed-systems.md §1).

    L_D     = 1/2 [ mean relu(1 - D(x_real)) + mean relu(1 + D(x_fake)) ]      (per scale, averaged over scales)
    L_G     = - mean D(x_fake)                                                 (per scale, averaged over scales)
    lambda  = weight * clamp( ||dL_rec/dW|| / (||dL_gan/dW|| + eps), 0, max )  (W: the generator's last layer)

``weight`` = 0.8, ``eps`` = 1e-4 and ``max`` = 1 are the official values [C] (``AdversarialConfig``).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from ostnet.config import AdversarialConfig


def hinge_discriminator_loss(real_logits: list[Tensor], fake_logits: list[Tensor]) -> Tensor:
    """L_D above; lists hold one logit map per discriminator scale."""
    terms = [0.5 * (F.relu(1 - r).mean() + F.relu(1 + f).mean()) for r, f in zip(real_logits, fake_logits, strict=True)]
    return torch.stack(terms).mean()


def hinge_generator_loss(fake_logits: list[Tensor]) -> Tensor:
    """L_G above."""
    return torch.stack([-f.mean() for f in fake_logits]).mean()


def adaptive_gan_weight(
    rec_loss: Tensor,
    gan_loss: Tensor,
    last_layer: Tensor,
    cfg: AdversarialConfig,
    reduce: Callable[[Tensor], Tensor] | None = None,
) -> Tensor:
    """lambda above, detached. ``reduce`` (e.g. an all-reduce mean over DDP ranks) is applied to both gradients
    before their norms, so W processes with batch b give the weight of one process with batch W b."""
    if not cfg.adaptive:
        return torch.tensor(cfg.weight, device=gan_loss.device)
    rec_grad = torch.autograd.grad(rec_loss, last_layer, retain_graph=True)[0]
    gan_grad = torch.autograd.grad(gan_loss, last_layer, retain_graph=True)[0]
    if reduce is not None:
        rec_grad, gan_grad = reduce(rec_grad), reduce(gan_grad)
    ratio = rec_grad.norm() / (gan_grad.norm() + cfg.adaptive_epsilon)
    return (ratio.clamp(0.0, cfg.max_adaptive_weight) * cfg.weight).detach()
