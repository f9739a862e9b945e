"""Pose and expression controls from the command line: ``ostnet animate`` with controls and two drivers,
``ostnet edit``, recipes, and the bad-input table (one line, exit 2, no output)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from ostnet.checkpoint import save_checkpoint
from ostnet.cli import main
from ostnet.inference.controls import Controls
from ostnet.io.image import load_image
from ostnet.io.video import VideoWriter, probe_video
from ostnet.models.ostnet import build_model

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def pechead_checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    return save_checkpoint(build_model("tiny-pechead"), tmp_path_factory.mktemp("pec") / "pec.safetensors")


def test_animate_with_controls_two_drivers_and_a_recipe(shared_dir, tmp_path, pechead_checkpoint, capsys):
    clips, out, recipe = shared_dir / "data/clips", tmp_path / "out.mp4", tmp_path / "recipe.json"
    args = ["animate", "--quiet", "--source", shared_dir / "data/portraits/s42.jpg", "--driving", clips / "d11.mp4",
            "--checkpoint", pechead_checkpoint, "--output", out, "--max-frames", 3, "--yaw", 10, "--smile", 0.3,
            "--expression-scale", 0.5, "--regions", "pose=1,mouth=0.5", "--pose-from", clips / "d12.mp4",
            "--expression-from", clips / "d0.mp4", "--motion-smooth", "one-euro", "--save-recipe", recipe]  # fmt: skip
    assert main([str(a) for a in args]) == 0
    assert probe_video(out).num_frames == 3 and "3 frames" in capsys.readouterr().out
    saved = Controls.load(recipe)
    assert (saved.yaw, saved.smile, saved.expression_scale, saved.regions["mouth"]) == (10.0, 0.3, 0.5, 0.5)


def test_edit_command_writes_the_edited_portrait(shared_dir, tmp_path, pechead_checkpoint, capsys):
    out = tmp_path / "edited.png"
    args = ["edit", "--source", shared_dir / "data/portraits/s42.jpg", "--checkpoint", pechead_checkpoint,
            "--output", out, "--yaw", 15, "--smile", 0.5]  # fmt: skip
    assert main([str(a) for a in args]) == 0
    assert load_image(out).shape == (64, 64, 3) and "yaw, smile" in capsys.readouterr().out
    local, recipe = tmp_path / "local.png", tmp_path / "local.json"
    args = ["edit", "--source", shared_dir / "data/portraits/s42.jpg", "--checkpoint", pechead_checkpoint,
            "--output", local, "--mouth-open", 1, "--edit-area", "local", "--save-recipe", recipe]  # fmt: skip
    assert main([str(a) for a in args]) == 0
    assert Controls.load(recipe).edit_area == "local" and load_image(local).shape == (64, 64, 3)
    pasted = tmp_path / "pasted.jpg"
    args = ["edit", "--source", shared_dir / "data/portraits/s42.jpg", "--checkpoint", pechead_checkpoint,
            "--output", pasted, "--paste-back", "--pitch", -5]  # fmt: skip
    assert main([str(a) for a in args]) == 0
    source = load_image(shared_dir / "data/portraits/s42.jpg")
    assert load_image(pasted).shape == source.shape


def _cases(shared, tmp, pechead_checkpoint, tiny_checkpoint):
    portrait, clip = shared / "data/portraits/s42.jpg", shared / "data/clips/d11.mp4"
    blank = tmp / "blank.mp4"
    with VideoWriter(blank, fps=25) as writer:
        for _ in range(3):
            writer.write(np.full((64, 64, 3), 90, np.uint8))
    (tmp / "bad.json").write_text(json.dumps({"yaw": 5, "grin": 1}))
    animate = ["animate", "--quiet", "--source", portrait, "--driving", clip, "--max-frames", 3]
    edit = ["edit", "--source", portrait]
    return {
        "angle out of range": ([*edit, "--checkpoint", pechead_checkpoint, "--yaw", 200],
                               "--yaw must be in [-90, 90], got 200.0"),
        "strength out of range": ([*animate, "--checkpoint", pechead_checkpoint, "--expression-scale", 9],
                                  "--expression-scale must be in [0, 3], got 9.0"),
        "unknown recipe key": ([*edit, "--checkpoint", pechead_checkpoint, "--recipe", tmp / "bad.json"],
                               "unknown key(s) grin"),
        "bad fixed pose": ([*animate, "--checkpoint", pechead_checkpoint, "--pose", "fixed:1,2"], "three angles"),
        "driver without a face": ([*animate, "--checkpoint", pechead_checkpoint, "--pose-from", blank],
                                  f"{blank}: no face found"),
        "model cannot turn a head": ([*animate, "--checkpoint", tiny_checkpoint, "--yaw", 10],
                                     "--yaw: model 'tiny' cannot honour it"),
        "model cannot take a second driver": ([*animate, "--checkpoint", tiny_checkpoint, "--expression-from", clip],
                                              "--expression-from: model 'tiny' cannot honour it"),
        "edit with a 2-D model": ([*edit, "--checkpoint", tiny_checkpoint, "--smile", 0.5],
                                  "--smile: model 'tiny' cannot honour it"),
        "local edits with a 2-D model": ([*edit, "--checkpoint", tiny_checkpoint, "--edit-area", "local"],
                                         "--edit-area: model 'tiny' cannot honour it"),
    }  # fmt: skip


def test_bad_controls_are_one_line_errors_with_no_output(shared_dir, tmp_path, pechead_checkpoint, tiny_checkpoint,
                                                         capsys):  # fmt: skip
    cases = _cases(shared_dir, tmp_path, pechead_checkpoint, tiny_checkpoint)
    before = sorted(p.name for p in tmp_path.iterdir())
    for name, (args, message) in cases.items():
        output = tmp_path / ("o.png" if args[0] == "edit" else "o.mp4")
        rc = main([str(a) for a in [*args, "--output", output]])
        err = capsys.readouterr().err.strip().splitlines()
        assert rc == 2, name
        assert len(err) == 1 and message in err[0], (name, err)
        assert sorted(p.name for p in tmp_path.iterdir()) == before, name
