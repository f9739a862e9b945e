"""An ASGI middleware in front of the Gradio app: who may talk to the server, and how long a request may take
to arrive.

* **Host and Origin** (DNS rebinding, cross-site requests): when the server is bound to loopback, a request
  whose ``Host`` header names another host, or whose ``Origin`` is not the page's own origin, gets 403.
  Browsers always send ``Origin`` with cross-site POSTs and WebSocket handshakes, so another site cannot
  submit jobs or read results; a rebinding page has a foreign ``Host``.
* **Request bodies are read completely before the app sees them**, against a size limit (413) and an overall
  deadline (408). A slow-drip upload therefore never reaches Gradio's queue, let alone a job slot; it costs
  one buffered connection until its deadline. Bodies go to a spooled temporary file in the server's folder.

No Gradio import: this is plain ASGI (``scope``/``receive``/``send``).
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

LOOPBACK_NAMES = frozenset({"127.0.0.1", "localhost", "::1"})
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
CHUNK = 1 << 16
MEMORY_BYTES = 1 << 20  # bodies up to this size stay in memory
FORM_SLACK = 1 << 16  # room for the multipart headers around an upload of the largest allowed size

Scope = dict
Message = dict
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


def is_loopback(host: str) -> bool:
    return host in LOOPBACK_NAMES or host.startswith("127.")


def _hostname(netloc: str) -> str:
    """``example.org:7860`` -> ``example.org``; ``[::1]:7860`` -> ``::1`` (lower case)."""
    try:
        return (urlsplit(f"//{netloc}").hostname or "").lower()
    except ValueError:
        return ""


@dataclass(frozen=True)
class GuardSettings:
    """``allowed_hosts``: host names accepted in ``Host`` and ``Origin`` (None: any, for a server bound beyond
    loopback); ``max_upload_bytes``: largest upload (a request body may be ``FORM_SLACK`` larger);
    ``body_seconds``: time a request body may take to arrive."""

    allowed_hosts: frozenset[str] | None
    max_upload_bytes: int
    body_seconds: float

    @property
    def max_body_bytes(self) -> int:
        return self.max_upload_bytes + FORM_SLACK

    @classmethod
    def for_host(cls, bound: str, max_upload_bytes: int, body_seconds: float) -> GuardSettings:
        """Loopback binding: only the loopback names (and the bound one) are accepted."""
        allowed = LOOPBACK_NAMES | {bound.strip("[]").lower()} if is_loopback(bound.strip("[]")) else None
        return cls(allowed, max_upload_bytes, body_seconds)


class RequestGuard:
    """ASGI middleware (see the module docstring). ``folder``: where large bodies are spooled."""

    def __init__(self, app, settings: GuardSettings, folder: Path | None = None) -> None:
        self.app, self.settings, self.folder = app, settings, folder

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        refusal = self.refusal(_headers(scope))
        if refusal is not None:
            await _refuse(scope, send, 403, refusal)
            return
        if scope["type"] == "http" and scope["method"] in BODY_METHODS:
            await self._buffered(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def refusal(self, headers: dict[str, str]) -> str | None:
        """Why a request with these headers is refused (None: accepted)."""
        allowed = self.settings.allowed_hosts
        if allowed is None:
            return None
        host = headers.get("host", "")
        if _hostname(host) not in allowed:
            return f"foreign Host header {host!r}: this server only answers to {', '.join(sorted(allowed))}"
        origin = headers.get("origin")
        if origin is not None:
            parts = urlsplit(origin) if origin != "null" else None
            if parts is None or (parts.hostname or "").lower() not in allowed or parts.netloc.lower() != host.lower():
                return f"foreign Origin {origin!r}: only pages served by this server may use it"
        return None

    async def _buffered(self, scope: Scope, receive: Receive, send: Send) -> None:
        declared = _headers(scope).get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.settings.max_body_bytes:
            await _refuse(scope, send, 413, _too_large(self.settings.max_upload_bytes))
            return
        folder = str(self.folder) if self.folder is not None else None
        with tempfile.SpooledTemporaryFile(max_size=MEMORY_BYTES, dir=folder, prefix="body-") as body:
            status = await self._read_body(receive, body)
            if status is not None:
                message = (
                    _too_large(self.settings.max_upload_bytes)
                    if status == 413
                    else _too_slow(self.settings.body_seconds)
                )
                await _refuse(scope, send, status, message)
                return
            body.seek(0)
            await self.app(scope, _replay(body, receive), send)

    async def _read_body(self, receive: Receive, body) -> int | None:
        """Copy the request body into ``body``; 413 (too large), 408 (too slow), 400 (client left) or None."""
        deadline = time.monotonic() + self.settings.body_seconds
        size = 0
        while True:
            try:
                message = await asyncio.wait_for(receive(), max(deadline - time.monotonic(), 0.001))
            except TimeoutError:
                return 408
            if message["type"] == "http.disconnect":
                return 400
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.settings.max_body_bytes:
                return 413
            body.write(chunk)
            if not message.get("more_body", False):
                return None


def _replay(body, receive: Receive) -> Receive:
    """A ``receive`` that gives the buffered body in chunks, then passes on to the real one (disconnects)."""
    done = False

    async def replay() -> Message:
        nonlocal done
        if done:
            return await receive()
        chunk = body.read(CHUNK)
        more = len(chunk) == CHUNK
        done = not more
        return {"type": "http.request", "body": chunk, "more_body": more}

    return replay


def _headers(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", ())}


def _too_large(limit: int) -> str:
    return f"upload too large: the limit is {limit / 2**20:g} MB (--max-upload-mb)"


def _too_slow(seconds: float) -> str:
    return f"upload too slow: the request did not arrive within {seconds:g} s (--request-timeout)"


async def _refuse(scope: Scope, send: Send, status: int, message: str) -> None:
    """Answer ``status`` with a one-line plain-text ``message`` (a WebSocket handshake is closed instead)."""
    if scope["type"] == "websocket":
        await send({"type": "websocket.close", "code": 1008, "reason": message[:120]})
        return
    body = (message + "\n").encode()
    headers: Iterable[tuple[bytes, bytes]] = [
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
    ]
    await send({"type": "http.response.start", "status": status, "headers": list(headers)})
    await send({"type": "http.response.body", "body": body})


__all__ = ["GuardSettings", "RequestGuard", "is_loopback"]
