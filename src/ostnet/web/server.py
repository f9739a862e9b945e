"""The HTTP side of ``ostnet web``: a standard-library ``ThreadingHTTPServer`` around one ``WebApp``.

Routes:

* ``GET /``: the page (``ostnet.web.page``);
* ``POST /animate``: ``multipart/form-data`` with ``source`` (image), ``driving`` (video), ``mode`` and the
  checkboxes ``paste_back``, ``side_by_side``, ``adapt_scale``, ``no_crop``. 200 with JSON
  ``{id, video, download, filename, summary, frames, fps, duration, audio_kept, mode, warnings}``; 400 with
  ``{error}`` for bad input (the ``OstnetError`` text), 503 while another video is being made, 500 (no
  traceback) for a bug. A request that does not ask for JSON (``Accept``) gets the page with the result or
  the error instead (the no-JavaScript path);
* ``GET /progress``: ``{busy, stage, done, total}`` of the running job;
* ``GET /result/<id>.mp4`` (``?download=1`` for an attachment): a finished video, with byte ranges.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
import traceback
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import BinaryIO
from urllib.parse import parse_qs, urlsplit

from ostnet.errors import OstnetError
from ostnet.inference.animator import Animator
from ostnet.web.app import Result, WebApp
from ostnet.web.multipart import boundary_from, parse_multipart
from ostnet.web.page import ResultView, render_page

COPY_CHUNK = 1 << 16
DRAIN_LIMIT = 1 << 30  # an unwanted body up to this size is read and dropped before answering; larger: hang up
REQUEST_TIMEOUT_S = 120.0  # per socket operation: a stalled upload cannot hold the job lock for ever
_RESULT_PATH = re.compile(r"^/result/([0-9a-f]{32})\.mp4$")
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
_CSP = "default-src 'self'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src 'self' blob: data:; "
_CSP += "media-src 'self' blob:"


class _Body:
    """The request body: at most ``length`` bytes of ``stream``; ``drain`` reads and drops the rest."""

    def __init__(self, stream: BinaryIO, length: int) -> None:
        self.stream, self.remaining = stream, length

    def read(self, size: int) -> bytes:
        data = self.stream.read(min(size, self.remaining)) if self.remaining > 0 else b""
        self.remaining -= len(data)
        return data

    def drain(self, limit: int) -> bool:
        """Read the unread rest if it is at most ``limit`` bytes; False if it was not (or the client left)."""
        if self.remaining > limit:
            return False
        try:
            while self.remaining > 0 and self.read(COPY_CHUNK):
                pass
        except OSError:
            return False
        return self.remaining == 0


class WebServer(ThreadingHTTPServer):
    """A ``ThreadingHTTPServer`` that owns a ``WebApp``; ``server_close`` also deletes its files."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], app: WebApp) -> None:
        self.app = app
        super().__init__(address, _Handler)

    @property
    def url(self) -> str:
        """The address to open in a browser (a loopback one when bound to every interface)."""
        host, port = self.server_address[:2]
        if host in ("0.0.0.0", "::", ""):
            host = "127.0.0.1"
        return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"

    def server_close(self) -> None:
        super().server_close()
        self.app.close()


def make_server(
    animator: Animator | Callable[[], Animator],
    host: str = "127.0.0.1",
    port: int = 7860,
    *,
    max_upload_mb: float = 200.0,
    keep_results: int = 20,
    log: Callable[[str], None] | None = None,
) -> WebServer:
    """Bind a server for ``animator`` (or the Animator that ``animator()`` loads, called once here).

    ``port=0`` picks a free port (see ``server.url``). Nothing is served until ``serve_forever(server)``.
    ``log`` receives one line per job and per server error (None: silent).
    Raises ``OstnetError`` when the address cannot be bound (port in use, unknown host).
    """
    if not isinstance(animator, Animator):
        animator = animator()
    app = WebApp(animator, max_upload_mb=max_upload_mb, keep_results=keep_results, log=log)
    try:
        return WebServer((host, port), app)
    except OSError as exc:
        app.close()
        hint = " (choose another with --port)" if getattr(exc, "errno", None) == 98 else ""
        raise OstnetError(f"{host}:{port}: cannot listen there: {exc.strerror or exc}{hint}") from None


def serve_forever(server: WebServer, poll_interval: float = 0.5) -> None:
    """Serve until ``server.shutdown()`` (another thread) or Ctrl-C; always closes the server and deletes
    its uploads and results."""
    try:
        server.serve_forever(poll_interval)
    finally:
        server.server_close()


