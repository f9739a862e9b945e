"""PECHead presets train with the shared trainer: finite gradients on every parameter, exact resume, and the
stored coefficients reach the model. Presets with CAP train on clips (data.clip_length 4): CAP's gate learns
from them, and clip length 1 is plain pair training."""

from __future__ import annotations

import warnings

import pytest
import torch
from safetensors.torch import load_file
from tests.training.conftest import FAST_OVERRIDES
from torch.utils.data import default_collate

from ostnet import config as C
from ostnet.data.dataset import collate_training
from ostnet.face.coefficients import COEFFICIENT_DIM
from ostnet.losses.objective import Objective
from ostnet.models.ostnet import build_model
from ostnet.training.trainer import Trainer, build_dataset, train_step

TINY = ["tiny-pechead", *(f"tiny-pechead-{v}" for v in C.PECHEAD_ABLATIONS)]
# Parameters that a variant leaves unused by design: "lmk" takes only the occlusion from the dense motion
# network, not its keypoint flow (so not the mask head that mixes the keypoints' motions).
UNUSED = {"tiny-pechead-lmk": ("generator.dense_motion_network.mask.",)}
# The 256 px presets at the data's 64 px: the hourglasses then need scale factor 0.5 (64 x 0.25 = 16 px cannot
# be halved 5 times).
SMALL = ("model.image_size=64", "model.keypoints.scale_factor=0.5", "model.dense_motion.scale_factor=0.5")


def _config(preset: str, root, *extra: str) -> C.TrainConfig:
    import json

    overrides = [*FAST_OVERRIDES, f"data.root={json.dumps(str(root))}", *extra]
    return C.apply_overrides(C.train_preset(preset), overrides)


def _one_step(preset: str, root, *extra: str, collate=collate_training, wrap=lambda m: m):
    cfg = _config(preset, root, *extra)
    dataset = build_dataset(cfg)
    batch = collate([dataset[i] for i in range(2)])
    frames = 2 * cfg.data.clip_length
    assert batch.coefficients.shape == (frames, 2, COEFFICIENT_DIM) and torch.isfinite(batch.coefficients).all()
    torch.manual_seed(0)
    model = build_model(cfg.model).train()
    objective = Objective(cfg.loss)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    result = train_step(wrap(model), objective, optimizer, scaler, batch, tps_seed=1)
    return model, result


@pytest.mark.usefixtures("one_thread")
@pytest.mark.parametrize("preset", TINY)
def test_tiny_presets_train_one_step_with_finite_gradients_everywhere(preset, synthetic_root):
    warnings.filterwarnings("ignore", message=".*RANDOM VGG-19.*")
    cfg = C.train_preset(preset)
    assert cfg.data.clip_length == (C.CAP_CLIP_LENGTH if cfg.model.pechead.cap else 1)
    model, result = _one_step(preset, synthetic_root)
    terms = result.terms
    assert torch.isfinite(terms.total) and terms.warp is not None and terms.coefficients is not None
    if cfg.model.pechead.cap:  # trained on clips, CAP's gate learns from them
        assert result.output.prediction.shape[0] == 2 * C.CAP_CLIP_LENGTH
        assert model.generator.cap.gate_param.grad.abs() > 0
    skipped = UNUSED.get(preset, ())
    for name, p in model.named_parameters():
        if name.startswith(skipped):
            assert p.grad is None, name
            continue
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name


def test_clip_length_one_is_plain_pair_training(synthetic_root):
    """T = 1 through the clip path (collate_training, clip_length passed on) is the pair step bit for bit: the
    same loss and the same updated weights as the model called on default-collated pairs (the pair sampler
    itself is checked against FOMM's in tests/data)."""
    warnings.filterwarnings("ignore", message=".*RANDOM VGG-19.*")
    model, result = _one_step("tiny-pechead", synthetic_root, "data.clip_length=1")
    reference, expected = _one_step("tiny-pechead", synthetic_root, "data.clip_length=1", collate=default_collate)
    assert torch.equal(result.terms.total, expected.terms.total)
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), reference.parameters(), strict=True))
    assert model.generator.cap.gate_param.grad.abs() > 0  # the pseudo-clip still trains CAP


def test_a_clip_step_through_ddp_is_the_plain_step(synthetic_root, tmp_path):
    """The DDP wrapper passes the clip length on (one Gloo process here; tests/training/test_subprocess_runs.py
    compares 2 processes with 1 on clips, slow)."""
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    warnings.filterwarnings("ignore", message=".*RANDOM VGG-19.*")
    model, result = _one_step("tiny-pechead", synthetic_root)
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'init'}", rank=0, world_size=1)
    try:
        wrapped, expected = _one_step("tiny-pechead", synthetic_root, wrap=DistributedDataParallel)
    finally:
        dist.destroy_process_group()
    assert torch.equal(result.terms.total, expected.terms.total)
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), wrapped.parameters(), strict=True))


@pytest.mark.slow
@pytest.mark.parametrize("preset", ["pechead-256", "pechead-st"])
def test_full_size_presets_train_one_step(preset, synthetic_root):
    warnings.filterwarnings("ignore", message=".*RANDOM VGG-19.*")
    model, result = _one_step(preset, synthetic_root, *SMALL)
    assert torch.isfinite(result.terms.total)
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


def _fit(cfg, run_dir, resume=False):
    trainer = Trainer(cfg, run_dir, resume=resume, device="cpu", show_progress=False)
    trainer.fit()
    return trainer


def _resume_matches(preset, root, tmp_path, *extra):
    warnings.filterwarnings("ignore", message=".*RANDOM VGG-19.*")
    steps = ("max_steps=3", "optim.milestones=[1]", "data.num_repeats=1", *extra)
    full = _fit(_config(preset, root, *steps), tmp_path / "full")
    _fit(_config(preset, root, *steps, "max_steps=2"), tmp_path / "resumed")
    resumed = _fit(_config(preset, root, *steps), tmp_path / "resumed", resume=True)
    a, b = load_file(str(full.folder.final_weights)), load_file(str(resumed.folder.final_weights))
    assert a.keys() == b.keys()
    assert not [k for k in a if not torch.equal(a[k], b[k])]


def test_tiny_pechead_resumes_exactly(synthetic_root, tmp_path):
    assert C.train_preset("tiny-pechead").data.clip_length > 1  # on clips, CAP's state carried within each
    _resume_matches("tiny-pechead", synthetic_root, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("preset", [*TINY[1:], "pechead-256", "pechead-st"])
def test_other_presets_resume_exactly(preset, synthetic_root, tmp_path):
    extra = SMALL if not preset.startswith("tiny") else ()
    _resume_matches(preset, synthetic_root, tmp_path, *extra)
