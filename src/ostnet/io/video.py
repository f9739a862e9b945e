"""Video on disk: probe, stream-decode and write H.264 (with the driving clip's audio), all with PyAV.

Inputs are any container FFmpeg reads (mp4, mov, webm, mkv, gif, ...) or a folder of frames (png/jpg,
sorted by name, e.g. the FOMM layout ``<clip>.mp4/0000000.png``). Frames are ``(H, W, 3)`` uint8 RGB.
Every problem with an input file is an ``OstnetError`` whose one-line message starts with the path.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import closing
from fractions import Fraction
from pathlib import Path
from typing import NamedTuple

import av
import numpy as np

from ostnet.errors import OstnetError
from ostnet.io.atomic import AtomicFile
from ostnet.io.image import IMAGE_SUFFIXES, load_image
from ostnet.io.limits import check_frame_count, check_pixels
from ostnet.io.paths import check_readable

# Audio codecs copied as they are (every mp4 player decodes them); anything else is transcoded to AAC.
_REMUX_AUDIO = {"aac", "mp3", "mp3float"}
_OUTPUT_FORMATS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska"}


class VideoInfo(NamedTuple):
    """What ``probe_video`` found. ``num_frames`` is the number of frames ``iter_frames`` yields."""

    path: Path
    width: int
    height: int
    fps: float
    num_frames: int
    duration: float  # seconds
    has_audio: bool


def _frame_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def _open(path: Path) -> av.container.InputContainer:
    check_readable(path, "video", missing="no such file")
    if path.stat().st_size == 0:
        raise OstnetError(f"{path}: empty file, not a video")
    try:
        return av.open(str(path), mode="r")
    except av.FFmpegError as exc:
        raise OstnetError(f"{path}: not a video, or corrupt / truncated ({_reason(exc)})") from None


def _reason(exc: BaseException) -> str:
    text = getattr(exc, "strerror", None) or str(exc)
    return text.split(";")[0].strip() or type(exc).__name__


def _video_stream(container: av.container.InputContainer, path: Path) -> av.video.stream.VideoStream:
    if not container.streams.video:
        kinds = sorted({s.type for s in container.streams}) or ["no streams"]
        raise OstnetError(f"{path}: no video stream (found: {', '.join(kinds)})")
    return container.streams.video[0]


def _stream_fps(stream: av.video.stream.VideoStream) -> float:
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    return float(rate) if rate else 25.0


def probe_video(path: str | os.PathLike[str], folder_fps: float = 25.0) -> VideoInfo:
    """Describe a video file or a folder of frames without decoding it all.

    The frame count comes from demuxing every packet (cheap: no decoding); a file whose index promises more
    frames than its data holds is reported as truncated. The first frame is decoded to check the codec.
    ``folder_fps`` is the frame rate given to a folder of frames. Raises ``OstnetError`` for a missing file,
    a file that is not a video, no video stream, zero frames, or corrupt / truncated data.
    """
    path = Path(path)
    if path.is_dir():
        return _probe_folder(path, folder_fps)
    with _open(path) as container:
        stream = _video_stream(container, path)
        check_pixels(path, stream.codec_context.width, stream.codec_context.height, "frame")
        has_audio = bool(container.streams.audio)
        fps = _stream_fps(stream)
        shown, demuxed = _count_packets(container, stream, path)
        if shown == 0:
            raise OstnetError(f"{path}: the video stream has zero frames")
        check_frame_count(path, shown)
        if stream.frames and demuxed < stream.frames:
            raise OstnetError(
                f"{path}: corrupt or truncated (index lists {stream.frames} frames, data holds {demuxed})"
            )
        container.seek(0)
        first = next(iter_frames_from(container, stream, path), None)
        if first is None:
            raise OstnetError(f"{path}: corrupt video (no frame could be decoded)")
        height, width = first.shape[:2]
    return VideoInfo(path, width, height, fps, shown, shown / fps, has_audio)


def _count_packets(
    container: av.container.InputContainer, stream: av.video.stream.VideoStream, path: Path
) -> tuple[int, int]:
    """(frames that will be shown, packets demuxed). An edit list may hide some decoded packets."""
    shown = demuxed = 0
    try:
        for packet in container.demux(stream):
            if packet.size > 0:  # skip the demuxer's final empty flush packet
                demuxed += 1
                shown += not packet.is_discard
    except av.FFmpegError as exc:
        raise OstnetError(f"{path}: corrupt or truncated after {demuxed} frames ({_reason(exc)})") from None
    return shown, demuxed


def _probe_folder(folder: Path, fps: float) -> VideoInfo:
    check_readable(folder, "folder of frames", folder=True)
    files = _frame_files(folder)
    if not files:
        raise OstnetError(f"{folder}: folder holds no frames (png/jpg)")
    check_frame_count(folder, len(files))
    height, width = load_image(files[0]).shape[:2]
    check_pixels(files[0], width, height, "frame")
    return VideoInfo(folder, width, height, float(fps), len(files), len(files) / fps, False)


def iter_frames(path: str | os.PathLike[str]) -> Iterator[np.ndarray]:
    """Decode frames one at a time, in display order, as ``(H, W, 3)`` uint8 RGB (constant memory).

    Raises ``OstnetError`` naming the file and the frame index when decoding fails mid-stream.
    """
    path = Path(path)
    if path.is_dir():
        yield from _iter_folder(path)
        return
    with _open(path) as container:
        stream = _video_stream(container, path)
        yield from iter_frames_from(container, stream, path)


def iter_frames_from(
    container: av.container.InputContainer, stream: av.video.stream.VideoStream, path: Path
) -> Iterator[np.ndarray]:
    """Decode ``stream`` of an open ``container`` as RGB frames; errors name ``path`` and the frame index.

    Packets are demuxed and decoded one by one so that a file whose data ends before its index does (a
    truncated download) is reported instead of silently yielding fewer frames.
    """
    stream.thread_type = "AUTO"
    index, packets = 0, 0
    try:
        for packet in container.demux(stream):
            packets += packet.size > 0
            for frame in packet.decode():  # the final empty packet flushes the decoder
                check_pixels(path, frame.width, frame.height, "frame")
                yield _upright(frame)
                index += 1
    except av.FFmpegError as exc:
        raise OstnetError(f"{path}: decode error at frame {index} ({_reason(exc)})") from None
    if stream.frames and packets < stream.frames:
        raise OstnetError(f"{path}: truncated: data ends at frame {index} of {stream.frames}")


def _upright(frame: av.VideoFrame) -> np.ndarray:
    """RGB array turned as the file's display matrix asks (phone videos are stored sideways)."""
    rgb = frame.to_ndarray(format="rgb24")
    quarter_turns = round((frame.rotation or 0) / 90) % 4  # counter-clockwise
    return np.ascontiguousarray(np.rot90(rgb, quarter_turns)) if quarter_turns else rgb


