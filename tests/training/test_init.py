"""``ostnet train --init CKPT [--freeze ...]``: matching tensors load, the rest is reported, frozen tensors stay
bit-identical, and the paper's plug-and-play case (fomm-st-se from a converted FOMM checkpoint)."""

from __future__ import annotations

import json
import warnings

import pytest
import torch
from safetensors.torch import load_file

from ostnet import config as C
from ostnet.checkpoint import save_checkpoint
from ostnet.cli import main
from ostnet.models.ostnet import build_model
from ostnet.training.trainer import Trainer

BASELINE = ("model.scale_transform.enabled=false", "model.generator.scale_embedding=false")


@pytest.fixture
def baseline_checkpoint(make_config, tmp_path):
    """A tiny Baseline (no ST, no SE) with seed-1 weights, plus one extra tensor that fits nowhere."""
    torch.manual_seed(1)
    model = build_model(make_config(*BASELINE).model)
    path = tmp_path / "baseline.safetensors"
    save_checkpoint(model, path)
    return path


def _train(cfg, out, **kwargs):
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*RANDOM VGG-19.*")
        trainer = Trainer(cfg, out, device="cpu", show_progress=False, **kwargs)
        trainer.fit()
    return trainer


def test_init_loads_matching_tensors_reports_the_rest_and_freeze_keeps_them(make_config, baseline_checkpoint,
                                                                            tmp_path, one_thread):  # fmt: skip
    source = load_file(str(baseline_checkpoint))
    trainer = _train(make_config("max_steps=2"), tmp_path / "run", init=baseline_checkpoint,
                     freeze=("kp_detector", "generator"))  # fmt: skip
    report = trainer.init_report
    assert sorted(report.loaded) == sorted(source) and not report.ignored  # every Baseline tensor fits ST+SE
    assert report.fresh and all(n.startswith(("scale_transform.", "generator.z_")) for n in report.fresh)
    assert {n.split(".")[0] for n in report.frozen} == {"kp_detector", "generator"}
    final = load_file(str(tmp_path / "run" / "final.safetensors"))
    for name in report.frozen:  # parameters and BatchNorm statistics, after 2 optimiser steps
        assert torch.equal(final[name], source[name]), name
    initial = build_model(trainer.cfg.model).state_dict()  # seed-0 initial weights of the fresh tensors
    trained_fresh = [n for n in report.fresh if n.endswith("weight") and not torch.equal(final[n], initial[n])]
    assert trained_fresh, "ST/SE did not train"
    recorded = json.loads((tmp_path / "run" / "init.json").read_text())
    assert recorded["frozen"] == report.frozen and recorded["checkpoint"] == str(baseline_checkpoint)
    # without --freeze every loaded tensor trains
    free = _train(make_config("max_steps=1"), tmp_path / "free", init=baseline_checkpoint)
    moved = load_file(str(tmp_path / "free" / "final.safetensors"))
    assert not free.init_report.frozen and not torch.equal(
        moved["kp_detector.kp.weight"], source["kp_detector.kp.weight"]
    )


def test_train_command_prints_what_init_loaded_left_fresh_ignored_and_froze(synthetic_root, baseline_checkpoint,
                                                                           tmp_path, capsys, one_thread):  # fmt: skip
    """``ostnet train --init --freeze`` tells the user the counts per module group (init.json has the names)."""
    from safetensors.torch import save_file
    from tests.training.conftest import FAST_OVERRIDES

    state = load_file(str(baseline_checkpoint))
    state["unrelated.weight"] = torch.zeros(2)  # a tensor the model does not have: ignored, and said so
    checkpoint = tmp_path / "with-extra.safetensors"
    save_file(state, str(checkpoint))
    sets = [arg for o in FAST_OVERRIDES for arg in ("--set", o)]
    argv = ["train", "--preset", "tiny", "--data", str(synthetic_root), "--output", str(tmp_path / "run"), *sets,
            "--max-steps", "1", "--quiet", "--init", str(checkpoint), "--freeze", "kp_detector"]  # fmt: skip
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*RANDOM VGG-19.*")
        assert main(argv) == 0
    err = capsys.readouterr().err
    recorded = json.loads((tmp_path / "run" / "init.json").read_text())
    loaded, fresh, frozen = len(recorded["loaded"]), len(recorded["fresh"]), len(recorded["frozen"])
    assert loaded == len(state) - 1 and fresh > 0 and recorded["ignored"].keys() == {"unrelated.weight"}
    assert f"loaded {loaded} tensors" in err and f"fresh {fresh} (" in err and "ignored 1 (unrelated 1)" in err
    assert f"--freeze: {frozen} loaded tensors stay fixed (kp_detector {frozen})" in err


