"""``ostnet demo``: the whole method on a fresh machine, end to end, in about ten minutes on two CPU cores.

* ``run``: ``run_demo(DemoConfig) -> DemoResult``: synthetic data -> train the Baseline and OSTNet under one
  time budget -> different-scale evaluation -> animation -> ``report.html``. It reuses the project's own
  synthetic data, Trainer, evaluation harness and Animator; nothing here re-implements them.
* ``training``: the two TrainConfigs, the budget progress bar, the loss plot.
* ``animation``: example pairs, the ST-only score, the "no motion" reference, the animated comparison.
* ``report``: the report's inputs (typed), the verdict and the self-contained HTML.
* ``template``: the HTML page and its style sheet.

Names are imported lazily, so ``import ostnet.demo`` loads neither torch nor matplotlib.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ostnet._lazy import lazy_getattr

if TYPE_CHECKING:  # the lazy names below, for editors and type checkers
    from ostnet.demo.report import render_report
    from ostnet.demo.run import FULL_PLAN, QUICK_PLAN, DemoConfig, DemoPlan, DemoResult, run_demo

_LAZY = {
    "DemoConfig": "ostnet.demo.run",
    "DemoPlan": "ostnet.demo.run",
    "DemoResult": "ostnet.demo.run",
    "run_demo": "ostnet.demo.run",
    "FULL_PLAN": "ostnet.demo.run",
    "QUICK_PLAN": "ostnet.demo.run",
    "render_report": "ostnet.demo.report",
}

__all__ = [
    "DemoConfig",
    "DemoPlan",
    "DemoResult",
    "FULL_PLAN",
    "QUICK_PLAN",
    "render_report",
    "run_demo",
]

__getattr__ = lazy_getattr(__name__, _LAZY)
