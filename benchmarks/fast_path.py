"""Fast path benchmark (issue 12): today's eager path vs the fast path for ostnet-vox-256, and the faithful
fomm-vox-256 eager path (FOMM's stand-in), in one process, interleaved.

Usage:  python benchmarks/fast_path.py [--device cpu|cuda] [--threads 2] [--batches 1,8] [--repeats 7]
                                       [--dtypes fp32,bf16] [--onnx DIR|export] [--compile] [--cuda-graphs]
                                       [--pechead]

Every round runs each variant once per batch size, in turn, so load from other jobs hits all of them alike; the
table gives the median and the minimum ms per frame over the rounds and the ratios of the minima (a ratio from one
run beats two absolute times on a shared machine). Random weights with trained-looking batch-norm statistics;
random smooth 256x256 images; the per-source work is cached (``Animator.set_source``) and not timed.

Variants: ``eager`` = ``Animator(fast=False)``; ``fast`` = ``Animator()`` (the default); ``compile`` = the fast
path with ``torch.compile`` on the per-frame step (``--compile``; with ``--cuda-graphs`` mode reduce-overhead);
``onnx`` = onnxruntime on the CPU (``--onnx DIR`` from ``ostnet export``, or ``--onnx export`` to export here).
``--pechead`` adds pechead-256 (random weights): its Animator (always the model as it is, CAP in video mode) and,
with ``--onnx export``, its export (two graphs, the step frame by frame, the controls on the host).
"""

from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch

from ostnet.inference.animator import Animator
from ostnet.models.ostnet import build_model


def randomise_norms(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                n = m.num_features
                m.running_mean.copy_(torch.rand(n, generator=gen) * 0.4 - 0.2)
                m.running_var.copy_(torch.rand(n, generator=gen) + 0.5)
    return model.eval()


def images(n: int, size: int, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    low = torch.rand(n, 3, 8, 8, generator=gen)
    return torch.nn.functional.interpolate(low, size=(size, size), mode="bilinear", align_corners=True)


def compiled(animator: Animator, cuda_graphs: bool) -> Animator:
    mode = "reduce-overhead" if cuda_graphs else None
    animator.step.motion = torch.compile(animator.step.motion, mode=mode, dynamic=False)
    animator.step.render = torch.compile(animator.step.render, mode=mode, dynamic=False)
    return animator


def build_variants(args: argparse.Namespace) -> dict[str, object]:
    torch.manual_seed(0)
    ostnet = randomise_norms(build_model("ostnet-vox-256"))
    torch.manual_seed(0)
    fomm = randomise_norms(build_model("fomm-vox-256"))
    variants: dict[str, object] = {}
    for dtype in args.dtypes:
        variants[f"fomm-vox-256 eager {dtype}"] = Animator(fomm, device=args.device, dtype=dtype, fast=False)
        variants[f"ostnet-vox-256 eager {dtype}"] = Animator(ostnet, device=args.device, dtype=dtype, fast=False)
        variants[f"ostnet-vox-256 fast {dtype}"] = Animator(ostnet, device=args.device, dtype=dtype)
        if args.compile:
            fast = Animator(ostnet, device=args.device, dtype=dtype)
            variants[f"ostnet-vox-256 compile {dtype}"] = compiled(fast, args.cuda_graphs)
    if args.onnx:
        variants["ostnet-vox-256 onnxruntime fp32"] = onnx_animator(ostnet, args)
    if args.pechead:
        torch.manual_seed(0)
        pechead = randomise_norms(build_model("pechead-256"))
        variants["pechead-256 eager fp32"] = Animator(pechead, device=args.device)
        if args.onnx == "export":
            variants["pechead-256 onnxruntime fp32"] = onnx_animator(pechead, args)
    return variants


def onnx_animator(model, args: argparse.Namespace):
    from ostnet.checkpoint import save_checkpoint
    from ostnet.inference.export import OnnxAnimator, export_onnx

    if args.onnx != "export":
        return OnnxAnimator(args.onnx, threads=args.threads)
    with tempfile.TemporaryDirectory(prefix="ostnet-bench-") as tmp:  # onnxruntime holds the graphs once loaded
        folder = Path(tmp)
        checkpoint = save_checkpoint(model, folder / "model.safetensors")
        start = time.perf_counter()
        summary = export_onnx(model, checkpoint, folder / "onnx")
        print(f"export: {summary.line()} ({time.perf_counter() - start:.0f} s)", flush=True)
        return OnnxAnimator(folder / "onnx", threads=args.threads)


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def run(args: argparse.Namespace) -> dict[tuple[str, int], list[float]]:
    variants = build_variants(args)
    source, driving = images(1, 256, seed=0), images(max(args.batches), 256, seed=1)
    times: dict[tuple[str, int], list[float]] = {}
    for animator in variants.values():
        animator.set_source(source)
        for batch in args.batches:  # warm-up (and compilation) outside the timed rounds
            animator.animate(driving[:batch])
    sync(args.device)
    for _ in range(args.repeats):
        for batch in args.batches:
            frames = driving[:batch]
            for name, animator in variants.items():
                sync(args.device)
                start = time.perf_counter()
                animator.animate(frames).prediction.sum().item()  # waits for the result on any device
                times.setdefault((name, batch), []).append((time.perf_counter() - start) * 1000 / batch)
    return times


def report(args: argparse.Namespace, times: dict[tuple[str, int], list[float]]) -> None:
    print(
        f"\nmachine: {platform.processor() or platform.machine()}, torch {torch.__version__}, device {args.device}, "
        f"{args.threads} threads, {args.repeats} interleaved rounds"
    )
    stand_in = {b: min(times[(f"fomm-vox-256 eager {args.dtypes[0]}", b)]) for b in args.batches}
    for batch in args.batches:
        print(f"\n**batch {batch}**\n")
        print("| variant | median ms/frame | min ms/frame | frames/s (min) | / FOMM stand-in | / eager same dtype |")
        print("|---|---|---|---|---|---|")
        for (name, b), values in times.items():
            if b != batch:
                continue
            best = min(values)
            dtype = name.rsplit(" ", 1)[1]
            model = name.split(" ", 1)[0]
            eager = times.get((f"{model} eager {dtype}", b))
            vs_eager = f"{best / min(eager):.2f}" if eager and model != "fomm-vox-256" else "-"
            print(
                f"| {name} | {statistics.median(values):.1f} | {best:.1f} | {1000 / best:.1f} | "
                f"{best / stand_in[b]:.2f} | {vs_eager} |"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batches", default="1,8", help="comma-separated batch sizes (GPU: 1,8,32,64,128,256)")
    parser.add_argument("--dtypes", default="fp32,bf16")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--onnx", default=None, metavar="DIR|export", help="also time onnxruntime (CPU)")
    parser.add_argument("--pechead", action="store_true", help="also time pechead-256 (and its export)")
    parser.add_argument("--compile", action="store_true", help="also time torch.compile on the fast path")
    parser.add_argument("--cuda-graphs", action="store_true", help="compile with mode=reduce-overhead (CUDA graphs)")
    args = parser.parse_args()
    args.batches = [int(b) for b in args.batches.split(",")]
    args.dtypes = args.dtypes.split(",")
    torch.set_num_threads(args.threads)
    if args.device == "cuda":
        torch.backends.cudnn.benchmark = True
    report(args, run(args))


if __name__ == "__main__":
    main()
