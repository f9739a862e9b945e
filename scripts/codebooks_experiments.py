"""Experiments of the compensatory codebooks (issue 13; results in docs/results.md).

    python scripts/codebooks_experiments.py sanity   --output /tmp/cb/sanity
    python scripts/codebooks_experiments.py ablation --output /tmp/cb/ablation [--steps 300 --seeds 0 1 2]
    python scripts/codebooks_experiments.py real     --output /tmp/cb/real --clips ../shared/data/clips

``sanity``: the motion codebook alone (MCC's flow encoder, a 1024 x 32 codebook and the flow decoder) learns to
reconstruct random smooth flows with the VQ loss and the L1 weight 32 of the paper's official code; prints the
flow L1 (and the zero-flow L1 for scale) and the code perplexity per scale slice.

``ablation``: five tiny models trained at equal steps on synthetic heads (the demo's clips and loss), 3 seeds
each, evaluated on the same-scale and different-scale protocols of the held-out identities; writes
``results.json`` and ``table.md`` (means over seeds with 95 % t-intervals over seeds) and the final code
perplexities from TensorBoard.

``real``: tiny OSTNet vs tiny-codebooks trained at equal steps on the real sample clips (split in time) and
evaluated side by side on their late frames.

Everything runs on one CPU thread; run it with ``nice``.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from pathlib import Path

import torch

VARIANTS = {  # name -> overrides of the tiny preset
    "baseline": ["model.scale_transform.enabled=false", "model.generator.scale_embedding=false"],
    "+MCC": ["model.scale_transform.enabled=false", "model.generator.scale_embedding=false"],
    "+MCC+ACC": ["model.scale_transform.enabled=false", "model.generator.scale_embedding=false"],
    "ostnet-codebooks": [],
    "OSTNet": [],
}
PRESET = {"baseline": "tiny", "+MCC": "tiny-codebooks", "+MCC+ACC": "tiny-codebooks",
          "ostnet-codebooks": "tiny-codebooks", "OSTNet": "tiny"}  # fmt: skip
EXTRA = {"+MCC": ["model.codebooks.appearance=false"]}
T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571}


def interval(values: list[float]) -> tuple[float, float]:
    """Mean and the half-width of its 95 % t-interval (0 for a single value)."""
    mean = statistics.fmean(values)
    if len(values) < 2:
        return mean, 0.0
    return mean, T95.get(len(values) - 1, 1.96) * statistics.stdev(values) / math.sqrt(len(values))


# ------------------------------------------------------------------------------------------------ sanity


def smooth_flows(batch: int, size: int, generator: torch.Generator) -> torch.Tensor:
    """Random smooth backward flows (B, size, size, 2): identity + a random affine map + a low-frequency field."""
    import torch.nn.functional as F

    from ostnet.geometry import make_coordinate_grid

    grid = make_coordinate_grid(size, size)[None].expand(batch, -1, -1, -1)
    theta = torch.eye(2)[None] + 0.15 * torch.randn(batch, 2, 2, generator=generator)
    shift = 0.1 * torch.randn(batch, 1, 1, 2, generator=generator)
    affine = torch.einsum("bij,bhwj->bhwi", theta, grid) + shift
    coarse = 0.08 * torch.randn(batch, 2, 4, 4, generator=generator)
    field = F.interpolate(coarse, size=size, mode="bicubic", align_corners=True).permute(0, 2, 3, 1)
    return affine + field


def run_sanity(args: argparse.Namespace) -> dict:
    from ostnet.config import CodebookConfig
    from ostnet.models.codebooks import MotionCompensation

    torch.manual_seed(args.seed)
    cfg = CodebookConfig(motion=True, restart_dead_codes=args.restart, dead_after=args.dead_after)
    mcc = MotionCompensation(cfg, [8, 8, 8, 8], num_kp=1, motion_size=64, token_size=32).train()
    parts = [*mcc.flow_encoder.parameters(), *mcc.flow_decoder.parameters(), *mcc.quantizer.parameters()]
    optimizer = torch.optim.Adam(parts, lr=args.lr)
    g = torch.Generator().manual_seed(args.seed)
    log = []
    start = time.perf_counter()
    for step in range(1, args.steps + 1):
        flows = smooth_flows(args.batch, 64, g)
        scale = (step - 1) % 4
        disp = mcc.displacement(flows)
        vq = mcc.quantizer(mcc.flow_encoder(disp).permute(0, 2, 3, 1), scale)
        rec = torch.nn.functional.l1_loss(mcc.flow_decoder(vq.quantized.permute(0, 3, 1, 2)), disp)
        loss = vq.loss + 32 * rec
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step % 50 == 0:
            log.append({"step": step, "scale": scale, "l1": rec.item(), "perplexity": vq.perplexity.item()})
            print(json.dumps(log[-1]), flush=True)
    mcc.eval()
    test = smooth_flows(64, 64, torch.Generator().manual_seed(12345))
    disp = mcc.displacement(test)
    result = {"steps": args.steps, "batch": args.batch, "lr": args.lr, "restart": args.restart,
              "dead_after": args.dead_after, "seconds": time.perf_counter() - start,
              "zero_flow_l1": disp.abs().mean().item(), "scales": []}  # fmt: skip
    with torch.no_grad():
        for scale in range(4):
            vq = mcc.quantizer(mcc.flow_encoder(disp).permute(0, 2, 3, 1), scale)
            rec = torch.nn.functional.l1_loss(mcc.flow_decoder(vq.quantized.permute(0, 3, 1, 2)), disp).item()
            used = int((vq.histogram > 0).sum())
            result["scales"].append({"scale": scale, "slice": list(mcc.quantizer.slice(scale)), "l1": rec,
                                     "perplexity": vq.perplexity.item(), "codes_used": used})  # fmt: skip
    result["log"] = log
    return result


# ---------------------------------------------------------------------------------------------- ablation


def _train(cfg, run_dir: Path) -> Path:
    from ostnet.training.trainer import Trainer

    final = run_dir / "final.safetensors"
    if final.exists():
        return final
    trainer = Trainer(cfg, run_dir, device="cpu", show_progress=False, resume=(run_dir / "checkpoints").exists())
    return trainer.fit()


def _final_scalars(run_dir: Path, prefix: str = "codes/") -> dict[str, float]:
    """Mean of the last 5 logged values of each TensorBoard scalar whose tag starts with ``prefix``."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run_dir / "tensorboard"))
    acc.Reload()
    out = {}
    for tag in acc.Tags()["scalars"]:
        if tag.startswith(prefix):
            events = acc.Scalars(tag)[-5:]
            out[tag] = statistics.fmean(e.value for e in events)
    return out


