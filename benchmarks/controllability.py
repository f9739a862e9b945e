"""Controllability benchmark on synthetic heads with exact ground truth (PECHead models).

For every test head (identities never seen in training, random pose and expression) and every edit (yaw +15 and
+30 deg, roll +10 deg, mouth open +0.5 and +1.0, eyes -0.6), the true edited head is rendered from the edited
drawing parameters and compared with the model's still edit (``Animator.edit``) and with the unedited source:

* ``L1 edit`` / ``L1 source``: mean |image - true edited head| (RGB [0, 1]); the edit must beat the source
  (``l1_gain``: the paired difference, head by head, with its interval);
* ``change L1`` (the headline, docs/results.md): mean |(edit - zero-edit output) - (true edited head - source)|,
  the error of the change the edit makes, which does not charge the edit with the model's reconstruction error;
  the unedited source (no change) scores mean |true edited head - source| on it; ``change_gain`` is the paired
  difference (edit minus no change, head by head; below 0 the edit is better) with its interval;
* ``E landmarks``: mean distance (frame units, [-1, 1]) of the landmarks E poses with the edited coefficients
  (what drives the generator) from the true edited landmarks; doing nothing (the true source landmarks) is the
  baseline. It judges E alone. ``E change``: the same for the landmarks' change (edited minus zero-edit posed
  landmarks against true edited minus true source landmarks), which does not charge the edit with E's error at
  zero edit; no change scores the mean true landmark displacement;
* ``instrument``: a coefficient regressor trained once on random synthetic renders, independent of every model
  under test (``train_instrument``, cached in a file), reads the images: its landmarks on the edit, on the
  zero-edit output and on the source, against the true edited landmarks; the landmark change it reads (edit
  minus zero-edit output) against the true change (``instrument change``, baseline as for E change); and the
  change it reads (edit minus
  zero-edit output) in yaw, roll (degrees), mouth and eyes, beside the change it reads between the true renders
  (its own calibration). Achieved change and leakage come from it;
* achieved change and leakage as read by the model's own regressor R̂ (kept for comparison with older runs);
* reconstruction and jitter on test clips (source = frame 0, every frame driving, in order): L1 and the jitter
  of ``ostnet evaluate`` (mean |Δ result - Δ ground truth|), with CAP on/off (gate 0) and motion smoothing;
* expression reconstruction, no edit (``expression_reconstruction``): a head with the mouth closed (eyes open)
  animated by the same head with the mouth open 1.0 (eyes at 0.2), exact R: the change the instrument reads on
  the output against the driving frame's, and both L1s to the driving frame. What plain animation cannot show,
  no edit will;
* ``--local``: the edits again with ``edit_area`` local (the expression edits change the picture only where they
  move the model's landmarks; pose edits are the same), under ``edits_local``. A still local expression edit
  changes the source picture itself (elsewhere it is the source), so its ``L1 edit`` is the score to read: its
  ``change L1`` is charged with the model's reconstruction error, which the edit does not show;
* ``--landmark-warp SIZE`` (no model): the landmark flow's ceiling, the source warped by the model's landmark
  thin-plate spline from the exact source landmarks to the exact edited ones, scored like an edit.

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
import torch.nn.functional as F
from PIL import Image
from safetensors.torch import load_file, save_file

from ostnet.checkpoint import load_checkpoint
from ostnet.config import ModelConfig, model_preset
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
from ostnet.face.coefficients import NUM_LANDMARKS
from ostnet.geometry import warp
from ostnet.inference.animator import Animator
from ostnet.inference.controls import Controls
from ostnet.io.image import to_tensor
from ostnet.models.pechead import LANDMARKS, POSE_UNIT, CoefficientRegressor, landmark_flow

EDITS = {  # name -> (Controls, how the drawing parameters change)
    "yaw +15": (Controls(yaw=15.0), lambda p: _pose(p, yaw=p.pose.yaw + math.radians(15))),
    "yaw +30": (Controls(yaw=30.0), lambda p: _pose(p, yaw=p.pose.yaw + math.radians(30))),
    "roll +10": (Controls(roll=10.0), lambda p: _pose(p, roll=p.pose.roll + math.radians(10))),
    "mouth +0.5": (Controls(mouth_open=0.5), lambda p: _expr(p, mouth_open=p.expression.mouth_open + 0.5)),
    "mouth +1.0": (Controls(mouth_open=1.0), lambda p: _expr(p, mouth_open=p.expression.mouth_open + 1.0)),
    "eyes -0.6": (Controls(eyes=-0.6), lambda p: _expr(p, eye_open=p.expression.eye_open - 0.6)),
}  # test heads: mouth 0-0.3, eyes 0.8-1: no edit leaves the range the renderer draws (mouth <= 1.3)
GRID_EDITS = ("yaw +30", "mouth +1.0", "eyes -0.6")  # the columns of --grid, after source and zero edit
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


INSTRUMENT_POOL, INSTRUMENT_STEPS, INSTRUMENT_BATCH = 3000, 1500, 32  # ~5 min on one CPU thread


def instrument_heads(n: int, seed: int) -> list[HeadParams]:
    """Random heads over (and past) the range the edits reach, of identities no model trained on."""
    rng = np.random.default_rng([seed, 17])
    heads = []
    for i in range(n):
        pose = Pose(
            rng.uniform(-0.95, 0.95), rng.uniform(-0.4, 0.4), rng.uniform(-0.08, 0.08), rng.uniform(-0.08, 0.08)
        )
        expr = Expression(rng.uniform(0, 1.4), rng.uniform(0.85, 1.15), rng.uniform(0, 1), rng.uniform(-1, 1))
        heads.append(HeadParams(sample_identity(300_000 + i), expr, pose, rng.uniform(0.75, 1.0)))
    return heads


def _blur(images: torch.Tensor, sigma: float) -> torch.Tensor:
    """Gaussian blur (5x5, border pixels repeated)."""
    g = torch.exp(-((torch.arange(5.0) - 2) ** 2) / (2 * sigma**2))
    kernel = (g[:, None] * g[None, :] / g.sum() ** 2).expand(3, 1, 5, 5)
    return F.conv2d(F.pad(images, (2, 2, 2, 2), mode="replicate"), kernel, groups=3)


def _instrument_config(size: int) -> ModelConfig:
    return dataclasses.replace(model_preset("tiny-pechead"), image_size=size)


def train_instrument(size: int, texture: float, seed: int = 0) -> CoefficientRegressor:
    """A coefficient regressor (R̂'s architecture and width) trained on INSTRUMENT_POOL random renders with
    their exact R and a random blur (sigma 0-1.2 px, so that it also reads the softer model outputs); the same
    for every model under test. Deterministic in ``seed``."""
    torch.manual_seed(seed)
    net = CoefficientRegressor(_instrument_config(size))
    heads = instrument_heads(INSTRUMENT_POOL, seed)
    images = torch.cat([_image(h, size, texture) for h in heads])
    truth = torch.from_numpy(np.stack([head_coefficients(h).flat() for h in heads]))
    scale = torch.ones(truth.shape[1])
    scale[:3] = 1.0 / POSE_UNIT
    optim = torch.optim.Adam(net.parameters(), lr=1e-3)
    sched = torch.optim.lr_scheduler.MultiStepLR(optim, [INSTRUMENT_STEPS * 3 // 4], 0.1)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(INSTRUMENT_STEPS):
        idx = torch.randint(len(images), (INSTRUMENT_BATCH,), generator=gen)
        sigma = float(torch.rand((), generator=gen)) * 1.2
        batch = images[idx] if sigma < 0.3 else _blur(images[idx], sigma)
        loss = ((net(batch) - truth[idx]) * scale).abs().mean()
        optim.zero_grad()
        loss.backward()
        optim.step()
        sched.step()
    return net.eval()


def load_instrument(path: Path, size: int, texture: float) -> CoefficientRegressor:
    """The cached instrument at ``path`` (trained and written there when missing)."""
    if path.is_file():
        net = CoefficientRegressor(_instrument_config(size))
        net.load_state_dict(load_file(path))
        return net.eval()
    net = train_instrument(size, texture)
    save_file(net.state_dict(), path)
    return net


def _readings(net: CoefficientRegressor, image: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """(yaw, roll, mouth, eyes) and (L, 2) landmarks read by a regressor."""
    with torch.inference_mode():
        c = net(image)[0].numpy()
    return np.array([c[0], c[2], c[3], 0.5 * (c[5] + c[6])]), c[LANDMARKS].reshape(-1, 2)


def _landmark_error(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(np.asarray(a) - np.asarray(b), axis=-1).mean())


def edit_scores(
    model, heads: list[HeadParams], texture: float, instrument, oracle: bool = False, area: str = "whole"
) -> dict:
    size = model.image_size
    out: dict = {}
    plain = Animator(model, device="cpu")
    for name, (controls, change) in EDITS.items():
        editor = Animator(model, device="cpu", controls=dataclasses.replace(controls, edit_area=area))
        rows: dict[str, list] = {}
        for params in heads:
            edited_params = change(params)
            source, target = _image(params, size, texture), _image(edited_params, size, texture)
            true_source, true_edit = head_coefficients(params).landmarks, head_coefficients(edited_params).landmarks
            plain.set_source(source)
            editor.set_source(source)
            if oracle:
                _oracle_source(plain, source, params)
                _oracle_source(editor, source, params)
            unedited, edited = plain.edit(), editor.edit()
            own = editor.source.kp.coefficients
            with torch.inference_mode():
                posed = model.pose_keypoints(editor.source.kp, editor.control_state.apply(own, own, own))
            moved = (posed.landmarks[0] - editor.source.kp.landmarks[0]).numpy()
            values = _image_scores(instrument, (edited, unedited, source, target), (true_source, true_edit))
            values |= {
                "e_landmarks": _landmark_error(posed.landmarks[0].numpy(), true_edit),
                "e_change": _landmark_error(moved, true_edit - true_source),
                "r_delta_output": _read(plain, edited) - _read(plain, unedited),
                "r_delta_truth": _read(plain, target) - _read(plain, source),
            }
            for key, value in values.items():
                rows.setdefault(key, []).append(value)
        out[name] = _summary(rows)
    return out


def _image_scores(instrument, images, landmarks) -> dict:
    """The scores that need only images: (edit, zero-edit output, source, true edited head) and the true
    (source, edited) landmarks."""
    edited, unedited, source, target = images
    true_source, true_edit = landmarks
    read = {key: _readings(instrument, image) for key, image in
            (("edit", edited), ("plain", unedited), ("source", source), ("target", target))}  # fmt: skip
    return {
        "l1_edit": (edited - target).abs().mean().item(),
        "l1_source": (source - target).abs().mean().item(),
        "l1_plain": (unedited - target).abs().mean().item(),
        "change_l1": ((edited - unedited) - (target - source)).abs().mean().item(),
        "e_landmarks_source": _landmark_error(true_source, true_edit),
        "i_change": _landmark_error(read["edit"][1] - read["plain"][1], true_edit - true_source),
        "i_landmarks_edit": _landmark_error(read["edit"][1], true_edit),
        "i_landmarks_plain": _landmark_error(read["plain"][1], true_edit),
        "i_landmarks_source": _landmark_error(read["source"][1], true_edit),
        "i_landmarks_target": _landmark_error(read["target"][1], true_edit),
        "i_delta_output": read["edit"][0] - read["plain"][0],
        "i_delta_truth": read["target"][0] - read["source"][0],
    }


def _summary(rows: dict[str, list]) -> dict:
    """Means with intervals, win rates against doing nothing, and the mean readings of one edit's rows."""
    wins = {
        "win_rate_vs_source": ("l1_edit", "l1_source"),
        "change_win_rate": ("change_l1", "l1_source"),  # no change scores mean |target - source|
        "e_landmarks_win_rate": ("e_landmarks", "e_landmarks_source"),
        "i_landmarks_win_rate": ("i_landmarks_edit", "i_landmarks_source"),
        "e_change_win_rate": ("e_change", "e_landmarks_source"),  # no change scores |true edit - source|
        "i_change_win_rate": ("i_change", "e_landmarks_source"),
    }
    entry = {f"{key}": interval(v) for key, v in rows.items() if not key.endswith(("output", "truth"))}
    won = {key: (a, b) for key, (a, b) in wins.items() if a in rows}  # E's rows exist only with a model
    entry |= {key: float(np.mean(np.asarray(rows[a]) < np.asarray(rows[b]))) for key, (a, b) in won.items()}
    for key, score in (("l1_gain", "l1_edit"), ("change_gain", "change_l1")):  # paired, head by head: score minus
        if score in rows:  # no change's (< 0: the edit is better)
            entry[key] = interval((np.asarray(rows[score]) - np.asarray(rows["l1_source"])).tolist())
    for key in ("i_delta_output", "i_delta_truth", "r_delta_output", "r_delta_truth"):
        if key in rows:
            entry[key] = dict(zip(MEASURED, np.mean(rows[key], axis=0).round(3).tolist(), strict=True))
    return entry


PLAIN_CHANGES = {  # name -> (source's expression, driving frame's expression, index in MEASURED's readings)
    "mouth 0 -> 1": ({"mouth_open": 0.0}, {"mouth_open": 1.0}, 2),
    "eyes 1 -> 0.2": ({"eye_open": 1.0}, {"eye_open": 0.2}, 3),
}


def expression_reconstruction(model, heads: list[HeadParams], texture: float, instrument) -> dict:
    """No edit: each head with its mouth closed (eyes open) animated by the same head with the mouth open (eyes
    nearly closed), both with their exact R as in training. Can the model show the change at all? The
    instrument's reading of it on the output and on the driving frame, and both L1s to the driving frame."""
    size = model.image_size
    out = {}
    for name, (before, after, index) in PLAIN_CHANGES.items():
        rows: dict[str, list] = {}
        for params in heads:
            changed = (_expr(params, **before), _expr(params, **after))
            source, driving = (_image(p, size, texture) for p in changed)
            known = torch.from_numpy(np.stack([head_coefficients(p).flat() for p in changed]))[None].float()
            with torch.inference_mode():
                output = model(source, driving, coefficients=known).prediction
            reading = {key: _readings(instrument, image)[0][index] for key, image in
                       (("source", source), ("driving", driving), ("output", output))}  # fmt: skip
            values = {
                "reading_output": reading["output"] - reading["source"],
                "reading_truth": reading["driving"] - reading["source"],
                "l1_output": (output - driving).abs().mean().item(),
                "l1_source": (source - driving).abs().mean().item(),
            }
            for key, value in values.items():
                rows.setdefault(key, []).append(float(value))
        out[name] = {key: interval(v) for key, v in rows.items()}
    return out


def landmark_warp_scores(heads: list[HeadParams], size: int, texture: float, instrument, regularization: float) -> dict:
    """The ceiling of the landmark flow: the source warped by the landmark TPS (the model's, same anchors and
    smoothing) from the exact source landmarks to the exact edited ones, scored as an edit (the zero-edit
    output is the source itself). No model: what predefined landmarks alone can move."""
    out = {}
    for name, (_, change) in EDITS.items():
        rows: dict[str, list] = {}
        for params in heads:
            edited_params = change(params)
            source, target = _image(params, size, texture), _image(edited_params, size, texture)
            true = head_coefficients(params).landmarks, head_coefficients(edited_params).landmarks
            lm_source, lm_edit = (torch.from_numpy(t).float()[None] for t in true)
            flow = landmark_flow(lm_source, lm_edit, size, size, regularization)
            values = _image_scores(instrument, (warp(source, flow), source, source, target), true)
            for key, value in values.items():
                rows.setdefault(key, []).append(value)
        out[name] = _summary(rows)
    return out


def edit_grid(
    model, heads: list[HeadParams], texture: float, edits: tuple[str, ...], path: Path, local: bool = False
) -> None:
    """A PNG, one row per head: source, zero-edit output, then for each edit the true edited head and the
    model's edit (with ``local``, then its ``edit_area`` local edit too) (3x, nearest neighbour)."""
    size, rows = model.image_size, []
    plain = Animator(model, device="cpu")
    areas = ("whole", "local") if local else ("whole",)
    editors = {name: [Animator(model, device="cpu", controls=dataclasses.replace(EDITS[name][0], edit_area=area))
                      for area in areas] for name in edits}  # fmt: skip
    for params in heads:
        source = _image(params, size, texture)
        plain.set_source(source)
        row = [source, plain.edit()]
        for name, animators in editors.items():
            row.append(_image(EDITS[name][1](params), size, texture))
            expression_edit = dataclasses.replace(EDITS[name][0], edit_area="local").local_edits
            for editor in animators if expression_edit else animators[:1]:
                editor.set_source(source)
                row.append(editor.edit())
        rows.append(torch.cat(row, dim=3))
    grid = (torch.cat(rows, dim=2)[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    Image.fromarray(grid.repeat(3, axis=0).repeat(3, axis=1)).save(path)


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
    parser.add_argument("--checkpoint", action="append", default=[], metavar="LABEL=PATH")
    parser.add_argument("--heads", type=int, default=32)
    parser.add_argument("--clips", type=int, default=8)
    parser.add_argument("--frames", type=int, default=24)
    parser.add_argument("--texture", type=float, default=0.25)
    parser.add_argument("--smoothing", action="store_true", help="also jitter with each motion smoothing")
    parser.add_argument("--oracle", action="store_true", help="also edit with the source's exact R")
    parser.add_argument(
        "--instrument",
        type=Path,
        default=Path(f"runs/controllability_instrument_{NUM_LANDMARKS}.safetensors"),
        help="the reading instrument's weights (trained and written there when missing)",
    )
    parser.add_argument("--no-video", action="store_true", help="edits only (no reconstruction / jitter)")
    parser.add_argument(
        "--landmark-warp", type=int, metavar="SIZE", help="also the exact landmark warp's scores at SIZE px (no model)"
    )
    parser.add_argument("--local", action="store_true", help="also the edits with edit_area local")
    parser.add_argument("--grid", type=Path, help="also a PNG of the first checkpoint's edits (GRID_EDITS)")
    parser.add_argument("--output", type=Path, required=True)
    args = parser.parse_args()
    if not (args.checkpoint or args.landmark_warp):
        parser.error("nothing to measure: give --checkpoint LABEL=PATH and/or --landmark-warp SIZE")
    if args.grid and not args.checkpoint:
        parser.error("--grid draws the first checkpoint's edits: give --checkpoint")
    torch.set_num_threads(1)
    heads, clips = test_heads(args.heads, 1), test_clips(args.clips, args.frames, 2)
    results = {}
    if args.landmark_warp:
        instrument = load_instrument(args.instrument, args.landmark_warp, args.texture)
        regularization = model_preset("tiny-pechead").pechead.tps_regularization
        warped = landmark_warp_scores(heads, args.landmark_warp, args.texture, instrument, regularization)
        results["landmark warp (exact)"] = {"edits": warped}
        print("landmark warp", json.dumps({k: v["i_change"] for k, v in warped.items()}), flush=True)
    for item in args.checkpoint:
        label, _, path = item.partition("=")
        if not Path(path).is_file():
            print(f"{label}: {path} not found, skipped", flush=True)
            continue
        model = load_checkpoint(path).eval()
        instrument = load_instrument(args.instrument, model.image_size, args.texture)
        entry = {"checkpoint": path, "edits": edit_scores(model, heads, args.texture, instrument)}
        entry["reconstruction"] = expression_reconstruction(model, heads, args.texture, instrument)
        if args.local:
            entry["edits_local"] = edit_scores(model, heads, args.texture, instrument, area="local")
            print(label, "local", json.dumps({k: v["change_l1"] for k, v in entry["edits_local"].items()}), flush=True)
        if args.oracle:
            entry["edits_exact_source_r"] = edit_scores(model, heads, args.texture, instrument, oracle=True)
        print(label, json.dumps({k: v["change_l1"] for k, v in entry["edits"].items()}), flush=True)
        if args.no_video:
            results[label] = entry
            continue
        entry["video"] = {"cap on" if model.cfg.pechead.cap else "no cap": video_scores(model, clips, args.texture)}
        if model.cfg.pechead.cap:
            entry["video"]["cap off (gate 0)"] = video_scores(model, clips, args.texture, cap=False)
        if args.smoothing:
            for smooth in ("ema", "kalman", "one-euro"):
                entry["video"][smooth] = video_scores(model, clips, args.texture, smooth=smooth, cap=False)
        results[label] = entry
        print(label, json.dumps(entry["video"]), flush=True)
    args.output.write_text(json.dumps(results, indent=1))
    if args.grid:
        model = load_checkpoint(args.checkpoint[0].partition("=")[2]).eval()
        edit_grid(model, heads[:4], args.texture, GRID_EDITS, args.grid, args.local)


if __name__ == "__main__":
    main()
