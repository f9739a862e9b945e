"""Controllability benchmark on synthetic heads with exact ground truth (PECHead models).

For every test head (identities never seen in training, random pose and expression) and every edit (yaw +15 deg,
roll +10 deg, mouth open +0.5, eyes -0.6), the true edited head is rendered from the edited drawing parameters and
compared with the model's still edit (``Animator.edit``) and with the unedited source:

* ``L1 edit`` / ``L1 source``: mean |image - true edited head| (RGB [0, 1]); the edit must beat the source;
* ``change L1``: mean |(edit - zero-edit output) - (true edited head - source)|, the error of the change the
  edit makes, which does not charge the edit with the model's reconstruction error; the unedited source scores
  mean |true edited head - source| on it;
* achieved change and leakage: the model's coefficient regressor R̂ read on the edited output minus on the
  zero-edit output, for every coefficient (yaw, roll in degrees, mouth, eyes); the same instrument on the true
  renders gives the reference;
* reconstruction and jitter on test clips (source = frame 0, every frame driving, in order): L1 and the jitter
  of ``ostnet evaluate`` (mean |Δ result - Δ ground truth|), with CAP on/off (gate 0) and motion smoothing.

Intervals are 95 % bootstrap intervals of the mean over heads / clips (one training seed per model).

    OMP_NUM_THREADS=1 python benchmarks/controllability.py --checkpoint full=runs/full/final.safetensors \\
        --checkpoint mmfa=runs/abl-mmfa/final.safetensors ... --output runs/controllability.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import torch

from ostnet.checkpoint import load_checkpoint
from ostnet.data.synthetic import (
    Expression,
    HeadParams,
    Pose,
    head_coefficients,
    render_head,
    sample_identity,
    sample_sequence,
)
from ostnet.evaluation.evaluate import frame_jitter
from ostnet.inference.animator import Animator
from ostnet.inference.controls import Controls
from ostnet.io.image import to_tensor

EDITS = {  # name -> (Controls, how the drawing parameters change)
    "yaw +15": (Controls(yaw=15.0), lambda p: _pose(p, yaw=p.pose.yaw + math.radians(15))),
    "roll +10": (Controls(roll=10.0), lambda p: _pose(p, roll=p.pose.roll + math.radians(10))),
    "mouth +0.5": (Controls(mouth_open=0.5), lambda p: _expr(p, mouth_open=min(1.0, p.expression.mouth_open + 0.5))),
    "eyes -0.6": (Controls(eyes=-0.6), lambda p: _expr(p, eye_open=max(0.0, p.expression.eye_open - 0.6))),
}
MEASURED = {"yaw": 0, "roll": 2, "mouth": 3, "eyes": (5, 6)}  # coefficient indices read by R̂


def _pose(p: HeadParams, **kw) -> HeadParams:
    return dataclasses.replace(p, pose=dataclasses.replace(p.pose, **kw))


def _expr(p: HeadParams, **kw) -> HeadParams:
    return dataclasses.replace(p, expression=dataclasses.replace(p.expression, **kw))


def test_heads(n: int, seed: int) -> list[HeadParams]:
    rng = np.random.default_rng(seed)
    heads = []
    for i in range(n):
        pose = Pose(yaw=rng.uniform(-0.3, 0.3), roll=rng.uniform(-0.12, 0.12), x=rng.uniform(-0.05, 0.05))
        expr = Expression(mouth_open=rng.uniform(0, 0.3), mouth_width=1.0, eye_open=rng.uniform(0.8, 1.0))
        heads.append(HeadParams(sample_identity(100_000 + i), expr, pose, rng.uniform(0.8, 0.95)))
    return heads


def _image(params: HeadParams, size: int, texture: float) -> torch.Tensor:
    return to_tensor(render_head(params, size, texture))[None]


def _read(animator: Animator, image: torch.Tensor) -> np.ndarray:
    c = animator.coefficients(image)[0].numpy()
    return np.array([c[0], c[2], c[3], 0.5 * (c[5] + c[6])])


def interval(values: list[float], seed: int = 0) -> tuple[float, float, float]:
    v = np.asarray(values, dtype=np.float64)
    rng = np.random.default_rng(seed)
    boots = rng.choice(v, size=(2000, len(v))).mean(axis=1)
    return float(v.mean()), float(np.percentile(boots, 2.5)), float(np.percentile(boots, 97.5))


def _oracle_source(animator: Animator, source: torch.Tensor, params: HeadParams) -> None:
    """Replace the source's estimated R by the exact one (isolates E and G from the regressor R̂)."""
    known = torch.from_numpy(head_coefficients(params).flat())[None]
    with torch.inference_mode():
        kp = animator.net.detect(source, known)
        animator.source = animator.source._replace(kp=kp, prepared=animator.net.prepare_source(source, kp))


