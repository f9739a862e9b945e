"""The web app's parts without a server: the request guard (plain ASGI), the options derived from
``ostnet animate``, session files and limits."""

from __future__ import annotations

import asyncio
import os
import re
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from ostnet.commands.animate import options_from_args
from ostnet.errors import OstnetError
from ostnet.web.guard import GuardSettings, RequestGuard
from ostnet.web.jobs import SessionFiles
from ostnet.web.limits import WebLimits
from ostnet.web.options import animate_parser, animate_web_options, edit_web_options, options_for

# ------------------------------------------------------------------------------------------------ guard


class Recorder:
    """An ASGI app that records the body it received and answers 200."""

    def __init__(self) -> None:
        self.body = b""
        self.calls = 0

    async def __call__(self, scope, receive, send) -> None:
        self.calls += 1
        if scope["method"] == "POST":
            while True:
                message = await receive()
                self.body += message.get("body", b"")
                if not message.get("more_body"):
                    break
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


def call(guard, headers: dict, chunks: list[bytes] = (), method: str = "POST", delay: float = 0.0):
    """(status, body) of one request through ``guard``; chunks arrive ``delay`` seconds apart."""
    scope = {
        "type": "http",
        "method": method,
        "path": "/",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
    }
    pending = list(chunks)
    sent: list[dict] = []

    async def receive():
        if delay:
            await asyncio.sleep(delay)
        body = pending.pop(0) if pending else b""
        return {"type": "http.request", "body": body, "more_body": bool(pending)}

    async def send(message):
        sent.append(message)

    with ThreadPoolExecutor(1) as pool:  # its own event loop (Playwright's may be running in this thread)
        pool.submit(asyncio.run, guard(scope, receive, send)).result()
    return sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:]).decode()


LOOPBACK = GuardSettings.for_host("127.0.0.1", max_upload_bytes=100, body_seconds=0.5)


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({"Host": "127.0.0.1:7860"}, 200),
        ({"Host": "localhost:7860", "Origin": "http://localhost:7860"}, 200),
        ({"Host": "[::1]:7860"}, 200),
        ({"Host": "evil.example"}, 403),
        ({"Host": "127.0.0.1.evil.example:7860"}, 403),
        ({"Host": "127.0.0.1:7860", "Origin": "http://evil.example"}, 403),
        ({"Host": "127.0.0.1:7860", "Origin": "http://127.0.0.1:9999"}, 403),  # another local port: another site
        ({"Host": "127.0.0.1:7860", "Origin": "null"}, 403),
        ({}, 403),
    ],
)
def test_guard_accepts_only_its_own_host_and_origin(headers, status):
    app = Recorder()
    assert call(RequestGuard(app, LOOPBACK), headers, [b"x"])[0] == status
    assert app.calls == (status == 200)


def test_guard_beyond_loopback_accepts_any_host():
    settings = GuardSettings.for_host("0.0.0.0", max_upload_bytes=100, body_seconds=1)
    assert settings.allowed_hosts is None
    assert call(RequestGuard(Recorder(), settings), {"Host": "my-server.lan", "Origin": "http://x"}, [b"x"])[0] == 200


def test_guard_reads_the_whole_body_before_the_app_and_passes_it_on(tmp_path):
    app = Recorder()
    chunks = [bytes([i]) * 50_000 for i in range(3)]
    settings = GuardSettings(None, max_upload_bytes=200_000, body_seconds=5)
    assert call(RequestGuard(app, settings, tmp_path), {}, chunks) == (200, "ok")
    assert app.body == b"".join(chunks) and not list(tmp_path.iterdir())  # spooled body removed


def test_guard_refuses_large_and_slow_bodies_before_the_app():
    app = Recorder()
    big = 100 + (1 << 16) + 1
    status, text = call(RequestGuard(app, LOOPBACK), {"Host": "127.0.0.1", "Content-Length": str(big)}, [b"x"])
    assert (status, text.strip()) == (413, "upload too large: the limit is 9.53674e-05 MB (--max-upload-mb)")
    status, _ = call(RequestGuard(app, LOOPBACK), {"Host": "127.0.0.1"}, [b"x" * 40_000] * 3)  # no length given
    assert status == 413
    start = time.monotonic()
    status, text = call(RequestGuard(app, LOOPBACK), {"Host": "127.0.0.1"}, [b"x"] * 50, delay=0.05)
    assert status == 408 and "upload too slow" in text and time.monotonic() - start < 2
    assert app.calls == 0


# ------------------------------------------------------------------------------------------------ options


def test_every_animate_option_but_the_servers_is_offered():
    offered = {o.dest for o in animate_web_options()}
    parser = {a.dest for a in animate_parser()._actions if a.option_strings and a.dest != "help"}
    server_side = {"source", "driving", "checkpoint", "output", "frames", "device", "batch_size", "quiet"}
    server_side |= {"runtime", "onnx_dir"}  # the server's own ONNX export
    files = {"pose_from", "expression_from", "recipe", "save_recipe"}  # paths on the server's disk
    assert parser - offered == server_side | files
    for wanted in (
        "mode",
        "paste_back",
        "side_by_side",
        "adapt_scale",
        "no_crop",
        "face_index",
        "smooth",
        "dtype",
        "yaw",
    ):
        assert wanted in offered


