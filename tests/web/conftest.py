"""Fixtures for the web app: one real server for the whole session (tiny checkpoint, small limits, loopback),
short clips, a Gradio client, and a real Chromium driven by Playwright.

The browser is Debian's ``chromium`` (``apt-get install chromium``), never a downloaded one. Without it (or
without the ``web`` extra) the tests skip with a message on a user's machine and FAIL under CI (``CI`` set).
"""

from __future__ import annotations

import os
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from tests.conftest import unavailable

from ostnet.io.video import VideoWriter, read_frames

CLIP_FRAMES = 10
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="session")
def gradio_client_cls():
    try:
        from gradio_client import Client
    except ImportError:
        unavailable('the web extra is not installed (pip install -e ".[web]")')
    return Client


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def clip_path(shared_dir, tmp_path_factory) -> Path:
    """10 frames of the sample clip d3 (30 fps) with its audio."""
    source = shared_dir / "data/clips/d3.mp4"
    path = tmp_path_factory.mktemp("clips") / "talk.mp4"
    with VideoWriter(path, 30, audio_from=source) as writer:
        for frame in read_frames(source, max_frames=CLIP_FRAMES):
            writer.write(frame)
    return path


@pytest.fixture(scope="session")
def long_clip_path(shared_dir, tmp_path_factory) -> Path:
    """3 s (75 frames at 25 fps) of d0: over the test server's 2 s limit."""
    path = tmp_path_factory.mktemp("clips") / "long.mp4"
    with VideoWriter(path, 25) as writer:
        for frame in read_frames(shared_dir / "data/clips/d0.mp4", max_frames=75):
            writer.write(frame[::4, ::4])
    return path


@pytest.fixture(scope="session")
def portrait_path(shared_dir) -> Path:
    return shared_dir / "data/portraits/s2.jpg"


@pytest.fixture(scope="session")
def dog_path(shared_dir) -> Path:
    return shared_dir / "data/portraits/s25.jpg"


@pytest.fixture(scope="session")
def web_server(tiny_checkpoint, gradio_client_cls) -> Iterator:
    """One server for all web tests: the tiny OSTNet and a tiny PECHead (two models in the picker, one with
    pose and expression controls), 1 MB uploads, 2 s videos, a 3 s request deadline, a queue of 4."""
    import torch

    from ostnet.checkpoint import save_checkpoint
    from ostnet.models.ostnet import build_model
    from ostnet.web.jobs import load_models
    from ostnet.web.limits import WebLimits
    from ostnet.web.server import serve

    torch.set_num_threads(1)
    limits = WebLimits(max_upload_mb=1, max_video_seconds=2, max_queue=4, request_timeout=3)
    torch.manual_seed(0)
    pechead = tiny_checkpoint.parent / "pechead.safetensors"
    save_checkpoint(build_model("tiny-pechead"), pechead)
    models = load_models([tiny_checkpoint, pechead], "cpu", limits.per_model)
    served = serve(models, limits, "127.0.0.1", free_port(), block=False, quiet=True)
    yield served
    served.close()
    assert not served.folder.exists()


@pytest.fixture
def client(web_server, gradio_client_cls, tmp_path) -> Iterator:
    client = gradio_client_cls(web_server.url, verbose=False, download_files=tmp_path, httpx_kwargs={"timeout": 120})
    yield client
    client.close()


def chromium_path() -> str | None:
    return os.environ.get("OSTNET_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="session")
def fake_camera(clip_path, tmp_path_factory) -> Path:
    """The test clip as a Y4M file, for Chromium's fake camera (``--use-file-for-fake-video-capture``)."""
    import av

    frames = read_frames(clip_path)
    height, width = frames.shape[1:3]
    path = tmp_path_factory.mktemp("camera") / "camera.y4m"
    with path.open("wb") as f:
        f.write(f"YUV4MPEG2 W{width} H{height} F10:1 Ip A1:1 C420jpeg\n".encode())
        for frame in frames:
            planes = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24").reformat(format="yuv420p")
            f.write(b"FRAME\n" + planes.to_ndarray().tobytes())
    return path


@pytest.fixture(scope="session")
def browser(fake_camera) -> Iterator:
    """Headless Chromium (Debian's package) with a fake camera that plays the test clip."""
    path = chromium_path()
    if path is None:
        unavailable("no chromium browser (apt-get install chromium; or set OSTNET_CHROMIUM)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("playwright is not installed (pip install -e '.[web]' and the dev extra)")
    flags = CHROMIUM_FLAGS + [
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-video-capture={fake_camera}",
    ]
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=path, args=flags)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, web_server):
    context = browser.new_context(viewport={"width": 1280, "height": 900}, permissions=["camera"])
    page = context.new_page()
    page.goto(web_server.url)
    page.wait_for_selector("#run", timeout=60_000)
    yield page
    context.close()
