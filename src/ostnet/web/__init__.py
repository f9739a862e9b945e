"""``ostnet web``: a small web page for animating a portrait, served by the standard library alone.

* ``ostnet.web.server``: ``make_server(animator, host, port)`` and ``serve_forever(server)`` (HTTP);
* ``ostnet.web.app``: ``WebApp``, one job at a time through ``ostnet.inference.pipeline.animate_video``;
* ``ostnet.web.page``: the HTML page; ``ostnet.web.multipart``: the streaming form-data parser.

Example::

    from ostnet.web import make_server, serve_forever
    server = make_server(animator, "127.0.0.1", 0)
    print(server.url)
    serve_forever(server)  # until server.shutdown() from another thread, or Ctrl-C
"""

from __future__ import annotations

from ostnet.web.server import WebServer, make_server, serve_forever

__all__ = ["WebServer", "make_server", "serve_forever"]
