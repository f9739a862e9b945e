"""Live frame sources for ``ostnet live``: a camera device, a stream URL or a video file, read by PyAV.

``LiveSource`` decodes in a background thread at the source's own pace (a file is played at real-time pace,
by its timestamps, as a camera would deliver it) and keeps only the newest frame: the consumer takes it with
``get``; frames it never took because it was slower than the input are counted in ``dropped``. A source that
cannot be opened, or fails while streaming (a camera unplugged), becomes an ``OstnetError`` naming it.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import av
import numpy as np

from ostnet.errors import OstnetError


def _open(spec: str) -> av.container.InputContainer:
    """``0`` or ``/dev/videoN``: a V4L2 camera; anything else: a file or a URL PyAV understands."""
    path = f"/dev/video{spec}" if spec.isdigit() else spec
    options: dict = {}
    if path.startswith("/dev/video"):
        if not Path(path).exists():
            raise OstnetError(f"camera {spec}: no such device ({path})")
        options["format"] = "v4l2"
    elif "://" not in path and not Path(path).exists():
        raise OstnetError(f"camera {spec}: no such device, file or URL")
    try:
        return av.open(path, mode="r", timeout=10.0, **options)
    except (av.FFmpegError, OSError) as exc:
        raise OstnetError(f"camera {spec}: cannot open ({_reason(exc)})") from None


def _reason(exc: BaseException) -> str:
    return getattr(exc, "strerror", None) or str(exc).splitlines()[0] or type(exc).__name__


class LiveSource:
    """Newest-frame reader of ``spec`` (a camera index or device, a URL or a file).

    Args:
        spec: ``0``, ``/dev/video0``, ``rtsp://...``, ``clip.mp4``...
        realtime: pace decoding by the frame timestamps (default: on for regular files, off for live sources,
            which deliver at their own pace anyway).
    """

    def __init__(self, spec: str, realtime: bool | None = None) -> None:
        self.spec = spec
        self._container = _open(spec)
        streams = self._container.streams.video
        if not streams:
            self._container.close()
            raise OstnetError(f"camera {spec}: no video stream")
        self._stream = streams[0]
        rate = self._stream.average_rate or self._stream.guessed_rate
        self.fps = float(rate) if rate else 25.0
        self.realtime = os.path.isfile(spec) if realtime is None else realtime
        self._cond = threading.Condition()
        self._frame: np.ndarray | None = None
        self._stamp = 0.0
        self._ended = False
        self._error: str | None = None
        self._stop = threading.Event()
        self.read = 0
        self.dropped = 0
        self._thread = threading.Thread(target=self._run, name=f"ostnet-live-{spec}", daemon=True)

    def _run(self) -> None:
        start = None
        try:
            for frame in self._container.decode(self._stream):
                if self._stop.is_set():
                    return
                if self.realtime and frame.time is not None:
                    start = time.perf_counter() - frame.time if start is None else start
                    delay = start + frame.time - time.perf_counter()
                    if delay > 0 and self._stop.wait(delay):
                        return
                image = frame.to_ndarray(format="rgb24")
                with self._cond:
                    if self._frame is not None:
                        self.dropped += 1
                    self._frame, self._stamp = image, time.perf_counter()
                    self.read += 1
                    self._cond.notify()
        except (av.FFmpegError, OSError) as exc:
            with self._cond:
                self._error = _reason(exc)
        finally:
            with self._cond:
                self._ended = True
                self._cond.notify()

    def get(self, timeout: float = 10.0) -> tuple[np.ndarray, float] | None:
        """The newest unread frame (H, W, 3) uint8 and when it arrived (``time.perf_counter``); None at the end
        of a file. Raises ``OstnetError`` when the source failed or sent nothing for ``timeout`` seconds.
        Reading starts with the first call (the source is opened, not yet played, by the constructor)."""
        if self._thread.ident is None:
            self._thread.start()
        with self._cond:
            if not self._cond.wait_for(lambda: self._frame is not None or self._ended, timeout):
                raise OstnetError(f"camera {self.spec}: no frame for {timeout:g} s (disconnected?)")
            if self._frame is not None:
                frame, self._frame = self._frame, None
                return frame, self._stamp
            if self._error is not None:
                raise OstnetError(f"camera {self.spec}: the stream failed after {self.read} frames ({self._error})")
            return None

    def close(self) -> None:
        self._stop.set()
        if self._thread.ident is not None:
            self._thread.join(timeout=5.0)
        try:
            self._container.close()
        except (av.FFmpegError, OSError):
            pass

    def __enter__(self) -> LiveSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