def test_init_bad_input_is_one_line_and_writes_nothing(make_config, synthetic_root, tmp_path, capsys):
    torch.manual_seed(0)
    other = tmp_path / "other.safetensors"
    from safetensors.torch import save_file

    save_file({"encoder.weight": torch.zeros(3, 3)}, str(other))
    out = tmp_path / "run"
    base = ["train", "--preset", "tiny", "--data", str(synthetic_root), "--output", str(out),
            "--set", "loss.allow_random_vgg=true"]  # fmt: skip
    cases = [
        (["--init", str(other)], "no tensor matches this model"),
        (["--init", str(other), "--resume"], "--init starts a new run and --resume continues one"),
        (["--init", str(tmp_path / "missing.safetensors")], "file not found"),
        (["--freeze", "kp_detector"], "--freeze needs --init"),
    ]
    for argv, expected in cases:
        assert main([*base, *argv]) == 2, argv
        err = capsys.readouterr().err.strip()
        assert expected in err and len(err.splitlines()) == 1, err
        assert not out.exists(), argv


@pytest.mark.slow  # 12 steps of a 128 px FOMM-topology model: ~40 s on a quiet 2-core machine
def test_fomm_st_se_fine_tuned_from_the_fomm_fixture(shared_dir, tmp_path, one_thread):
    """Table 5's plug-and-play: the converted FOMM reference checkpoint initialises fomm-st-se (at the fixture's
    widths); kp_detector and generator are frozen, ST and SE train. The loaded tensors are the fixture's, ST
    starts at the identity, and the loss goes down."""
    from ostnet.convert_fomm import convert_fomm_checkpoint
    from ostnet.data.synthetic import write_synthetic_dataset

    fixture = shared_dir / "fixtures" / "fomm-reference.pth.tar"
    fomm_cfg, fomm_state = convert_fomm_checkpoint(fixture)
    converted = tmp_path / "fomm.safetensors"
    assert main(["convert-fomm", str(fixture), "--output", str(converted)]) == 0
    data = write_synthetic_dataset(tmp_path / "data", num_identities=2, videos_per_identity=1, num_frames=4,
                                   size=128, test_identities=0, seed=5)  # fmt: skip
    widths = [f"model.{part}.{key}={value}" for part in ("keypoints", "dense_motion", "generator")
              for key, value in C.to_dict(getattr(fomm_cfg, part)).items()
              if key in ("block_expansion", "max_features")]  # fmt: skip
    cfg = C.apply_overrides(C.train_preset("fomm-st-se"), [
        *widths, "model.image_size=128", f"data.root={json.dumps(str(data))}", "data.batch_size=1",
        "data.num_workers=0", "data.num_repeats=20", "loss.allow_random_vgg=true", "loss.perceptual_scales=[0.25]",
        "optim.lr=2e-3", "max_steps=12", "log_every=1", "image_every=1000", "checkpoint_every=1000", "seed=0",
    ])  # fmt: skip
    run = tmp_path / "run"
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*RANDOM VGG-19.*")
        trainer = Trainer(cfg, run, device="cpu", show_progress=False, init=converted,
                          freeze=("kp_detector", "generator"))  # fmt: skip
        model = trainer.raw_model
        for name in trainer.init_report.loaded:  # the fixture's tensors, loaded as they are
            assert torch.equal(model.state_dict()[name], fomm_state[name]), name
        assert len(trainer.init_report.loaded) == len(fomm_state) and not trainer.init_report.ignored
        kp = torch.rand(1, 10, 2) * 2 - 1
        driving = torch.rand(1, 3, 128, 128)
        with torch.no_grad():  # ST starts at the identity: the driving frame passes through unchanged
            rectified = model.scale_transform(kp, kp * 0.7, driving).rectified
        assert torch.allclose(rectified, driving, atol=1e-5)
        batch = next(iter(torch.utils.data.DataLoader(trainer.dataset, batch_size=2)))

        def loss() -> float:  # the objective on one fixed batch, fixed equivariance transforms (needs autograd)
            return trainer.objective(model, batch, model(batch.source, batch.driving), tps_seed=0).total.item()

        before = loss()
        trainer.fit()
        after = loss()
    final = load_file(str(run / "final.safetensors"))
    assert all(torch.equal(final[n], fomm_state[n]) for n in trainer.init_report.frozen)
    assert after < before, (before, after)
