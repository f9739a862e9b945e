"""Golden outputs: the tiny model of every family computes what it computed when its golden file was made
(``ostnet.models.goldens``; regenerate with ``python scripts/make_goldens.py <case>`` only for an intended
change)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from ostnet import config as C
from ostnet.models.goldens import (
    ATOL,
    GAIN,
    GOLDEN_CASES,
    GOLDEN_DIR,
    RTOL,
    SEED,
    _uniform,
    golden_case,
    golden_inputs,
    golden_model,
    golden_outputs,
)

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("case", GOLDEN_CASES, ids=lambda case: case.name)
def test_tiny_model_matches_its_golden_outputs(case):
    path = ROOT / GOLDEN_DIR / f"{case.name}.safetensors"
    assert path.is_file(), f"{path} is missing: run `{case.command}` and commit it"
    with safe_open(str(path), framework="pt") as handle:
        meta = handle.metadata()
    assert meta["case"] == case.name and meta["seed"] == str(case.seed) and meta["command"] == case.command
    stored_cfg = C.from_dict(C.ModelConfig, json.loads(meta["model_config"]))
    assert stored_cfg == case.config(), f"{case.name}: its config changed since the golden was made"
    assert path.stat().st_size < 16_000  # stored small
    stored, fresh = load_file(path), golden_outputs(case.config(), case.seed)
    assert stored.keys() == fresh.keys()
    for name in stored:
        torch.testing.assert_close(fresh[name], stored[name], atol=ATOL, rtol=RTOL, msg=f"{case.name}: {name}")


def test_golden_weights_depend_on_names_and_a_changed_weight_is_noticed():
    """A randomly initialised parameter is drawn from its own name-seeded generator (so the order modules are
    built in does not matter), and the check can fail: scaling one weight by 5 % moves the outputs far past
    the tolerance."""
    cfg = golden_case("tiny").config()
    model = golden_model(cfg)
    weight = model.kp_detector.kp.weight
    expected = GAIN * weight[0].numel() ** -0.5 * _uniform(weight.shape, SEED, "kp_detector.kp.weight")
    assert torch.equal(weight, expected)
    source, driving = golden_inputs(cfg.image_size)
    with torch.no_grad():
        before = model(source, driving).prediction
        weight.mul_(1.05)
        after = model(source, driving).prediction
    assert (after - before).abs().max() > 10 * ATOL
