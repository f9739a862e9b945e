"""Model benchmark (issue 2): parameters, FLOPs per animated frame and median latency per frame for each preset.

Usage:  python benchmarks/model_benchmark.py [--presets a,b] [--device cpu] [--threads 2] [--repeats 5]

"Per animated frame" is the per-frame work of the Animator with the source work cached: keypoints of the driving
frame, the scale transformation (ST presets), keypoints of the rectified frame, dense motion and generator.
FLOPs are counted by torch.utils.flop_counter (a multiply-add counts as 2 FLOPs). Prints a markdown table.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from ostnet.config import MODEL_PRESETS
from ostnet.inference.animator import Animator
from ostnet.models.ostnet import build_model, count_parameters


def measure(name: str, device: str, repeats: int, dtype: str) -> tuple[int, float, float]:
    model = build_model(name)
    size = model.cfg.image_size
    animator = Animator(model, device=device, dtype=dtype)
    gen = torch.Generator().manual_seed(0)
    animator.set_source(torch.rand(1, 3, size, size, generator=gen))
    frame = torch.rand(1, 3, size, size, generator=gen)
    with FlopCounterMode(display=False) as counter:
        animator.animate(frame)
    flops = counter.get_total_flops()
    animator.animate(frame)  # warm-up
    times = []
    for _ in range(repeats):
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        animator.animate(frame)
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return count_parameters(model), flops / 1e9, statistics.median(times) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", default=",".join(MODEL_PRESETS))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="fp32")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(
        f"machine: {platform.processor() or platform.machine()}, torch {torch.__version__}, "
        f"device {args.device}, dtype {args.dtype}, {args.threads} threads, batch 1"
    )
    print("| preset | size | parameters | GFLOPs / frame | median latency / frame (ms) |")
    print("|---|---|---|---|---|")
    for name in args.presets.split(","):
        params, gflops, ms = measure(name, args.device, args.repeats, args.dtype)
        size = MODEL_PRESETS[name]().image_size
        print(f"| {name} | {size} | {params:,} | {gflops:.1f} | {ms:.0f} |", flush=True)


if __name__ == "__main__":
    main()