def _iter_folder(folder: Path) -> Iterator[np.ndarray]:
    files = _frame_files(folder)
    if not files:
        raise OstnetError(f"{folder}: folder holds no frames (png/jpg)")
    size = None
    for file in files:
        frame = load_image(file)
        if size is not None and frame.shape != size:
            got = f"{frame.shape[1]}x{frame.shape[0]}"
            raise OstnetError(f"{file}: frame size {got} differs from the first frame's {size[1]}x{size[0]}")
        size = frame.shape
        yield frame


def read_frames(path: str | os.PathLike[str], max_frames: int | None = None) -> np.ndarray:
    """Decode a whole video (or its first ``max_frames``) into one ``(T, H, W, 3)`` uint8 array."""
    frames = []
    with closing(iter_frames(path)) as stream:  # closing() releases the file when we stop early
        for frame in stream:
            if max_frames is not None and len(frames) >= max_frames:
                break
            frames.append(frame)
    if not frames:
        raise OstnetError(f"{path}: no frames could be decoded")
    return np.stack(frames)


def output_format(path: Path) -> str:
    """FFmpeg muxer name for an output suffix (.mp4, .m4v, .mov, .mkv); ``OstnetError`` otherwise."""
    fmt = _OUTPUT_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise OstnetError(f"{path}: unsupported output format {path.suffix!r} (use .mp4, .mov or .mkv)")
    return fmt


def fps_fraction(fps: float | Fraction) -> Fraction:
    """Exact frame rate as a fraction: 25 -> 25/1, 29.97 -> 2997/100, 30000/1001 stays as given."""
    rate = Fraction(fps).limit_denominator(1001 * 1000)
    if rate <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    return rate


