"""``ostnet web``: the multipart parser's edge cases, the page, and real jobs through a server on a loopback
port (tiny checkpoint, a 10-frame clip of the sample material)."""

from __future__ import annotations

import http.client
import io
import json
import re
import threading
from contextlib import contextmanager
from email.parser import BytesParser
from email.policy import HTTP
from pathlib import Path

import numpy as np
import pytest

from ostnet.checkpoint import load_checkpoint
from ostnet.cli import main
from ostnet.errors import OstnetError
from ostnet.inference.animator import Animator
from ostnet.io.video import VideoWriter, probe_video, read_frames
from ostnet.web import make_server, serve_forever
from ostnet.web.app import Progress, Result
from ostnet.web.multipart import boundary_from, parse_multipart
from ostnet.web.page import PageInfo, ResultView, render_page

pytestmark = pytest.mark.usefixtures("one_thread")

BOUNDARY = "----ostnetTestBoundary7MA4YWxk"
CLIP_FRAMES = 10


# --------------------------------------------------------------------------------------------------
# helpers: a multipart encoder independent of the parser, a loopback client, a running server
# --------------------------------------------------------------------------------------------------


def encode(fields: dict[str, str], files: dict[str, tuple[str, bytes]], boundary: str = BOUNDARY) -> bytes:
    """multipart/form-data as browsers send it (RFC 7578)."""
    out = io.BytesIO()
    for name, value in fields.items():
        out.write(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode())
        out.write(value.encode() + b"\r\n")
    for name, (filename, data) in files.items():
        head = f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
        out.write(head.encode() + b"Content-Type: application/octet-stream\r\n\r\n" + data + b"\r\n")
    out.write(f"--{boundary}--\r\n".encode())
    return out.getvalue()


def parse(body: bytes, folder: Path, chunk_size: int = 1 << 16, boundary: str = BOUNDARY, **kwargs):
    return parse_multipart(io.BytesIO(body), len(body), boundary.encode(), folder, chunk_size=chunk_size, **kwargs)


def request(server, method: str, path: str, body: bytes | None = None, headers: dict | None = None):
    """(status, headers, body) of one request to the server's loopback address."""
    conn = http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=60)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


def post_job(server, fields: dict[str, str], files: dict[str, tuple[str, bytes]], json_reply: bool = True):
    headers = {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}
    if json_reply:
        headers["Accept"] = "application/json"
    status, head, body = request(server, "POST", "/animate", encode(fields, files), headers)
    return status, (json.loads(body) if json_reply else body.decode())


