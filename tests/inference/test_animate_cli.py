"""``ostnet animate`` from the command line: happy path, the bad-input table, Ctrl-C, and (slow) the full
sample clips with output checks and peak memory."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest
from tests.conftest import signal_while_writing

from ostnet.cli import main
from ostnet.commands.animate import MODES as CLI_MODES
from ostnet.inference.pipeline import MODES
from ostnet.io.image import load_image
from ostnet.io.video import VideoWriter, probe_video

pytestmark = pytest.mark.usefixtures("one_thread")

REPO = Path(__file__).resolve().parents[2]


def _animate(*args: str | Path) -> int:
    return main(["animate", "--quiet", *map(str, args)])


def test_modes_and_help(capsys):
    assert CLI_MODES == MODES
    with pytest.raises(SystemExit):
        main(["animate", "--help"])
    out = capsys.readouterr().out
    for flag in ("--paste-back", "--side-by-side", "--frames", "--no-crop", "--face-index", "--batch-size",
                 "--device", "--dtype", "--adapt-scale", "best-frame"):  # fmt: skip
        assert flag in out


def test_animate_command_end_to_end(shared_dir, tmp_path, tiny_checkpoint, capsys):
    out = tmp_path / "out.mp4"
    rc = _animate("--source", shared_dir / "data/portraits/s12.jpg", "--driving", shared_dir / "data/clips/d11.mp4",
                  "--checkpoint", tiny_checkpoint, "--output", out, "--max-frames", 6, "--mode", "relative",
                  "--dtype", "bf16", "--device", "cpu")  # fmt: skip
    assert rc == 0
    summary = capsys.readouterr().out.strip().splitlines()
    assert len(summary) == 1 and "6 frames at 25 fps" in summary[0] and "audio kept" in summary[0]
    assert str(out) in summary[0]
    info = probe_video(out)
    assert (info.num_frames, info.fps, info.width, info.has_audio) == (6, 25, 64, True)


def _bad_inputs(shared: Path, tmp: Path, tiny_checkpoint: Path) -> dict[str, tuple[list, Path]]:
    """name -> (arguments, the path the error must name)."""
    portrait, clip = shared / "data/portraits/s9.jpg", shared / "data/clips/d0.mp4"
    (tmp / "text.mp4").write_text("not a video")
    (tmp / "text.png").write_text("not an image")
    (tmp / "truncated.mp4").write_bytes((shared / "data/clips/d12.mp4").read_bytes()[:200_000])
    _audio_only(shared / "data/clips/d12.mp4", tmp / "audio.m4a")
    (tmp / "full").mkdir()
    (tmp / "full/x.png").write_text("")

    def args(source=portrait, driving=clip, ckpt=tiny_checkpoint, output=tmp / "out/o.mp4", *extra):
        return ["--source", source, "--driving", driving, "--checkpoint", ckpt, "--output", output, *extra]

    return {
        "missing source": (args(source=tmp / "nope.jpg"), tmp / "nope.jpg"),
        "missing driving": (args(driving=tmp / "nope.mp4"), tmp / "nope.mp4"),
        "driving not a video": (args(driving=tmp / "text.mp4"), tmp / "text.mp4"),
        "source not an image": (args(source=tmp / "text.png"), tmp / "text.png"),
        "source is a video": (args(source=clip), clip),
        "truncated video": (args(driving=tmp / "truncated.mp4"), tmp / "truncated.mp4"),
        "no video stream": (args(driving=tmp / "audio.m4a"), tmp / "audio.m4a"),
        "no face in source (dog)": (args(source=shared / "data/portraits/s25.jpg"), shared / "data/portraits/s25.jpg"),
        "source face too small": (
            args(shared / "data/portraits/s12.jpg", clip, tiny_checkpoint, tmp / "out/o.mp4", "--min-face", "200"),
            shared / "data/portraits/s12.jpg",
        ),  # fmt: skip
        "driving face too small": (
            args(shared / "data/portraits/s2.jpg", clip, tiny_checkpoint, tmp / "out/o.mp4", "--min-face", "400"),
            clip,
        ),  # fmt: skip
        "checkpoint is an image": (args(ckpt=portrait), portrait),
        "checkpoint is FOMM's": (
            args(ckpt=shared / "fixtures/fomm-reference.pth.tar"),
            shared / "fixtures/fomm-reference.pth.tar",
        ),  # fmt: skip
        "checkpoint missing": (args(ckpt=tmp / "none.safetensors"), tmp / "none.safetensors"),
        "output under a file": (args(output=tmp / "text.png/o.mp4"), tmp / "text.png/o.mp4"),
        "output format": (args(output=tmp / "out/o.avi"), tmp / "out/o.avi"),
        "frames folder not empty": (
            args(portrait, clip, tiny_checkpoint, tmp / "out/o.mp4", "--frames", tmp / "full"),
            tmp / "full",
        ),  # fmt: skip
    }


def _audio_only(video: Path, out: Path) -> None:
    with av.open(str(video)) as src, av.open(str(out), "w") as dst:
        stream = dst.add_stream_from_template(src.streams.audio[0])
        for packet in src.demux(src.streams.audio[0]):
            if packet.dts is not None:
                packet.stream = stream
                dst.mux(packet)


def test_bad_inputs_fail_with_one_line_and_no_output(shared_dir, tmp_path, tiny_checkpoint, capsys):
    cases = _bad_inputs(shared_dir, tmp_path, tiny_checkpoint)
    before = sorted(p.name for p in tmp_path.iterdir())
    for name, (args, named) in cases.items():
        rc = _animate(*args)
        err = capsys.readouterr().err.strip().splitlines()
        assert rc == 2, name
        assert len(err) == 1 and err[0].startswith("ostnet animate: error: "), (name, err)
        assert str(named) in err[0], (name, err)
        assert {p.name for p in tmp_path.iterdir()} - set(before) <= {"out"}, name
        assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir()), name


def test_zero_frame_video_and_frames_without_face(shared_dir, tmp_path, tiny_checkpoint, capsys):
    empty = tmp_path / "empty.mkv"  # a video stream with no frames (audio only in it)
    with av.open(str(shared_dir / "data/clips/d12.mp4")) as src, av.open(str(empty), "w") as dst:
        video = dst.add_stream("libx264", rate=25)
        video.width, video.height, video.pix_fmt = 64, 64, "yuv420p"
        audio = dst.add_stream_from_template(src.streams.audio[0])
        for packet in src.demux(src.streams.audio[0]):
            if packet.dts is not None:
                packet.stream = audio
                dst.mux(packet)
    portrait = shared_dir / "data/portraits/s42.jpg"
    assert _animate("--source", portrait, "--driving", empty, "--checkpoint", tiny_checkpoint, "--output",
                    tmp_path / "o.mp4") == 2  # fmt: skip
    assert "zero frames" in capsys.readouterr().err
    blank = tmp_path / "blank.mp4"  # no face anywhere: an error, not a video of blank crops
    with VideoWriter(blank, fps=25) as writer:
        for _ in range(3):
            writer.write(np.full((64, 64, 3), 90, np.uint8))
    assert _animate("--source", portrait, "--driving", blank, "--checkpoint", tiny_checkpoint, "--output",
                    tmp_path / "o.mp4") == 2  # fmt: skip
    assert f"{blank}: no face found in any of its 3 frames" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blank.mp4", "empty.mkv"]


def _cli(*args: str | Path) -> list[str]:
    return [sys.executable, "-m", "ostnet.cli", "animate", *map(str, args)]


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO / "src")}


def test_ctrl_c_leaves_no_partial_output(shared_dir, tmp_path, tiny_checkpoint):
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    # d6 (33 s) rather than a short clip, so the run is still going when the interrupt arrives
    cmd = _cli("--source", shared_dir / "data/portraits/s42.jpg", "--driving", shared_dir / "data/clips/d6.mp4",
               "--checkpoint", tiny_checkpoint, "--output", out_dir / "o.mp4", "--frames", out_dir / "frames",
               "--batch-size", 2, "--quiet")  # fmt: skip
    returncode, err = signal_while_writing(cmd, _env(), out_dir, "o.mp4", signal.SIGINT)
    # 130 from the CLI's handler; -SIGINT when the interrupt landed inside a native PyRun_* call (CPython then
    # flags it as unhandled and re-raises SIGINT at exit even though the CLI caught it). Both mean Ctrl-C.
    assert returncode in (130, -signal.SIGINT), err
    assert "interrupted; no partial output was kept" in err
    assert list(out_dir.iterdir()) == []


# --------------------------------------------------------------------------------------------------
# slow: the full sample clips (numbers for the report)
# --------------------------------------------------------------------------------------------------


def _run_measured(cmd: list[str]) -> tuple[int, int, str]:
    """Run a command; return (exit code, peak RSS in KiB of that child, stderr)."""
    proc = subprocess.Popen(cmd, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    err = proc.stderr.read()
    proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, usage.ru_maxrss, err


def _audio_end(path: Path) -> float:
    with av.open(str(path)) as container:
        audio = container.streams.audio[0]
        ends = [float((p.pts + p.duration) * p.time_base) for p in container.demux(audio) if p.pts is not None]
    return max(ends)


@pytest.mark.slow
@pytest.mark.parametrize("clip", ["d3", "d6"])
def test_every_portrait_with_the_full_clips(shared_dir, tmp_path, tiny_checkpoint, clip):
    driving = shared_dir / f"data/clips/{clip}.mp4"
    expected = probe_video(driving)
    for portrait in sorted((shared_dir / "data/portraits").glob("*.jpg")):
        out = tmp_path / f"{portrait.stem}-{clip}.mp4"
        rc, _, err = _run_measured(_cli("--source", portrait, "--driving", driving, "--checkpoint", tiny_checkpoint,
                                        "--output", out, "--paste-back", "--quiet"))  # fmt: skip
        if portrait.stem == "s25":  # the dog
            assert rc == 2 and "no face found in the source image" in err
            continue
        assert rc == 0, err
        info = probe_video(out)
        assert info.num_frames == expected.num_frames and info.fps == expected.fps
        assert info.has_audio and abs(_audio_end(out) - info.num_frames / info.fps) <= 1 / info.fps
        height, width = load_image(portrait).shape[:2]
        assert (info.height, info.width) == (height + height % 2, width + width % 2)


@pytest.mark.slow
def test_peak_memory_does_not_grow_with_video_length(shared_dir, tmp_path, tiny_checkpoint):
    peaks = {}
    for clip in ("d0", "d6"):
        rc, peak, err = _run_measured(_cli("--source", shared_dir / "data/portraits/s42.jpg", "--driving",
                                           shared_dir / f"data/clips/{clip}.mp4", "--checkpoint", tiny_checkpoint,
                                           "--output", tmp_path / f"{clip}.mp4", "--quiet"))  # fmt: skip
        assert rc == 0, err
        peaks[clip] = peak
    assert peaks["d6"] <= 1.15 * peaks["d0"], peaks