def _evaluate(data: Path, checkpoints: list[Path], labels: list[str], protocol: str, out: Path, pairs: int) -> dict:
    from ostnet.evaluation.evaluate import EvalConfig, run_evaluation
    from ostnet.evaluation.protocols import SamplingOptions

    links = out / "checkpoints"
    links.mkdir(parents=True, exist_ok=True)
    named = []
    for ckpt, label in zip(checkpoints, labels, strict=True):  # label = file stem in the evaluation's tables
        link = links / f"{label}.safetensors"
        if not link.exists():
            link.symlink_to(ckpt.resolve())
        named.append(str(link))
    cfg = EvalConfig(data=str(data), protocol=protocol, output=str(out / protocol), checkpoints=tuple(named),
                     sampling=SamplingOptions(num_pairs=pairs, seed=0), batch_size=16, device="cpu",
                     face_metrics=False, num_samples=4, progress=False)  # fmt: skip
    return {s.label: s.means for s in run_evaluation(cfg)}


def ablation_config(name: str, data: Path, seed: int, steps: int, batch: int):
    from ostnet import config as C
    from ostnet.demo.training import demo_overrides

    overrides = [*demo_overrides(), *VARIANTS[name], *EXTRA.get(name, []), f"data.root={json.dumps(str(data))}",
                 f"data.batch_size={batch}", "data.num_workers=0", f"seed={seed}", f"max_steps={steps}",
                 "log_every=10", "image_every=1000000000", "checkpoint_every=100"]  # fmt: skip
    return C.apply_overrides(C.train_preset(PRESET[name]), overrides)


