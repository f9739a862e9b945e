"""``ostnet web``: serve a Gradio app where people animate a portrait with a driving video or their webcam.

Needs the web extra (``pip install "ostnet[web]"``). Example::

    ostnet web --checkpoint ostnet-vox-256.safetensors      # then open http://127.0.0.1:7860/
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path

from ostnet.errors import OstnetError
from ostnet.options import Device, add_command, declared, device_option, nested, option
from ostnet.web.limits import WebLimits


@declared
class WebOptions:
    """The ``ostnet web`` options (declared once; docs/cli.md)."""

    checkpoints: tuple[Path, ...] = option(
        (), flag="--checkpoint", required=True, metavar="CKPT", help="checkpoint to serve (repeatable)"
    )
    device: Device = device_option()
    host: str = option("127.0.0.1", help="address to listen on (127.0.0.1: this computer only)")
    port: int = option(7860, help="port (0 = the first free one from 7860)", bounds=(0, 65535))
    auth: str | None = option(None, metavar="USER:PASS", help="ask for this user name and password")
    share: bool = option(False, help="also open a public share link (off unless asked)")
    limits: WebLimits = nested(WebLimits)


OPTIONS = WebOptions


def register(sub: argparse._SubParsersAction) -> None:
    add_command(
        sub,
        OPTIONS,
        run_web,
        "web",
        help="serve a web app (Gradio) for animating portraits",
        description="Load the checkpoints once and serve a Gradio app: a portrait and a driving video (upload or "
        "webcam) in, the animated video with its audio out, every `ostnet animate` option, a live webcam tab, "
        "and Gradio's API. Uploads and results live in a temporary folder; a browser session's files are "
        "deleted when it ends, all of them when the server stops (Ctrl-C).",
    )


def _log(line: str) -> None:
    print(f"ostnet web: {line}", file=sys.stderr, flush=True)


def _stop_on_sigterm() -> None:
    """``kill`` (SIGTERM) stops the server like Ctrl-C does, so its temporary folder is deleted."""

    def stop(signum, frame) -> None:
        raise KeyboardInterrupt

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, stop)


def run_web(options: WebOptions) -> int:
    try:
        import gradio  # noqa: F401
    except ImportError:
        raise OstnetError('the web app needs the web extra: pip install "ostnet[web]"') from None
    from ostnet.web.jobs import load_models
    from ostnet.web.server import is_loopback, parse_auth, serve

    auth = parse_auth(options.auth)
    models = load_models(list(options.checkpoints), options.device, options.limits.per_model)
    for served in models.values():
        _log(f"model {served.label!r}: {served.description}, on {served.device}")
    if not is_loopback(options.host.strip("[]")):
        _log(
            f"warning: listening on {options.host}: anyone who can reach this computer can use the app"
            + ("" if auth else " (consider --auth USER:PASS)")
        )
    if options.share:
        _log("warning: --share opens a public link through Gradio's share servers")
    _stop_on_sigterm()
    try:
        serve(models, options.limits, options.host, options.port, auth=auth, share=options.share)
    except KeyboardInterrupt:
        _log("stopped; uploads and results deleted")
    return 0