def test_page_values_give_the_command_lines_options(tmp_path):
    """The same AnimateOptions as ``ostnet animate`` with the same flags: one conversion, one set of defaults."""
    files = ["--source", "s.png", "--driving", "d.mp4", "--checkpoint", "c", "--output", "o.mp4"]
    flags = ["--mode", "relative", "--paste-back", "--smooth", "1.5", "--max-frames", "7", "--face-index", "1"]
    expected = options_from_args(animate_parser().parse_args(files + flags))
    values = {"mode": "relative", "paste_back": True, "smooth": "1.5", "max_frames": "7", "face_index": 1.0}
    server = {"source": "s.png", "driving": "d.mp4", "checkpoint": "c", "output": "o.mp4"}
    assert options_for(values, server) == expected
    defaults = options_from_args(animate_parser().parse_args(files))
    assert options_for({"max_frames": "", "margin": None}, server) == defaults


def test_the_page_offers_what_the_declarations_mark_for_the_web():
    from ostnet.inference.controls import ANGLE_LIMIT, EDIT_LIMIT
    from ostnet.inference.options import AnimateOptions, EditOptions
    from ostnet.options import specs

    assert animate_web_options() == [s for s in specs(AnimateOptions) if s.web]
    offered = {o.dest: o for o in edit_web_options()}
    assert list(offered) == [s.dest for s in specs(EditOptions) if s.web]
    assert {"no_crop", "face_index", "paste_back", "yaw", "smile"} <= set(offered)
    assert not {"source", "output", "checkpoint", "device", "recipe", "save_recipe"} & set(offered)
    assert offered["yaw"].bounds == (-ANGLE_LIMIT, ANGLE_LIMIT) and offered["smile"].bounds == (-EDIT_LIMIT, EDIT_LIMIT)
    server = {"source": "s.png", "output": "o.png", "checkpoint": "c"}
    edit = options_for({"yaw": "10", "no_crop": True, "smile": None}, server, EditOptions)
    assert (edit.controls.yaw, edit.crop, edit.controls.smile, edit.output) == (10.0, False, None, Path("o.png"))


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"mode": "sideways"}, "--mode: unknown motion mode 'sideways'; choose one of: auto"),
        ({"max_frames": "ten"}, "--max-frames must be an integer, got 'ten'"),
        ({"max_frames": 2.5}, "--max-frames must be an integer, got 2.5"),
        ({"smooth": "fast"}, "--smooth must be a finite number, got 'fast'"),
        ({"crf": 99}, "--crf must be in [0, 51], got 99"),
        ({"yaw": "200"}, "--yaw must be in [-90, 90], got 200.0"),
    ],
)
def test_bad_option_values_are_one_line_errors(values, message):
    with pytest.raises(OstnetError, match="^" + re.escape(message)):
        options_for(values, {"source": "s", "driving": "d", "output": "o"})


# ------------------------------------------------------------------------------------------------ files, limits


def _touch(path: Path, when: float | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    if when is not None:
        os.utime(path, (when, when))
    return path


def test_session_files_are_shared_and_released_once_nobody_holds_them(tmp_path):
    files = SessionFiles(tmp_path)
    old = time.time() - 60
    shared, mine, theirs = (_touch(tmp_path / "gradio" / h / "f", old) for h in ("aa", "bb", "cc"))
    files.hold("a", shared, mine)
    files.hold("b", shared, theirs)
    assert files.release("a") == [mine]  # the shared upload stays while b holds it
    assert shared.exists() and not mine.parent.exists() and (tmp_path / "gradio").is_dir()
    assert sorted(files.release("b")) == sorted([shared, theirs]) and files.release("b") == []
    assert [p.name for p in tmp_path.iterdir()] == ["gradio"]


def test_a_file_written_again_after_it_was_taken_is_not_deleted(tmp_path):
    """Another session uploaded the same content (same name) after this one took it: it is theirs now."""
    files = SessionFiles(tmp_path)
    path = _touch(tmp_path / "gradio" / "aa" / "f", time.time() - 60)
    files.hold("a", path)
    _touch(path, time.time() + 1)
    assert files.release("a") == [] and path.exists()


def test_results_get_their_own_folders(tmp_path):
    files = SessionFiles(tmp_path)
    first, second = files.new_output(), files.new_output()
    assert first.parent != second.parent and first.parent.parent == tmp_path / "results"
    files.discard_output(first)
    assert not first.parent.exists() and second.parent.exists()


@pytest.mark.parametrize("field", ["max_upload_mb", "max_video_seconds", "max_queue", "per_model", "request_timeout"])
@pytest.mark.parametrize("value", [0, -1, float("nan"), float("inf")])
def test_limits_must_be_positive_and_finite(field, value):
    with pytest.raises(OstnetError, match=f"--{field.replace('_', '-')} must be a positive number"):
        WebLimits(**{field: value})
