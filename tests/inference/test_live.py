"""``ostnet live``: a video file played at real-time pace, SIGINT, a missing or failing camera."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ostnet.cli import main
from ostnet.errors import OstnetError
from ostnet.io.camera import LiveSource
from ostnet.io.video import probe_video

pytestmark = pytest.mark.usefixtures("one_thread")

REPO = Path(__file__).resolve().parents[2]


def test_live_on_a_file_for_3_seconds_then_sigint(shared_dir, tmp_path, tiny_checkpoint):
    """Frames come out, latency and fps are printed, SIGINT ends the session with exit 0 and a complete file."""
    out = tmp_path / "live.mp4"
    cmd = [sys.executable, "-m", "ostnet.cli", "live", "--source", str(shared_dir / "data/portraits/s42.jpg"),
           "--checkpoint", str(tiny_checkpoint), "--camera", str(shared_dir / "data/clips/d6.mp4"),
           "--output", str(out), "--no-window", "--device", "cpu"]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO / "src")}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 180  # a guard against hanging, not a timing assertion
        lines = []
        while len(lines) < 3:  # one progress line per second of streaming: 3 s
            line = proc.stderr.readline()
            assert line or proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "no progress lines"
            if line.startswith("live:"):
                lines.append(line)
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 0, stderr
    assert "latency" in lines[-1] and "fps" in lines[-1]
    summary = stdout.strip().splitlines()[-1]
    assert "frames animated" in summary and str(out) in summary
    frames = int(summary.split("live: ")[1].split(" frames")[0])
    info = probe_video(out)
    assert info.num_frames == frames >= 3 and info.width == 64
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary file left


def test_reader_drops_frames_it_cannot_hand_over(shared_dir):
    """A consumer slower than real time gets the newest frame; the skipped ones are counted as dropped."""
    with LiveSource(str(shared_dir / "data/clips/d0.mp4")) as camera:
        assert camera.realtime and camera.fps == pytest.approx(25, abs=1)
        first, _ = camera.get()
        time.sleep(0.5)  # ~12 frames arrive meanwhile
        frame, arrived = camera.get()
        assert frame.shape == first.shape and frame.dtype == first.dtype
        assert camera.dropped >= 5
        assert time.perf_counter() - arrived < 0.5


def test_missing_camera_is_one_line(tmp_path, tiny_checkpoint, shared_dir, capsys):
    rc = main(["live", "--source", str(shared_dir / "data/portraits/s42.jpg"), "--checkpoint", str(tiny_checkpoint),
               "--camera", "/dev/video97", "--no-window"])  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "camera /dev/video97: no such device" in err[0]
    with pytest.raises(OstnetError, match="no such device, file or URL"):
        LiveSource(str(tmp_path / "nothing.mp4"))


def test_camera_disappearing_keeps_what_was_written(tmp_path, tiny_checkpoint, shared_dir, capsys, monkeypatch):
    """The stream fails after 4 frames: a one-line error, exit 2, and the output holds the 4 animated frames."""
    real_get = LiveSource.get
    calls = []

    def failing_get(self, timeout=10.0):
        calls.append(1)
        if len(calls) > 4:
            raise OstnetError(f"camera {self.spec}: the stream failed after 4 frames (Input/output error)")
        return real_get(self, timeout)

    monkeypatch.setattr(LiveSource, "get", failing_get)
    out = tmp_path / "kept.mp4"
    rc = main(["live", "--source", str(shared_dir / "data/portraits/s42.jpg"), "--checkpoint", str(tiny_checkpoint),
               "--camera", str(shared_dir / "data/clips/d0.mp4"), "--no-window", "--output", str(out)])  # fmt: skip
    captured = capsys.readouterr()
    assert rc == 2 and "the stream failed after 4 frames" in captured.err.strip().splitlines()[-1]
    assert probe_video(out).num_frames == 4
