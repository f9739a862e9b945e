"""``ostnet live``: animate a portrait with a camera, a stream or a video file, as the frames arrive.

Example::

    ostnet live --source portrait.jpg --checkpoint ostnet-vox-256.safetensors --camera 0 --output live.mp4

Frames are read at the source's own pace (a file at real-time pace) and the newest one is animated; frames that
arrive while the model is busy are dropped. The result is shown in a window when a display exists (OpenCV) and
written to ``--output`` if given. Latency and achieved fps are printed about once a second. Ctrl-C (SIGINT) stops
cleanly: the output file keeps everything written so far. A camera that cannot be opened or disappears
mid-stream is a one-line error (exit 2), after the output is closed with what was written.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import sys
import threading
import time
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "live",
        help="animate a portrait live from a camera, a stream URL or a video file",
        description="Animate a portrait with a camera (index or /dev/videoN), any stream PyAV opens, or a video "
        "file played at real-time pace. Frames that arrive while the model is busy are dropped.",
    )
    p.add_argument("--source", metavar="IMAGE", type=Path, required=True, help="portrait image")
    p.add_argument("--checkpoint", metavar="CKPT", type=Path, required=True, help="ostnet .safetensors checkpoint")
    p.add_argument("--camera", metavar="DEVICE|URL|FILE", required=True, help="0, /dev/video0, rtsp://..., clip.mp4")
    p.add_argument("--output", metavar="OUT", type=Path, help="also write the animated frames to this video")
    p.add_argument("--no-window", action="store_true", help="never open a window (default: one when a display exists)")
    p.add_argument("--no-crop", action="store_true", help="the inputs are already face crops: no face detection")
    p.add_argument(
        "--mode", choices=("auto", "anchor-free", "relative", "absolute"), default="auto", help="motion mode"
    )
    p.add_argument("--device", choices=("cpu", "cuda", "mps"), default=None, help="default: best available")
    p.add_argument("--dtype", choices=("fp32", "bf16", "fp16"), default="fp32", help="inference precision")
    p.add_argument("--max-seconds", type=float, metavar="S", help="stop after S seconds")
    p.set_defaults(handler=run_live)


def _window(enabled: bool):
    """``show(frame)`` in an OpenCV window when a display exists and ``enabled``, else None."""
    if not enabled or (sys.platform.startswith("linux") and not os.environ.get("DISPLAY")):
        return None
    import cv2

    def show(frame) -> None:
        cv2.imshow("ostnet live", frame[:, :, ::-1])
        if cv2.waitKey(1) & 0xFF in (27, ord("q")):
            raise KeyboardInterrupt

    return show


def run_live(args: argparse.Namespace) -> int:
    from ostnet.checkpoint import load_checkpoint
    from ostnet.errors import OstnetError
    from ostnet.inference.animator import Animator
    from ostnet.inference.stream import StreamStep
    from ostnet.io.camera import LiveSource
    from ostnet.io.image import load_image
    from ostnet.io.paths import check_outputs

    if args.max_seconds is not None and args.max_seconds <= 0:
        raise OstnetError(f"--max-seconds must be positive, got {args.max_seconds}")
    camera_file = args.camera if os.path.exists(args.camera) else None  # a clip standing in for a camera
    check_outputs({"--source": args.source, "--checkpoint": args.checkpoint, "--camera": camera_file},
                  {"--output": args.output})  # fmt: skip
    camera = LiveSource(args.camera)  # opened first: a missing camera fails before the model loads
    try:
        animator = Animator(load_checkpoint(args.checkpoint), device=args.device, dtype=args.dtype, mode=args.mode)
        stream = StreamStep(animator, crop=not args.no_crop)
        stream.set_source(load_image(args.source))
    except BaseException:
        camera.close()
        raise
    show = _window(not args.no_window)
    stop = threading.Event()
    previous = signal.signal(signal.SIGINT, lambda signum, frame: stop.set())  # Ctrl-C ends the session cleanly
    try:
        return _loop(args, camera, stream, show, stop)
    finally:
        signal.signal(signal.SIGINT, previous)


def _loop(args: argparse.Namespace, camera, stream, show, stop: threading.Event) -> int:
    from ostnet.errors import OstnetError
    from ostnet.io.video import VideoWriter

    writer = VideoWriter(args.output, camera.fps) if args.output is not None else None
    delays: list[float] = []
    error: OstnetError | None = None
    start = last_report = time.perf_counter()
    try:
        while not stop.is_set() and (args.max_seconds is None or time.perf_counter() - start < args.max_seconds):
            item = camera.get()
            if item is None:
                break
            frame, arrived = item
            result = stream.step(frame)
            delays.append(time.perf_counter() - arrived)
            if writer is not None:
                writer.write(result)
            if show is not None:
                show(result)
            if time.perf_counter() - last_report >= 1.0:
                last_report = time.perf_counter()
                print(f"live: {_line(stream, camera, delays)}", file=sys.stderr, flush=True)
    except KeyboardInterrupt:
        pass  # the window's q / Esc: keep what was written
    except OstnetError as exc:
        error = exc
    finally:
        camera.close()
        stream.close()
        if writer is not None and writer.frames_written:
            writer.close()
        elif writer is not None:
            writer.abort()
    saved = f" -> {args.output}" if writer is not None and writer.frames_written else ""
    print(f"live: {_line(stream, camera, delays)}{saved}", flush=True)
    if error is not None:
        raise error
    return 0


def _line(stream, camera, delays: list[float]) -> str:
    stats = stream.stats
    recent = delays[-30:]
    latency = statistics.median(recent) * 1000 if recent else float("nan")
    return (
        f"{stats.frames} frames animated, {camera.dropped} dropped, latency {latency:.0f} ms "
        f"(model step {stats.median_latency_ms:.0f} ms), {stats.fps:.1f} fps"
    )
