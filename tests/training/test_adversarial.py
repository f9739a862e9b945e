"""Adversarial training and the weight EMA: the discriminator, hinge losses, adaptive weight, the two steps'
independence, and exact resume of a run with a discriminator, an EMA and compensatory codebooks."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file
from test_train_step import fixed_batch
from torch import nn

from ostnet import config as C
from ostnet.checkpoint import load_checkpoint
from ostnet.cli import main
from ostnet.errors import OstnetError
from ostnet.losses.adversarial import adaptive_gan_weight, hinge_discriminator_loss, hinge_generator_loss
from ostnet.losses.objective import Objective
from ostnet.losses.vgg import Vgg19Features
from ostnet.models.discriminator import Discriminator
from ostnet.models.ostnet import build_model
from ostnet.training.adversary import Adversary, last_layer
from ostnet.training.distributed import setup_distributed
from ostnet.training.ema import ModelEMA
from ostnet.training.state import load_training_state
from ostnet.training.trainer import Trainer, train_step


def test_discriminator_gives_one_patch_map_per_scale():
    cfg = C.DiscriminatorConfig(scales=(1.0, 0.5), block_expansion=8, max_features=32, num_layers=3)
    out = Discriminator(cfg)(torch.rand(2, 3, 64, 64))
    assert [tuple(x.shape) for x in out.logits] == [(2, 1, 6, 6), (2, 1, 2, 2)]
    assert [len(f) for f in out.features] == [4, 4]
    assert out.features[0][0].shape == (2, 8, 32, 32)


def test_hinge_losses_match_their_closed_form():
    real = [torch.tensor([[2.0, 0.5]]), torch.tensor([[-1.0]])]
    fake = [torch.tensor([[-3.0, 0.0]]), torch.tensor([[0.5]])]
    # scale 1: relu(1 - r) = (0, 0.5), relu(1 + f) = (0, 1); scale 2: relu(2) = 2, relu(1.5) = 1.5
    expected = (0.5 * (0.25 + 0.5) + 0.5 * (2.0 + 1.5)) / 2
    assert hinge_discriminator_loss(real, fake).item() == pytest.approx(expected)
    assert hinge_generator_loss(fake).item() == pytest.approx((1.5 - 0.5) / 2)


def test_adaptive_weight_matches_its_formula_and_clamp():
    w = torch.randn(4, 3, requires_grad=True)
    x = torch.randn(5, 3)
    rec = (x @ w.T).abs().mean()
    gan = -(x @ w.T).mean() * 7
    g_rec = torch.autograd.grad(rec, w, retain_graph=True)[0]
    g_gan = torch.autograd.grad(gan, w, retain_graph=True)[0]
    cfg = C.AdversarialConfig()
    expected = min(1.0, (g_rec.norm() / (g_gan.norm() + 1e-4)).item()) * 0.8
    got = adaptive_gan_weight(rec, gan, w, cfg)
    assert got.item() == pytest.approx(expected, rel=1e-6)
    assert not got.requires_grad
    big = adaptive_gan_weight(rec * 1e3, gan, w, cfg)  # ratio far above 1: clamped to 1, times 0.8
    assert big.item() == pytest.approx(0.8)
    fixed = C.AdversarialConfig(adaptive=False, weight=0.3)
    assert adaptive_gan_weight(rec, gan, w, fixed).item() == pytest.approx(0.3)


@pytest.fixture(scope="module")
def vgg() -> Vgg19Features:
    v = Vgg19Features()
    v.randomize()
    return v


def _snapshot(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in module.state_dict().items()}


def _equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_discriminator_step_leaves_generator_unchanged_and_generator_step_leaves_d_unchanged(vgg):
    cfg = C.train_preset("tiny")
    cfg.loss.perceptual_scales = (0.25,)
    model = build_model(cfg.model).train()
    objective = Objective(cfg.loss, vgg=vgg)
    gan = C.AdversarialConfig(enabled=True, discriminator=C.DiscriminatorConfig(block_expansion=8, max_features=32))
    adversary = Adversary(gan, 3, setup_distributed("cpu"))
    batch = fixed_batch()
    # generator step alone (the GAN term through a frozen D): D's weights and gradients untouched
    d_before = _snapshot(adversary.raw)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    out = model(batch.source, batch.driving)
    terms = objective(model, batch, out, tps_seed=1)
    g_loss, weight = adversary.generator_term(model, terms.total, out.prediction)
    (terms.total + weight * g_loss).backward()
    assert all(p.grad is None for p in adversary.raw.parameters())
    assert last_layer(model).grad is not None and 0 < weight.item() <= 0.8 + 1e-6
    optimizer.step()
    assert _equal(d_before, _snapshot(adversary.raw))
    # discriminator step alone: the generator's weights and gradients untouched, D moves
    optimizer.zero_grad(set_to_none=True)
    g_before = _snapshot(model)
    scalars = adversary.discriminator_step(batch.target, out.prediction, None)
    assert _equal(g_before, _snapshot(model))
    assert all(p.grad is None for p in model.parameters())
    assert not _equal(d_before, _snapshot(adversary.raw))
    assert set(scalars) == {"gan/d_loss", "gan/d_real", "gan/d_fake"}


def test_train_step_with_adversary_reports_gan_terms(vgg):
    cfg = C.train_preset("tiny")
    cfg.loss.perceptual_scales = (0.25,)
    model = build_model(cfg.model).train()
    gan = C.AdversarialConfig(enabled=True, discriminator=C.DiscriminatorConfig(block_expansion=8, max_features=32))
    adversary = Adversary(gan, 3, setup_distributed("cpu"))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    result = train_step(model, Objective(cfg.loss, vgg=vgg), optimizer, scaler, fixed_batch(), adversary=adversary)
    assert set(result.scalars) == {"gan/g_loss", "gan/weight", "gan/d_loss", "gan/d_real", "gan/d_fake"}
    assert all(torch.isfinite(v) for v in result.scalars.values())


def test_ema_follows_its_recursion():
    net = nn.Linear(3, 2)
    ema = ModelEMA(net, 0.9)
    expected = net.weight.detach().clone()
    for _ in range(3):
        with torch.no_grad():
            net.weight.add_(1.0)
        ema.update(net)
        expected = 0.9 * expected + 0.1 * net.weight.detach()
    torch.testing.assert_close(ema.module.weight, expected, rtol=0, atol=1e-6)
    assert not ema.module.weight.requires_grad


GAN = (
    "max_steps=3",
    "optim.milestones=[1]",
    "data.num_repeats=1",
    "gan.enabled=true",
    "gan.start_step=1",
    "gan.discriminator.block_expansion=8",
    "gan.discriminator.max_features=32",
    "gan.discriminator.scales=[1.0, 0.5]",
    "ema_decay=0.995",
    # ... on a model with both codebooks, restarting dead codes (random draws inside the forward pass)
    "model.codebooks.motion=true",
    "model.codebooks.appearance=true",
    "model.codebooks.motion_codes=16",
    "model.codebooks.motion_dim=8",
    "model.codebooks.appearance_codes=16",
    "model.codebooks.appearance_dim=8",
    "model.codebooks.num_layers=1",
    "model.codebooks.num_heads=2",
    "model.codebooks.restart_dead_codes=true",
    "model.codebooks.dead_after=1",
)


@pytest.fixture(scope="module")
def gan_runs(full_and_resumed):
    return full_and_resumed(*GAN)


def test_gan_and_ema_run_resumes_bit_exactly(gan_runs):
    full, resumed = gan_runs
    for name in ("final.safetensors", "final.raw.safetensors"):
        a, b = load_file(str(full.folder.root / name)), load_file(str(resumed.folder.root / name))
        assert _equal(a, b), name
    assert _equal(full.adversary.raw.state_dict(), resumed.adversary.raw.state_dict())
    sa, sb = full.adversary.optimizer.state_dict()["state"], resumed.adversary.optimizer.state_dict()["state"]
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k]["exp_avg"], sb[k]["exp_avg"]) for k in sa)


def test_gan_run_folder_holds_ema_discriminator_and_logs(gan_runs):
    folder = gan_runs[1].folder
    latest = folder.latest()
    assert latest.ema is not None and latest.ema.name == "step_00000003.ema.safetensors"
    state = load_training_state(latest.state)
    assert set(state["adversary"]) == {"net", "optimizer", "scaler"}
    ema, raw = load_file(str(folder.final_weights)), load_file(str(folder.final_raw_weights))
    assert not _equal(ema, raw)  # the EMA lags the trained weights
    assert _equal(ema, load_file(str(latest.ema)))
    load_checkpoint(folder.final_weights)  # the EMA is an ordinary checkpoint
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(folder.root / "tensorboard"))
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    assert {"gan/g_loss", "gan/weight", "gan/d_loss", "loss/vq_motion", "loss/flow_rec", "loss/vq_appearance"} <= tags
    codes = {f"codes/{kind}_{stat}_s{i}" for kind in ("motion", "appearance") for stat in ("perplexity", "dead")
             for i in range(4)}  # fmt: skip
    assert codes <= tags
    # step 1 ran before gan.start_step=1 took effect: the GAN terms start at step 2
    assert [e.step for e in acc.Scalars("gan/d_loss")] == [2, 3]


def test_bad_gan_settings_are_one_line_errors(make_config, tmp_path, capsys):
    cfg = make_config("gan.enabled=true", "gan.discriminator.num_layers=5")
    with pytest.raises(OstnetError, match="too small"):
        Trainer(cfg, tmp_path / "run", device="cpu", show_progress=False)
    assert not (tmp_path / "run").exists()
    code = main(["train", "--preset", "tiny", "--data", str(tmp_path), "--output", str(tmp_path / "x"),
                 "--set", "gan.discriminator.widht=3"])  # fmt: skip
    assert code == 2
    assert "widht" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
