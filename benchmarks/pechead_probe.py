"""Why a PECHead checkpoint cannot open a mouth or close an eye: E's landmark motion and the decoder's share.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/pechead_probe.py --checkpoint NAME=RUN/final.safetensors ...

On unseen synthetic heads (``controllability.test_heads``, exact R), per checkpoint:

* ``E lips`` / ``E lids``: mean distance (frame units, [-1, 1]) E moves the four lip landmarks for mouth_open
  0 -> 1 and the four lid landmarks for eye_open 1 -> 0.2, beside the true motion of the drawn landmarks;
* ``E fit``: mean |E's landmarks - true landmarks| on the source itself (E posed with the source's own R);
* with ``pechead.output_blend``, on the pair (mouth closed, eyes open) -> (mouth open, eyes 0.2): at the pixels
  that change (RGB sum > 0.15), the decoder's weight (``blend_decoder = mix``) or its |residual|
  (``residual``), and the L1 of the output and of the source there.
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch
import torch.nn.functional as F
from controllability import _expr, _image, test_heads

from ostnet.checkpoint import load_checkpoint
from ostnet.config import model_preset
from ostnet.data.synthetic import head_coefficients
from ostnet.face.coefficients import LANDMARK_NAMES
from ostnet.models.ostnet import build_model

LIPS = [LANDMARK_NAMES.index(n) for n in ("lip_upper", "lip_lower", "lip_inner_upper", "lip_inner_lower")]
LIDS = [i for i, n in enumerate(LANDMARK_NAMES) if n.startswith("lid_")]


def probe(model: torch.nn.Module, heads: int, size: int) -> dict[str, float]:
    generator = model.generator
    seen: dict[str, torch.Tensor] = {}
    if generator.blend is not None:
        blend = generator._blend

        def spy(feature, image, flows, painted):
            if generator.blend_decoder == "mix":
                seen["decoder"] = F.softmax(generator.blend(feature), dim=1)[:, 2:]
            else:
                seen["decoder"] = (2 * painted - 1).abs().mean(dim=1, keepdim=True)
            return blend(feature, image, flows, painted)

        generator._blend = spy
    rows = []
    for head in test_heads(heads, 0):
        states = [_expr(head, mouth_open=0.0, eye_open=1.0), _expr(head, mouth_open=1.0, eye_open=1.0),
                  _expr(head, mouth_open=0.0, eye_open=0.2), _expr(head, mouth_open=1.0, eye_open=0.2)]  # fmt: skip
        known = torch.stack([torch.from_numpy(head_coefficients(q).flat()) for q in states]).float()
        truth = np.stack([head_coefficients(q).landmarks for q in states])
        source, driving = _image(states[0], size, 0.25), _image(states[3], size, 0.25)
        with torch.no_grad():
            landmarks = model.pose_keypoints(model.detect(source, known[:1]), known).landmarks.numpy()
            out = model(source, driving, coefficients=known[[0, 3]][None]).prediction
        moved = lambda a, i, j, idx: float(np.linalg.norm(a[i] - a[j], axis=-1)[idx].mean())  # noqa: E731
        row = [moved(landmarks, 1, 0, LIPS), moved(truth, 1, 0, LIPS), moved(landmarks, 2, 0, LIDS),
               moved(truth, 2, 0, LIDS), float(np.abs(landmarks[0] - truth[0]).mean())]  # fmt: skip
        changed = ((driving - source).abs().sum(dim=1, keepdim=True) > 0.15).expand_as(driving)
        row += [float((out - driving).abs()[changed].mean()), float((source - driving).abs()[changed].mean())]
        if "decoder" in seen:
            row.append(float(seen["decoder"].expand_as(driving)[changed].mean()))
        rows.append(row)
    mean = np.mean(rows, axis=0)
    names = ["E lips", "true lips", "E lids", "true lids", "E fit", "L1 output at change", "L1 source at change"]
    if "decoder" in seen:
        names.append(f"decoder {'weight' if generator.blend_decoder == 'mix' else '|residual|'} at change")
    return {name: round(float(v), 4) for name, v in zip(names, mean, strict=True)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--checkpoint", action="append", required=True, help="NAME=PATH or NAME=preset:PRESET (untrained), repeatable"
    )
    parser.add_argument("--heads", type=int, default=16)
    args = parser.parse_args()
    torch.set_num_threads(1)
    results = {}
    for item in args.checkpoint:
        name, _, path = item.partition("=")
        if path.startswith("preset:"):
            torch.manual_seed(0)
            model = build_model(model_preset(path.removeprefix("preset:"))).eval()
        else:
            model = load_checkpoint(path).eval()
        results[name] = probe(model, args.heads, model.cfg.image_size)
        print(name, json.dumps(results[name]))


if __name__ == "__main__":
    main()
