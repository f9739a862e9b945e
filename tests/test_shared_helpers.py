"""The one-of-each helpers: the precision table, the driving frame as fed, and the animation's summary line."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
import torch

from ostnet.augment import driving_as_fed, expression_preserved_augmentation
from ostnet.errors import OstnetError
from ostnet.inference.pipeline import AnimateSummary, StageTimes
from ostnet.models.precision import DTYPES, PRECISIONS, autocast, dtype_of, precision_of


def test_precision_table_round_trips_and_refuses_unknown_names():
    assert PRECISIONS == ("fp32", "bf16", "fp16")
    for name in PRECISIONS:
        assert precision_of(dtype_of(name)) == name and DTYPES[name] == dtype_of(name)
    with pytest.raises(OstnetError, match="unknown precision 'bf17'; choose one of fp32, bf16, fp16"):
        dtype_of("bf17")
    assert isinstance(autocast("cpu", "fp32"), contextlib.nullcontext)
    with autocast("cpu", "bf16"):
        product = torch.ones(4, 4) @ torch.ones(4, 4)
    assert product.dtype == torch.bfloat16


def test_driving_as_fed_is_the_listed_augmentation_clamped():
    frames = torch.rand(2, 3, 16, 16)
    assert driving_as_fed(frames, None, None) is frames
    alpha, beta = torch.tensor([0.8, 1.2]), torch.tensor([1.1, 0.9])
    expected = expression_preserved_augmentation(frames, alpha=alpha, beta=beta).image.clamp(0, 1)
    torch.testing.assert_close(driving_as_fed(frames, alpha, beta), expected, rtol=0, atol=0)
    assert not torch.equal(expected, frames)


def test_summary_line_for_people_is_the_command_line_without_paths():
    summary = AnimateSummary(
        output=Path("/tmp/out.mp4"), frames=10, fps=25.0, audio_kept=False, mode="anchor-free", seconds=2.0,
        times=StageTimes(0.1, 0.2, 1.0, 0.3), frames_dir=Path("/tmp/frames"),
    )  # fmt: skip
    short, full = summary.line(where=False), summary.line()
    assert short == "10 frames at 25 fps (0.4 s), no audio, mode anchor-free; took 2.0 s"
    assert full == f"{short} (5.0 frames/s) -> /tmp/out.mp4 and /tmp/frames/"
