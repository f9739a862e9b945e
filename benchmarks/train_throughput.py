"""Training throughput (samples/s) of one ``train_step`` at the preset's resolution.

    python benchmarks/train_throughput.py                       # ostnet-vox-256, CPU (+ CUDA fp32/bf16 if present)
    python benchmarks/train_throughput.py --devices cuda --precisions fp32 bf16 --batch-size 8
    python benchmarks/train_throughput.py --preset tiny --batch-size 4 --demo    # the demo's loss and keypoints
    python benchmarks/train_throughput.py --preset tiny --set loss.pixel_weight=5  # any config overrides

Measures the full step the trainer runs: forward, the complete objective (VGG-19 perceptual pyramid,
equivariance, keypoint distance), backward and the Adam update, on random images. The VGG has random weights
(same cost as the ImageNet ones). Prints one markdown table row per (device, precision).
"""

from __future__ import annotations

import argparse
import time
import warnings

import torch

from ostnet.config import apply_overrides, train_preset
from ostnet.data.dataset import TrainingPair
from ostnet.losses.objective import Objective
from ostnet.losses.vgg import Vgg19Features
from ostnet.models.ostnet import build_model, count_parameters
from ostnet.training.trainer import train_step


def random_batch(batch: int, size: int, device: torch.device) -> TrainingPair:
    images = torch.rand(3, batch, 3, size, size, device=device)
    ones = torch.ones(batch, device=device)
    return TrainingPair(images[0], images[1], images[2], ones, ones, torch.arange(batch))


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(cfg, device: torch.device, precision: str, batch: int, steps: int, warmup: int) -> float:
    """Samples per second of the TrainConfig ``cfg`` over ``steps`` timed steps after ``warmup`` untimed ones."""
    model = build_model(cfg.model).to(device).train()
    vgg = Vgg19Features()
    vgg.randomize()
    objective = Objective(cfg.loss, vgg=vgg).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.optim.lr, betas=cfg.optim.betas)
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")
    data = random_batch(batch, cfg.model.image_size, device)
    for i in range(warmup + steps):
        if i == warmup:
            _sync(device)
            start = time.perf_counter()
        train_step(model, objective, optimizer, scaler, data, precision=precision, tps_seed=i)
    _sync(device)
    return steps * batch / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="ostnet-vox-256")
    parser.add_argument("--devices", nargs="+", default=None, help="default: cpu, plus cuda when available")
    parser.add_argument("--precisions", nargs="+", default=None, help="default: fp32 on CPU, fp32 bf16 on CUDA")
    parser.add_argument("--batch-size", type=int, default=None, help="default: 2 on CPU, 8 on CUDA (the paper's)")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE", help="config overrides")
    parser.add_argument("--demo", action="store_true", help="the overrides `ostnet demo` trains with")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore", message=".*RANDOM VGG-19.*")
    devices = args.devices or (["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])
    overrides = list(args.set)
    if args.demo:
        from ostnet.demo.training import demo_overrides

        overrides = [*demo_overrides(), *overrides]
    cfg = apply_overrides(train_preset(args.preset), overrides)
    params = count_parameters(build_model(cfg.model))
    threads = torch.get_num_threads()
    shown = f"; overrides: {' '.join(overrides)}" if overrides else ""
    print(f"<!-- {args.preset}: {params:,} parameters; torch {torch.__version__}; {threads} CPU threads{shown} -->")
    print("| preset | device | precision | batch | samples/s |")
    print("|---|---|---|---|---|")
    for name in devices:
        device = torch.device(name)
        precisions = args.precisions or (["fp32", "bf16"] if device.type == "cuda" else ["fp32"])
        batch = args.batch_size or (8 if device.type == "cuda" else 2)
        label = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
        for precision in precisions:
            rate = measure(cfg, device, precision, batch, args.steps, args.warmup)
            print(f"| {args.preset} | {label} | {precision} | {batch} | {rate:.2f} |", flush=True)


if __name__ == "__main__":
    main()