class _Handler(BaseHTTPRequestHandler):
    server: WebServer
    server_version = "ostnet-web"
    timeout = REQUEST_TIMEOUT_S

    # ---------------------------------------------------------------------------------------------- GET

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        if url.path in ("/", "/index.html"):
            self._send_html(HTTPStatus.OK, render_page(self.server.app.info))
        elif url.path == "/progress":
            self._send_json(HTTPStatus.OK, self.server.app.progress_json())
        elif match := _RESULT_PATH.match(url.path):
            result = self.server.app.result(match.group(1))
            if result is None:
                self._send_text(HTTPStatus.NOT_FOUND, "no such result (results are deleted when the server stops)")
            else:
                self._send_video(result, download="download" in parse_qs(url.query))
        else:
            self._send_text(HTTPStatus.NOT_FOUND, "not found")

    def _send_video(self, result: Result, download: bool) -> None:
        size = result.path.stat().st_size
        start, end, status = 0, size - 1, HTTPStatus.OK
        requested = _RANGE.match(self.headers.get("Range", "").strip())
        if requested and (requested.group(1) or requested.group(2)):
            first, last = requested.groups()
            start, end = (int(first), min(int(last or size - 1), size - 1)) if first else (size - int(last), size - 1)
            if start < 0 or start > end:
                self.send_response(HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE)
                self.send_header("Content-Range", f"bytes */{size}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            status = HTTPStatus.PARTIAL_CONTENT
        self.send_response(status)
        self.send_header("Content-Type", "video/mp4")
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Length", str(end - start + 1))
        if status == HTTPStatus.PARTIAL_CONTENT:
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        if download:
            self.send_header("Content-Disposition", f'attachment; filename="{result.filename}"')
        self.end_headers()
        with open(result.path, "rb") as video:
            video.seek(start)
            left = end - start + 1
            while left > 0 and (chunk := video.read(min(COPY_CHUNK, left))):
                self.wfile.write(chunk)
                left -= len(chunk)

    # --------------------------------------------------------------------------------------------- POST

    def do_POST(self) -> None:
        if urlsplit(self.path).path != "/animate":
            self._send_text(HTTPStatus.NOT_FOUND, "not found")
            return
        app = self.server.app
        length = self._content_length()
        if length is None:
            return
        body = _Body(self.rfile, length)
        if length > app.max_upload_bytes:
            limit = app.info.max_upload_mb
            message = f"upload: {length / 2**20:.1f} MB is more than the limit of {limit:g} MB (--max-upload-mb)"
            self._refuse(body, HTTPStatus.BAD_REQUEST, message)
            return
        if not app.lock.acquire(blocking=False):
            self._refuse(
                body,
                HTTPStatus.SERVICE_UNAVAILABLE,
                "busy, try again in a moment: another video is being made (one at a time)",
            )
            return
        try:
            outcome = self._run_job(body)
        finally:
            app.lock.release()  # before answering, so that the next request finds the server free
        if isinstance(outcome, Result):
            self._send_result(outcome)
        else:
            self._refuse(body, *outcome)

    def _run_job(self, body: _Body) -> Result | tuple[HTTPStatus, str]:
        """Receive the form and make the video: the Result, or the error status and message."""
        app = self.server.app
        folder = app.new_upload_folder()
        try:
            boundary = boundary_from(self.headers.get("Content-Type"))
            app.progress.start("receiving")
            try:
                form = parse_multipart(body, body.remaining, boundary, folder)
            except OSError as exc:  # the client went away or stalled
                raise OstnetError(f"upload: the connection failed ({exc.strerror or exc})") from None
            return app.animate(form)
        except OstnetError as exc:
            return HTTPStatus.BAD_REQUEST, str(exc)
        except Exception as exc:  # a bug: the terminal gets the traceback, the page a one-line message
            traceback.print_exc(file=sys.stderr)
            return (
                HTTPStatus.INTERNAL_SERVER_ERROR,
                f"internal error ({type(exc).__name__}: {exc}); details are in the server's terminal",
            )
        finally:
            app.progress.stop()
            shutil.rmtree(folder, ignore_errors=True)

    def _send_result(self, result: Result) -> None:
        if self._wants_json():
            self._send_json(HTTPStatus.OK, result.to_json())
        else:
            view = ResultView(result.video_url, result.download_url, result.filename, result.summary, result.warnings)
            self._send_html(HTTPStatus.OK, render_page(self.server.app.info, result=view))

    def _content_length(self) -> int | None:
        """The body length, or None after answering 411 / 400."""
        value = self.headers.get("Content-Length")
        if value is None or self.headers.get("Transfer-Encoding"):
            self.close_connection = True
            self._send_error(HTTPStatus.LENGTH_REQUIRED, "request: a Content-Length is required")
            return None
        if not value.strip().isdigit():
            self.close_connection = True
            self._send_error(HTTPStatus.BAD_REQUEST, f"request: bad Content-Length {value!r}")
            return None
        return int(value)

    def _refuse(self, body: _Body, status: HTTPStatus, message: str) -> None:
        """Answer with an error after reading the unread body (up to a limit), so that the client, which is
        still sending, reads the answer rather than a reset connection."""
        if not body.drain(max(4 * self.server.app.max_upload_bytes, DRAIN_LIMIT)):
            self.close_connection = True
        self._send_error(status, message)

    # ------------------------------------------------------------------------------------------ helpers

    def _wants_json(self) -> bool:
        return "application/json" in self.headers.get("Accept", "")

    def _send_error(self, status: HTTPStatus, message: str) -> None:
        if self._wants_json():
            self._send_json(status, {"error": message})
        else:
            self._send_html(status, render_page(self.server.app.info, error=message))

    def _send_bytes(self, status: HTTPStatus, content_type: str, data: bytes, csp: bool = False) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        if csp:
            self.send_header("Content-Security-Policy", _CSP)
        self.end_headers()
        self.wfile.write(data)

    def _send_html(self, status: HTTPStatus, page: str) -> None:
        self._send_bytes(status, "text/html; charset=utf-8", page.encode("utf-8"), csp=True)

    def _send_json(self, status: HTTPStatus, value: dict) -> None:
        self._send_bytes(status, "application/json", json.dumps(value).encode("utf-8"))

    def _send_text(self, status: HTTPStatus, text: str) -> None:
        self._send_bytes(status, "text/plain; charset=utf-8", text.encode("utf-8"))

    def handle_one_request(self) -> None:
        try:
            super().handle_one_request()
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            self.close_connection = True  # the browser went away (e.g. a video seek): nothing to answer

    def log_message(self, format: str, *args) -> None:  # noqa: A002 (the base class's name)
        pass  # no access log: the page polls /progress; jobs and errors are logged by the app

    def log_error(self, format: str, *args) -> None:  # noqa: A002
        if self.server.app.log is not None:
            self.server.app.log(f"{self.address_string()}: {format % args}")


__all__ = ["WebServer", "make_server", "serve_forever"]
