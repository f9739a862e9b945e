"""Does PECHead's CAP lower jitter? CAP on vs its gate at 0 (the per-frame model), paired over test clips.

Synthetic test clips of unseen heads (the controllability benchmark's: identities 200000 + i, scale 0.9, motion 2),
source = frame 0, every frame driving, in order (the Animator carries CAP's state; 8 frames a call). Per clip:
reconstruction L1 and the jitter of ``ostnet evaluate`` (mean over t of mean |Δ result - Δ ground truth|), with
CAP on and with its gate at 0; the table gives both and their paired difference (on - gate 0), each with a 95 %
bootstrap interval over clips. A difference interval below 0 means CAP lowers jitter.

    OMP_NUM_THREADS=1 python benchmarks/cap_jitter.py --checkpoint clips=runs/clips/final.safetensors \\
        --checkpoint pseudo=runs/pseudo/final.safetensors --clips 16 --output runs/cap_jitter.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from ostnet.checkpoint import load_checkpoint
from ostnet.data.synthetic import render_head, sample_sequence
from ostnet.evaluation.evaluate import frame_jitter
from ostnet.inference.animator import Animator
from ostnet.inference.controls import Controls
from ostnet.io.image import to_tensor


def interval(values, seed: int = 0) -> list[float]:
    """[mean, 2.5 %, 97.5 %] of a bootstrap of the mean."""
    v = np.asarray(values, dtype=np.float64)
    boots = np.random.default_rng(seed).choice(v, size=(4000, len(v))).mean(axis=1)
    return [float(v.mean()), float(np.percentile(boots, 2.5)), float(np.percentile(boots, 97.5))]


def test_videos(n: int, frames: int, size: int, texture: float, seed: int = 2) -> list[torch.Tensor]:
    videos = []
    for i in range(n):
        clip = sample_sequence(200_000 + i, frames, scale=0.9, rng=np.random.default_rng([seed, i]), motion=2.0)
        videos.append(torch.cat([to_tensor(render_head(p, size, texture))[None] for p in clip]))
    return videos


def scores(model, videos: list[torch.Tensor]) -> tuple[list[float], list[float]]:
    """Per clip: reconstruction L1 and jitter."""
    animator = Animator(model, device="cpu", mode="absolute", controls=Controls(pose="absolute"))
    l1, jitter = [], []
    for video in videos:
        animator.set_source(video[:1])
        pred = torch.cat([animator.animate(video[i : i + 8]).prediction for i in range(0, len(video), 8)])
        l1.append((pred - video).abs().mean().item())
        jitter.append(float(np.mean([frame_jitter(pred[t], video[t], (pred[t - 1], video[t - 1]))
                                     for t in range(1, len(video))])))  # fmt: skip
    return l1, jitter


def compare(model, videos: list[torch.Tensor]) -> dict:
    cap = model.generator.cap
    on = scores(model, videos)
    saved = cap.gate_param.detach().clone()
    with torch.no_grad():
        cap.gate_param.zero_()
    try:
        off = scores(model, videos)
    finally:
        with torch.no_grad():
            cap.gate_param.copy_(saved)
    out = {"gate": float(cap.gate.detach())}
    for k, name in enumerate(("l1", "jitter")):
        difference = np.asarray(on[k]) - np.asarray(off[k])
        out[name] = {"cap on": interval(on[k]), "gate 0": interval(off[k]), "on - gate 0": interval(difference),
                     "clips lower with cap": float(np.mean(difference < 0))}  # fmt: skip
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", action="append", required=True, metavar="LABEL=PATH")
    parser.add_argument("--clips", type=int, default=16)
    parser.add_argument("--frames", type=int, default=24)
    parser.add_argument("--texture", type=float, default=0.25)
    parser.add_argument("--output", type=Path, required=True)
    args = parser.parse_args()
    torch.set_num_threads(1)
    results = {}
    for item in args.checkpoint:
        label, _, path = item.partition("=")
        model = load_checkpoint(path).eval()
        if getattr(model.generator, "cap", None) is None:
            raise SystemExit(f"{path}: the model has no CAP")
        results[label] = compare(model, test_videos(args.clips, args.frames, model.image_size, args.texture))
        print(label, json.dumps(results[label]), flush=True)
    args.output.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
