"""End-to-end runs of ``ostnet train`` in subprocesses (slow).

(b) DDP equivalence: 2 CPU processes under torchrun (Gloo) with batch 2 end with the weights of 1 process
    with batch 4, up to float tolerance.
(c) Crash safety: a run killed with SIGKILL at a random step and resumed ends with exactly the weights of an
    uninterrupted run (deterministic mode).
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from ostnet.config import model_preset
from ostnet.models.ostnet import build_model

FAST = [
    "loss.allow_random_vgg=true",
    "loss.perceptual_scales=[0.25]",
    "data.num_workers=0",
    "data.num_repeats=2",
    "deterministic=true",
    "log_every=1",
    "image_every=1000",
]

pytestmark = pytest.mark.slow


def train_command(data: Path, out: Path, *extra: str, nproc: int = 1) -> list[str]:
    launcher = [sys.executable, "-m", "ostnet.cli"]
    if nproc > 1:
        launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}"]
        launcher += ["-m", "ostnet.cli"]
    sets = [arg for item in FAST for arg in ("--set", item)]
    return [*launcher, "train", "--preset", "tiny", "--data", str(data), "--output", str(out), "--quiet",
            "--device", "cpu", *sets, *extra]  # fmt: skip


def env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}


def run(cmd: list[str]) -> None:
    done = subprocess.run(cmd, env=env(), capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]


def weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(str(run_dir / "final.safetensors"))


def test_two_processes_match_one_process_with_the_same_global_batch(synthetic_root, tmp_path):
    steps = ["--max-steps", "3", "--set", "checkpoint_every=1000"]
    run(train_command(synthetic_root, tmp_path / "one", "--set", "data.batch_size=4", *steps))
    run(train_command(synthetic_root, tmp_path / "two", "--set", "data.batch_size=2", *steps, nproc=2))
    one, two = weights(tmp_path / "one"), weights(tmp_path / "two")
    torch.manual_seed(0)
    init = build_model(model_preset("tiny")).state_dict()
    assert one.keys() == two.keys()
    moved = max((one[k].float() - init[k].float()).abs().max().item() for k in one)
    worst = max((one[k].float() - two[k].float()).abs().max().item() for k in one)
    assert moved > 1e-4  # the runs did train
    assert worst < 1e-2 * moved, (worst, moved)


def latest_step(run_dir: Path) -> int:
    try:
        return json.loads((run_dir / "checkpoints" / "latest.json").read_text())["step"]
    except (OSError, ValueError, KeyError):
        return 0


def test_sigkill_at_a_random_step_then_resume_matches_uninterrupted_run(synthetic_root, tmp_path):
    steps = ["--max-steps", "5", "--set", "checkpoint_every=1", "--set", "data.batch_size=2"]
    run(train_command(synthetic_root, tmp_path / "full", *steps))

    kill_after = random.randint(1, 3)
    crashed = tmp_path / "crashed"
    proc = subprocess.Popen(train_command(synthetic_root, crashed, *steps), env=env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        while latest_step(crashed) < kill_after and proc.poll() is None:
            time.sleep(0.02)
        time.sleep(random.uniform(0.0, 1.0))  # land anywhere in the next step or checkpoint write
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, f"run ended before the kill (kill_after={kill_after})"
    assert not (crashed / "final.safetensors").exists()
    killed_at = latest_step(crashed)

    run([sys.executable, "-m", "ostnet.cli", "train", "--output", str(crashed), "--resume", "--quiet",
         "--device", "cpu", "--max-steps", "5"])  # fmt: skip
    a, b = weights(tmp_path / "full"), weights(crashed)
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, f"killed after checkpoint {killed_at}: {different[:5]}"
    assert latest_step(crashed) == 5
    assert not list((crashed / "checkpoints").glob(".*.tmp"))
