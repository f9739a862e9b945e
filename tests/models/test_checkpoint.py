"""Self-describing checkpoints: round trip, atomic writes, clear errors."""

import json

import pytest
import torch
from safetensors import safe_open

from ostnet import build_model, load_checkpoint, save_checkpoint
from ostnet.checkpoint import load_weights_into, read_config
from ostnet.errors import OstnetError
from ostnet.io.atomic import atomic_write


def test_round_trip_rebuilds_the_same_function(tmp_path):
    model = build_model("tiny").eval()
    path = save_checkpoint(model, tmp_path / "m.safetensors")
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
    assert meta["format"] == "ostnet" and json.loads(meta["model_config"])["name"] == "tiny"
    loaded = load_checkpoint(path)
    x, y = torch.rand(1, 3, 64, 64), torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(model(x, y).prediction, loaded(x, y).prediction)
    assert not loaded.training


def test_checkpoint_for_another_preset_is_named(tmp_path):
    path = save_checkpoint(build_model("tiny"), tmp_path / "tiny.safetensors")
    with pytest.raises(OstnetError, match="'tiny', expected 'baseline'"):
        load_checkpoint(path, expected="baseline")
    cfg = read_config(path)
    cfg.scale_transform.use_distance_vectors = False
    other = build_model(cfg)
    with pytest.raises(OstnetError, match="use_distance_vectors"):
        load_weights_into(other, path)


def test_not_a_checkpoint(tmp_path):
    missing = tmp_path / "nope.safetensors"
    with pytest.raises(OstnetError, match="not found"):
        load_checkpoint(missing)
    text = tmp_path / "x.pth.tar"
    text.write_text("hello")
    with pytest.raises(OstnetError, match="convert-fomm"):
        load_checkpoint(text)


def test_atomic_write_keeps_the_old_file_on_failure(tmp_path):
    target = tmp_path / "ckpt.safetensors"
    target.write_bytes(b"old")

    def boom(tmp):
        with open(tmp, "wb") as f:
            f.write(b"half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(target, boom)
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.safetensors"]
    (tmp_path / "file").write_text("")
    with pytest.raises(OstnetError, match="cannot create the output folder"):
        atomic_write(tmp_path / "file" / "dir" / "x", lambda t: None)
