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


def register(sub: argparse._SubParsersAction) -> None:
    from ostnet.web.limits import WebLimits

    p = sub.add_parser(
        "web",
        help="serve a web app (Gradio) for animating portraits",
        description="Load the checkpoints once and serve a Gradio app: a portrait and a driving video (upload or "
        "webcam) in, the animated video with its audio out, every `ostnet animate` option, a live webcam tab, "
        "and Gradio's API. Uploads and results live in a temporary folder; a browser session's files are "
        "deleted when it ends, all of them when the server stops (Ctrl-C).",
    )
    p.add_argument(
        "--checkpoint", metavar="CKPT", type=Path, action="append", required=True, help="checkpoint (repeatable)"
    )
    p.add_argument("--device", choices=("cpu", "cuda", "mps"), default=None, help="default: best available")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1, this computer only)")
    p.add_argument("--port", type=int, default=7860, help="port (default: 7860; 0 = the first free one from 7860)")
    p.add_argument("--auth", metavar="USER:PASS", help="ask for this user name and password")
    p.add_argument("--share", action="store_true", help="also open a public share link (off unless asked)")
    WebLimits.add_arguments(p.add_argument_group("limits"))
    p.set_defaults(handler=run_web)


def _log(line: str) -> None:
    print(f"ostnet web: {line}", file=sys.stderr, flush=True)


def _stop_on_sigterm() -> None:
    """``kill`` (SIGTERM) stops the server like Ctrl-C does, so its temporary folder is deleted."""

    def stop(signum, frame) -> None:
        raise KeyboardInterrupt

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, stop)


def run_web(args: argparse.Namespace) -> int:
    try:
        import gradio  # noqa: F401
    except ImportError:
        raise OstnetError('the web app needs the web extra: pip install "ostnet[web]"') from None
    from ostnet.web.jobs import load_models
    from ostnet.web.limits import WebLimits
    from ostnet.web.server import is_loopback, parse_auth, serve

    if not 0 <= args.port <= 65535:
        raise OstnetError(f"--port must be between 0 and 65535, got {args.port}")
    auth = parse_auth(args.auth)
    limits = WebLimits.from_args(args)
    models = load_models(args.checkpoint, args.device, limits.per_model)
    for served in models.values():
        _log(f"model {served.label!r}: {served.description}, on {served.device}")
    if not is_loopback(args.host.strip("[]")):
        _log(
            f"warning: listening on {args.host}: anyone who can reach this computer can use the app"
            + ("" if auth else " (consider --auth USER:PASS)")
        )
    if args.share:
        _log("warning: --share opens a public link through Gradio's share servers")
    _stop_on_sigterm()
    try:
        serve(models, limits, args.host, args.port, auth=auth, share=args.share)
    except KeyboardInterrupt:
        _log("stopped; uploads and results deleted")
    return 0