class _AudioCopy:
    """Copies the audio of ``source`` into ``container`` up to a given time, interleaved with the video.

    Packets are remuxed unchanged when the output muxer accepts the codec (e.g. AAC into mp4); otherwise
    they are decoded and re-encoded as AAC. Audio is trimmed to the video's length (to within one packet,
    about 23 ms for AAC at 44.1 kHz, i.e. under one video frame).
    """

    def __init__(self, source: Path, container: av.container.OutputContainer) -> None:
        self._source = _open(source)
        in_stream = self._source.streams.audio[0]
        # Time zero of the output is the first video frame of the source (keeps lips in sync).
        reference = (self._source.streams.video or [in_stream])[0]
        start = float((reference.start_time or 0) * reference.time_base) if reference.time_base else 0.0
        self._offset = round(start / in_stream.time_base) if in_stream.time_base else 0
        self._remux = in_stream.codec_context.name in _REMUX_AUDIO
        if self._remux:
            self.out_stream = container.add_stream_from_template(in_stream)
        else:
            self.out_stream = container.add_stream("aac", rate=in_stream.codec_context.sample_rate or 44100)
            self.out_stream.layout = "stereo" if in_stream.codec_context.channels > 1 else "mono"
        self._container = container
        self._in_stream = in_stream
        self._packets = self._source.demux(in_stream)
        self._pending: av.Packet | None = None

    def feed_until(self, seconds: float) -> None:
        """Mux every source packet that starts before ``seconds`` (relative to the source's start)."""
        while True:
            packet = self._pending or next(self._packets, None)
            self._pending = None
            if packet is None:
                return
            if packet.dts is None and packet.pts is None:
                continue  # the demuxer's final empty packet
            stamp = packet.pts if packet.pts is not None else packet.dts
            start = float((stamp - self._offset) * packet.time_base)
            if start >= seconds:
                self._pending = packet
                return
            self._copy(packet)

    def _copy(self, packet: av.Packet) -> None:
        if self._remux:
            packet.pts = None if packet.pts is None else packet.pts - self._offset
            packet.dts = None if packet.dts is None else packet.dts - self._offset
            packet.stream = self.out_stream
            self._container.mux(packet)
            return
        for frame in self._in_stream.codec_context.decode(packet):
            frame.pts = None if frame.pts is None else frame.pts - self._offset
            self._container.mux(self.out_stream.encode(frame))

    def finish(self, seconds: float) -> None:
        """Copy the rest up to ``seconds``, flush the encoder and close the source."""
        self.feed_until(seconds)
        if not self._remux:
            self._container.mux(self.out_stream.encode(None))
        self.close()

    def close(self) -> None:
        self._source.close()


class _WholeWrites:
    """An unbuffered file for PyAV whose ``write`` writes everything or raises: a short write on a full disk
    raises ``OSError`` instead of being reported as written (PyAV would take the count and lose the rest)."""

    def __init__(self, path: Path) -> None:
        self.name = str(path)  # FFmpeg reopens the file by name for the +faststart pass
        self._file = open(path, "w+b", buffering=0)  # noqa: SIM115 - closed by close()

    def write(self, data: bytes) -> int:
        view = memoryview(data)
        while view:
            written = self._file.write(view)
            if not written:
                raise OSError(28, "No space left on device")
            view = view[written:]
        return len(data)

    def read(self, size: int = -1) -> bytes:
        return self._file.read(size)

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._file.seek(offset, whence)

    def tell(self) -> int:
        return self._file.tell()

    def close(self) -> None:
        self._file.close()