def run_ablation(args: argparse.Namespace) -> dict:
    from ostnet.data.synthetic import write_synthetic_dataset
    from ostnet.demo.run import CLIPS

    out = Path(args.output)
    data = out / "data"
    if not (data / "synthetic.json").exists():
        write_synthetic_dataset(data, num_identities=16, test_identities=4, videos_per_identity=2, num_frames=40,
                                size=64, scale_range=(0.55, 1.0), seed=0, motion=CLIPS.motion, camera=CLIPS.camera,
                                texture=CLIPS.texture)  # fmt: skip
    names = args.variants or list(VARIANTS)
    runs: dict[str, list[tuple[int, Path]]] = {n: [] for n in names}
    for seed in args.seeds:
        for name in names:
            run_dir = out / "runs" / f"{name}-seed{seed}"
            t0 = time.perf_counter()
            final = _train(ablation_config(name, data, seed, args.steps, args.batch), run_dir)
            print(f"{name} seed {seed}: {time.perf_counter() - t0:.0f} s", flush=True)
            runs[name].append((seed, final))
    if args.train_only:
        return {"trained": [str(final) for name in names for _, final in runs[name]]}
    results: dict = {"steps": args.steps, "batch": args.batch, "seeds": args.seeds, "pairs": args.pairs, "models": {}}
    for protocol in args.protocols:
        ckpts = [final for name in names for _, final in runs[name]]
        labels = [f"{name.replace('+', 'p')}-s{seed}" for name in names for seed, _ in runs[name]]
        means = _evaluate(data, ckpts, labels, protocol, out / "evaluation", args.pairs)
        for name in names:
            entry = results["models"].setdefault(name, {})
            per_seed = [means[f"{name.replace('+', 'p')}-s{seed}"] for seed, _ in runs[name]]
            for metric in ("ssim", "l1", "psnr"):
                values = [m[metric] for m in per_seed if m.get(metric) is not None]
                entry[f"{protocol}/{metric}"] = {"values": values, "mean_ci": interval(values) if values else None}
    for name in names:
        codes = [_final_scalars(final.parent) for _, final in runs[name]]
        tags = sorted(set().union(*codes))
        results["models"][name]["codes"] = {t: interval([c[t] for c in codes if t in c]) for t in tags}
    return results


def ablation_table(results: dict) -> str:
    head = "| model | same-scale SSIM | same-scale L1 | different-scale SSIM | different-scale L1 |"
    lines = [head + " motion perplexity (s0..s3) | appearance perplexity (s0..s3) |", "|---|---|---|---|---|---|---|"]
    for name, entry in results["models"].items():
        cells = []
        for key in ("same-scale/ssim", "same-scale/l1", "different-scale/ssim", "different-scale/l1"):
            mean, half = entry[key]["mean_ci"]
            cells.append(f"{mean:.4f} ± {half:.4f}")
        for kind in ("motion", "appearance"):
            ppl = [entry["codes"].get(f"codes/{kind}_perplexity_s{s}") for s in range(4)]
            cells.append(" / ".join(f"{p[0]:.1f}" for p in ppl if p) or "–")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


# -------------------------------------------------------------------------------------------------- real


def run_real(args: argparse.Namespace) -> dict:
    from ostnet import config as C

    out = Path(args.output)
    data = Path(args.prepared)
    results: dict = {"steps": args.steps, "pairs": args.pairs, "models": {}}
    finals, labels = [], []
    for label, preset in (("tiny", "tiny"), ("tiny-codebooks", "tiny-codebooks")):
        from ostnet.demo.training import demo_overrides

        overrides = [*demo_overrides(), f"data.root={json.dumps(str(data))}", f"data.batch_size={args.batch}",
                     "data.num_workers=0", "seed=0", f"max_steps={args.steps}", "log_every=10",
                     "image_every=1000000000", "checkpoint_every=100"]  # fmt: skip
        cfg = C.apply_overrides(C.train_preset(preset), overrides)
        t0 = time.perf_counter()
        finals.append(_train(cfg, out / "runs" / label))
        labels.append(label)
        print(f"{label}: {time.perf_counter() - t0:.0f} s", flush=True)
    for protocol in ("same-scale", "different-scale"):
        means = _evaluate(data, finals, labels, protocol, out / "evaluation", args.pairs)
        for label in labels:
            results["models"].setdefault(label, {})[protocol] = means[label]
    for label, final in zip(labels, finals, strict=True):
        results["models"][label]["codes"] = _final_scalars(final.parent)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="what", required=True)
    p = sub.add_parser("sanity")
    p.add_argument("--output", required=True)
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--restart", action="store_true", help="restart dead codes (CodebookConfig.restart_dead_codes)")
    p.add_argument("--dead-after", type=int, default=100, help="steps without use after which a code is dead")
    p = sub.add_parser("ablation")
    p.add_argument("--output", required=True)
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--variants", nargs="+", choices=list(VARIANTS))
    p.add_argument("--pairs", type=int, default=48)
    p.add_argument("--train-only", action="store_true", help="train (e.g. one seed per process), do not evaluate")
    p.add_argument("--protocols", nargs="+", default=["same-scale", "different-scale"])
    p = sub.add_parser("real")
    p.add_argument("--output", required=True)
    p.add_argument("--prepared", required=True, help="the clips prepared by `ostnet prepare --split-by-time 0.8`")
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--pairs", type=int, default=48)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    result = {"sanity": run_sanity, "ablation": run_ablation, "real": run_real}[args.what](args)
    (out / "results.json").write_text(json.dumps(result, indent=2))
    if args.what == "ablation" and not args.train_only and len(args.protocols) == 2:
        (out / "table.md").write_text(ablation_table(result) + "\n")
        print(ablation_table(result))
    else:
        print(json.dumps({k: v for k, v in result.items() if k != "log"}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
