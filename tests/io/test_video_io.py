"""Video probing, decoding and writing (ostnet.io.video): round trips, exact fps, audio, bad input."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from ostnet.errors import OstnetError
from ostnet.io.image import save_image
from ostnet.io.video import VideoWriter, iter_frames, probe_video, read_frames


def _gradient_frames(count: int, height: int, width: int) -> list[np.ndarray]:
    """Smooth, moving test pattern (compresses well, so decoded values stay close)."""
    ys, xs = np.mgrid[0:height, 0:width]
    return [
        np.stack([(xs * 4 + 8 * t) % 256, (ys * 4) % 256, np.full_like(xs, 40 + 5 * t)], axis=2).astype(np.uint8)
        for t in range(count)
    ]


def _write_av(path: Path, fmt: str, video: str | None, audio: str | None, frames: int = 12, fps: int = 25):
    """A small file made directly with PyAV (independent of VideoWriter)."""
    with av.open(str(path), "w", format=fmt) as container:
        vstream = container.add_stream(video, rate=fps) if video else None
        astream = container.add_stream(audio, rate=44100) if audio else None
        if astream is not None:
            astream.layout = "stereo"
        if vstream is not None:
            vstream.width, vstream.height = 64, 48
            vstream.pix_fmt = "rgb8" if video == "gif" else "yuv420p"
            for t, frame in enumerate(_gradient_frames(frames, 48, 64)):
                video_frame = av.VideoFrame.from_ndarray(frame, format="rgb24")
                video_frame.pts = t
                container.mux(vstream.encode(video_frame))
            container.mux(vstream.encode(None))
        if astream is not None:
            for start in range(0, int(frames / fps * 44100), 1024):
                samples = np.sin(np.arange(start, start + 1024) / 44100 * 2 * np.pi * 440).astype(np.float32)
                audio_frame = av.AudioFrame.from_ndarray(np.stack([samples, samples]), format="fltp", layout="stereo")
                audio_frame.sample_rate, audio_frame.pts = 44100, start
                container.mux(astream.encode(audio_frame))
            container.mux(astream.encode(None))
    return path


def _stream_seconds(path: Path, kind: str) -> float:
    with av.open(str(path)) as container:
        stream = getattr(container.streams, kind)[0]
        return float(stream.duration * stream.time_base)


def test_round_trip_with_audio_from_sample_clip(shared_dir, tmp_path):
    clip = shared_dir / "data/clips/d3.mp4"
    info = probe_video(clip)
    assert (info.width, info.height, info.fps, info.num_frames, info.has_audio) == (512, 512, 30.0, 354, True)
    frames = read_frames(clip, max_frames=45)
    assert frames.shape == (45, 512, 512, 3) and frames.dtype == np.uint8
    out = tmp_path / "out.mp4"
    with VideoWriter(out, info.fps, audio_from=clip) as writer:
        for frame in frames:
            writer.write(frame)
    assert writer.audio_kept and writer.frames_written == 45
    probed = probe_video(out)
    assert (probed.num_frames, probed.fps, probed.has_audio) == (45, 30.0, True)
    video_s, audio_s = _stream_seconds(out, "video"), _stream_seconds(out, "audio")
    assert video_s == pytest.approx(1.5)
    assert abs(audio_s - video_s) < 1 / 30  # audio trimmed to the video, within one frame
    decoded = read_frames(out)
    assert np.abs(decoded.astype(np.int16) - frames).mean() < 3.0  # crf 18: visually lossless
    assert not list(tmp_path.glob(".*part*"))


@pytest.mark.parametrize("fps", [25, 29.97, Fraction(30000, 1001), 12.5])
def test_fps_is_exact_and_odd_sizes_are_padded(tmp_path, fps):
    frames = _gradient_frames(10, 33, 35)
    out = tmp_path / "odd.mp4"
    with VideoWriter(out, fps, crf=0, preset="ultrafast") as writer:
        for frame in frames:
            writer.write(frame)
    info = probe_video(out)
    assert (info.width, info.height, info.num_frames) == (36, 34, 10)
    assert info.fps == float(Fraction(fps).limit_denominator(1001 * 1000))
    decoded = read_frames(out)
    # Lossless H.264 still goes through 4:2:0 chroma subsampling: compare loosely, and check the pad.
    assert np.abs(decoded[:, :33, :35].astype(int) - np.stack(frames).astype(int)).mean() < 4.0
    assert np.abs(decoded[:, 33, :35].astype(int) - decoded[:, 32, :35].astype(int)).mean() < 4.0
    assert not writer.audio_kept


def test_non_aac_audio_is_transcoded_and_missing_audio_is_fine(tmp_path):
    source = _write_av(tmp_path / "pcm.mkv", "matroska", "libx264", "pcm_s16le", frames=20)
    out = tmp_path / "out.mov"
    with VideoWriter(out, 25, audio_from=source) as writer:
        for frame in iter_frames(source):
            writer.write(frame)
    with av.open(str(out)) as container:
        assert container.streams.audio[0].codec_context.name == "aac"
    assert writer.audio_kept and abs(_stream_seconds(out, "audio") - 0.8) < 1 / 25
    silent = _write_av(tmp_path / "silent.mp4", "mp4", "libx264", None)
    with VideoWriter(tmp_path / "b.mp4", 25, audio_from=silent) as writer:
        writer.write(_gradient_frames(1, 16, 16)[0])
    assert not writer.audio_kept and not probe_video(tmp_path / "b.mp4").has_audio


@pytest.mark.parametrize(("fmt", "codec", "suffix"), [("webm", "libvpx-vp9", ".webm"), ("gif", "gif", ".gif")])
def test_other_containers(tmp_path, fmt, codec, suffix):
    path = _write_av(tmp_path / f"clip{suffix}", fmt, codec, None, frames=7)
    info = probe_video(path)
    assert (info.width, info.height, info.num_frames) == (64, 48, 7)
    assert read_frames(path).shape == (7, 48, 64, 3)


def test_display_rotation_is_applied(tmp_path):
    """Phone videos are stored sideways with a display matrix; frames must come out upright."""
    path = tmp_path / "rotated.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 32, "yuv420p"
        stream.set_display_rotation(90)  # counter-clockwise
        for t in range(3):
            frame = np.zeros((32, 64, 3), np.uint8)
            frame[:8, :16] = 255  # marker in the stored top-left corner
            video_frame = av.VideoFrame.from_ndarray(frame, format="rgb24")
            video_frame.pts = t
            container.mux(stream.encode(video_frame))
        container.mux(stream.encode(None))
    info = probe_video(path)
    assert (info.width, info.height) == (32, 64)
    upright = read_frames(path)[0]
    assert upright.shape == (64, 32, 3)
    assert upright[-16:, :8].mean() > 200 and upright[:16, :8].mean() < 50  # top-left went to bottom-left


def test_folder_of_frames(tmp_path):
    folder = tmp_path / "clip.mp4"
    folder.mkdir()
    frames = _gradient_frames(3, 20, 24)
    for i, frame in enumerate(frames):
        save_image(folder / f"{i:07d}.png", frame)
    info = probe_video(folder, folder_fps=10)
    assert (info.num_frames, info.fps, info.duration, info.width, info.height) == (3, 10.0, 0.3, 24, 20)
    np.testing.assert_array_equal(read_frames(folder), np.stack(frames))


def _text_as_mp4(tmp: Path) -> Path:
    (tmp / "text.mp4").write_text("this is not a video\n" * 20)
    return tmp / "text.mp4"


def _truncated_faststart(tmp: Path) -> Path:
    full = tmp / "full.mp4"
    with VideoWriter(full, 25, preset="ultrafast") as writer:
        for frame in _gradient_frames(30, 64, 64):
            writer.write(frame)
    data = full.read_bytes()
    (tmp / "cut.mp4").write_bytes(data[: len(data) * 2 // 3])
    return tmp / "cut.mp4"


def _truncated_sample(tmp: Path, shared: Path) -> Path:
    data = (shared / "data/clips/d0.mp4").read_bytes()  # index (moov) at the end: cutting loses it
    (tmp / "cut_end.mp4").write_bytes(data[: len(data) // 2])
    return tmp / "cut_end.mp4"


def _empty(tmp: Path) -> Path:
    (tmp / "empty.mp4").write_bytes(b"")
    return tmp / "empty.mp4"


BAD_INPUTS = [
    (lambda tmp, shared: tmp / "missing.mp4", "no such file"),
    (lambda tmp, shared: _text_as_mp4(tmp), "not a video"),
    (lambda tmp, shared: _empty(tmp), "empty file"),
    (lambda tmp, shared: _truncated_faststart(tmp), "truncated"),
    (_truncated_sample, "truncated"),
    (lambda tmp, shared: _write_av(tmp / "audio.m4a", "mp4", None, "aac"), "no video stream"),
    (lambda tmp, shared: tmp, "no frames"),  # a folder without images
]


@pytest.mark.parametrize(("make", "problem"), BAD_INPUTS)
def test_bad_inputs_raise_one_line_naming_the_file(shared_dir, tmp_path, make, problem):
    path = make(tmp_path, shared_dir)
    with pytest.raises(OstnetError) as info:
        probe_video(path)
    message = str(info.value)
    assert message.startswith(str(path)) and problem in message and "\n" not in message


def test_truncated_file_fails_mid_stream_with_frame_index(tmp_path):
    path = _truncated_faststart(tmp_path)
    frames = iter_frames(path)
    first = next(frames)
    assert first.shape == (64, 64, 3)
    with pytest.raises(OstnetError, match=r"cut\.mp4: truncated: data ends at frame \d+ of 30"):
        list(frames)


@pytest.mark.parametrize("interrupt", [RuntimeError, KeyboardInterrupt])
def test_writer_leaves_nothing_behind_on_error(tmp_path, interrupt):
    out = tmp_path / "out.mp4"
    out.write_bytes(b"previous result")
    with pytest.raises(interrupt), VideoWriter(out, 25) as writer:
        writer.write(_gradient_frames(1, 16, 16)[0])
        raise interrupt()
    assert out.read_bytes() == b"previous result"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.mp4"]


def test_writer_rejects_bad_destinations_and_empty_output(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(OstnetError, match="file"):
        VideoWriter(tmp_path / "file" / "out.mp4", 25)
    with pytest.raises(OstnetError, match="unsupported output format"):
        VideoWriter(tmp_path / "out.avi", 25)
    with pytest.raises(OstnetError, match="no such file"):
        VideoWriter(tmp_path / "out.mp4", 25, audio_from=tmp_path / "nope.mp4")
    with pytest.raises(OstnetError, match="no frames were written"), VideoWriter(tmp_path / "out.mp4", 25):
        pass
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]
    writer = VideoWriter(tmp_path / "x.mp4", 25)
    with pytest.raises(ValueError):
        writer.write(np.zeros((8, 8), np.uint8))
    writer.abort()
