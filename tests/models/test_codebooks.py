"""Compensatory codebooks: vector quantisation with code allocation, MCC / ACC, identity at initialisation,
permutation invariance, masking, every codebook preset (at small widths), checkpoints and bad input."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from ostnet import config as C
from ostnet.checkpoint import load_checkpoint, load_weights_into, save_checkpoint
from ostnet.cli import main
from ostnet.data.dataset import TrainingPair
from ostnet.errors import OstnetError
from ostnet.losses.objective import codebook_terms
from ostnet.models.codebooks import masked_attention
from ostnet.models.ostnet import build_model
from ostnet.models.quantize import VectorQuantizer, code_slice


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    pass


def _images(size=64, batch=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(batch, 3, size, size, generator=g), torch.rand(batch, 3, size, size, generator=g)


# ------------------------------------------------------------------------------------------------- quantiser


def test_code_slices_of_each_allocation():
    assert [code_slice(16, 4, s, "prefix") for s in range(4)] == [(0, 4), (0, 8), (0, 12), (0, 16)]
    assert [code_slice(16, 4, s, "disjoint") for s in range(4)] == [(0, 4), (4, 8), (8, 12), (12, 16)]
    assert [code_slice(16, 4, s, "none") for s in range(4)] == [(0, 16)] * 4
    with pytest.raises(ValueError, match="cannot be split into 3"):
        code_slice(16, 3, 0, "prefix")


@pytest.mark.parametrize("allocation", ["prefix", "disjoint", "none"])
def test_index_is_the_brute_force_argmin_within_the_slice(allocation):
    vq = VectorQuantizer(32, 6, num_scales=4, allocation=allocation)
    torch.nn.init.normal_(vq.codebook.weight)
    z = torch.randn(3, 5, 6)
    for scale in range(4):
        start, stop = vq.slice(scale)
        out = vq(z, scale)
        dists = torch.cdist(z.reshape(-1, 6).double(), vq.codebook.weight[start:stop].double())
        assert torch.equal(out.indices.reshape(-1), dists.argmin(dim=1) + start)
        assert ((out.indices >= start) & (out.indices < stop)).all()
        torch.testing.assert_close(out.quantized, vq.codebook.weight[out.indices], rtol=0, atol=1e-6)


def test_straight_through_jacobian_is_the_identity_and_loss_its_closed_form():
    vq = VectorQuantizer(8, 3, beta=0.25)
    torch.nn.init.normal_(vq.codebook.weight)
    z = torch.randn(4, 3)
    jac = torch.autograd.functional.jacobian(lambda x: vq(x).quantized, z)
    torch.testing.assert_close(jac.reshape(12, 12), torch.eye(12))
    out = vq(z)
    e = vq.codebook.weight[out.indices]
    expected = 0.25 * ((e - z) ** 2).mean() + ((e - z) ** 2).mean()
    torch.testing.assert_close(out.loss, expected)
    # the two terms pull different ways: beta on the input, 1 on the codes
    z.requires_grad_(True)
    vq.codebook.weight.grad = None
    vq(z).loss.backward()
    torch.testing.assert_close(z.grad, 0.25 * 2 * (z - e).detach() / z.numel())
    torch.testing.assert_close(vq.codebook.weight.grad[out.indices[0]].norm() > 0, torch.tensor(True))


@pytest.mark.parametrize("allocation", ["prefix", "disjoint"])
def test_codes_outside_the_slice_get_no_gradient(allocation):
    vq = VectorQuantizer(16, 4, num_scales=4, allocation=allocation)
    torch.nn.init.normal_(vq.codebook.weight)
    z = torch.randn(64, 4, requires_grad=True)
    out = vq(z, scale=1)
    (out.loss + out.quantized.sum()).backward()
    start, stop = vq.slice(1)
    grad = vq.codebook.weight.grad
    outside = torch.ones(16, dtype=torch.bool)
    outside[start:stop] = False
    assert grad[outside].abs().max() == 0
    assert grad[start:stop].abs().sum() > 0


def test_perplexity_dead_codes_and_restart():
    vq = VectorQuantizer(8, 2, dead_after=3).train()
    with torch.no_grad():
        vq.codebook.weight.copy_(torch.arange(16.0).reshape(8, 2))
    z = torch.tensor([[0.0, 1.0], [2.0, 3.0]])  # codes 0 and 1, once each
    for _ in range(3):
        out = vq(z)
    assert out.perplexity.item() == pytest.approx(2.0)
    assert vq.dead_codes(0).tolist() == [False, False] + [True] * 6
    vq.restart_dead = True
    z2 = torch.tensor([[100.0, 100.0]])
    vq(z2)
    # the input chose code 7 (the nearest), so codes 2..6 were the dead ones: they move onto the batch's input
    assert (vq.codebook.weight[2:7] == 100).all() and vq.codebook.weight[7].tolist() == [14.0, 15.0]
    assert not vq.dead_codes(0).any()


# ---------------------------------------------------------------------------------------------------- model


def test_fully_masked_row_stays_finite():
    q, k = torch.randn(2, 5, 8, requires_grad=True), torch.randn(2, 7, 8)
    valid = torch.ones(2, 7, dtype=torch.bool)
    valid[1] = False  # sample 1: every key masked
    out = masked_attention(q, k, k, heads=2, key_valid=valid)
    out.sum().backward()
    assert torch.isfinite(out).all() and torch.isfinite(q.grad).all()
    assert out[1].abs().max() == 0
    ref = F.scaled_dot_product_attention(q[:1].reshape(1, 5, 2, 4).transpose(1, 2),
                                         k[:1].reshape(1, 7, 2, 4).transpose(1, 2),
                                         k[:1].reshape(1, 7, 2, 4).transpose(1, 2))  # fmt: skip
    torch.testing.assert_close(out[:1], ref.transpose(1, 2).reshape(1, 5, 8))


def test_flow_leaving_the_image_masks_acc_tokens_and_stays_finite():
    model = build_model("tiny-codebooks").eval()
    acc = model.generator.compensation.acc
    flow = torch.full((2, 32, 32, 2), 3.0)  # everything samples outside the source
    flow[0] = 0.0
    valid = acc.token_validity(flow)
    assert valid[0].all() and not valid[1].any()
    for p in acc.unpatch.parameters():
        torch.nn.init.normal_(p)
    warped = torch.randn(2, model.generator.compensation.acc.embed[0].in_channels, 8, 8)
    assert torch.isfinite(acc(0, warped, flow)).all()


def _shared_weights(src: torch.nn.Module, dst: torch.nn.Module) -> None:
    state = {k: v for k, v in src.state_dict().items() if k in dst.state_dict()}
    missing, _ = dst.load_state_dict(state, strict=False)
    assert not missing


@pytest.mark.parametrize("mode", ["both", "mcc", "acc"])
def test_compensation_at_initialisation_equals_no_compensation(mode):
    cfg = C.model_preset("tiny-codebooks")
    cfg.codebooks.motion, cfg.codebooks.appearance = mode in ("both", "mcc"), mode in ("both", "acc")
    cfg.dense_motion.estimate_occlusion = mode != "mcc"  # MCC also works without an occlusion map
    with_codes = build_model(cfg).eval()
    plain_cfg = C.model_preset("tiny")
    plain_cfg.dense_motion.estimate_occlusion = cfg.dense_motion.estimate_occlusion
    plain = build_model(plain_cfg).eval()
    _shared_weights(with_codes, plain)
    source, driving = _images()
    with torch.no_grad():
        a, b = with_codes(source, driving), plain(source, driving)
    torch.testing.assert_close(a.prediction, b.prediction, rtol=0, atol=1e-6)
    torch.testing.assert_close(a.deformation, b.deformation, rtol=0, atol=1e-6)
    assert a.codebooks.motion == []  # outside training no code lookup: the inference graph has no argmin


def _randomise_heads(model):
    comp = model.generator.compensation
    for module in [*comp.mcc.heads, *comp.acc.unpatch]:
        for p in module.parameters():
            torch.nn.init.normal_(p, std=0.05)


@pytest.mark.parametrize("allocation", ["prefix", "disjoint", "none"])
def test_permuting_codes_within_their_slices_changes_nothing(allocation):
    cfg = C.model_preset("tiny-codebooks")
    cfg.codebooks.allocation = allocation
    model = build_model(cfg).eval()
    _randomise_heads(model)  # at zero the heads would hide any dependence on the codes
    model.generator.compensation.collect_codes = True  # also look the motion codes up (outside training)
    source, driving = _images()
    with torch.no_grad():
        before = model(source, driving)
        for q in (model.generator.compensation.mcc.quantizer, model.generator.compensation.acc.quantizer):
            perm = torch.cat([torch.randperm(q.num_codes // 4) + s * q.num_codes // 4 for s in range(4)])
            q.codebook.weight.copy_(q.codebook.weight[perm])
        after = model(source, driving)
    torch.testing.assert_close(after.prediction, before.prediction, rtol=0, atol=1e-5)
    assert not torch.equal(after.codebooks.motion[0].indices, before.codebooks.motion[0].indices)


def _small(name: str) -> C.ModelConfig:
    """A codebook preset at the ``tiny`` widths and size, keeping its switches (ST, SE, MCC, ACC, levels,
    allocation)."""
    cfg, tiny = C.model_preset(name), C.model_preset("tiny-codebooks")
    small = C.model_preset("tiny")
    small.name = name
    small.generator.scale_embedding = cfg.generator.scale_embedding
    small.scale_transform.enabled = cfg.scale_transform.enabled
    small.codebooks = tiny.codebooks
    for key in ("motion", "appearance", "levels", "allocation"):
        setattr(small.codebooks, key, getattr(cfg.codebooks, key))
    return C.from_dict(C.ModelConfig, C.to_dict(small))  # re-validated


CODEBOOK_PRESETS = [n for n in C.MODEL_PRESETS if "codebooks" in n]


@pytest.mark.parametrize("name", CODEBOOK_PRESETS)
def test_every_codebook_preset_trains_every_parameter(name):
    model = build_model(_small(name)).train()
    source, driving = _images()
    out = model(source, driving)
    codes = codebook_terms(model, TrainingPair(source, driving, driving, None, None, None), out)
    loss = out.prediction.mean() + out.rectified.mean() + out.kp_source.value.mean()
    loss = loss + sum(t for t in codes[:3] if t is not None)
    loss.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing, missing[:5]
    cb = model.cfg.codebooks
    assert len(out.codebooks.motion) == (len(cb.levels) if cb.motion else 0)
    assert set(codes.code_usage) >= {f"codes/{'motion' if cb.motion else 'appearance'}_perplexity_s0"}


def test_checkpoint_round_trip_and_animation_of_a_codebook_model(tmp_path):
    model = build_model("tiny-codebooks").eval()
    _randomise_heads(model)
    path = save_checkpoint(model, tmp_path / "cb.safetensors")
    loaded = load_checkpoint(path)
    source, driving = _images()
    with torch.no_grad():
        assert torch.equal(model(source, driving).prediction, loaded(source, driving).prediction)
    from ostnet.inference.animator import Animator

    frames = Animator(loaded, device="cpu").animate_pairs(source, driving)
    with torch.no_grad():
        direct = loaded.generate(
            loaded.prepare_source(source, loaded.detect(source)),
            loaded.drive(loaded.detect(source), driving).kp_motion,
            loaded.embedding_code(loaded.drive(loaded.detect(source), driving).st.z),
        ).prediction
    torch.testing.assert_close(frames, direct.clamp(0, 1))
    from torch.utils.flop_counter import FlopCounterMode

    with torch.inference_mode(), FlopCounterMode(display=False) as counter:  # as benchmarks/ counts FLOPs
        loaded(source, driving)
    assert counter.get_total_flops() > 0


def test_bad_codebook_input_is_a_one_line_error(tmp_path, capsys):
    path = save_checkpoint(build_model("tiny-codebooks"), tmp_path / "cb.safetensors")
    with pytest.raises(OstnetError, match="does not match"):
        load_weights_into(build_model("tiny"), path)
    with pytest.raises(OstnetError, match="expected 'tiny'"):
        load_checkpoint(path, expected="tiny")
    out = tmp_path / "run"
    for bad, message in (("model.codebooks.motion_codes=63", "cannot be split into 4"),
                         ("model.codebooks.codes=8", "codes"),
                         ("gan.discriminator.layers=2", "layers")):  # fmt: skip
        code = main(["train", "--preset", "tiny-codebooks", "--data", str(tmp_path), "--output", str(out),
                     "--set", bad])  # fmt: skip
        err = capsys.readouterr().err
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
        assert not out.exists()


def test_a_codebook_model_exports_to_onnx(tmp_path):
    from ostnet.inference.export import export_onnx

    model = build_model("tiny-codebooks").eval()
    _randomise_heads(model)  # the compensation must be in the exported graph, not a zero residual
    path = save_checkpoint(model, tmp_path / "cb.safetensors")
    summary = export_onnx(load_checkpoint(path), path, tmp_path / "onnx", "anchor-free")
    assert summary.max_error <= 1e-4
