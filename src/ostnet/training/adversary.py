"""The adversarial part of training (``TrainConfig.gan``): the discriminator, its own optimiser and scaler, the
GAN term of the generator step and the discriminator step.

Order within one training step (``ostnet.training.trainer.train_step``), once ``start_step`` steps are done:

1. generator: L = L_rec-objective + lambda * L_G(D(fake)); D's parameters are frozen for this pass, so the
   generator step leaves D unchanged and D gets no gradient from it;
2. discriminator: L_D(D(real), D(fake.detach())) with its own Adam; the generator is untouched (no graph to it).

The formulas are in ``ostnet.losses.adversarial``; the network in ``ostnet.models.discriminator``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from ostnet.config import AdversarialConfig
from ostnet.losses.adversarial import adaptive_gan_weight, hinge_discriminator_loss, hinge_generator_loss
from ostnet.models.discriminator import Discriminator, build_discriminator
from ostnet.models.precision import autocast
from ostnet.training.distributed import DistInfo


def last_layer(model: nn.Module) -> Tensor:
    """The weight the adaptive GAN weight differentiates against: the generator's output layer (``final``)."""
    return getattr(model, "module", model).generator.final.weight


class Adversary:
    """Discriminator + optimiser + GradScaler, on ``dist.device`` (DDP-wrapped for its own step when
    distributed).

    Args:
        cfg: the ``gan`` section of the training config.
        num_channels: image channels.
        dist: the process group description (``setup_distributed``).
        precision: "fp32", "bf16" or "fp16" (fp16 gets its own enabled GradScaler).
    """

    def __init__(self, cfg: AdversarialConfig, num_channels: int, dist: DistInfo, precision: str = "fp32") -> None:
        self.cfg, self.dist = cfg, dist
        self.raw: Discriminator = build_discriminator(cfg.discriminator, num_channels).to(dist.device).train()
        self.net: nn.Module = self.raw
        if dist.is_distributed:
            ids = [dist.device.index] if dist.device.type == "cuda" else None
            self.net = DistributedDataParallel(self.raw, device_ids=ids)
        self.optimizer = torch.optim.Adam(self.raw.parameters(), lr=cfg.lr, betas=cfg.betas)
        self.scaler = torch.amp.GradScaler(dist.device.type, enabled=precision == "fp16")

    def active(self, steps_done: int) -> bool:
        return steps_done >= self.cfg.start_step

    def generator_term(self, model: nn.Module, rec_loss: Tensor, fake: Tensor) -> tuple[Tensor, Tensor]:
        """(L_G, lambda) for the generator step; the gradient of L_G reaches ``fake`` only."""
        self.raw.requires_grad_(False)
        try:
            gan = hinge_generator_loss(self.raw(fake).logits)
        finally:
            self.raw.requires_grad_(True)
        weight = adaptive_gan_weight(rec_loss, gan, last_layer(model), self.cfg, reduce=self._mean_over_ranks)
        return gan, weight

    def discriminator_step(self, real: Tensor, fake: Tensor, precision: str | None = "fp32") -> dict[str, Tensor]:
        """One Adam step of D on real vs detached fake images under the training precision (None = fp32);
        returns detached scalars for logging."""
        self.optimizer.zero_grad(set_to_none=True)
        with autocast(real.device.type, precision or "fp32"):
            both = self.net(torch.cat([real, fake.detach()])).logits
            n = real.shape[0]
            real_logits, fake_logits = [x[:n] for x in both], [x[n:] for x in both]
            loss = hinge_discriminator_loss(real_logits, fake_logits)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return {
            "gan/d_loss": loss.detach().float(),
            "gan/d_real": torch.stack([x.detach().float().mean() for x in real_logits]).mean(),
            "gan/d_fake": torch.stack([x.detach().float().mean() for x in fake_logits]).mean(),
        }

    def _mean_over_ranks(self, tensor: Tensor) -> Tensor:
        if not self.dist.is_distributed:
            return tensor
        out = tensor.detach().clone()
        torch.distributed.all_reduce(out)
        return out / self.dist.world_size

    def state_dict(self) -> dict[str, Any]:
        return {
            "net": self.raw.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.raw.load_state_dict(state["net"])
        self.optimizer.load_state_dict(state["optimizer"])
        if state["scaler"]:
            self.scaler.load_state_dict(state["scaler"])
