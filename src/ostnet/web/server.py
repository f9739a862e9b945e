"""Serving the Gradio app: the queue and its limits, the request guard, Gradio's cache in the server's own
temporary folder, ``--auth``, no share link unless asked, analytics off."""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ostnet.web.guard import GuardSettings, RequestGuard, is_loopback
from ostnet.web.jobs import ServedModel
from ostnet.web.limits import WebLimits


@dataclass
class Served:
    """A running server: its ``url``, the ``app`` (``WebApp``) and its temporary ``folder``; ``close()`` stops
    it and deletes the folder."""

    url: str
    app: object
    folder: Path

    def close(self) -> None:
        self.app.blocks.close()  # type: ignore[attr-defined]
        self.app.files.close()  # type: ignore[attr-defined]
        shutil.rmtree(self.folder, ignore_errors=True)


def parse_auth(value: str | None) -> tuple[str, str] | None:
    """``USER:PASS`` -> (user, pass); ``OstnetError`` for anything else."""
    from ostnet.errors import OstnetError

    if value is None:
        return None
    user, sep, password = value.partition(":")
    if not sep or not user or not password:
        raise OstnetError("--auth must be USER:PASS (both non-empty)")
    return user, password


def serve(
    models: dict[str, ServedModel],
    limits: WebLimits,
    host: str = "127.0.0.1",
    port: int | None = 7860,
    auth: tuple[str, str] | None = None,
    share: bool = False,
    block: bool = True,
    quiet: bool = False,
) -> Served:
    """Build the app and serve it (``block=False``: return at once, the server runs in a thread)."""
    from starlette.middleware import Middleware

    from ostnet.web.app import WebApp

    folder = Path(tempfile.mkdtemp(prefix="ostnet-web-"))
    app = WebApp(models, limits, folder)
    guard = GuardSettings.for_host(host, int(limits.max_upload_mb * 2**20), limits.request_timeout)
    served = Served(url="", app=app, folder=folder)
    try:
        _, url, _ = app.blocks.launch(
            server_name=host,
            server_port=port or None,
            auth=auth,
            share=share,
            max_file_size=int(limits.max_upload_mb * 2**20),
            app_kwargs={"middleware": [Middleware(RequestGuard, settings=guard, folder=folder)]},
            prevent_thread_lock=True,
            ssr_mode=False,
            quiet=quiet,
            inbrowser=False,
            mcp_server=False,
        )
        served.url = url
        if block:
            app.blocks.block_thread()
    except BaseException:
        served.close()
        raise
    if block:
        served.close()
    return served


__all__ = ["Served", "is_loopback", "parse_auth", "serve"]
