"""Does the scale transformation learn its job? (issue: "the ST module learns its job")

On held-out pairs of a dataset (synthetic heads by default), the driving frame goes through the paper's
expression-preserved augmentation (Sec. 3.4) and the original frame is the ground truth. For an ST checkpoint
this prints how far the driving frame and the rectified driving frame I_D^ (Eq. 3) are from the ground truth:
after training, the rectified frame should be closer.

Usage: python scripts/st_check.py CHECKPOINT DATASET [--pairs 256] [--split test] [--seed 0]
"""

from __future__ import annotations

import argparse

import torch

from ostnet import load_checkpoint
from ostnet.data.dataset import PairDataset
from ostnet.evaluation.metrics import l1, ssim


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint")
    parser.add_argument("dataset")
    parser.add_argument("--pairs", type=int, default=256)
    parser.add_argument("--split", default="test")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    model = load_checkpoint(args.checkpoint)
    if not model.has_scale_transform:
        raise SystemExit(f"{args.checkpoint}: model {model.cfg.name!r} has no scale transformation")
    data = PairDataset(
        args.dataset,
        args.split,
        image_size=model.image_size,
        id_sampling=False,
        augment=True,
        flip=False,
        time_flip=False,
        color_jitter=False,
        seed=args.seed,
    )
    rows = {"driving": [], "rectified": []}
    with torch.inference_mode():
        for start in range(0, args.pairs, 16):
            items = [data[i % len(data)] for i in range(start, min(start + 16, args.pairs))]
            source = torch.stack([x.source for x in items])
            driving = torch.stack([x.driving for x in items])
            target = torch.stack([x.target for x in items])
            rectified = model(source, driving).rectified.clamp(0, 1)
            for name, image in (("driving", driving), ("rectified", rectified)):
                rows[name].append(torch.stack([l1(image, target), ssim(image, target)], dim=1))
    print(f"{args.checkpoint} on {args.dataset}/{args.split}, {args.pairs} augmented pairs (delta 0.3)")
    print("| image vs ground truth | L1 | SSIM |\n|---|---|---|")
    for name, values in rows.items():
        mean = torch.cat(values).mean(0)
        print(f"| {name} | {mean[0]:.4f} | {mean[1]:.3f} |")


if __name__ == "__main__":
    main()
