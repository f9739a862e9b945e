"""The web app in a real browser: Debian's Chromium driven by Playwright, against the session's loopback server.

Set ``OSTNET_SCREENSHOTS=DIR`` to also save the screenshots of ``docs/`` (idle page, a result, an error).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ostnet.io.video import probe_video

pytestmark = [pytest.mark.browser, pytest.mark.usefixtures("one_thread")]
WAIT_MS = 180_000  # generous: CI machines are shared


def _screenshot(page, name: str) -> None:
    folder = os.environ.get("OSTNET_SCREENSHOTS")
    if folder:
        page.screenshot(path=str(Path(folder) / name), full_page=True)


def _submit(page, source: Path, driving: Path) -> None:
    page.set_input_files("#source input[type=file]", str(source))
    page.set_input_files("#driving input[type=file]", str(driving))
    page.wait_for_selector("#source img", timeout=WAIT_MS)
    page.wait_for_selector("#driving video", timeout=WAIT_MS)
    page.click("#run")


def test_animate_plays_with_the_right_frames_and_audio(page, portrait_path, clip_path, tmp_path):
    _screenshot(page, "web-idle.png")
    page.get_by_text("Options (as `ostnet animate`)").click()
    page.check("#opt-side_by_side input")
    _submit(page, portrait_path, clip_path)
    video = page.wait_for_selector("#result video[src]", timeout=WAIT_MS)
    page.wait_for_function("document.querySelector('#result video').readyState >= 2", timeout=WAIT_MS)
    played = page.evaluate(
        """async () => { const v = document.querySelector('#result video'); v.muted = true; await v.play();
        await new Promise(r => setTimeout(r, 300)); return [v.currentTime, v.duration, v.videoWidth]; }"""
    )
    frames = probe_video(clip_path).num_frames
    assert played[0] > 0 and played[1] == pytest.approx(frames / 30, abs=0.05), played
    downloaded = tmp_path / "result.mp4"
    downloaded.write_bytes(page.request.get(video.get_attribute("src")).body())
    info = probe_video(downloaded)
    assert (info.num_frames, info.has_audio) == (frames, True)
    assert played[2] == info.width and info.width == 3 * info.height  # side by side: source | driving | result
    status = page.inner_text("#status")
    assert f"{frames} frames at 30 fps" in status and "audio kept" in status
    _screenshot(page, "web-result.png")


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("dog", "the portrait: no face found in the source image"),
        ("text", "the driving video: not a video"),
    ],
)
def test_bad_input_gets_a_clear_message(case, message, page, portrait_path, dog_path, clip_path, tmp_path):
    source, driving = portrait_path, clip_path
    if case == "dog":
        source = dog_path
    else:
        driving = tmp_path / "notes.mp4"
        driving.write_text("these are my notes, not a video\n")
    page.set_input_files("#source input[type=file]", str(source))
    page.set_input_files("#driving input[type=file]", str(driving))
    page.wait_for_selector("#source img", timeout=WAIT_MS)
    page.click("#run")
    shown = page.get_by_text(message)
    shown.first.wait_for(timeout=WAIT_MS)
    assert "Traceback" not in page.inner_text("body")
    assert page.query_selector("#result video[src]") is None
    if case == "dog":
        _screenshot(page, "web-error.png")


def test_oversized_upload_is_refused_in_the_page(page, tmp_path):
    big = tmp_path / "big.mp4"
    big.write_bytes(b"\0" * (2 << 20))
    page.set_input_files("#driving input[type=file]", str(big))
    page.get_by_text('exceed the maximum allowed size of 1.0 Mb: "big.mp4"').first.wait_for(timeout=WAIT_MS)


def test_live_webcam_frames_come_back_with_the_fps(page, portrait_path):
    """Chromium's fake camera plays the test clip; animated frames come back through the streaming step."""
    page.get_by_role("tab", name="Live webcam").click()
    page.set_input_files("#live-source input[type=file]", str(portrait_path))
    page.wait_for_selector("#live-source img", timeout=WAIT_MS)
    page.click("#camera >> text=Click to Access Webcam")
    page.wait_for_selector("#camera video", state="visible", timeout=WAIT_MS)
    page.click("#camera button[aria-label='capture photo']", force=True)
    page.wait_for_selector("#live-out img[src]", timeout=WAIT_MS)
    page.wait_for_function(
        "/[0-9.]+ fps .* ([2-9]|[0-9]{2,}) frames/.test(document.querySelector('#live-fps').innerText)",
        timeout=WAIT_MS,
    )
    first = page.get_attribute("#live-out img", "src")
    page.wait_for_function(f"document.querySelector('#live-out img').src !== {first!r}", timeout=WAIT_MS)
