"""Exponential moving average of a model's weights (``TrainConfig.ema_decay``; 0.995 in the codebooks' official
code [C]).

    ema <- decay * ema + (1 - decay) * theta        after every optimiser step, for every floating parameter
    buffers (batch-norm statistics, ...) are copied from the model

The average is itself a model (``ModelEMA.module``, in eval mode, no gradients), so it is saved, loaded,
evaluated and exported like any other.
"""

from __future__ import annotations

import copy

import torch
from torch import nn


class ModelEMA:
    def __init__(self, model: nn.Module, decay: float) -> None:
        if not 0 <= decay < 1:
            raise ValueError(f"ema_decay: must be in [0, 1), got {decay}")
        self.decay = decay
        self.module = copy.deepcopy(getattr(model, "module", model)).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        model = getattr(model, "module", model)
        for ema_p, p in zip(self.module.parameters(), model.parameters(), strict=True):
            ema_p.lerp_(p.detach(), 1 - self.decay)
        for ema_b, b in zip(self.module.buffers(), model.buffers(), strict=True):
            ema_b.copy_(b)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.module.state_dict()

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.module.load_state_dict(state)
