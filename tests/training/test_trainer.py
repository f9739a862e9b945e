"""Trainer: exact resume in-process, the run folder's contents, and user errors that write nothing."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file
from torch.utils.data import DataLoader, Dataset

from ostnet.checkpoint import load_checkpoint
from ostnet.cli import main
from ostnet.errors import OstnetError
from ostnet.models.outputs import Keypoints, ModelOutput
from ostnet.training.state import capture_rng, load_training_state, restore_rng
from ostnet.training.trainer import Trainer, _batches
from ostnet.training.visualize import make_grid

# 4 training pairs, batch 2: two batches per epoch, so 3 steps cross an epoch end and the LR milestone; the
# interrupted run stops exactly at the end of epoch 0 (before the scheduler step), the trickiest resume point.
STEPS = ("max_steps=3", "optim.milestones=[1]", "data.num_repeats=1")


@pytest.fixture(scope="module")
def runs(full_and_resumed):
    """An uninterrupted 3-step run and one stopped after 2 steps and resumed to 3."""
    return full_and_resumed(*STEPS)


def test_resume_continues_exactly_where_the_run_stopped(runs):
    full, resumed = runs
    a = load_file(str(full.folder.final_weights))
    b = load_file(str(resumed.folder.final_weights))
    assert a.keys() == b.keys()
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, different
    assert tuple(resumed.progress) == (3, 1, 1)
    assert resumed.optimizer.param_groups[0]["lr"] == pytest.approx(2e-5)  # 2e-4 * 0.1 after epoch 1


def test_run_folder_holds_config_checkpoints_and_logs(runs, make_config):
    folder = runs[1].folder
    assert folder.read_config() == make_config(*STEPS)
    latest = folder.latest()
    assert latest.step == 3 and latest.weights.name == "step_00000003.safetensors"
    names = sorted(p.name for p in folder.checkpoint_dir.iterdir())
    assert names == [
        "latest.json",
        "step_00000002.safetensors",
        "step_00000002.state.pt",
        "step_00000003.safetensors",
        "step_00000003.state.pt",
    ]  # older checkpoints pruned, no temporaries left
    state = load_training_state(latest.state)
    assert tuple(state["progress"]) == (3, 1, 1) and len(state["rng"]) == 1
    model = load_checkpoint(folder.final_weights)
    assert model.cfg == make_config(*STEPS).model
    grid = np.asarray(Image.open(folder.root / "samples" / "step_00000002.png"))
    assert grid.shape == (2 * 64, 5 * 64, 3)
    assert any((folder.root / "tensorboard").iterdir())


def test_resume_refuses_another_model_and_a_fresh_run_refuses_an_old_folder(runs, make_config):
    folder = runs[1].folder
    with pytest.raises(OstnetError, match="num_kp"):
        Trainer(make_config(*STEPS, "model.keypoints.num_kp=5"), folder.root, resume=True, device="cpu")
    with pytest.raises(OstnetError, match="--resume"):
        Trainer(make_config(*STEPS), folder.root, device="cpu")


def _run_cli(capsys, *argv) -> tuple[int, str]:
    code = main(["train", *argv])
    return code, capsys.readouterr().err.strip()


def test_bad_input_is_one_line_and_writes_nothing(tmp_path, synthetic_root, capsys):
    out = tmp_path / "run"
    cases = [
        (["--preset", "nope", "--data", str(synthetic_root)], "unknown preset"),
        (["--preset", "tiny", "--data", str(tmp_path / "missing")], "dataset folder not found"),
        (["--preset", "tiny", "--data", str(synthetic_root), "--set", "loss.nope=1"], "unknown config key"),
        (["--data", str(synthetic_root)], "--preset is required"),
        (["--resume"], "config.json"),
        (["--preset", "tiny", "--data", str(synthetic_root), "--set", "precision=fp8"], "precision"),
    ]
    empty = tmp_path / "empty"
    (empty / "train").mkdir(parents=True)
    cases.append((["--preset", "tiny", "--data", str(empty)], "no videos"))
    for argv, expected in cases:
        code, err = _run_cli(capsys, *argv, "--output", str(out))
        assert code == 2, argv
        assert expected in err and len(err.splitlines()) == 1, err
        assert not out.exists(), argv


def test_rng_states_round_trip(tmp_path):
    state = capture_rng()
    path = tmp_path / "rng.pt"
    torch.save(state, path)
    first = (random.random(), np.random.rand(), torch.rand(3))  # noqa: NPY002
    restore_rng(torch.load(path, weights_only=True))
    second = (random.random(), np.random.rand(), torch.rand(3))  # noqa: NPY002
    assert first[:2] == second[:2] and torch.equal(first[2], second[2])


class _Broken(Dataset):
    def __len__(self) -> int:
        return 4

    def __getitem__(self, index: int):
        raise OstnetError("clip/0000003.png: broken PNG")


def test_worker_errors_come_back_as_one_line():
    loader = DataLoader(_Broken(), batch_size=2, num_workers=1)
    with pytest.raises(OstnetError) as info:
        list(_batches(loader))
    assert str(info.value) == "clip/0000003.png: broken PNG"


def test_grid_columns_and_keypoints():
    size, b = 32, 3
    source, driving = torch.rand(b, 3, size, size), torch.rand(b, 3, size, size)
    kp = Keypoints(torch.zeros(b, 2, 2), None)
    out = ModelOutput(driving * 0.5, driving.flip(-1), None, None, kp, kp, kp, None, None, None)
    grid = make_grid(source, driving, out, max_rows=2)
    assert grid.shape == (2 * size, 5 * size, 3)
    cols = [grid[:size, i * size : (i + 1) * size].astype(int) for i in range(5)]
    expected = [source[0], driving[0], driving[0].flip(-1), driving[0] * 0.5]
    for col, image in zip(cols, expected, strict=False):
        assert np.abs(col - (image.permute(1, 2, 0).numpy() * 255)).max() <= 1
    centre = size // 2
    assert (
        cols[4][centre - 1 : centre + 1, centre - 1 : centre + 1]
        != cols[0][centre - 1 : centre + 1, centre - 1 : centre + 1]
    ).any()
    assert (cols[4][:4, :4] == cols[0][:4, :4]).all()  # away from the keypoints the source is untouched
