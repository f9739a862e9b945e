"""``ostnet inspect``: per-scale flows, occlusions and code histograms as images, for any preset."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from ostnet.checkpoint import save_checkpoint
from ostnet.cli import main
from ostnet.geometry import make_coordinate_grid
from ostnet.inference.inspect import flow_to_rgb
from ostnet.models.ostnet import build_model


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    pass


def test_flow_colours_white_for_no_motion_and_hue_by_direction():
    grid = make_coordinate_grid(4, 4)
    assert (flow_to_rgb(grid) == 255).all()
    right = flow_to_rgb(grid + torch.tensor([0.5, 0.0]))  # samples to the right: hue 0, full saturation = red
    assert tuple(right[0, 0]) == (255, 0, 0)
    down = flow_to_rgb(grid + torch.tensor([0.0, 0.5]), max_length=1.0)  # hue 1/4, half saturation
    r, g, b = (int(v) for v in down[0, 0])
    assert g == 255 and b < g and r < g


def _inputs(tmp_path):
    rng = np.random.default_rng(0)
    for name in ("source.png", "driving.png"):
        Image.fromarray(rng.integers(0, 255, (80, 80, 3), dtype=np.uint8)).save(tmp_path / name)
    return tmp_path / "source.png", tmp_path / "driving.png"


@pytest.mark.parametrize("preset", ["tiny", "tiny-codebooks"])
def test_inspect_writes_flows_occlusions_and_histograms(preset, tmp_path, capsys):
    ckpt = save_checkpoint(build_model(preset), tmp_path / f"{preset}.safetensors")
    source, driving = _inputs(tmp_path)
    out = tmp_path / "out"
    assert main(["inspect", str(ckpt), "--source", str(source), "--driving", str(driving), "--output", str(out)]) == 0
    names = {p.name for p in out.iterdir()}
    base = {"source.png", "driving.png", "prediction.png", "rectified.png"}
    if preset == "tiny":
        assert names == base | {"flow_scale0.png", "occlusion_scale0.png"}
    else:
        scales = range(4)
        expected = {f"{kind}_scale{i}.png" for kind in ("flow", "occlusion", "codes_motion", "codes_appearance")
                    for i in scales}  # fmt: skip
        assert names == base | expected
    assert Image.open(out / "flow_scale0.png").size == (256, 256)
    assert torch.is_grad_enabled()  # the command leaves the process's grad mode alone


def test_inspect_bad_frame_is_one_line_and_writes_nothing(tmp_path, tiny_checkpoint, capsys):
    source, driving = _inputs(tmp_path)
    out = tmp_path / "out"
    code = main(["inspect", str(tiny_checkpoint), "--source", str(source), "--driving", str(driving),
                 "--frame", "3", "--output", str(out)])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and "only 1 frame" in err and len(err.strip().splitlines()) == 1
    assert {p.name for p in tmp_path.iterdir()} == {"source.png", "driving.png"}
