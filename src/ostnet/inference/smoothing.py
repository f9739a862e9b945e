"""Temporal smoothing of the driving motion, for every model (``--motion-smooth``).

The Animator smooths what drives the generator, frame after frame: the keypoints (and their Jacobians) and,
for OSTNet, the scale code z. Today's ``--smooth`` smooths the face-crop box; this smooths the motion itself.
Each smoother filters a sequence of vectors (T, D) along T, keeps its state between calls (a video arrives in
batches) and starts afresh after ``reset()`` (a new source or video).

* ``ema``: exponential moving average y_t = y_{t-1} + alpha (x_t - y_{t-1}). Lag on a ramp: (1 - alpha) / alpha
  frames.
* ``kalman``: a constant-velocity Kalman filter per coordinate (state: position and velocity; process noise q on
  the acceleration, measurement noise r). It follows a ramp with no lag once settled, and removes noise by
  about r / q (the LivePortrait users' "Kalman smoothing of the driving motion").
* ``one-euro``: the 1-euro filter (Casiez, Roussel, Vogel, CHI 2012): an EMA whose cut-off frequency rises
  with the speed, f_c = min_cutoff + beta |dx/dt|: steady when still, little lag when moving fast.

All are exact identities on a constant sequence (the state starts at the first value).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from ostnet.errors import OstnetError

SmoothMethod = Literal["none", "ema", "kalman", "one-euro"]
SMOOTH_METHODS = ("none", "ema", "kalman", "one-euro")


@dataclass(frozen=True)
class SmoothingConfig:
    """The method and its parameters (defaults tuned on the sample clips at 25-30 fps, docs/design.md).

    ema_alpha: weight of the new frame in (0, 1].
    kalman_q, kalman_r: process (acceleration) and measurement noise variances, in squared keypoint units.
    one_euro_min_cutoff (Hz), one_euro_beta (s per unit), one_euro_d_cutoff (Hz), fps: the 1-euro filter's.
    """

    method: SmoothMethod = "none"
    ema_alpha: float = 0.5
    kalman_q: float = 1e-4
    kalman_r: float = 1e-3
    one_euro_min_cutoff: float = 1.5
    one_euro_beta: float = 5.0
    one_euro_d_cutoff: float = 1.0
    fps: float = 25.0

    def __post_init__(self) -> None:
        if self.method not in SMOOTH_METHODS:
            raise OstnetError(f"unknown --motion-smooth {self.method!r}; choose one of {', '.join(SMOOTH_METHODS)}")
        if not 0.0 < self.ema_alpha <= 1.0:
            raise OstnetError(f"ema alpha must be in (0, 1], got {self.ema_alpha}")
        if min(self.kalman_q, self.kalman_r, self.one_euro_min_cutoff, self.one_euro_d_cutoff, self.fps) <= 0:
            raise OstnetError("smoothing parameters (Kalman q and r, 1-euro cut-offs, fps) must be > 0")
        if self.one_euro_beta < 0:
            raise OstnetError(f"1-euro beta must be >= 0, got {self.one_euro_beta}")


class Smoother:
    """Base class: ``__call__(x)`` filters (T, D) along T; ``reset()`` forgets the past. ``none`` passes through."""

    def reset(self) -> None:
        pass

    def __call__(self, x: Tensor) -> Tensor:
        return x


class EMASmoother(Smoother):
    def __init__(self, alpha: float) -> None:
        self.alpha = alpha
        self.state: Tensor | None = None

    def reset(self) -> None:
        self.state = None

    def __call__(self, x: Tensor) -> Tensor:
        out = []
        for frame in x:
            self.state = frame.clone() if self.state is None else self.state + self.alpha * (frame - self.state)
            out.append(self.state)
        return torch.stack(out)


class KalmanSmoother(Smoother):
    """Constant-velocity Kalman filter, one independent 2-state filter per coordinate (all share P)."""

    def __init__(self, q: float, r: float) -> None:
        self.q, self.r = q, r
        self.reset()

    def reset(self) -> None:
        self.pos: Tensor | None = None
        self.vel: Tensor | None = None
        self.p = torch.zeros(2, 2, dtype=torch.float64)

    def __call__(self, x: Tensor) -> Tensor:
        f = torch.tensor([[1.0, 1.0], [0.0, 1.0]], dtype=torch.float64)
        q = self.q * torch.tensor([[0.25, 0.5], [0.5, 1.0]], dtype=torch.float64)  # white acceleration
        out = []
        for frame in x:
            if self.pos is None:
                self.pos, self.vel = frame.clone(), torch.zeros_like(frame)
                self.p = torch.diag(torch.tensor([self.r, self.r], dtype=torch.float64))
                out.append(self.pos)
                continue
            pos, vel = self.pos + self.vel, self.vel  # predict
            p = f @ self.p @ f.T + q
            gain = p[:, 0] / (p[0, 0] + self.r)  # update with the measured position
            innovation = frame - pos
            self.pos = pos + float(gain[0]) * innovation
            self.vel = vel + float(gain[1]) * innovation
            self.p = p - torch.outer(gain, p[0])
            out.append(self.pos)
        return torch.stack(out)


class OneEuroSmoother(Smoother):
    def __init__(self, min_cutoff: float, beta: float, d_cutoff: float, fps: float) -> None:
        self.min_cutoff, self.beta, self.d_cutoff, self.dt = min_cutoff, beta, d_cutoff, 1.0 / fps
        self.reset()

    def reset(self) -> None:
        self.value: Tensor | None = None
        self.speed: Tensor | None = None

    def _alpha(self, cutoff: Tensor | float) -> Tensor | float:
        tau = 1.0 / (2 * math.pi * cutoff)
        return 1.0 / (1.0 + tau / self.dt)

    def __call__(self, x: Tensor) -> Tensor:
        out = []
        for frame in x:
            if self.value is None:
                self.value, self.speed = frame.clone(), torch.zeros_like(frame)
                out.append(self.value)
                continue
            speed = (frame - self.value) / self.dt
            self.speed = self.speed + self._alpha(self.d_cutoff) * (speed - self.speed)
            cutoff = self.min_cutoff + self.beta * self.speed.abs()
            self.value = self.value + self._alpha(cutoff) * (frame - self.value)
            out.append(self.value)
        return torch.stack(out)


def make_smoother(cfg: SmoothingConfig | str) -> Smoother:
    """A fresh smoother for a config or a method name (default parameters)."""
    cfg = SmoothingConfig(method=cfg) if isinstance(cfg, str) else cfg
    if cfg.method == "ema":
        return EMASmoother(cfg.ema_alpha)
    if cfg.method == "kalman":
        return KalmanSmoother(cfg.kalman_q, cfg.kalman_r)
    if cfg.method == "one-euro":
        return OneEuroSmoother(cfg.one_euro_min_cutoff, cfg.one_euro_beta, cfg.one_euro_d_cutoff, cfg.fps)
    return Smoother()


def smooth_tensors(smoother: Smoother, tensors: list[Tensor | None]) -> list[Tensor | None]:
    """Smooth several per-frame tensors (each (T, ...), None skipped) jointly as one (T, D) sequence."""
    present = [t for t in tensors if t is not None]
    if type(smoother) is Smoother or not present:
        return tensors
    smoothed = smoother(torch.cat([t.reshape(t.shape[0], -1).float() for t in present], dim=1))
    out, offset = [], 0
    for t in tensors:
        if t is not None:
            n = t[0].numel()
            out.append(smoothed[:, offset : offset + n].reshape(t.shape).to(t.dtype))
            offset += n
        else:
            out.append(None)
    return out