@contextmanager
def running(animator, **kwargs):
    server = make_server(animator, "127.0.0.1", 0, **kwargs)
    thread = threading.Thread(target=serve_forever, args=(server,), kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        thread.join(timeout=10)


@pytest.fixture(scope="module")
def animator(tiny_checkpoint) -> Animator:
    return Animator(load_checkpoint(tiny_checkpoint), device="cpu")


@pytest.fixture(scope="module")
def server(tiny_checkpoint):
    with running(lambda: Animator(load_checkpoint(tiny_checkpoint), device="cpu")) as srv:
        yield srv


@pytest.fixture(scope="module")
def clip(shared_dir, tmp_path_factory) -> bytes:
    """A 10-frame mp4 cut from the sample clip d0."""
    path = tmp_path_factory.mktemp("clip") / "talk.mp4"
    with VideoWriter(path, 25) as writer:
        for frame in read_frames(shared_dir / "data/clips/d0.mp4", max_frames=CLIP_FRAMES):
            writer.write(frame)
    return path.read_bytes()


@pytest.fixture(scope="module")
def portrait(shared_dir) -> bytes:
    return (shared_dir / "data/portraits/s2.jpg").read_bytes()


# --------------------------------------------------------------------------------------------------
# multipart parser
# --------------------------------------------------------------------------------------------------

TRICKY = (
    b"\r\n\r\n\x00\xff binary \r\n--"
    + BOUNDARY[:-1].encode()
    + b"\r\n--"
    + BOUNDARY.encode()[:10]
    + b" --"
    + BOUNDARY.encode()
    + b" (no CRLF before it) \r\n-\r\n--\r\n"
    + bytes(range(256))
    + b"\r"
)


@pytest.mark.parametrize("chunk_size", [1, 2, 7, 31, 1 << 16])
def test_multipart_keeps_binary_content_exactly(tmp_path, chunk_size):
    rng = np.random.default_rng(chunk_size)
    blob = rng.integers(0, 256, 5000, dtype=np.uint8).tobytes().replace(b"\n", b"\r\n") + TRICKY
    body = b"preamble to ignore\r\n" + encode({"mode": "relative", "note": "a\r\nb"}, {"driving": ("v.mp4", blob)})
    form = parse(body + b"epilogue to ignore", tmp_path, chunk_size)
    upload = form.file("driving", "driving video")
    assert upload.path.read_bytes() == blob and upload.size == len(blob)
    assert (upload.filename, upload.path.suffix, upload.path.parent) == ("v.mp4", ".mp4", tmp_path)
    assert form.fields == {"mode": "relative", "note": "a\r\nb"}


def test_multipart_test_encoder_agrees_with_the_email_package(tmp_path):
    """The encoder above, checked by an independent decoder, so the round trip cannot share a bug."""
    body = encode({"mode": "auto"}, {"source": ("p.png", TRICKY)})
    head = f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n\r\n".encode()
    parts = list(BytesParser(policy=HTTP).parsebytes(head + body).iter_parts())
    assert [p.get_param("name", header="content-disposition") for p in parts] == ["mode", "source"]
    assert parts[1].get_payload(decode=True) == TRICKY == parse(body, tmp_path).files["source"].path.read_bytes()


def test_multipart_file_names_and_empty_files(tmp_path):
    body = (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="source"; filename="C:\\\\pics\\\\me.JPG"\r\n\r\n'
        f"x\r\n--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"driving\"; filename*=UTF-8''cl%C3%AFp.webm"
        f'\r\n\r\ny\r\n--{BOUNDARY}\r\nContent-Disposition: form-data; name="empty"; filename=""\r\n\r\n\r\n'
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="blank"; filename="b.gif"\r\n\r\n\r\n--{BOUNDARY}--'
    ).encode()
    form = parse(body, tmp_path)
    assert form.files["source"].filename == "me.JPG" and form.files["source"].path.suffix == ".jpg"
    assert form.files["driving"].filename == "clïp.webm"
    with pytest.raises(OstnetError, match="no portrait was uploaded"):
        form.file("empty", "portrait")
    with pytest.raises(OstnetError, match="'b.gif': the file is empty"):
        form.file("blank", "driving video")


def test_multipart_missing_fields_and_flags(tmp_path):
    form = parse(encode({"paste_back": "1", "side_by_side": "off"}, {"source": ("s.jpg", b"jpg")}), tmp_path)
    with pytest.raises(OstnetError, match="no driving video was uploaded \\(field 'driving'\\)"):
        form.file("driving", "driving video")
    with pytest.raises(OstnetError, match="missing field 'mode'"):
        form.text("mode")
    assert form.text("mode", "auto") == "auto"
    assert form.flag("paste_back") and not form.flag("side_by_side") and not form.flag("adapt_scale")


@pytest.mark.parametrize(
    "body, message",
    [
        (b"", "ended early"),
        (b"just text, no boundary", "ended early"),
        (encode({"a": "b"}, {})[:-12], "ended early"),  # the closing boundary is cut
        (f"--{BOUNDARY}junk\r\n".encode(), "no line break after a boundary"),
        (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=a".encode(), "inside a part header"),
        (f"--{BOUNDARY}\r\nContent-Type: text/plain\r\n\r\nx\r\n--{BOUNDARY}--".encode(), "no Content-Disposition"),
    ],
)
def test_multipart_malformed_bodies(tmp_path, body, message):
    with pytest.raises(OstnetError, match=message):
        parse(body, tmp_path, chunk_size=5)


def test_multipart_limits_and_content_types(tmp_path):
    with pytest.raises(OstnetError, match="longer than 8 bytes"):
        parse(encode({"mode": "x" * 9}, {}), tmp_path, max_field_bytes=8)
    assert boundary_from(f'multipart/form-data; boundary="{BOUNDARY}"') == BOUNDARY.encode()
    for bad in (None, "application/json", "multipart/form-data", "multipart/form-data; boundary=" + "x" * 71):
        with pytest.raises(OstnetError, match="request: "):
            boundary_from(bad)


def test_multipart_stops_at_content_length(tmp_path):
    body = encode({"a": "1"}, {})
    stream = io.BytesIO(body + b"NEXT REQUEST")
    form = parse_multipart(stream, len(body), BOUNDARY.encode(), tmp_path)
    assert form.fields == {"a": "1"} and stream.read() == b"NEXT REQUEST"
    with pytest.raises(OstnetError, match="connection closed"):
        parse_multipart(io.BytesIO(body[:20]), len(body), BOUNDARY.encode(), tmp_path)


# --------------------------------------------------------------------------------------------------
# page and bookkeeping
# --------------------------------------------------------------------------------------------------


def test_page_escapes_text_and_knows_the_model():
    info = PageInfo("baseline", 256, has_scale_transform=False, device="cpu", dtype="fp32", max_upload_mb=50)
    page = render_page(info, error="<script>alert(1)</script> & more")
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; more" in page and "<script>alert" not in page
    assert re.search(r'<option value="anchor-free"[^>]*disabled', page)
    assert 'data-resolves="relative"' in page and "52428800" in page and "{{" not in page
    st_page = render_page(PageInfo("ostnet-vox-256", 256, True, "cuda", "bf16", 200))
    assert not re.search(r'<option value="anchor-free"[^>]*disabled', st_page) and re.search(
        r'id="error"[^>]*hidden>', st_page
    )


def test_page_with_a_result_for_the_no_javascript_path():
    info = PageInfo("tiny", 64, True, "cpu", "fp32", 200)
    view = ResultView("/result/ab.mp4", "/result/ab.mp4?download=1", "me-t.mp4", "10 frames", ("no face in 2 <of> 10",))
    page = render_page(info, result=view)
    assert '<video id="video" src="/result/ab.mp4"' in page and 'download="me-t.mp4"' in page
    assert "<li>no face in 2 &lt;of&gt; 10</li>" in page and not re.search(r'id="result"[^>]*hidden', page)


def test_progress_stages():
    progress = Progress()
    assert progress.to_json() == {"busy": False, "stage": "idle", "done": 0, "total": 0}
    progress.start("preparing", 10)
    progress.add(4)
    assert progress.to_json() == {"busy": True, "stage": "animating", "done": 4, "total": 10}
    progress.add(6)
    assert progress.to_json()["stage"] == "finishing"
    progress.stop()
    assert not progress.to_json()["busy"]


def test_old_results_are_deleted(animator, tmp_path):
    with running(animator, keep_results=2) as srv:
        app = srv.app
        results = []
        for i in range(3):
            path = app.folder / f"{i:032x}.mp4"
            path.write_bytes(b"video")
            results.append(Result(f"{i:032x}", path, "x.mp4", animate=None))
            app._remember(results[-1])
        assert app.result(results[0].id) is None and not results[0].path.exists()
        assert app.result(results[2].id) == results[2]
        assert request(srv, "GET", results[0].video_url)[0] == 404
        folder = app.folder
    assert not folder.exists()  # uploads and results are removed at shutdown


# --------------------------------------------------------------------------------------------------
# the server
# --------------------------------------------------------------------------------------------------


def test_get_page_and_unknown_paths(server):
    status, headers, body = request(server, "GET", "/")
    page = body.decode()
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    assert '<form id="form" action="/animate" method="post" enctype="multipart/form-data">' in page
    for name in ('name="source"', 'name="driving"', 'name="mode"', "paste_back", "side_by_side", "adapt_scale"):
        assert name in page
    for mode in ("auto", "anchor-free", "relative", "absolute", "best-frame"):
        assert f'<option value="{mode}"' in page
    assert "Model tiny (64&times;64" in page
    for path in ("/nope", "/result/../../etc/passwd", "/result/" + "0" * 32 + ".mp4"):
        assert request(server, "GET", path)[0] == 404
    assert json.loads(request(server, "GET", "/progress")[2])["busy"] is False


def test_animate_returns_a_playable_video(server, portrait, clip, monkeypatch):
    seen = []
    stop = server.app.progress.stop
    monkeypatch.setattr(server.app.progress, "stop", lambda: (seen.append(server.app.progress.to_json()), stop()))
    status, reply = post_job(server, {"mode": "auto"}, {"source": ("me.jpg", portrait), "driving": ("t.mp4", clip)})
    assert status == 200, reply
    assert re.fullmatch(r"[0-9a-f]{32}", reply["id"]) and reply["video"] == f"/result/{reply['id']}.mp4"
    assert (reply["frames"], reply["fps"], reply["audio_kept"], reply["mode"]) == (
        CLIP_FRAMES,
        25.0,
        False,
        "anchor-free",
    )
    assert reply["summary"].startswith("10 frames at 25 fps (0.4 s), no audio, mode anchor-free")
    assert seen[-1] == {"busy": True, "stage": "finishing", "done": CLIP_FRAMES, "total": CLIP_FRAMES}

    status, headers, video = request(server, "GET", reply["video"])
    assert status == 200 and headers["Content-Type"] == "video/mp4"
    path = server.app.folder / "check.mp4"
    path.write_bytes(video)
    info = probe_video(path)
    assert (info.num_frames, info.width, info.height) == (CLIP_FRAMES, 64, 64)

    status, headers, _ = request(server, "GET", reply["download"])
    assert headers["Content-Disposition"] == 'attachment; filename="me-t.mp4"'
    status, headers, part = request(server, "GET", reply["video"], headers={"Range": "bytes=10-109"})
    assert (status, part, headers["Content-Range"]) == (206, video[10:110], f"bytes 10-109/{len(video)}")
    assert request(server, "GET", reply["video"], headers={"Range": "bytes=-7"})[2] == video[-7:]
    assert request(server, "GET", reply["video"], headers={"Range": f"bytes={len(video)}-"})[0] == 416


@pytest.mark.parametrize("mode", ["relative", "best-frame"])
def test_animate_options_reach_the_pipeline(server, portrait, clip, mode):
    fields = {"mode": mode, "side_by_side": "1", "adapt_scale": "1"}
    status, reply = post_job(server, fields, {"source": ("p.jpg", portrait), "driving": ("d.mp4", clip)})
    assert status == 200, reply
    assert reply["mode"].startswith(mode) and reply["frames"] == CLIP_FRAMES
    path = server.app.folder / f"check-{mode}.mp4"
    path.write_bytes(request(server, "GET", reply["video"])[2])
    info = probe_video(path)
    assert (info.num_frames, info.width, info.height) == (CLIP_FRAMES, 3 * 64, 64)  # source | driving | result


def test_no_crop_and_paste_back(server, shared_dir, clip):
    """'The inputs are already face crops' skips detection (so the dog works); paste-back keeps its size."""
    dog = (shared_dir / "data/portraits/s25.jpg").read_bytes()
    fields = {"mode": "absolute", "no_crop": "1", "paste_back": "1"}
    status, reply = post_job(server, fields, {"source": ("dog.jpg", dog), "driving": ("d.mp4", clip)})
    assert status == 200 and reply["mode"] == "absolute", reply
    path = server.app.folder / "check-dog.mp4"
    path.write_bytes(request(server, "GET", reply["video"])[2])
    info = probe_video(path)
    assert (info.num_frames, info.width, info.height) == (CLIP_FRAMES, 512, 512)


def test_bad_inputs_are_readable_400s(server, shared_dir, portrait, clip):
    dog = (shared_dir / "data/portraits/s25.jpg").read_bytes()
    cases = [
        ({}, {"source": ("dog.jpg", dog), "driving": ("d.mp4", clip)}, "portrait 'dog.jpg': no face found"),
        ({}, {"source": ("p.jpg", portrait), "driving": ("notes.mp4", b"hello\n")}, "'notes.mp4': not a video"),
        ({}, {"source": ("p.jpg", portrait), "driving": ("n.txt", b"text")}, "driving video 'n.txt': not a video"),
        ({}, {"source": ("p.jpg", portrait)}, "no driving video was uploaded"),
        ({"mode": "sideways"}, {"source": ("p.jpg", portrait), "driving": ("d.mp4", clip)}, "unknown motion mode"),
    ]
    for fields, files, message in cases:
        status, reply = post_job(server, fields, files)
        assert status == 400 and message in reply["error"], reply
        assert str(server.app.folder) not in reply["error"] and "Traceback" not in reply["error"]
    assert not any((server.app.folder / "uploads").iterdir())  # uploads are deleted after each job


def test_errors_without_javascript_come_back_as_the_page(server, shared_dir, clip):
    dog = (shared_dir / "data/portraits/s25.jpg").read_bytes()
    status, page = post_job(server, {}, {"source": ("dog.jpg", dog), "driving": ("d.mp4", clip)}, json_reply=False)
    assert status == 400 and "<form" in page
    assert re.search(r'id="error"[^>]*>portrait &#x27;dog.jpg&#x27;: no face found', page)


def test_busy_server_answers_503(server, portrait, clip):
    with server.app.lock:  # a job is running
        status, reply = post_job(server, {}, {"source": ("p.jpg", portrait), "driving": ("d.mp4", clip)})
    assert status == 503 and "busy, try again" in reply["error"]


def test_too_big_upload_and_bugs_are_reported_not_raised(animator, portrait, clip, capsys):
    with running(animator, max_upload_mb=0.01) as srv:
        status, reply = post_job(srv, {}, {"source": ("p.jpg", portrait), "driving": ("d.mp4", clip)})
        assert status == 400 and "more than the limit of 0.01 MB" in reply["error"]
    with running(animator) as srv:
        srv.app.animate = lambda form: 1 / 0
        status, reply = post_job(srv, {}, {"source": ("p.jpg", portrait), "driving": ("d.mp4", clip)})
        assert status == 500 and reply["error"].startswith("internal error (ZeroDivisionError: division by zero)")
        status, _, body = request(srv, "POST", "/animate", b"x", {"Content-Type": "text/plain"})
        assert status == 400 and b"expected multipart/form-data" in body
    assert "Traceback" in capsys.readouterr().err  # the traceback goes to the terminal, not the page


def test_cli_errors(server, tiny_checkpoint, tmp_path, capsys):
    port = server.server_address[1]
    assert main(["web", "--checkpoint", str(tiny_checkpoint), "--port", str(port)]) == 2
    assert "cannot listen there" in capsys.readouterr().err
    assert main(["web", "--checkpoint", str(tmp_path / "missing.safetensors")]) == 2
    assert main(["web", "--checkpoint", str(tiny_checkpoint), "--port", "70000"]) == 2
    assert "--port must be between 0 and 65535" in capsys.readouterr().err
