"""Config overrides and configs read from files are checked against each field's type, choices and bounds:
a bad value is one line naming the key, exit 2, before any work; an unknown key names the closest valid one."""

from __future__ import annotations

import json

import pytest
from safetensors import safe_open
from safetensors.torch import save_file

from ostnet import config as C
from ostnet.checkpoint import load_checkpoint
from ostnet.cli import main
from ostnet.errors import OstnetError
from ostnet.training.state import RunFolder

BAD_SETS = [
    ("data.batch_size=abc", "data.batch_size must be an integer"),
    ("data.batch_size=0", "data.batch_size must be in [1, 4096]"),
    ("data.batch_size=2.5", "data.batch_size must be an integer"),
    ("model.generator.kind=osnet", "model.generator.kind must be one of 'ostnet', 'fomm'"),
    ("precision=bf17", "precision must be one of 'fp32', 'bf16', 'fp16'"),
    ("optim.lr=nan", "optim.lr must be a finite number"),
    ("optim.lr=NaN", "optim.lr must be a finite number"),
    ("optim.lr=Infinity", "optim.lr must be a finite number"),
    ("optim.lr=-1", "optim.lr must be in"),
    ("optim.betas=[2,3]", "optim.betas[0] must be in"),
    ("optim.betas=[0.5]", "optim.betas must have 2 values"),
    ("optim.betas=0.5", "optim.betas must be a list"),
    ("model.image_size=63", "image_size 63"),
    ("model.image_size=0", "model.image_size must be in"),
    ("model.keypoints.num_kp=0", "model.keypoints.num_kp must be in [1, 512]"),
    ('model.keypoints.num_kp="ten"', "model.keypoints.num_kp must be an integer"),
    ("model.keypoints.num_kp=true", "model.keypoints.num_kp must be an integer"),
    ("data.flip=yes", "data.flip must be true or false"),
    ("seed=-1", "seed must be in"),
    ("max_seconds=inf", "max_seconds must be a finite number"),
    ('optim.milestones=[10,"x"]', "optim.milestones[1] must be an integer"),
    ("loss.perceptual_scales=[0]", "loss.perceptual_scales[0] must be in"),
    ("model.scale_transform.padding_mode=wrap", "padding_mode must be one of"),
    ("augmentation.delta=1.5", "augmentation.delta must be in [0, 0.9]"),
    ("model.codebooks.num_heads=0", "model.codebooks.num_heads must be in [1, 64]"),
    ("model.codebooks.levels=[0,99]", "model.codebooks.levels[1] must be in [0, 16]"),
    ("model.codebooks.beta=-1", "model.codebooks.beta must be in [0, 100]"),
    ("model.codebooks.motion_codes=0", "model.codebooks.motion_codes must be in [1, 65536]"),
    ("model.pechead.encoder_blocks=0", "model.pechead.encoder_blocks must be in [1, 8]"),
    ("model.pechead.cap_shift=2", "model.pechead.cap_shift must be in [0, 0.5]"),
    ("model.pechead.tps_regularization=-0.1", "model.pechead.tps_regularization must be in"),
    ("model.pechead.blend_decoder=residual", "act only with pechead.output_blend=true"),
    ("model.pechead.blend_warp=flow", "act only with pechead.output_blend=true"),
    ("gan.discriminator.scales=[0]", "gan.discriminator.scales[0] must be in [0.01, 1]"),
    ("gan.discriminator.num_layers=100", "gan.discriminator.num_layers must be in [1, 8]"),
    ("gan.lr=0", "gan.lr must be in"),
    ("gan.betas=[1,1]", "gan.betas[0] must be in"),
    ("gan.start_step=-5", "gan.start_step must be in [0, inf]"),
    ("gan.weight=nan", "gan.weight must be a finite number"),
    ("optim.lrr=0.1", "unknown config key 'optim.lrr'; did you mean 'optim.lr'?"),
    ("loss.lamda_eq=5", "did you mean 'loss.lambda_eq'?"),
    ("modle.image_size=64", "did you mean 'model.image_size'?"),
    ("data=3", "'data' is a section"),
    ("no_equals_sign", "is not of the form key.path=value"),
]


@pytest.mark.parametrize(("override", "message"), BAD_SETS, ids=[b[0] for b in BAD_SETS])
def test_bad_set_is_one_line_exit_2_before_any_work(tmp_path, capsys, override, message):
    out = tmp_path / "run"
    code = main(["train", "--preset", "tiny", "--data", str(tmp_path), "--output", str(out), "--set", override])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and err.startswith("ostnet train: error: --set: "), err
    assert message in err and "Traceback" not in err
    assert not out.exists()  # refused before the run folder (or anything else) was made


def test_good_overrides_still_apply():
    cfg = C.apply_overrides(C.train_preset("tiny"), ["optim.betas=[0.9,0.99]", "data.batch_size=4", "seed=3"])
    assert cfg.optim.betas == (0.9, 0.99) and cfg.data.batch_size == 4 and cfg.seed == 3
    assert C.apply_overrides(cfg, ["model.image_size=128"]).model.image_size == 128  # a valid size


def test_every_preset_passes_its_own_checks():
    for name in C.MODEL_PRESETS:
        cfg = C.train_preset(name)
        assert C.from_dict(C.TrainConfig, C.to_dict(cfg)) == cfg


def _rewrite_config(path, **changes) -> None:
    with safe_open(str(path), "pt") as handle:
        meta = dict(handle.metadata())
        tensors = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118
    config = json.loads(meta["model_config"])
    for dotted, value in changes.items():
        node = config
        *parents, last = dotted.split("__")
        for key in parents:
            node = node[key]
        node[last] = value
    meta["model_config"] = json.dumps(config)
    save_file(tensors, str(path), metadata=meta)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"keypoints__num_kp": "ten"}, "keypoints.num_kp must be an integer"),
        ({"image_size": 0}, "image_size must be in"),
        ({"image_size": 63}, "image_size 63"),
        ({"generator__kind": "osnet"}, "generator.kind must be one of"),
        ({"keypoints__temperature": float("nan")}, "keypoints.temperature must be a finite number"),
    ],
)
def test_a_checkpoint_with_a_bad_config_is_refused_in_one_line(tiny_checkpoint, tmp_path, changes, message):
    path = tmp_path / "bad.safetensors"
    path.write_bytes(tiny_checkpoint.read_bytes())
    _rewrite_config(path, **changes)
    with pytest.raises(OstnetError) as info:
        load_checkpoint(path)
    assert message in str(info.value) and str(path) in str(info.value)
    assert len(str(info.value).splitlines()) == 1


@pytest.mark.parametrize(
    ("section", "key", "value", "message"),
    [
        ("optim", "lr", float("nan"), "optim.lr must be a finite number"),
        ("optim", "betas", [2, 3], "optim.betas[0] must be in"),
        ("data", "batch_size", "abc", "data.batch_size must be an integer"),
        ("model", "image_size", 63, "image_size 63"),
    ],
)
def test_a_run_config_json_with_a_bad_value_is_refused(tmp_path, section, key, value, message):
    folder = RunFolder(tmp_path / "run")
    config = C.to_dict(C.train_preset("tiny"))
    config[section][key] = value
    folder.root.mkdir(parents=True, exist_ok=True)
    folder.config_path.write_text(json.dumps(config))
    with pytest.raises(OstnetError, match="not a valid training config") as info:
        folder.read_config()
    assert message in str(info.value)
