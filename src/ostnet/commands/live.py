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

from ostnet.inference.options import LiveOptions
from ostnet.options import add_command

OPTIONS = LiveOptions


def register(sub: argparse._SubParsersAction) -> None:
    add_command(
        sub,
        OPTIONS,
        run_live,
        "live",
        help="animate a portrait live from a camera, a stream URL or a video file",
        description="Animate a portrait with a camera (index or /dev/videoN), any stream PyAV opens, or a video "
        "file played at real-time pace. Frames that arrive while the model is busy are dropped.",
    )


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


def run_live(options: LiveOptions) -> int:
    from ostnet.checkpoint import load_checkpoint
    from ostnet.inference.animator import Animator
    from ostnet.inference.stream import StreamStep
    from ostnet.io.camera import LiveSource
    from ostnet.io.image import load_image
    from ostnet.io.paths import check_outputs

    camera_file = options.camera if os.path.exists(options.camera) else None  # a clip standing in for a camera
    check_outputs({"--source": options.source, "--checkpoint": options.checkpoint, "--camera": camera_file},
                  {"--output": options.output})  # fmt: skip
    camera = LiveSource(options.camera)  # opened first: a missing camera fails before the model loads
    try:
        model = load_checkpoint(options.checkpoint)
        stream = StreamStep(Animator(model, device=options.device, dtype=options.dtype, mode=options.mode),
                            crop=options.crop)  # fmt: skip
        stream.set_source(load_image(options.source))
    except BaseException:
        camera.close()
        raise
    show = _window(options.window)
    stop = threading.Event()
    previous = signal.signal(signal.SIGINT, lambda signum, frame: stop.set())  # Ctrl-C ends the session cleanly
    try:
        return _loop(options, camera, stream, show, stop)
    finally:
        signal.signal(signal.SIGINT, previous)


def _loop(options: LiveOptions, camera, stream, show, stop: threading.Event) -> int:
    from ostnet.errors import OstnetError
    from ostnet.io.video import VideoWriter

    writer = VideoWriter(options.output, camera.fps) if options.output is not None else None
    delays: list[float] = []
    error: OstnetError | None = None
    start = last_report = time.perf_counter()
    try:
        while not stop.is_set() and (options.max_seconds is None or time.perf_counter() - start < options.max_seconds):
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
    saved = f" -> {options.output}" if writer is not None and writer.frames_written else ""
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