class VideoWriter:
    """Write ``(H, W, 3)`` uint8 RGB frames as H.264 (yuv420p) at exactly ``fps``, optionally with the
    audio of ``audio_from``; the result appears at ``path`` only when the writer closes without error.

    Odd frame sizes are padded by one replicated pixel on the right / bottom (yuv420p needs even sizes).
    ``crf`` is the x264 quality (0 = lossless, 18 = visually lossless, 23 = x264 default).

    Example::

        with VideoWriter("out.mp4", fps=25, audio_from="driving.mp4") as writer:
            for frame in frames:
                writer.write(frame)
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        fps: float | Fraction,
        *,
        audio_from: str | os.PathLike[str] | None = None,
        crf: int = 18,
        preset: str = "medium",
    ) -> None:
        self.path = Path(path)
        self._format = output_format(self.path)
        self._rate = fps_fraction(fps)
        self._crf, self._preset = int(crf), preset
        self._audio_from = None if audio_from is None else Path(audio_from)
        if self._audio_from is not None and not self._audio_from.exists():
            raise OstnetError(f"{self._audio_from}: no such file (audio source)")
        self._file = AtomicFile(self.path)
        self._tmp = self._file.tmp
        self._container: av.container.OutputContainer | None = None
        self._handle = None  # the temporary file, opened by _start
        self._stream: av.video.stream.VideoStream | None = None
        self._audio: _AudioCopy | None = None
        self._size: tuple[int, int] | None = None
        self._frames_written = 0
        self._done = False

    @property
    def frames_written(self) -> int:
        return self._frames_written

    @property
    def audio_kept(self) -> bool:
        """True when the output carries the audio of ``audio_from`` (known after the first ``write``)."""
        return self._audio is not None

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def _start(self, height: int, width: int) -> None:
        try:
            # PyAV writes through our file object: when a write fails before the header is complete (disk
            # full), PyAV never closes a file it opened itself; this one ``abort`` closes in every case.
            self._handle = _WholeWrites(self._tmp)
            self._container = av.open(
                self._handle, mode="w", format=self._format, container_options={"movflags": "+faststart"}
            )
        except (av.FFmpegError, OSError) as exc:
            self.abort()
            raise OstnetError(f"{self.path}: cannot write ({_reason(exc)})") from None
        stream = self._container.add_stream("libx264", rate=self._rate)
        stream.width, stream.height = width + width % 2, height + height % 2
        stream.pix_fmt = "yuv420p"
        stream.codec_context.time_base = 1 / self._rate
        stream.options = {"crf": str(self._crf), "preset": self._preset}
        self._stream = stream
        self._size = (height, width)
        if self._audio_from is not None and not self._audio_from.is_dir():
            with _open(self._audio_from) as probe:
                has_audio = bool(probe.streams.audio)
            if has_audio:
                self._audio = _AudioCopy(self._audio_from, self._container)

    def write(self, frame: np.ndarray) -> None:
        """Append one ``(H, W, 3)`` uint8 RGB frame; every frame must have the size of the first."""
        if self._done:
            raise RuntimeError("VideoWriter is closed")
        if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8 or frame.shape[2:] != (3,):
            got = f"{getattr(frame, 'dtype', type(frame))} {getattr(frame, 'shape', '')}"
            raise ValueError(f"VideoWriter.write expects a uint8 (H, W, 3) array, got {got}")
        if self._container is None:
            self._start(*frame.shape[:2])
        if frame.shape[:2] != self._size:
            raise ValueError(f"frame size {frame.shape[:2]} differs from the first frame's {self._size}")
        pad_h, pad_w = frame.shape[0] % 2, frame.shape[1] % 2
        if pad_h or pad_w:
            frame = np.pad(frame, ((0, pad_h), (0, pad_w), (0, 0)), mode="edge")
        video_frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
        video_frame.pts = self._frames_written
        try:
            self._container.mux(self._stream.encode(video_frame))
            self._frames_written += 1
            if self._audio is not None:
                self._audio.feed_until(float(self._frames_written / self._rate))
        except (av.FFmpegError, OSError) as exc:
            self.abort()
            raise OstnetError(f"{self.path}: cannot write ({_reason(exc)})") from None

    def close(self) -> None:
        """Flush the encoders and move the finished file onto ``path``. Idempotent."""
        if self._done:
            return
        if self._frames_written == 0:
            self.abort()
            raise OstnetError(f"{self.path}: no frames were written; nothing saved")
        try:
            self._container.mux(self._stream.encode(None))
            if self._audio is not None:
                self._audio.finish(float(self._frames_written / self._rate))
            self._container.close()
            self._handle.close()
            self._file.commit()
        except (av.FFmpegError, OSError) as exc:
            self.abort()
            raise OstnetError(f"{self.path}: cannot write ({_reason(exc)})") from None
        except BaseException:
            self.abort()
            raise
        self._done = True

    def abort(self) -> None:
        """Stop writing and delete the temporary file; ``path`` is left untouched."""
        self._done = True
        for closer in (self._audio, self._container, self._handle):
            if closer is not None:
                try:
                    closer.close()
                except (av.FFmpegError, OSError, ValueError):
                    pass
        self._file.discard()
