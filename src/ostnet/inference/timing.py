"""Wall-clock time per stage of an animation run (``AnimateSummary.times``, ``benchmarks/animate_benchmark.py``)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

STAGES = ("decode", "detect_crop", "model", "encode")


@dataclass(frozen=True)
class StageTimes:
    """Wall-clock seconds spent per stage (``best-frame``'s scan pass included)."""

    decode: float
    detect_crop: float
    model: float
    encode: float


class Stopwatch:
    """Adds up seconds per stage: ``with watch("model"): ...``."""

    def __init__(self) -> None:
        self.seconds = dict.fromkeys(STAGES, 0.0)

    @contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[stage] += time.perf_counter() - start

    def times(self) -> StageTimes:
        return StageTimes(**self.seconds)
