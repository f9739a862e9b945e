"""``ostnet presets``: list the named model presets with their sizes."""

from __future__ import annotations

import argparse

from ostnet.options import add_command, declared, option


@declared
class PresetsOptions:
    """The ``ostnet presets`` options (declared once; docs/cli.md)."""

    json: bool = option(False, help="print the full configs as JSON")


OPTIONS = PresetsOptions


def register(sub: argparse._SubParsersAction) -> None:
    add_command(sub, OPTIONS, run, "presets", help="list the model presets and their sizes")


def run(options: PresetsOptions) -> int:
    from ostnet.config import MODEL_PRESETS, to_json
    from ostnet.models.ostnet import build_model, count_parameters

    if options.json:
        print("[" + ",\n".join(to_json(factory()) for factory in MODEL_PRESETS.values()) + "]")
        return 0
    width = max(len(name) for name in MODEL_PRESETS)
    print(f"{'preset':<{width}} {'params':>12} {'size':>5} {'K':>3} {'ST':>3} {'SE':>3} {'codebooks':<9} generator")
    for name in MODEL_PRESETS:
        model = build_model(name)
        c = model.cfg
        cb = c.codebooks
        codes = "+".join(part for part, on in (("MCC", cb.motion), ("ACC", cb.appearance)) if on) or "no"
        print(
            f"{name:<{width}} {count_parameters(model):>12,} {c.image_size:>5} {c.keypoints.num_kp:>3} "
            f"{'yes' if c.scale_transform.enabled else 'no':>3} {'yes' if c.generator.scale_embedding else 'no':>3} "
            f"{codes:<9} {c.generator.kind}"
        )
    return 0
