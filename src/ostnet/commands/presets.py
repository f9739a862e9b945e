"""``ostnet presets``: list the named model presets with their sizes."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("presets", help="list the model presets and their sizes")
    p.add_argument("--json", action="store_true", help="print the full configs as JSON")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from ostnet.config import MODEL_PRESETS, to_json
    from ostnet.models.ostnet import build_model, count_parameters

    if args.json:
        print("[" + ",\n".join(to_json(factory()) for factory in MODEL_PRESETS.values()) + "]")
        return 0
    print(f"{'preset':<16} {'params':>12} {'size':>5} {'K':>3} {'ST':>3} {'SE':>3} generator")
    for name in MODEL_PRESETS:
        model = build_model(name)
        c = model.cfg
        print(
            f"{name:<16} {count_parameters(model):>12,} {c.image_size:>5} {c.keypoints.num_kp:>3} "
            f"{'yes' if c.scale_transform.enabled else 'no':>3} {'yes' if c.generator.scale_embedding else 'no':>3} "
            f"{c.generator.kind}"
        )
    return 0
