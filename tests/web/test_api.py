"""The web app through its API (``gradio_client`` and raw HTTP) on a real loopback server: a job gives the same
video as ``ostnet animate``; bad input gets a 4xx with one clear line, and the server keeps serving."""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from PIL import Image

from ostnet.cli import main
from ostnet.io.video import VideoWriter, probe_video, read_frames

pytestmark = pytest.mark.usefixtures("one_thread")


def _address(server) -> tuple[str, int]:
    parts = urlsplit(server.url)
    return parts.hostname, parts.port


def request(server, method: str, path: str, body: bytes | None = None, headers: dict | None = None):
    """(status, body text) of one request to the server."""
    conn = http.client.HTTPConnection(*_address(server), timeout=60)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.read().decode(errors="replace")
    finally:
        conn.close()


def _read_all(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    data = b""
    while chunk := sock.recv(4096):
        data += chunk
    return data


def upload(server, name: str, data: bytes, headers: dict | None = None):
    boundary = "ostnetTestBoundary"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="{name}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )
    head = {"Content-Type": f"multipart/form-data; boundary={boundary}", **(headers or {})}
    return request(server, "POST", "/gradio_api/upload", body, head)


def animate(client, source, driving, **options):
    from gradio_client import handle_file

    return client.predict("tiny", handle_file(str(source)), handle_file(str(driving)), api_name="/animate", **options)


def test_job_matches_ostnet_animate(client, portrait_path, clip_path, tiny_checkpoint, tmp_path):
    """The app calls the same pipeline as the command line: the same frames, with the audio."""
    video, summary = animate(client, portrait_path, clip_path, mode="relative", side_by_side=True)
    info, frames = probe_video(video), probe_video(clip_path).num_frames
    assert (info.num_frames, info.has_audio) == (frames, True)
    assert summary.startswith(f"tiny: {frames} frames at 30 fps") and "audio kept, mode relative" in summary
    cli = tmp_path / "cli.mp4"
    argv = ["animate", "--source", str(portrait_path), "--driving", str(clip_path), "--checkpoint"]
    assert main([*argv, str(tiny_checkpoint), "--output", str(cli), "--mode", "relative", "--side-by-side"]) == 0
    ours, theirs = read_frames(video).astype(int), read_frames(cli).astype(int)
    assert ours.shape == theirs.shape and abs(ours - theirs).max() <= 2  # same pixels up to decoder rounding


def test_model_picker_controls_and_edit(client, portrait_path, clip_path):
    """The PECHead model takes pose controls (and edits a still portrait); the OSTNet model refuses them."""
    from gradio_client import handle_file
    from gradio_client.exceptions import ValidationError

    from ostnet.io.image import load_image

    source, driving = handle_file(str(portrait_path)), handle_file(str(clip_path))
    video, summary = client.predict("pechead", source, driving, max_frames=4, yaw=10.0, api_name="/animate")
    assert summary.startswith("pechead: 4 frames") and probe_video(video).num_frames == 4
    with pytest.raises(Exception, match="--yaw: model 'tiny' cannot honour it") as caught:
        client.predict("tiny", source, driving, max_frames=4, yaw=10.0, api_name="/animate")
    assert not isinstance(caught.value, ValidationError) or "Traceback" not in str(caught.value)
    edited = load_image(client.predict("pechead", source, yaw=15.0, smile=0.5, api_name="/edit"))
    assert edited.shape == (64, 64, 3)


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("dog", "the portrait: no face found"),
        ("text", "the driving video: not a video"),
        ("truncated", "the driving video: corrupt or truncated"),
        ("long", "the driving video is too long (3.0 s, 75 frames); this server takes at most 2 s"),
        ("options", "--face-index 3, but only 1 face(s) found"),
    ],
)
def test_bad_input_is_a_422_with_one_line(
    case, message, client, web_server, portrait_path, dog_path, clip_path, long_clip_path, tmp_path
):
    from gradio_client.exceptions import ValidationError

    source, driving, options = portrait_path, clip_path, {}
    if case == "dog":
        source = dog_path
    elif case == "text":
        driving = tmp_path / "notes.mp4"
        driving.write_text("not a video\n")
    elif case == "truncated":
        driving = tmp_path / "cut.mp4"
        driving.write_bytes(clip_path.read_bytes()[: clip_path.stat().st_size // 2])
    elif case == "long":
        driving = long_clip_path
    else:
        options = {"face_index": 3}
    with pytest.raises(ValidationError) as caught:
        animate(client, source, driving, **options)
    text = str(caught.value)
    assert message in text and "Traceback" not in text and str(web_server.folder) not in text


def test_validation_is_a_422_over_plain_http(web_server, portrait_path, dog_path, clip_path):
    """The HTTP status itself, without the client library: the job is refused at the door."""
    from ostnet.web.app import web_default

    paths = {}
    for name, path in (("source", dog_path), ("driving", clip_path)):
        status, body = upload(web_server, path.name, path.read_bytes())
        assert status == 200, body
        paths[name] = json.loads(body)[0]
    data = ["tiny"] + [{"path": paths[k], "meta": {"_type": "gradio.FileData"}} for k in ("source", "driving")]
    data += [web_default(option) for option in web_server.app.options]
    body = json.dumps({"data": data}).encode()
    status, body = request(web_server, "POST", "/gradio_api/call/animate", body, {"Content-Type": "application/json"})
    assert status == 422 and "no face found" in body, (status, body)


def test_oversized_upload_is_a_413(web_server):
    """Refused from its Content-Length alone, before any of the body is read."""
    host, port = _address(web_server)
    with socket.create_connection((host, port), timeout=30) as s:
        s.sendall(
            f"POST /gradio_api/upload HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Length: {2 << 20}\r\n"
            "Content-Type: multipart/form-data; boundary=x\r\n\r\n".encode()
        )
        # No body is sent: the answer must come from the header alone. (Sending the 2 MB first made the test
        # flaky: a server that answers and closes with unread bytes resets the connection, losing the answer.)
        answer = _read_all(s)
    assert answer.startswith(b"HTTP/1.1 413") and b"upload too large: the limit is 1 MB" in answer, answer
    assert request(web_server, "GET", "/config")[0] == 200  # still serving


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({"Host": "evil.example:80"}, "foreign Host header 'evil.example:80'"),
        ({"Origin": "http://evil.example"}, "foreign Origin 'http://evil.example'"),
        ({"Origin": "null"}, "foreign Origin 'null'"),
    ],
)
def test_foreign_host_or_origin_is_a_403(web_server, headers, message):
    """DNS rebinding (a foreign Host) and cross-site pages (a foreign Origin) cannot use a loopback server."""
    status, body = upload(web_server, "a.txt", b"hello", headers)
    assert status == 403 and message in body
    assert request(web_server, "GET", "/config", headers=headers)[0] == 403
    own = f"http://127.0.0.1:{_address(web_server)[1]}"
    assert upload(web_server, "a.txt", b"hello", {"Origin": own})[0] == 200  # the page's own origin is fine


