"""train_step: the loss falls on a fixed batch; AMP and clipping-after-unscale; the objective's terms."""

from __future__ import annotations

import math

import pytest
import torch

from ostnet import config as C
from ostnet.data.dataset import TrainingPair
from ostnet.losses.objective import LossTerms, Objective
from ostnet.losses.vgg import Vgg19Features
from ostnet.models.ostnet import build_model
from ostnet.models.outputs import ModelOutput
from ostnet.training.trainer import train_step


@pytest.fixture(scope="module")
def vgg() -> Vgg19Features:
    v = Vgg19Features()
    v.randomize()
    return v


def fixed_batch(size: int = 64, batch: int = 2) -> TrainingPair:
    g = torch.Generator().manual_seed(0)
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing="ij")
    images = []
    for b in range(2 * batch):
        cx, cy = (torch.rand(2, generator=g) - 0.5) * 0.4
        face = torch.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / 0.15)
        colour = torch.rand(3, 1, 1, generator=g) * 0.5 + 0.3
        images.append((face[None] * colour + 0.1 * b / batch).clamp(0, 1))
    source, driving = torch.stack(images[:batch]), torch.stack(images[batch:])
    ones = torch.ones(batch)
    return TrainingPair(source, driving, driving.clone(), ones, ones, torch.arange(batch))


def make_parts(vgg, precision="fp32", **loss):
    cfg = C.train_preset("tiny")
    cfg.loss.perceptual_scales = (0.25,)  # 16 px: cheap, still a gradient for the generator
    for key, value in loss.items():
        setattr(cfg.loss, key, value)
    model = build_model(cfg.model).train()
    objective = Objective(cfg.loss, vgg=vgg)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.5, 0.999))
    scaler = torch.amp.GradScaler("cpu", enabled=precision == "fp16")
    return model, objective, optimizer, scaler


def test_tiny_step_reduces_loss_on_fixed_batch(vgg):
    model, objective, optimizer, scaler = make_parts(vgg)
    batch = fixed_batch()
    losses = [train_step(model, objective, optimizer, scaler, batch, tps_seed=7).terms.total.item() for _ in range(6)]
    assert all(math.isfinite(v) for v in losses)
    assert losses[-1] < 0.85 * losses[0], losses


def test_step_updates_every_parameter_and_reports_all_terms(vgg):
    model, objective, optimizer, scaler = make_parts(vgg)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    result = train_step(model, objective, optimizer, scaler, fixed_batch(), tps_seed=1)
    terms = result.terms.as_dict()
    assert set(terms) == {"total", "rec_driving", "rec_rectified", "eq_value", "eq_jacobian", "dist"}
    expected = 10 * (terms["rec_driving"] + terms["rec_rectified"] + terms["eq_value"] + terms["eq_jacobian"])
    assert torch.allclose(terms["total"], expected + 10 * terms["dist"], rtol=1e-5)
    unchanged = [n for n, p in model.named_parameters() if torch.equal(p, before[n])]
    assert not unchanged, unchanged
    assert not result.output.prediction.requires_grad  # detached for logging


def test_zero_weights_switch_terms_off(vgg):
    model, objective, _, _ = make_parts(vgg, lambda_eq=0.0, lambda_dist=0.0)
    batch = fixed_batch()
    terms = objective(model, batch, model(batch.source, batch.driving))
    assert terms.eq_value is None and terms.dist is None
    assert torch.allclose(terms.total, 10 * (terms.rec_driving + terms.rec_rectified))


class ToyModel(torch.nn.Module):
    """A conv 'generator' returning a ModelOutput-like tuple (only ``prediction`` is used by ToyObjective)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 3, 3, padding=1)

    def forward(self, source, driving):
        return ModelOutput(torch.sigmoid(self.conv(source)), *([None] * 9))


class ToyObjective(torch.nn.Module):
    def forward(self, model, batch, out, *, tps_seed=None):
        rec = (out.prediction.float() - batch.target).abs().mean() * 1e3  # large: clipping must bite
        return LossTerms(rec, rec, None, None, None, None)


@pytest.mark.parametrize("precision", ["fp32", "bf16", "fp16"])
def test_clipping_happens_on_unscaled_gradients(precision):
    model = ToyModel()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
    scaler = torch.amp.GradScaler("cpu", enabled=precision == "fp16", init_scale=2.0**8)
    batch = fixed_batch(size=16)
    train_step(model, ToyObjective(), optimizer, scaler, batch, precision=precision, grad_clip=0.5)
    norm = torch.linalg.vector_norm(torch.cat([p.grad.flatten() for p in model.parameters()]))
    assert norm == pytest.approx(0.5, rel=1e-3)  # clipped to 0.5 in true units, whatever the loss scale


@pytest.mark.slow
@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_tiny_model_autocast_step(vgg, precision):
    model, objective, optimizer, scaler = make_parts(vgg, precision)
    result = train_step(model, objective, optimizer, scaler, fixed_batch(), precision=precision, tps_seed=2)
    assert math.isfinite(result.terms.total.item())
    assert result.output.prediction.shape == (2, 3, 64, 64)


def test_models_without_scale_transform_have_no_rectified_term(vgg):
    cfg = C.train_preset("tiny")
    cfg.model.scale_transform.enabled = False
    cfg.model.generator.scale_embedding = False
    cfg.loss.perceptual_scales = (0.25,)
    model = build_model(cfg.model).train()
    batch = fixed_batch()
    terms = Objective(cfg.loss, vgg=vgg)(model, batch, model(batch.source, batch.driving), tps_seed=0)
    assert terms.rec_rectified is None and "rec_rectified" not in terms.as_dict()
    expected = 10 * (terms.rec_driving + terms.eq_value + terms.eq_jacobian + terms.dist)
    assert torch.allclose(terms.total, expected, rtol=1e-5)
