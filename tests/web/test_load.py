"""Load (slow): 8 concurrent clients over loopback against a server whose queue holds 2 jobs, through
``benchmarks/web_load.py`` (the figures in docs/benchmarks.md come from the same code)."""

from __future__ import annotations

import importlib.util
import threading
from pathlib import Path

import pytest

from ostnet.web.limits import WebLimits

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_thread")]
SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "web_load.py"


def _run_load():
    spec = importlib.util.spec_from_file_location("web_load", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.run_load


def test_eight_clients_finish_or_are_refused_none_lost_or_mixed_up(
    tiny_checkpoint, portrait_path, clip_path, gradio_client_cls
):
    from ostnet.web.jobs import load_models
    from ostnet.web.server import serve

    served = serve(load_models([tiny_checkpoint], "cpu", 1), WebLimits(max_queue=2), "127.0.0.1", None, block=False)
    slot = served.app.models["tiny"].slots
    slot.acquire()  # the model is busy for the first 20 s, so that all 8 arrive while the queue is full
    threading.Timer(20, slot.release).start()
    try:
        report = _run_load()(served, portrait_path, clip_path, clients=8)
    finally:
        served.close()
    print(report)
    assert report["finished"] + report["queue_full"] == 8 and not report["other_errors"], report
    assert report["finished"] >= 2 and report["queue_full"] >= 1 and report["mixed_up"] == 0, report
    assert report["page_median_ms"] < 2000 and report["page_max_ms"] < 15000, report  # the page stayed responsive
    assert report["files_left"] == [], report