def edit_scores(model, heads: list[HeadParams], texture: float, oracle: bool = False) -> dict:
    size = model.image_size
    out: dict = {}
    plain = Animator(model, device="cpu")
    for name, (controls, change) in EDITS.items():
        editor = Animator(model, device="cpu", controls=controls)
        l1_edit, l1_source, l1_plain, achieved, truth, d_edit = [], [], [], [], [], []
        for params in heads:
            source, target = _image(params, size, texture), _image(change(params), size, texture)
            plain.set_source(source)
            editor.set_source(source)
            if oracle:
                _oracle_source(plain, source, params)
                _oracle_source(editor, source, params)
            unedited, edited = plain.edit(), editor.edit()
            l1_edit.append((edited - target).abs().mean().item())
            l1_source.append((source - target).abs().mean().item())
            l1_plain.append((unedited - target).abs().mean().item())
            d_edit.append(((edited - unedited) - (target - source)).abs().mean().item())
            achieved.append(_read(plain, edited) - _read(plain, unedited))
            truth.append(_read(plain, target) - _read(plain, source))
        out[name] = {
            "l1_edit": interval(l1_edit),
            "l1_source": interval(l1_source),
            "l1_unedited_output": interval(l1_plain),
            "win_rate_vs_source": float(np.mean(np.asarray(l1_edit) < np.asarray(l1_source))),
            "change_l1_edit": interval(d_edit),  # |(edited - unedited output) - (true edit - source)|
            "change_win_rate": float(np.mean(np.asarray(d_edit) < np.asarray(l1_source))),
            "delta_output": dict(zip(MEASURED, np.mean(achieved, axis=0).round(3).tolist(), strict=True)),
            "delta_truth": dict(zip(MEASURED, np.mean(truth, axis=0).round(3).tolist(), strict=True)),
        }
    return out


def test_clips(n: int, frames: int, seed: int) -> list[list[HeadParams]]:
    clips = []
    for i in range(n):
        rng = np.random.default_rng([seed, i])
        clips.append(sample_sequence(200_000 + i, frames, scale=0.9, rng=rng, motion=2.0))
    return clips


def video_scores(model, clips, texture: float, smooth: str = "none", cap: bool = True) -> dict:
    size = model.image_size
    gate = None
    if getattr(model.generator, "cap", None) is not None and not cap:
        gate = model.generator.cap.gate_param.detach().clone()
        with torch.no_grad():
            model.generator.cap.gate_param.zero_()
    try:
        controls = Controls(pose="absolute") if getattr(model, "controllable", False) else None
        animator = Animator(model, device="cpu", mode="absolute", motion_smooth=smooth, controls=controls)
        l1, jitter = [], []
        for clip in clips:
            video = torch.cat([_image(p, size, texture) for p in clip])
            animator.set_source(video[:1])
            pred = torch.cat([animator.animate(video[i : i + 8]).prediction for i in range(0, len(video), 8)])
            l1.append((pred - video).abs().mean().item())
            jitter.append(
                np.mean([frame_jitter(pred[t], video[t], (pred[t - 1], video[t - 1])) for t in range(1, len(video))])
            )
    finally:
        if gate is not None:
            with torch.no_grad():
                model.generator.cap.gate_param.copy_(gate)
    return {"l1": interval(l1), "jitter": interval(jitter)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", action="append", required=True, metavar="LABEL=PATH")
    parser.add_argument("--heads", type=int, default=32)
    parser.add_argument("--clips", type=int, default=8)
    parser.add_argument("--frames", type=int, default=24)
    parser.add_argument("--texture", type=float, default=0.25)
    parser.add_argument("--smoothing", action="store_true", help="also jitter with each motion smoothing")
    parser.add_argument("--oracle", action="store_true", help="also edit with the source's exact R")
    parser.add_argument("--output", type=Path, required=True)
    args = parser.parse_args()
    torch.set_num_threads(1)
    heads, clips = test_heads(args.heads, 1), test_clips(args.clips, args.frames, 2)
    results = {}
    for item in args.checkpoint:
        label, _, path = item.partition("=")
        model = load_checkpoint(path).eval()
        entry = {"checkpoint": path, "edits": edit_scores(model, heads, args.texture)}
        if args.oracle:
            entry["edits_exact_source_r"] = edit_scores(model, heads, args.texture, oracle=True)
        entry["video"] = {"cap on" if model.cfg.pechead.cap else "no cap": video_scores(model, clips, args.texture)}
        if model.cfg.pechead.cap:
            entry["video"]["cap off (gate 0)"] = video_scores(model, clips, args.texture, cap=False)
        if args.smoothing:
            for smooth in ("ema", "kalman", "one-euro"):
                entry["video"][smooth] = video_scores(model, clips, args.texture, smooth=smooth, cap=False)
        results[label] = entry
        print(label, json.dumps(entry["video"]), flush=True)
    args.output.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
