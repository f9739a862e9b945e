"""``ostnet web``: serve a page where people upload a portrait and a driving video and get the animation.

Example::

    ostnet web --checkpoint ostnet-vox-256.safetensors      # then open http://127.0.0.1:7860/
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path

from ostnet.errors import OstnetError

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "web",
        help="serve a web page for animating portraits",
        description="Load a checkpoint once and serve a page where a portrait and a driving video are uploaded "
        "and the animated video is played and downloaded. One video at a time; uploads and results live in a "
        "temporary folder deleted when the server stops (Ctrl-C).",
    )
    p.add_argument("--checkpoint", metavar="CKPT", type=Path, required=True, help="ostnet .safetensors checkpoint")
    p.add_argument("--device", choices=("cpu", "cuda", "mps"), default=None, help="default: best available")
    p.add_argument("--dtype", choices=("fp32", "bf16", "fp16"), default="fp32", help="inference precision (autocast)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1, this computer only)")
    p.add_argument("--port", type=int, default=7860, help="port (default: 7860; 0 = any free port)")
    p.add_argument(
        "--max-upload-mb", type=float, default=200.0, metavar="MB", help="largest upload, both files (default: 200)"
    )
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
    from ostnet.checkpoint import load_checkpoint
    from ostnet.inference.animator import Animator
    from ostnet.web.server import make_server, serve_forever

    if not 0 <= args.port <= 65535:
        raise OstnetError(f"--port must be between 0 and 65535, got {args.port}")
    if not args.max_upload_mb > 0:
        raise OstnetError(f"--max-upload-mb must be positive, got {args.max_upload_mb}")
    if args.device == "mps":
        import torch

        if not torch.backends.mps.is_available():
            raise OstnetError("--device mps was asked for but MPS is not available")
    model = load_checkpoint(args.checkpoint)
    animator = Animator(model, device=args.device, dtype=args.dtype)
    server = make_server(animator, args.host, args.port, max_upload_mb=args.max_upload_mb, log=_log)
    _log(f"model {model.cfg.name!r} on {animator.device} ({args.dtype}); temporary files in {server.app.folder}")
    if args.host not in LOOPBACK:
        _log(f"listening on {args.host}: anyone who can reach this computer can use the page")
    print(f"ostnet web: open {server.url} in a browser (Ctrl-C to stop)", flush=True)
    _stop_on_sigterm()
    try:
        serve_forever(server)
    except KeyboardInterrupt:
        _log("stopped; uploads and results deleted")
    return 0