def test_slow_drip_upload_is_cut_off_and_does_not_hold_the_job_slot(web_server, client, portrait_path, clip_path):
    """A body that trickles in gets 408 at the deadline (3 s here); a job submitted meanwhile finishes."""
    host, port = _address(web_server)
    answer: list[bytes] = []

    def drip() -> None:
        with socket.create_connection((host, port), timeout=30) as s:
            s.sendall(
                f"POST /gradio_api/upload HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Length: 100000\r\n"
                "Content-Type: multipart/form-data; boundary=x\r\n\r\n".encode()
            )
            try:
                for _ in range(40):
                    s.sendall(b"x")
                    time.sleep(0.25)
            except OSError:  # the server closed the connection: what we want
                pass
            answer.append(_read_all(s))

    started = time.monotonic()
    thread = threading.Thread(target=drip)
    thread.start()
    video, _ = animate(client, portrait_path, clip_path)
    thread.join(timeout=30)
    assert Path(video).is_file()
    assert answer and answer[0].startswith(b"HTTP/1.1 408") and b"upload too slow" in answer[0], answer
    assert time.monotonic() - started < 15


def test_session_files_are_deleted_when_the_session_ends(
    web_server, gradio_client_cls, portrait_path, clip_path, tmp_path
):
    """Files of its own (a portrait and a clip no other test uploads) are gone once the client leaves."""
    portrait, clip = tmp_path / "mine.png", tmp_path / "mine.mp4"
    Image.open(portrait_path).reduce(2).save(portrait)
    with VideoWriter(clip, 30) as writer:
        for frame in read_frames(clip_path, max_frames=3):
            writer.write(frame)
    client = gradio_client_cls(web_server.url, verbose=False, download_files=tmp_path, httpx_kwargs={"timeout": 120})
    animate(client, portrait, clip)
    held = web_server.app.files.held(client.session_hash)
    assert len(held) == 3 and all(p.is_file() and web_server.folder in p.parents for p in held)
    client.close()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and any(p.exists() for p in held):
        time.sleep(0.5)
    assert not any(p.exists() for p in held)
    assert not web_server.app.files.held(client.session_hash)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--auth", "nopassword"], "--auth must be USER:PASS"),
        (["--max-upload-mb", "0"], "--max-upload-mb must be at least 0.001, got 0"),
        (["--max-queue", "-1"], "--max-queue must be at least 1, got -1"),
        (["--port", "70000"], "--port must be in [0, 65535], got 70000"),
    ],
)
def test_cli_errors_are_one_line(argv, message, tiny_checkpoint, capsys):
    assert main(["web", "--checkpoint", str(tiny_checkpoint), *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]
